package dedup

import (
	"context"
	"errors"
	"fmt"
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
// and "D" once done, each with an expiry. Claim and Release are Lua scripts, so every check-and-set is atomic
// per key. A batch is one pipelined round trip: on a standalone or Sentinel client one script call covers the
// whole batch; on a Cluster client the batch is split by hash slot (a script may only touch one slot) and the
// calls pipelined, which the client spreads over the shards; on any other client each key gets its own call.
//
// A batch is not atomic as a whole. When Claim fails part-way (one Cluster shard down), some IDs may be leased
// although an error is returned; claiming them again later succeeds because a lease is reclaimed by its own
// owner, and otherwise the lease expires.
//
// All methods are safe for concurrent use.
type Redis struct {
	client    redis.UniversalClient
	grouping  grouping
	prefix    string
	owner     string
	ttl       time.Duration
	claimArgs []any // lease value, lease in milliseconds
	leaseArgs []any // lease value
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

// claimScript takes the lease on each key that is free, reports a done mark, extends the caller's own lease,
// and otherwise reports another owner's lease. ARGV[1] is the lease value ("L"+owner), ARGV[2] the lease in
// milliseconds. It replies one integer per key: 0 claimed, 1 done, 2 busy.
var claimScript = redis.NewScript(`
local r = {}
for i, k in ipairs(KEYS) do
  if redis.call('SET', k, ARGV[1], 'NX', 'PX', ARGV[2]) then
    r[i] = 0
  else
    local v = redis.call('GET', k)
    if v == 'D' then
      r[i] = 1
    elseif v == ARGV[1] then
      redis.call('PEXPIRE', k, ARGV[2])
      r[i] = 0
    else
      r[i] = 2
    end
  end
end
return r
`)

// releaseScript deletes each key only while it holds the caller's own lease (ARGV[1]), so a done mark or
// another owner's lease survives a late Release. It replies the number of leases released.
var releaseScript = redis.NewScript(`
local n = 0
for _, k in ipairs(KEYS) do
  if redis.call('GET', k) == ARGV[1] then
    n = n + redis.call('DEL', k)
  end
end
return n
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
		client:    client,
		grouping:  g,
		prefix:    opts.KeyPrefix,
		owner:     owner,
		ttl:       ttl,
		claimArgs: []any{leaseValue, max(lease.Milliseconds(), 1)},
		leaseArgs: []any{leaseValue},
	}
}

// Owner returns the name this store's leases carry.
func (r *Redis) Owner() string { return r.owner }

// Key returns the Redis key that holds id, for tools that inspect the store.
func (r *Redis) Key(id string) string { return r.prefix + id }

// Claim implements Store in one round trip (two when the server has lost its script cache). Repeats of an ID
// inside one batch are not sent; they are answered as documented on Store.
func (r *Redis) Claim(ctx context.Context, ids []string) ([]Status, error) {
	statuses := make([]Status, len(ids))
	if len(ids) == 0 {
		return statuses, nil
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("claiming: %w", err)
	}
	firsts, later := repeats(ids)
	keys := make([]string, len(firsts))
	for k, i := range firsts {
		keys[k] = r.prefix + ids[i]
	}
	calls, err := r.evalGrouped(ctx, claimScript, keys, r.claimArgs)
	if err != nil {
		return nil, wrapErr(ctx, "claiming", err)
	}
	for _, c := range calls {
		replies, err := c.cmd.Int64Slice()
		if err != nil {
			return nil, wrapErr(ctx, "claiming", err)
		}
		if len(replies) != len(c.keys) {
			return nil, fmt.Errorf("claiming: script answered %d statuses for %d keys", len(replies), len(c.keys))
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
				return nil, fmt.Errorf("claiming: unexpected script reply %d", n)
			}
			statuses[firsts[c.keys[j]]] = st
		}
	}
	fillRepeats(statuses, later)
	return statuses, nil
}

// Complete implements Store with one pipelined SET per ID: the done mark replaces whatever the key held. (A
// plain SET costs the server less than the same write from a script, and needs no atomicity.)
func (r *Redis) Complete(ctx context.Context, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("completing: %w", err)
	}
	keys := make([]string, len(ids))
	for i, id := range ids {
		keys[i] = r.prefix + id
	}
	pipe := r.client.Pipeline()
	cmds := make([]*redis.StatusCmd, len(keys))
	for i, key := range keys {
		cmds[i] = pipe.Set(ctx, key, doneValue, r.ttl)
	}
	if err := execPipeline(ctx, pipe); err != nil {
		return wrapErr(ctx, "completing", err)
	}
	for _, cmd := range cmds {
		if err := cmd.Err(); err != nil {
			return wrapErr(ctx, "completing", err)
		}
	}
	return nil
}

// Release implements Store with the compare-and-delete script, in one round trip.
func (r *Redis) Release(ctx context.Context, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("releasing: %w", err)
	}
	keys := make([]string, len(ids))
	for i, id := range ids {
		keys[i] = r.prefix + id
	}
	calls, err := r.evalGrouped(ctx, releaseScript, keys, r.leaseArgs)
	if err != nil {
		return wrapErr(ctx, "releasing", err)
	}
	for _, c := range calls {
		if err := c.cmd.Err(); err != nil {
			return wrapErr(ctx, "releasing", err)
		}
	}
	return nil
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

// scriptCall is one script invocation: the indexes (into the batch's keys) of the keys it covers, in the order
// it was given them, and its command.
type scriptCall struct {
	keys []int
	cmd  *redis.Cmd
}

// evalGrouped runs script over keys in one pipeline, one call per group the client allows (see grouping), and
// returns the calls with their replies or errors. Scripts are sent by digest; when the server answers NOSCRIPT
// (after a restart, a failover or SCRIPT FLUSH), the script is loaded (on every shard of a cluster) and only the
// refused calls are sent again, once. The returned error is set only when the pipeline as a whole or loading
// the script fails.
func (r *Redis) evalGrouped(ctx context.Context, script *redis.Script, keys []string, args []any) ([]scriptCall, error) {
	calls := r.group(keys)
	hash := script.Hash()
	send := func(calls []*scriptCall) error {
		pipe := r.client.Pipeline()
		for _, c := range calls {
			callKeys := keys // the common case: one call for the whole batch
			if len(c.keys) != len(keys) {
				callKeys = make([]string, len(c.keys))
				for j, i := range c.keys {
					callKeys[j] = keys[i]
				}
			}
			c.cmd = pipe.EvalSha(ctx, hash, callKeys, args...)
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
	if err := script.Load(ctx, r.client).Err(); err != nil {
		return nil, fmt.Errorf("loading script: %w", err)
	}
	if err := send(missing); err != nil {
		return nil, err
	}
	return calls, nil
}

// group splits key indexes into script calls the client can serve, each at most maxKeysPerCall keys.
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
