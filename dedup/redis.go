package dedup

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisOptions configure a Redis store. Zero durations take the defaults named on each field.
type RedisOptions struct {
	// KeyPrefix starts every key, for example "kafka-sidecar:mygroup:". It should end with a separator and name
	// the consumer group, so groups sharing one Redis never see each other's marks.
	KeyPrefix string
	// Owner names the leases this store takes: the static instance ID, so a restarted member reclaims its own
	// leases at once; empty means a random owner whose leases just expire after a restart.
	Owner string
	// Lease is how long a lease lives without being taken again: the app timeout plus a margin. Zero means
	// DefaultLease. Redis keeps millisecond precision; shorter leases are rounded up to one millisecond.
	Lease time.Duration
	// TTL is how long a position mark lives (SIDECAR_DEDUP_TTL): longer than the topics' retention plus the
	// longest retry delay. Zero means DefaultTTL. It is also how long the previous release's marks may live,
	// which bounds how long they are read after an upgrade.
	TTL time.Duration
	// IDTTL is how long an ID mark lives (SIDECAR_DEDUP_ID_TTL). Zero means DefaultIDTTL.
	IDTTL time.Duration
	// Now is the clock that decides when this store extends a lease or a position key's expiry again (see
	// refresher); nil means time.Now. Tests move it together with a fake server's clock.
	Now func() time.Time
}

// Redis is the shared Store, on a standalone, Sentinel or Cluster deployment. Its keys, all starting with
// KeyPrefix:
//
//   - p:{<topic>:<partition>}:<epoch>:<chunk>: position marks, one bit per offset, chunkOffsets offsets per key,
//     living at least TTL after the last mark written into it (its expiry is set to TTL plus PositionMarkSlack
//     when the key is created and when this store last set it half the slack ago or more). <topic> is the topic ID in hex, or "~" and the topic's
//     name when the ID is unknown.
//   - p:{<topic>:<partition>}:lease: the partition's lease, "L"+owner, living Lease after it was taken or last
//     extended; a claim extends it when this store last did so a quarter of a lease ago or more.
//   - i:<message ID>: for records with an ID of their own, the ID's lease ("L"+owner, living Lease) and then
//     its mark ("d", living IDTTL).
//   - p:format: when the previous release's keys are read until (see below); kept without expiry.
//
// The keys of one partition share a hash slot, so a Cluster serves a partition's marks and lease in one script
// call. Every call runs one Lua script (applyScript), so each check-and-set is atomic; on a standalone or
// Sentinel client a whole Apply is one script call (a few for very large rounds), one round trip. On a Cluster
// client the work is split by hash slot and pipelined; a round that completes, parks or claims records with IDs
// of their own takes two round trips there, so that an ID lease is always taken before the position is
// checked and dropped only after the position is marked (see applyCluster).
//
// The previous release kept one key per message ID, KeyPrefix+id, holding "D" once done (for TTL) or "L"+owner
// while leased. Until the time p:format holds, a claim also reads that key for the record's ID ("D" is done,
// another owner's lease is busy), so marks and leases written before an upgrade keep their meaning; IDs that
// start with "i:" or "p:" are not read there, since they could name a key of the new layout. The first store
// of this release to start on a Redis without p:format decides that time: TTL from then when a bounded SCAN
// finds keys of the previous layout (or cannot finish), and none when the prefix holds no key at all.
//
// All methods are safe for concurrent use.
type Redis struct {
	client   redis.UniversalClient
	grouping grouping
	prefix   string
	owner    string
	ttl      time.Duration
	// leaseValue is what a lease of this owner holds; the durations are in the form the script takes them.
	leaseValue            string
	leaseMs, ttlMs, idTTL string

	// legacyUntil is the Unix time in milliseconds until which the previous release's keys are read;
	// math.MaxInt64 until the store has found out. decided is closed once it has.
	legacyUntil atomic.Int64
	decided     chan struct{}
	stop        context.CancelFunc
	detector    sync.WaitGroup

	// refresh decides when a partition lease or a position key's expiry is extended again.
	refresh *refresher[string]
	// leased holds, per topic name and partition, the partition lease keys this store has taken, for
	// ReleasePartitions.
	leasedMu sync.Mutex
	leased   map[topicPartition][]string
}

type topicPartition struct {
	topic     string
	partition int32
}

// grouping says which keys one script call may take on this client.
type grouping uint8

const (
	groupAll    grouping = iota // standalone or Sentinel: any keys together
	groupBySlot                 // Cluster: keys of one hash slot together
	groupPerKey                 // unknown client (a Ring, a wrapper): keys of one hash tag together
)

// maxMarksPerCall bounds the records one script call covers, so that a huge round cannot keep the server busy
// for long.
const maxMarksPerCall = 512

// chunkBytes is the length of a position-mark key's value: with the string header and terminator Redis adds,
// an allocation of exactly 1 KiB. Its last byte is padding: a new key is created at full length in one
// allocation by writing it (growing the value bit by bit would leave up to half of it unused). The size keeps
// the key's own cost (about 160 bytes: name, dictionary entries, expiry) small per record, and the bytes a
// partition's first chunk of a leader epoch allocates before its first offset small too.
const chunkBytes = 1018

// ChunkOffsets is the number of offsets one position-mark key covers (8 per byte but the padding): 8,136.
// Offsets n*ChunkOffsets to (n+1)*ChunkOffsets-1 of one partition and leader epoch share a key.
const ChunkOffsets = (chunkBytes - 1) * 8

const chunkOffsets = ChunkOffsets

// Prefixes of the keys under KeyPrefix (see Redis).
const (
	positionSpace = "p:"
	idSpace       = "i:"
	formatKey     = "p:format"
)

// applyScript does one call's share of a round. ARGV[1] is this owner's lease value, ARGV[2] the lease, ARGV[3]
// the position-mark TTL and ARGV[4] the ID-mark TTL in milliseconds, ARGV[5] the padding byte's index; then
// operations, each an opcode and its arguments, KEYS referred to by index:
//
//   - W k n lo hi bits e: set the n bits in bits (two bytes each, big-endian), which lie in bytes lo to hi, of
//     position key k (creating it at full length), and give it the TTL (plus the slack) when e is 1 or the key
//     is new.
//   - P k l n lo hi bits e: claim the records at the n bits in bits of position key k (within bytes lo to hi),
//     whose partition lease is l: done when the bit is set, otherwise busy when another owner holds the lease,
//     otherwise the lease is taken, or extended when e is 1 (once per call).
//   - D k: write the ID mark k ("d"), replacing a lease.
//   - R k: drop this owner's lease k (an ID's or a partition's) if it is still there.
//   - C p b i l g: claim one record. p/b: position key and bit; i: ID key; l: partition lease key; g: previous
//     release's key; 0 where absent. Done when the bit is set, the ID key holds "d" or the old key "D";
//     otherwise busy when the old key, the ID key or the partition lease holds another owner's lease;
//     otherwise the ID lease or the partition lease is taken or extended.
//
// Bits are read and written a run of bytes at a time (GETRANGE, SETRANGE) with arithmetic in the script, which
// costs the server far less than a command per bit (BITFIELD costs about as much per bit as SETBIT); bit 0 is
// the most significant bit of byte 0, as for SETBIT. A key of the new layout can have the name of a previous
// release's key (an old message ID "i:x" names the new ID key of message "x"), whose value must not count: an
// ID mark is "d", not the old "D", and only "L"+owner counts as a lease, anything else is treated as absent and
// overwritten; a position key counts only at its full length (an old value is a few hundred bytes at most, so
// only reads of its first 256 bytes check), and is recreated otherwise. It replies one integer per claimed record, in order: 0 claimed (or no
// objection, for a part of a claim), 1 done, 2 busy.
var applyScript = redis.NewScript(`
local lease, leaseMs, posTTL, idTTL, pad = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local full = tonumber(pad) + 1
local r, parts, touched, valid = {}, {}, {}, {}
local floor = math.floor
local function isLease(v) return v and string.sub(v, 1, 1) == 'L' end
local function isSet(s, lo, b)
  local v = string.byte(s, floor(b / 8) - lo + 1)
  return v ~= nil and floor(v / 2 ^ (7 - b % 8)) % 2 == 1
end
local function partition(lk, ext)
  local ps = parts[lk]
  if ps == nil then
    ps = 0
    local cur = redis.call('GET', KEYS[lk])
    if cur == lease then
      if ext then redis.call('PEXPIRE', KEYS[lk], leaseMs) end
    elseif isLease(cur) then
      ps = 2
    else
      redis.call('SET', KEYS[lk], lease, 'PX', leaseMs)
    end
    parts[lk] = ps
  end
  return ps
end
local i, n = 6, #ARGV
while i <= n do
  local op = ARGV[i]
  if op == 'P' then
    local ki, lk, c, lo = tonumber(ARGV[i+1]), tonumber(ARGV[i+2]), tonumber(ARGV[i+3]), tonumber(ARGV[i+4])
    local s, bits, ext = redis.call('GETRANGE', KEYS[ki], lo, ARGV[i+5]), ARGV[i+6], ARGV[i+7] == '1'
    if lo < 256 and s ~= '' then
      -- The first bytes could be an old release's value under the same name (see below).
      if valid[ki] == nil then valid[ki] = redis.call('STRLEN', KEYS[ki]) == full end
      if not valid[ki] then s = '' end
    end
    local first, pending = #r + 1, false
    for j = 1, 2 * c, 2 do
      local hi8, lo8 = string.byte(bits, j, j + 1)
      if isSet(s, lo, hi8 * 256 + lo8) then
        r[#r + 1] = 1
      else
        r[#r + 1] = -1
        pending = true
      end
    end
    if pending then
      local ps = partition(lk, ext)
      for j = first, #r do
        if r[j] == -1 then r[j] = ps end
      end
    elseif ext and redis.call('GET', KEYS[lk]) == lease then
      -- Every record is done, but this owner's lease is due to be extended.
      redis.call('PEXPIRE', KEYS[lk], leaseMs)
    end
    i = i + 8
  elseif op == 'W' then
    local ki, c, lo, hi = tonumber(ARGV[i+1]), tonumber(ARGV[i+2]), tonumber(ARGV[i+3]), tonumber(ARGV[i+4])
    local k = KEYS[ki]
    local s = redis.call('GETRANGE', k, lo, hi)
    local fresh = #s < hi - lo + 1
    if not fresh and lo < 256 then
      if valid[ki] == nil then valid[ki] = redis.call('STRLEN', k) == full end
      fresh = not valid[ki]
    end
    if fresh then
      -- A new key: created at full length in one allocation (replacing an old release's value of that name).
      if redis.call('STRLEN', k) > 0 then redis.call('DEL', k) end
      redis.call('SETRANGE', k, pad, '\0')
      valid[ki] = true
      s = redis.call('GETRANGE', k, lo, hi)
    end
    local bytes, bits = {string.byte(s, 1, -1)}, ARGV[i+5]
    if ARGV[i+6] == '1' then fresh = true end
    for j = 1, 2 * c, 2 do
      local hi8, lo8 = string.byte(bits, j, j + 1)
      local b = hi8 * 256 + lo8
      local x, m = floor(b / 8) - lo + 1, 2 ^ (7 - b % 8)
      if floor(bytes[x] / m) % 2 == 0 then bytes[x] = bytes[x] + m end
    end
    redis.call('SETRANGE', k, lo, string.char(unpack(bytes)))
    if fresh and not touched[ki] then
      redis.call('PEXPIRE', k, posTTL)
      touched[ki] = true
    end
    i = i + 7
  elseif op == 'C' then
    local p, b, ik, lk, gk = tonumber(ARGV[i+1]), ARGV[i+2], tonumber(ARGV[i+3]), tonumber(ARGV[i+4]), tonumber(ARGV[i+5])
    i = i + 6
    local st, g, v = 0, false, false
    if p > 0 and redis.call('GETBIT', KEYS[p], b) == 1 then
      if valid[p] == nil then valid[p] = redis.call('STRLEN', KEYS[p]) == full end
      if valid[p] then st = 1 end
    end
    if st == 0 and gk > 0 then
      g = redis.call('GET', KEYS[gk])
      if g == 'D' then st = 1 end
    end
    if st == 0 and ik > 0 then
      v = redis.call('GET', KEYS[ik])
      if v == 'd' then st = 1 end
    end
    if st == 0 then
      if isLease(g) and g ~= lease then
        st = 2
      elseif isLease(v) and v ~= lease then
        st = 2
      elseif lk > 0 then
        st = partition(lk, true)
      end
      if st == 0 and ik > 0 then
        redis.call('SET', KEYS[ik], lease, 'PX', leaseMs)
      end
    end
    r[#r + 1] = st
  elseif op == 'D' then
    redis.call('SET', KEYS[tonumber(ARGV[i+1])], 'd', 'PX', idTTL)
    i = i + 2
  elseif op == 'R' then
    local k = KEYS[tonumber(ARGV[i+1])]
    if redis.call('GET', k) == lease then
      redis.call('DEL', k)
    end
    i = i + 2
  else
    return redis.error_reply('unknown operation ' .. tostring(op))
  end
end
return r
`)

// NewRedis returns a store on client, which it owns from now on: Close closes it. The client can be standalone,
// Sentinel (failover) or Cluster; its timeouts and retries bound every call, and it should set
// ContextTimeoutEnabled so a caller's deadline also bounds the wait for a reply.
//
// The store finds out in the background whether the previous release's keys must be read (see Redis); until it
// knows, it reads them.
func NewRedis(client redis.UniversalClient, opts RedisOptions) *Redis {
	lease := orDefault(opts.Lease, DefaultLease)
	ttl := orDefault(opts.TTL, DefaultTTL)
	idTTL := orDefault(opts.IDTTL, DefaultIDTTL)
	owner := ownerOrRandom(opts.Owner)
	g := groupPerKey
	switch client.(type) {
	case *redis.Client:
		g = groupAll
	case *redis.ClusterClient:
		g = groupBySlot
	}
	ms := func(d time.Duration) string { return strconv.FormatInt(max(d.Milliseconds(), 1), 10) }
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	r := &Redis{
		refresh:    newRefresher[string](now, lease, ttl),
		client:     client,
		grouping:   g,
		prefix:     opts.KeyPrefix,
		owner:      owner,
		ttl:        ttl,
		leaseValue: leasePrefix + owner,
		leaseMs:    ms(lease),
		ttlMs:      ms(ttl + PositionMarkSlack(ttl)),
		idTTL:      ms(idTTL),
		decided:    make(chan struct{}),
		leased:     make(map[topicPartition][]string),
	}
	r.legacyUntil.Store(math.MaxInt64)
	ctx, stop := context.WithCancel(context.Background())
	r.stop = stop
	r.detector.Add(1)
	go func() {
		defer r.detector.Done()
		r.detectFormat(ctx)
	}()
	return r
}

// Owner returns the name this store's leases carry.
func (r *Redis) Owner() string { return r.owner }

// IDKey returns the key that holds id's lease and mark, for tools that inspect the store.
func (r *Redis) IDKey(id string) string { return r.prefix + idSpace + id }

// LegacyKey returns the key the previous release kept id's lease or mark in.
func (r *Redis) LegacyKey(id string) string { return r.prefix + id }

// PositionKey returns the key that holds m's position mark and the bit that stands for it.
func (r *Redis) PositionKey(m Mark) (key string, bit int64) {
	return r.partitionBase(&m) + ":" + strconv.FormatInt(int64(m.Epoch), 10) + ":" +
		strconv.FormatInt(m.Offset/chunkOffsets, 10), m.Offset % chunkOffsets
}

// PartitionLeaseKey returns the key of the lease on m's partition.
func (r *Redis) PartitionLeaseKey(m Mark) string { return r.partitionBase(&m) + ":lease" }

// partitionBase is the start of every key of m's partition: the prefix and the hash tag.
func (r *Redis) partitionBase(m *Mark) string {
	var b strings.Builder
	b.Grow(len(r.prefix) + len(positionSpace) + 48)
	b.WriteString(r.prefix)
	b.WriteString(positionSpace)
	b.WriteByte('{')
	if m.TopicID == ([16]byte{}) {
		// Topic names cannot contain '~', so this never reads as an ID.
		b.WriteByte('~')
		b.WriteString(m.Topic)
	} else {
		var h [32]byte
		hex.Encode(h[:], m.TopicID[:])
		b.Write(h[:])
	}
	b.WriteByte(':')
	b.WriteString(strconv.FormatInt(int64(m.Partition), 10))
	b.WriteByte('}')
	return b.String()
}

// LegacyUntil waits until the store knows whether the previous release's keys are read and returns until when
// (the zero time when they are not).
func (r *Redis) LegacyUntil(ctx context.Context) (time.Time, error) {
	select {
	case <-r.decided:
	case <-ctx.Done():
		return time.Time{}, ctx.Err()
	}
	ms := r.legacyUntil.Load()
	if ms == 0 {
		return time.Time{}, nil
	}
	return time.UnixMilli(ms), nil
}

// readLegacy reports whether a claim for id reads the previous release's key.
func (r *Redis) readLegacy(id string, nowMs int64) bool {
	return nowMs < r.legacyUntil.Load() && !strings.HasPrefix(id, idSpace) && !strings.HasPrefix(id, positionSpace)
}

// Apply implements Store.
func (r *Redis) Apply(ctx context.Context, ops Ops) ([]Status, error) {
	statuses := make([]Status, len(ops.Claim))
	if ops.empty() {
		return statuses, nil
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("applying: %w", err)
	}
	firsts, later := repeats(ops.Claim)
	plan := r.plan(ops, firsts)
	var err error
	if r.grouping == groupAll {
		err = r.runPlan(ctx, plan, plan.calls(r, 0))
	} else {
		err = r.applyCluster(ctx, plan)
	}
	if err != nil {
		// Extensions the plan counted on may not have happened: the next round makes them.
		r.refresh.forget(plan.refreshed)
		return nil, wrapErr(ctx, "applying", err)
	}
	for k, i := range firsts {
		statuses[i] = plan.claims[k].status()
	}
	if r.grouping != groupAll {
		if err := r.releaseSurplus(ctx, plan, ops.Claim, firsts); err != nil {
			return nil, wrapErr(ctx, "applying", err)
		}
	}
	fillRepeats(ops.Claim, statuses, later)
	return statuses, nil
}

// applyCluster runs a plan whose keys may live on several servers. Round one writes position marks and does
// every part of a claim that takes an ID lease or reads the previous release's key; round two writes and drops
// ID keys and checks the positions of records with IDs of their own. So a member that parks a record has marked
// its position before it drops the ID lease, and a member that claims the record holds (or is refused) the ID
// lease before it looks at the position: it cannot see the position unmarked and then take a lease dropped
// after the mark. Rounds without work cost nothing; a round of records without IDs of their own is one round
// trip.
func (r *Redis) applyCluster(ctx context.Context, p *plan) error {
	if err := r.runPlan(ctx, p, p.calls(r, 1)); err != nil {
		return err
	}
	return r.runPlan(ctx, p, p.calls(r, 2))
}

// releaseSurplus drops ID leases that a split claim took although another part of it found the record done
// (on a Cluster only: one script sees the whole claim elsewhere and takes no lease then).
func (r *Redis) releaseSurplus(ctx context.Context, p *plan, claims []Mark, firsts []int) error {
	var surplus []Mark
	for k, i := range firsts {
		if c := &p.claims[k]; c.tookIDLease() && c.status() != Claimed {
			surplus = append(surplus, claims[i])
		}
	}
	if len(surplus) == 0 {
		return nil
	}
	release := r.plan(Ops{Release: surplus}, nil)
	return r.runPlan(ctx, release, release.calls(r, 0))
}

// ReleasePartitions implements Store: a compare-and-delete of each lease this store took on those partitions.
func (r *Redis) ReleasePartitions(ctx context.Context, partitions map[string][]int32) error {
	var keys []string
	r.leasedMu.Lock()
	for topic, ps := range partitions {
		for _, p := range ps {
			tp := topicPartition{topic, p}
			keys = append(keys, r.leased[tp]...)
			delete(r.leased, tp)
		}
	}
	r.leasedMu.Unlock()
	if len(keys) == 0 {
		return ctx.Err()
	}
	p := &plan{}
	for _, k := range keys {
		p.ops = append(p.ops, planOp{code: 'R', key: k, group: r.groupOf(k)})
	}
	return wrapErr(ctx, "releasing partitions", r.runPlan(ctx, p, p.calls(r, 0)))
}

// Ping implements Store.
func (r *Redis) Ping(ctx context.Context) error {
	return wrapErr(ctx, "pinging", r.client.Ping(ctx).Err())
}

// Close implements Store by closing the client. Calling it again does nothing.
func (r *Redis) Close() error {
	r.stop()
	r.detector.Wait()
	if err := r.client.Close(); err != nil && !errors.Is(err, redis.ErrClosed) {
		return fmt.Errorf("closing redis client: %w", err)
	}
	return nil
}

// remember notes a partition lease key this store may take, for ReleasePartitions.
func (r *Redis) remember(m *Mark, key string) {
	tp := topicPartition{m.Topic, m.Partition}
	r.leasedMu.Lock()
	defer r.leasedMu.Unlock()
	for _, k := range r.leased[tp] {
		if k == key {
			return
		}
	}
	r.leased[tp] = append(r.leased[tp], key)
}

// execPipeline sends the pipeline and returns an error only when the pipeline as a whole failed. Replies,
// including error replies, stay on each command for the caller to read. An error at connection set-up (a
// rejected password, say) is returned here, since go-redis does not copy a server's error reply onto the
// commands it never sent.
func execPipeline(ctx context.Context, pipe redis.Pipeliner) error {
	cmds, err := pipe.Exec(ctx)
	if err == nil {
		return nil
	}
	for _, cmd := range cmds {
		if cmd.Err() != nil {
			return nil // per-command errors; the caller reads them
		}
	}
	return err
}
