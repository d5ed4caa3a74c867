package dedup

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// ReplayMarks keeps the marks of `dlq replay` (dlq.Marks) in Redis next to the dedup keys: <prefix>replay:<pos> (SET NX) and
// <prefix>replays:<id> (a counter), both expiring after the TTL. Prefix is the dedup prefix,
// KeyPrefix(SIDECAR_DEDUP_KEY_PREFIX, group), so groups sharing one Redis keep separate marks.
type ReplayMarks struct {
	client redis.UniversalClient
	prefix string
	ttlMS  int64
}

// NewReplayMarks keeps marks in client (not closed by ReplayMarks) under prefix for ttl (the replay tool's
// default is dlq.DefaultMarkTTL); a ttl under a millisecond is an error.
func NewReplayMarks(client redis.UniversalClient, prefix string, ttl time.Duration) (*ReplayMarks, error) {
	if ttl < time.Millisecond {
		return nil, fmt.Errorf("checking the replay mark ttl: %v is under a millisecond", ttl)
	}
	return &ReplayMarks{client: client, prefix: prefix, ttlMS: ttl.Milliseconds()}, nil
}

func (m *ReplayMarks) posKey(pos string) string { return m.prefix + "replay:" + pos }
func (m *ReplayMarks) idKey(id string) string   { return m.prefix + "replays:" + id }

// Replayed reports whether the dead-letter record at pos was replayed (dlq.Marks).
func (m *ReplayMarks) Replayed(ctx context.Context, pos string) (bool, error) {
	n, err := m.client.Exists(ctx, m.posKey(pos)).Result()
	if err != nil {
		return false, fmt.Errorf("reading replay mark %s: %w", pos, err)
	}
	return n > 0, nil
}

// Count returns how often message id was replayed (dlq.Marks).
func (m *ReplayMarks) Count(ctx context.Context, id string) (int, error) {
	n, err := m.client.Get(ctx, m.idKey(id)).Int()
	if errors.Is(err, redis.Nil) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("reading replay count of %s: %w", id, err)
	}
	return n, nil
}

// markScript sets the position mark and raises the ID's count only when the mark is new, in one step, so
// two replays racing over the same record count it once. KEYS: position mark, ID counter; ARGV: TTL in ms.
var markScript = redis.NewScript(`
if redis.call('SET', KEYS[1], '1', 'NX', 'PX', ARGV[1]) then
  redis.call('INCR', KEYS[2])
  redis.call('PEXPIRE', KEYS[2], ARGV[1])
  return 1
end
return 0
`)

// Mark records that pos was replayed as message id (dlq.Marks). Both keys of one call must live on one Redis Cluster node; the script is sent
// with both, so a Cluster client reports CROSSSLOT for prefixes without a {hash tag} — configure
// SIDECAR_DEDUP_KEY_PREFIX with one (e.g. {kafka-sidecar}) for replay on Redis Cluster.
func (m *ReplayMarks) Mark(ctx context.Context, pos, id string) error {
	if err := markScript.Run(ctx, m.client, []string{m.posKey(pos), m.idKey(id)}, m.ttlMS).Err(); err != nil {
		return fmt.Errorf("writing replay mark %s: %w", pos, err)
	}
	return nil
}

// KeyPrefix is the prefix of every key the sidecar keeps in Redis for a consumer group: the configured prefix
// (SIDECAR_DEDUP_KEY_PREFIX) and the group, so groups sharing one Redis never see each other's keys.
func KeyPrefix(prefix, group string) string { return prefix + ":" + group + ":" }
