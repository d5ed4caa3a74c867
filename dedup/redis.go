package dedup

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisOptions configure a Redis store. Zero durations take the defaults named on each field.
type RedisOptions struct {
	// KeyPrefix is prepended to every ID to form its key, for example "kafka-sidecar:mygroup:". It should end
	// with a separator and name the consumer group, so groups sharing one Redis never see each other's marks.
	KeyPrefix string
	// Owner names the leases this store takes: the static instance ID, so a restarted member reclaims its own
	// leases at once; empty means a random owner whose leases just expire after a restart.
	Owner string
	// Lease is how long a claim lives without Complete or Release: the app timeout plus a margin. Zero means
	// DefaultLease. Redis keeps millisecond precision; shorter leases are rounded up to one millisecond.
	Lease time.Duration
	// TTL is how long a done mark lives: longer than the topics' retention plus the longest retry delay. Zero
	// means DefaultTTL.
	TTL time.Duration
}

// Redis is the shared Store: one key per ID, KeyPrefix+id (IDs are binary safe), holding "L"+owner while leased
// and "D" once done, each with an expiry. Every method runs one Lua script (applyScript), so every
// check-and-set is atomic per key and a batch costs the client one command. A batch is one pipelined round trip:
// on a standalone or Sentinel client one script call covers the whole batch (up to maxKeysPerCall keys); on a Cluster client the batch is split by hash slot (a script may only touch one slot) and the
// calls pipelined, which the client spreads over the shards; on any other client each key gets its own call.
//
// A batch is not atomic as a whole. When Claim fails part-way (one Cluster shard down), some IDs may be leased
// although an error is returned; claiming them again later succeeds because a lease is reclaimed by its own
// owner, and otherwise the lease expires.
//
// All methods are safe for concurrent use.
type Redis struct {
	client   redis.UniversalClient
	grouping grouping
	prefix   string
	owner    string
	// leaseValue is what a lease of this owner holds; leaseMillis and ttlMillis are the expiries in the form
	// the script takes them.
	leaseValue  string
	leaseMillis int64
	ttlMillis   int64
}

// grouping says which keys one script call may take on this client.
type grouping uint8

const (
	groupAll    grouping = iota // standalone or Sentinel: any keys together
	groupBySlot                 // Cluster: keys of one hash slot together
	groupPerKey                 // unknown client (a Ring, a wrapper): one key per call
)

// maxKeysPerCall bounds one script call, so a huge batch cannot keep the server busy for long: each key costs
// about a microsecond.
const maxKeysPerCall = 512

// applyScript does one round of Ops on the keys of one call. KEYS are the done marks to write, then the leases
// to release, then the IDs to claim; ARGV[1] and ARGV[2] count the first two groups, ARGV[3] is the lease value
// ("L"+owner), ARGV[4] the lease and ARGV[5] the done-mark TTL, both in milliseconds. A done mark replaces
// whatever the key held; a release deletes the key only while it holds the caller's own lease, so a done mark or
// another owner's lease survives a late release; a claim takes a free key, reports a done mark, extends the
// caller's own lease, and otherwise reports another owner's lease. It replies one integer per claimed key: 0
// claimed, 1 done, 2 busy.
var applyScript = redis.NewScript(`
local nd, nr = tonumber(ARGV[1]), tonumber(ARGV[2])
local lease = ARGV[3]
for i = 1, nd do
  redis.call('SET', KEYS[i], 'D', 'PX', ARGV[5])
end
for i = nd + 1, nd + nr do
  if redis.call('GET', KEYS[i]) == lease then
    redis.call('DEL', KEYS[i])
  end
end
local r = {}
for i = nd + nr + 1, #KEYS do
  local k = KEYS[i]
  if redis.call('SET', k, lease, 'NX', 'PX', ARGV[4]) then
    r[#r + 1] = 0
  else
    local v = redis.call('GET', k)
    if v == 'D' then
      r[#r + 1] = 1
    elseif v == lease then
      redis.call('PEXPIRE', k, ARGV[4])
      r[#r + 1] = 0
    else
      r[#r + 1] = 2
    end
  end
end
return r
`)

// NewRedis returns a store on client, which it owns from now on: Close closes it. The client can be standalone,
// Sentinel (failover) or Cluster; its timeouts and retries bound every call, and it should set
// ContextTimeoutEnabled so a caller's deadline also bounds the wait for a reply.
func NewRedis(client redis.UniversalClient, opts RedisOptions) *Redis {
	lease := orDefault(opts.Lease, DefaultLease)
	ttl := orDefault(opts.TTL, DefaultTTL)
	owner := ownerOrRandom(opts.Owner)
	leaseValue := leasePrefix + owner
	g := groupPerKey
	switch client.(type) {
	case *redis.Client:
		g = groupAll
	case *redis.ClusterClient:
		g = groupBySlot
	}
	return &Redis{
		client:      client,
		grouping:    g,
		prefix:      opts.KeyPrefix,
		owner:       owner,
		leaseValue:  leaseValue,
		leaseMillis: max(lease.Milliseconds(), 1),
		ttlMillis:   max(ttl.Milliseconds(), 1),
	}
}

// Owner returns the name this store's leases carry.
func (r *Redis) Owner() string { return r.owner }

// Key returns the Redis key that holds id, for tools that inspect the store.
func (r *Redis) Key(id string) string { return r.prefix + id }

// Claim implements Store in one round trip (two when the server has lost its script cache). Repeats of an ID
// inside one batch are not sent; they are answered as documented on Store.
func (r *Redis) Claim(ctx context.Context, ids []string) ([]Status, error) {
	return r.apply(ctx, "claiming", Ops{Claim: ids})
}

// Complete implements Store in one round trip: the done mark replaces whatever the key held.
func (r *Redis) Complete(ctx context.Context, ids []string) error {
	_, err := r.apply(ctx, "completing", Ops{Complete: ids})
	return err
}

// Release implements Store in one round trip, compare-and-delete per key.
func (r *Redis) Release(ctx context.Context, ids []string) error {
	_, err := r.apply(ctx, "releasing", Ops{Release: ids})
	return err
}

// Apply implements Store: all of ops goes in one script call on a standalone or Sentinel client, so a round
// of work for many records costs the server one command and the client one round trip.
func (r *Redis) Apply(ctx context.Context, ops Ops) ([]Status, error) {
	return r.apply(ctx, "applying", ops)
}

func (r *Redis) apply(ctx context.Context, action string, ops Ops) ([]Status, error) {
	statuses := make([]Status, len(ops.Claim))
	if ops.empty() {
		return statuses, nil
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", action, err)
	}
	firsts, later := repeats(ops.Claim)
	nd, nr := len(ops.Complete), len(ops.Release)
	keys := make([]string, 0, nd+nr+len(firsts))
	for _, id := range ops.Complete {
		keys = append(keys, r.prefix+id)
	}
	for _, id := range ops.Release {
		keys = append(keys, r.prefix+id)
	}
	for _, i := range firsts {
		keys = append(keys, r.prefix+ops.Claim[i])
	}
	calls, err := r.evalGrouped(ctx, keys, nd, nr)
	if err != nil {
		return nil, wrapErr(ctx, action, err)
	}
	claimStart := nd + nr
	for _, c := range calls {
		replies, err := c.cmd.Int64Slice()
		if err != nil {
			return nil, wrapErr(ctx, action, err)
		}
		claims := c.keys[c.claimFrom:]
		if len(replies) != len(claims) {
			return nil, fmt.Errorf("%s: script answered %d statuses for %d keys", action, len(replies), len(claims))
		}
		for j, n := range replies {
			var st Status
			switch n {
			case 0:
				st = Claimed
			case 1:
				st = Done
			case 2:
				st = Busy
			default:
				return nil, fmt.Errorf("%s: unexpected script reply %d", action, n)
			}
			statuses[firsts[claims[j]-claimStart]] = st
		}
	}
	fillRepeats(statuses, later)
	return statuses, nil
}

// Ping implements Store.
func (r *Redis) Ping(ctx context.Context) error {
	return wrapErr(ctx, "pinging", r.client.Ping(ctx).Err())
}

// Close implements Store by closing the client. Calling it again does nothing.
func (r *Redis) Close() error {
	if err := r.client.Close(); err != nil && !errors.Is(err, redis.ErrClosed) {
		return fmt.Errorf("closing redis client: %w", err)
	}
	return nil
}

// scriptCall is one script invocation: the indexes (into the round's keys) of the keys it covers, in
// ascending order so that its done marks, releases and claims keep that order, and its command. Its keys from
// claimFrom on are claims; before that, releases start at releaseFrom.
type scriptCall struct {
	keys        []int
	releaseFrom int
	claimFrom   int
	cmd         *redis.Cmd
}

// evalGrouped runs applyScript over keys (nd done marks, then nr releases, then claims) in one pipeline, one
// call per group the client allows (see grouping), and returns the calls with their replies or errors. The
// script is sent by digest; when the server answers NOSCRIPT (after a restart, a failover or SCRIPT FLUSH), it
// is loaded (on every shard of a cluster) and only the refused calls are sent again, once. The returned error
// is set only when the pipeline as a whole or loading the script fails.
func (r *Redis) evalGrouped(ctx context.Context, keys []string, nd, nr int) ([]scriptCall, error) {
	calls := r.group(keys)
	hash := applyScript.Hash()
	for i := range calls {
		c := &calls[i]
		c.releaseFrom = sort.SearchInts(c.keys, nd)
		c.claimFrom = sort.SearchInts(c.keys, nd+nr)
	}
	send := func(calls []*scriptCall) error {
		pipe := r.client.Pipeline()
		for _, c := range calls {
			callKeys := keys // the common case: one call for the whole round
			if len(c.keys) != len(keys) {
				callKeys = make([]string, len(c.keys))
				for j, i := range c.keys {
					callKeys[j] = keys[i]
				}
			}
			c.cmd = pipe.EvalSha(ctx, hash, callKeys, c.releaseFrom, c.claimFrom-c.releaseFrom,
				r.leaseValue, r.leaseMillis, r.ttlMillis)
		}
		return execPipeline(ctx, pipe)
	}

	all := make([]*scriptCall, len(calls))
	for i := range calls {
		all[i] = &calls[i]
	}
	if err := send(all); err != nil {
		return nil, err
	}
	var missing []*scriptCall
	for _, c := range all {
		if redis.HasErrorPrefix(c.cmd.Err(), "NOSCRIPT") {
			missing = append(missing, c)
		}
	}
	if len(missing) == 0 {
		return calls, nil
	}
	if err := applyScript.Load(ctx, r.client).Err(); err != nil {
		return nil, fmt.Errorf("loading script: %w", err)
	}
	if err := send(missing); err != nil {
		return nil, err
	}
	return calls, nil
}

// group splits key indexes into script calls the client can serve, each at most maxKeysPerCall keys, with the
// indexes of each call ascending.
func (r *Redis) group(keys []string) []scriptCall {
	switch r.grouping {
	case groupAll:
		calls := make([]scriptCall, 0, (len(keys)+maxKeysPerCall-1)/maxKeysPerCall)
		for lo := 0; lo < len(keys); lo += maxKeysPerCall {
			hi := min(lo+maxKeysPerCall, len(keys))
			idx := make([]int, hi-lo)
			for j := range idx {
				idx[j] = lo + j
			}
			calls = append(calls, scriptCall{keys: idx})
		}
		return calls
	case groupBySlot:
		bySlot := make(map[uint16]int, len(keys)) // slot -> index in calls of its open call
		calls := make([]scriptCall, 0, len(keys))
		for i, k := range keys {
			s := hashSlot(k)
			if ci, ok := bySlot[s]; ok && len(calls[ci].keys) < maxKeysPerCall {
				calls[ci].keys = append(calls[ci].keys, i)
				continue
			}
			bySlot[s] = len(calls)
			calls = append(calls, scriptCall{keys: []int{i}})
		}
		return calls
	default:
		calls := make([]scriptCall, len(keys))
		for i := range keys {
			calls[i] = scriptCall{keys: []int{i}}
		}
		return calls
	}
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
