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

// partitionRecords returns n records without IDs of their own spread over partitions, consecutive offsets in
// each.
func partitionRecords(topic string, n, partitions int) []dedup.Mark {
	out := make([]dedup.Mark, n)
	for i := range out {
		p := i % partitions
		out[i] = dedup.Mark{Topic: topic, Partition: int32(p), Epoch: 1, Offset: int64(i / partitions),
			ID: fmt.Sprintf("%s/%d/%d", topic, p, i/partitions)}
	}
	return out
}

// ownRecords returns n records with IDs of their own, in one partition.
func ownRecords(topic string, n int) []dedup.Mark {
	out := partitionRecords(topic, n, 1)
	for i := range out {
		out[i].ID, out[i].OwnID = fmt.Sprintf("%s-msg-%d", topic, i), true
	}
	return out
}

// TestRedisScriptCallsPerBatch checks how a round becomes script calls: one for a standalone client (up to 512
// records each, whatever their keys), one per partition's hash slot for a Cluster client (and a second round
// for records with IDs of their own, whose ID keys live elsewhere), one per hash tag for any other client.
func TestRedisScriptCallsPerBatch(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	cluster := redistest.StartCluster(t, 3)
	standalone := func() redis.UniversalClient { return redis.NewClient(srv.ClientOptions()) }
	clustered := func() redis.UniversalClient { return redis.NewClusterClient(cluster.ClusterOptions()) }
	wrapped := func() redis.UniversalClient { return otherClient{redis.NewClient(srv.ClientOptions())} }
	node := cluster.Nodes[0].Client(t)
	// slotsOf asks the server for the slots of keys.
	slotsOf := func(keys []string) int {
		seen := map[int64]bool{}
		for _, k := range keys {
			slot, err := node.ClusterKeySlot(context.Background(), k).Result()
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
		records   []dedup.Mark
		wantCalls func(s *dedup.Redis, ms []dedup.Mark) int
	}{
		{"standalone", standalone, partitionRecords("a", 100, 4), func(*dedup.Redis, []dedup.Mark) int { return 1 }},
		{"standalone above 512 records", standalone, partitionRecords("b", 1100, 1100),
			func(*dedup.Redis, []dedup.Mark) int { return 3 }},
		{"standalone own IDs", standalone, ownRecords("c", 100), func(*dedup.Redis, []dedup.Mark) int { return 1 }},
		{"cluster one partition", clustered, partitionRecords("d", 100, 1),
			func(*dedup.Redis, []dedup.Mark) int { return 1 }},
		{"cluster partitions", clustered, partitionRecords("e", 100, 20), func(s *dedup.Redis, ms []dedup.Mark) int {
			var keys []string
			for _, m := range ms {
				keys = append(keys, s.PartitionLeaseKey(m))
			}
			return slotsOf(keys)
		}},
		{"cluster own IDs", clustered, ownRecords("f", 30), func(s *dedup.Redis, ms []dedup.Mark) int {
			// Round one: the ID keys, by slot; round two: the partition's position key.
			var keys []string
			for _, m := range ms {
				keys = append(keys, s.IDKey(m.ID))
			}
			return slotsOf(keys) + 1
		}},
		{"other client", wrapped, partitionRecords("g", 20, 5), func(*dedup.Redis, []dedup.Mark) int { return 5 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			client := tc.client()
			counter := &evalCounter{}
			client.AddHook(counter)
			s := dedup.NewRedis(client, dedup.RedisOptions{KeyPrefix: "g:", Owner: "a"})
			defer s.Close()
			ctx := context.Background()
			if _, err := s.LegacyUntil(ctx); err != nil {
				t.Fatal(err)
			}
			// First calls load the scripts where needed (NOSCRIPT, load, resend); count the calls after.
			if _, err := s.Apply(ctx, dedup.Ops{Claim: tc.records[:1]}); err != nil {
				t.Fatal(err)
			}
			counter.reset()
			st, err := s.Apply(ctx, dedup.Ops{Claim: tc.records})
			if err != nil {
				t.Fatal(err)
			}
			for i, got := range st {
				if got != dedup.Claimed {
					t.Fatalf("Claim status %d = %v, want claimed (own lease or free)", i, got)
				}
			}
			calls, _ := counter.reset()
			if want := tc.wantCalls(s, tc.records); calls != want {
				t.Fatalf("%d script calls, want %d", calls, want)
			}
			if _, err := s.Apply(ctx, dedup.Ops{Complete: tc.records}); err != nil {
				t.Fatal(err)
			}
			counter.reset()
			st, err = s.Apply(ctx, dedup.Ops{Claim: tc.records})
			if err != nil {
				t.Fatal(err)
			}
			for i, got := range st {
				if got != dedup.Done {
					t.Fatalf("Claim status %d after Complete = %v, want done", i, got)
				}
			}
		})
	}
}

// otherClient is a UniversalClient the store does not recognise, as an instrumented wrapper would be.
type otherClient struct{ *redis.Client }
