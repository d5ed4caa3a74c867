package dedup_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/kafka-sidecar/kafka-sidecar/dedup"
	"github.com/kafka-sidecar/kafka-sidecar/test/redistest"
)

// evalCounter is a go-redis hook counting the EVALSHA commands and the keys they carry.
type evalCounter struct {
	mu    sync.Mutex
	calls int
	keys  int
}

func (*evalCounter) DialHook(next redis.DialHook) redis.DialHook { return next }

func (e *evalCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		e.count([]redis.Cmder{cmd})
		return next(ctx, cmd)
	}
}

func (e *evalCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		e.count(cmds)
		return next(ctx, cmds)
	}
}

func (e *evalCounter) count(cmds []redis.Cmder) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, c := range cmds {
		if strings.EqualFold(c.Name(), "evalsha") {
			e.calls++
			e.keys += int(c.Args()[2].(int))
		}
	}
}

func (e *evalCounter) reset() (calls, keys int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	calls, keys = e.calls, e.keys
	e.calls, e.keys = 0, 0
	return calls, keys
}

// ids returns n IDs; with tag set they all share one hash tag, so one cluster slot.
func ids(prefix string, n int, tag bool) []string {
	out := make([]string, n)
	for i := range out {
		if tag {
			out[i] = fmt.Sprintf("{%s}%d", prefix, i)
		} else {
			out[i] = fmt.Sprintf("%s-%d", prefix, i)
		}
	}
	return out
}

// TestRedisScriptCallsPerBatch checks how a batch becomes script calls: one for a standalone client (up to
// 512 keys each), one per hash slot for a Cluster client, one per key for any other client.
func TestRedisScriptCallsPerBatch(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	cluster := redistest.StartCluster(t, 3)
	standalone := func() redis.UniversalClient { return redis.NewClient(srv.ClientOptions()) }
	clustered := func() redis.UniversalClient { return redis.NewClusterClient(cluster.ClusterOptions()) }
	wrapped := func() redis.UniversalClient { return otherClient{redis.NewClient(srv.ClientOptions())} }
	node := cluster.Nodes[0].Client(t)
	// distinctSlots asks the server for the slots of the store's keys ("g:" + id): keys without a hash tag
	// mostly land in distinct slots, but two may collide.
	distinctSlots := func(ids []string) int {
		seen := map[int64]bool{}
		for _, id := range ids {
			slot, err := node.ClusterKeySlot(context.Background(), "g:"+id).Result()
			if err != nil {
				t.Fatalf("CLUSTER KEYSLOT: %v", err)
			}
			seen[slot] = true
		}
		return len(seen)
	}
	for _, tc := range []struct {
		name      string
		client    func() redis.UniversalClient
		ids       []string
		wantCalls func(ids []string) int
	}{
		{"standalone", standalone, ids("a", 100, false), func([]string) int { return 1 }},
		{"standalone above 512 keys", standalone, ids("b", 1100, false), func([]string) int { return 3 }},
		{"cluster one tag", clustered, ids("c", 100, true), func([]string) int { return 1 }},
		{"cluster spread", clustered, ids("d", 100, false), distinctSlots},
		{"other client", wrapped, ids("e", 20, false), func(ids []string) int { return len(ids) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			client := tc.client()
			counter := &evalCounter{}
			client.AddHook(counter)
			s := dedup.NewRedis(client, dedup.RedisOptions{KeyPrefix: "g:", Owner: "a"})
			defer s.Close()
			ctx := context.Background()
			// First calls load the scripts where needed (NOSCRIPT, load, resend); count the calls after.
			if _, err := s.Claim(ctx, tc.ids[:1]); err != nil {
				t.Fatal(err)
			}
			if err := s.Release(ctx, []string{"warm-up"}); err != nil {
				t.Fatal(err)
			}
			counter.reset()
			st, err := s.Claim(ctx, tc.ids)
			if err != nil {
				t.Fatal(err)
			}
			for i, got := range st {
				if got != dedup.Claimed {
					t.Fatalf("Claim status %d = %v, want claimed (own lease or free)", i, got)
				}
			}
			calls, keys := counter.reset()
			if want := tc.wantCalls(tc.ids); calls != want || keys != len(tc.ids) {
				t.Fatalf("%d script calls over %d keys, want %d calls over %d keys", calls, keys, want, len(tc.ids))
			}
			if err := s.Release(ctx, tc.ids); err != nil {
				t.Fatal(err)
			}
			if calls, _ := counter.reset(); calls != tc.wantCalls(tc.ids) {
				t.Fatalf("Release made %d script calls, want %d", calls, tc.wantCalls(tc.ids))
			}
		})
	}
}

// otherClient is a UniversalClient the store does not recognise, as an instrumented wrapper would be.
type otherClient struct{ *redis.Client }
