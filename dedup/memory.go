package dedup

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultMemoryMaxBytes is the memory store's bound when options leave it zero: about 2 billion position marks,
// a week of 3,000 records per second.
const DefaultMemoryMaxBytes = 256 << 20

// Approximate memory costs the memory store counts against its bound.
const (
	memChunkBytes = chunkBytes + 64 // a chunk of position marks, with its map entry
	memEntryBytes = 96              // an ID lease or mark, besides the ID's bytes
)

// MemoryOptions configure a Memory store. Zero values take the defaults named on each field.
type MemoryOptions struct {
	// Owner names the leases this store takes (the static instance ID); empty means a random owner.
	Owner string
	// Lease is how long a lease lives without being taken again; zero means DefaultLease.
	Lease time.Duration
	// TTL is how long a position mark lives; zero means DefaultTTL.
	TTL time.Duration
	// IDTTL is how long an ID mark lives; zero means DefaultIDTTL.
	IDTTL time.Duration
	// MaxBytes bounds the memory the marks and leases take (counted approximately); zero means
	// DefaultMemoryMaxBytes. Only the first store of a table sets it (see Shared).
	MaxBytes int64
	// Now is the clock; nil means time.Now. Tests inject a fake clock to expire leases and marks at will.
	Now func() time.Time
}

// Memory is a Store held in this process's memory, with the same semantics as Redis: position marks in bitmaps
// of the same chunks, ID leases and marks, partition leases, each expiring like its Redis key. It suits a single
// sidecar replica (its marks die with the process) and tests. All methods are safe for concurrent use; each
// Apply happens atomically under one lock.
//
// Its memory is bounded (MaxBytes). Expired marks are swept out as the table grows; when the live ones reach
// the bound, every Apply that could add to them fails with ErrUnavailable, so delivery pauses until marks
// expire: a full store never answers "not seen" for a record it had to forget.
//
// Several Memory values can share one table through Shared, which is how tests model several sidecars (owners)
// in front of one store.
type Memory struct {
	t      *memTable
	closed atomic.Bool
	owner  string
	lease  time.Duration
	ttl    time.Duration
	idTTL  time.Duration
	// leases and chunks decide, as for Redis, when this store extends a partition lease or a chunk's expiry.
	leases *refresher[partitionID]
	chunks *refresher[chunkID]
	// round and roundChunks hold the decisions of the round under way; guarded by t.mu.
	round       map[partitionID]bool
	roundChunks map[chunkID]bool
}

// memTable is the state shared by every Memory view on it.
type memTable struct {
	mu       sync.Mutex
	now      func() time.Time
	maxBytes int64
	chunks   map[chunkID]*memChunk
	ids      map[string]memEntry
	parts    map[partitionID]memEntry
	// bytes is the approximate size of the maps' contents; nextSweep the size at which expired entries are
	// next swept out, so the maps stay within twice their live size at an amortised constant cost per write.
	bytes     int64
	nextSweep int64
}

// chunkID names one chunk of position marks: a partition's offsets of one leader epoch, chunkOffsets of them.
type chunkID struct {
	partition partitionID
	epoch     int32
	chunk     int64
}

// partitionID names a partition by topic identity (the name only when the ID is unknown).
type partitionID struct {
	topicID   [16]byte
	topic     string
	partition int32
}

func partitionOf(m *Mark) partitionID {
	p := partitionID{topicID: m.TopicID, partition: m.Partition}
	if m.TopicID == ([16]byte{}) {
		p.topic = m.Topic
	}
	return p
}

type memChunk struct {
	bits    [(chunkOffsets + 63) / 64]uint64
	expires time.Time
}

// memEntry is a lease (done false, owner set) or an ID mark. A partition lease also keeps the topic name, for
// ReleasePartitions.
type memEntry struct {
	owner   string
	topic   string
	done    bool
	expires time.Time
}

// expiredAt reports whether an entry expiring at exp is gone at now. Like Redis, an entry still lives at the
// exact moment of its expiry and is gone just after.
func expiredAt(exp, now time.Time) bool { return now.After(exp) }

// minSweep is the smallest table size worth sweeping.
const minSweep = 1 << 20

// NewMemory returns an empty in-memory store.
func NewMemory(opts MemoryOptions) *Memory {
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	maxBytes := opts.MaxBytes
	if maxBytes <= 0 {
		maxBytes = DefaultMemoryMaxBytes
	}
	t := &memTable{
		now: now, maxBytes: maxBytes, nextSweep: minSweep,
		chunks: make(map[chunkID]*memChunk), ids: make(map[string]memEntry), parts: make(map[partitionID]memEntry),
	}
	return t.view(opts)
}

// Shared returns another store on the same table with its own owner, lease and TTLs (zero values take the
// defaults; Now and MaxBytes are ignored: the table's are shared).
func (m *Memory) Shared(opts MemoryOptions) *Memory {
	return m.t.view(opts)
}

func (t *memTable) view(opts MemoryOptions) *Memory {
	m := &Memory{
		t:     t,
		owner: ownerOrRandom(opts.Owner),
		lease: orDefault(opts.Lease, DefaultLease),
		ttl:   orDefault(opts.TTL, DefaultTTL),
		idTTL: orDefault(opts.IDTTL, DefaultIDTTL),
	}
	m.leases = newRefresher[partitionID](t.now, m.lease, m.ttl)
	m.chunks = newRefresher[chunkID](t.now, m.lease, m.ttl)
	return m
}

// Owner returns the name this store's leases carry.
func (m *Memory) Owner() string { return m.owner }

// Apply implements Store, atomically: all of ops happens under one lock.
func (m *Memory) Apply(ctx context.Context, ops Ops) ([]Status, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("applying: %w", err)
	}
	if m.closed.Load() {
		return nil, fmt.Errorf("applying: %w", ErrClosed)
	}
	statuses := make([]Status, len(ops.Claim))
	firsts, later := repeats(ops.Claim)
	t := m.t
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	// What this round decided to extend, as one Redis call decides it once per key.
	m.round, m.roundChunks = map[partitionID]bool{}, map[chunkID]bool{}
	if len(ops.Complete)+len(ops.Park)+len(ops.Claim) > 0 && !t.room(now) {
		return nil, fmt.Errorf("applying: %w: memory store full (%d bytes of marks and leases, bound %d)",
			ErrUnavailable, t.bytes, t.maxBytes)
	}
	for i := range ops.Complete {
		c := &ops.Complete[i]
		m.mark(c, now)
		if c.OwnID {
			t.putID(c.ID, memEntry{done: true, expires: now.Add(m.idTTL)})
		}
	}
	for i := range ops.Park {
		m.mark(&ops.Park[i], now)
	}
	for _, ms := range [][]Mark{ops.Park, ops.Release} {
		for i := range ms {
			if ms[i].OwnID {
				m.dropIDLease(ms[i].ID, now)
			}
		}
	}
	for _, i := range firsts {
		statuses[i] = m.claim(&ops.Claim[i], now)
	}
	fillRepeats(ops.Claim, statuses, later)
	return statuses, nil
}

// claim answers one claim, taking the lease that covers the record when it may be delivered. The caller holds
// t.mu.
func (m *Memory) claim(c *Mark, now time.Time) Status {
	t := m.t
	var p partitionID
	var ext bool
	if !c.OwnID {
		// Asked for every record without an ID of its own, as the Redis store asks when it plans the round.
		p = partitionOf(c)
		ext = m.dueLease(p)
	}
	if t.marked(c, now) {
		if !c.OwnID {
			// As in Redis: a lease due to be extended is, even when every record claimed is done.
			if e, ok := t.parts[p]; ok && !expiredAt(e.expires, now) && e.owner == m.owner && ext {
				e.expires = now.Add(m.lease)
				t.parts[p] = e
			}
		}
		return Done
	}
	if c.OwnID {
		e, ok := t.ids[c.ID]
		live := ok && !expiredAt(e.expires, now)
		switch {
		case live && e.done:
			return Done
		case live && e.owner != m.owner:
			return Busy
		}
		t.putID(c.ID, memEntry{owner: m.owner, expires: now.Add(m.lease)})
		return Claimed
	}
	e, ok := t.parts[p]
	live := ok && !expiredAt(e.expires, now)
	if live && e.owner != m.owner {
		return Busy
	}
	if !live || ext {
		t.parts[p] = memEntry{owner: m.owner, topic: c.Topic, expires: now.Add(m.lease)}
	}
	return Claimed
}

// dueLease asks, once per partition and round, whether this store extends p's lease now (see refresher). The
// caller holds t.mu.
func (m *Memory) dueLease(p partitionID) bool {
	if d, ok := m.round[p]; ok {
		return d
	}
	d := m.leases.due(p, true)
	m.round[p] = d
	return d
}

// dropIDLease deletes this owner's live lease on id. The caller holds t.mu.
func (m *Memory) dropIDLease(id string, now time.Time) {
	t := m.t
	if e, ok := t.ids[id]; ok && !e.done && e.owner == m.owner && !expiredAt(e.expires, now) {
		delete(t.ids, id)
		t.bytes -= int64(len(id)) + memEntryBytes
	}
}

// ReleasePartitions implements Store.
func (m *Memory) ReleasePartitions(ctx context.Context, partitions map[string][]int32) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("releasing partitions: %w", err)
	}
	if m.closed.Load() {
		return fmt.Errorf("releasing partitions: %w", ErrClosed)
	}
	t := m.t
	t.mu.Lock()
	defer t.mu.Unlock()
	for p, e := range t.parts {
		if e.owner != m.owner {
			continue
		}
		for _, n := range partitions[e.topic] {
			if n == p.partition {
				delete(t.parts, p)
			}
		}
	}
	return nil
}

// Ping implements Store: it fails only after Close.
func (m *Memory) Ping(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("pinging: %w", err)
	}
	if m.closed.Load() {
		return fmt.Errorf("pinging: %w", ErrClosed)
	}
	return nil
}

// Close implements Store: later calls on this store return ErrClosed. Other stores sharing the table (see
// Shared) keep working; the table is freed with the last of them. Calling Close again does nothing.
func (m *Memory) Close() error {
	m.closed.Store(true)
	return nil
}

// Bytes returns the approximate memory the table's marks and leases take, expired ones not yet swept included,
// for metrics and tests.
func (m *Memory) Bytes() int64 {
	m.t.mu.Lock()
	defer m.t.mu.Unlock()
	return m.t.bytes
}

// chunkOf returns the chunk holding c's position mark and the mark's index in it.
func chunkOf(c *Mark) (chunkID, int64) {
	return chunkID{partition: partitionOf(c), epoch: c.Epoch, chunk: c.Offset / chunkOffsets}, c.Offset % chunkOffsets
}

// marked reports whether c's position is marked. The caller holds t.mu.
func (t *memTable) marked(c *Mark, now time.Time) bool {
	id, bit := chunkOf(c)
	ch, ok := t.chunks[id]
	return ok && !expiredAt(ch.expires, now) && ch.bits[bit/64]&(1<<(bit%64)) != 0
}

// mark sets c's position mark. A new chunk, or one due (see refresher), lives TTL plus the slack from now.
// The caller holds t.mu.
func (m *Memory) mark(c *Mark, now time.Time) {
	t := m.t
	id, bit := chunkOf(c)
	ch, ok := t.chunks[id]
	fresh := !ok || expiredAt(ch.expires, now)
	if fresh {
		if !ok {
			t.grow(memChunkBytes)
		}
		ch = &memChunk{}
		t.chunks[id] = ch
	}
	ch.bits[bit/64] |= 1 << (bit % 64)
	ext, seen := m.roundChunks[id]
	if !seen {
		ext = m.chunks.due(id, false)
		m.roundChunks[id] = ext
	}
	if fresh || ext {
		ch.expires = now.Add(m.ttl + PositionMarkSlack(m.ttl))
	}
}

// putID stores e under id. The caller holds t.mu.
func (t *memTable) putID(id string, e memEntry) {
	if _, ok := t.ids[id]; !ok {
		t.grow(int64(len(id)) + memEntryBytes)
	}
	t.ids[id] = e
}

// grow counts n more bytes, sweeping out expired entries when the table has doubled since the last sweep.
func (t *memTable) grow(n int64) {
	t.bytes += n
	if t.bytes >= t.nextSweep {
		t.sweep(t.now())
	}
}

// room reports whether the table is below its bound, sweeping expired entries out first when it is not.
func (t *memTable) room(now time.Time) bool {
	if t.bytes < t.maxBytes {
		return true
	}
	t.sweep(now)
	return t.bytes < t.maxBytes
}

// sweep deletes every expired entry.
func (t *memTable) sweep(now time.Time) {
	for k, c := range t.chunks {
		if expiredAt(c.expires, now) {
			delete(t.chunks, k)
			t.bytes -= memChunkBytes
		}
	}
	for k, e := range t.ids {
		if expiredAt(e.expires, now) {
			delete(t.ids, k)
			t.bytes -= int64(len(k)) + memEntryBytes
		}
	}
	for k, e := range t.parts {
		if expiredAt(e.expires, now) {
			delete(t.parts, k)
		}
	}
	t.nextSweep = max(2*t.bytes, minSweep)
}
