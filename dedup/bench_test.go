package dedup_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/kafka-sidecar/kafka-sidecar/dedup"
	"github.com/kafka-sidecar/kafka-sidecar/test/redistest"
)

// benchMaxBatch is the batch bound used by the benchmarks, as the sidecar would set it.
const benchMaxBatch = 128

// countingStore counts the Store calls and IDs a Coalescer makes, to report the batch size it reached.
type countingStore struct {
	dedup.Store
	calls, ids atomic.Int64
}

func (c *countingStore) Apply(ctx context.Context, ops dedup.Ops) ([]dedup.Status, error) {
	c.calls.Add(1)
	c.ids.Add(int64(len(ops.Complete) + len(ops.Release) + len(ops.Claim)))
	return c.Store.Apply(ctx, ops)
}

// runPairs runs b.N claim+complete pairs through c from the given number of goroutines, each pair on a fresh
// ID as records would be, and reports pairs per second.
func runPairs(b *testing.B, s dedup.Store, goroutines int, serverPID int) {
	counted := &countingStore{Store: s}
	c := dedup.NewCoalescer(counted, benchMaxBatch)
	defer c.Close()
	ctx := context.Background()
	prefix := "bench-" + strconv.FormatInt(time.Now().UnixNano(), 36) + "-"
	var next atomic.Int64
	var wg sync.WaitGroup
	var failed atomic.Value
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	cpu := startCPU(serverPID)
	for range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				n := next.Add(1)
				if n > int64(b.N) {
					return
				}
				id := prefix + strconv.FormatInt(n, 10)
				st, err := c.Claim(ctx, id)
				if err == nil && st != dedup.Claimed {
					err = fmt.Errorf("Claim(%s) = %v, want claimed", id, st)
				}
				if err == nil {
					err = c.Complete(ctx, id)
				}
				if err != nil {
					failed.CompareAndSwap(nil, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	cpu.report(b, b.N, "pair")
	if err, _ := failed.Load().(error); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "pairs/s")
	if calls := counted.calls.Load(); calls > 0 {
		b.ReportMetric(float64(counted.ids.Load())/float64(calls), "ids/call")
	}
}

// BenchmarkCoalescerRedis measures claim+complete pairs per second through a Coalescer on a real redis-server
// on loopback (skipped when redis-server is not installed).
func BenchmarkCoalescerRedis(b *testing.B) {
	srv := redistest.Start(b, redistest.Options{})
	admin := srv.Client(b)
	for _, goroutines := range []int{1, 64} {
		b.Run(fmt.Sprintf("goroutines=%d", goroutines), func(b *testing.B) {
			if err := admin.FlushAll(context.Background()).Err(); err != nil {
				b.Fatal(err)
			}
			store := dedup.NewRedis(redis.NewClient(srv.ClientOptions()), dedup.RedisOptions{
				KeyPrefix: "kafka-sidecar:bench:", Owner: "bench-0",
			})
			defer store.Close()
			runPairs(b, store, goroutines, srv.PID())
		})
	}
}

// BenchmarkCoalescerMemory is BenchmarkCoalescerRedis on the in-memory store: the Coalescer's own overhead.
func BenchmarkCoalescerMemory(b *testing.B) {
	for _, goroutines := range []int{1, 64} {
		b.Run(fmt.Sprintf("goroutines=%d", goroutines), func(b *testing.B) {
			runPairs(b, dedup.NewMemory(dedup.MemoryOptions{Owner: "bench-0"}), goroutines, 0)
		})
	}
}

// BenchmarkRedisClaimBatch measures one Store.Claim of a full batch on a real redis-server: the floor the
// Coalescer builds on.
func BenchmarkRedisClaimBatch(b *testing.B) {
	srv := redistest.Start(b, redistest.Options{})
	store := dedup.NewRedis(srv.Client(b), dedup.RedisOptions{KeyPrefix: "kafka-sidecar:bench:", Owner: "bench-0"})
	ctx := context.Background()
	ids := make([]string, benchMaxBatch)
	b.ReportAllocs()
	cpu := startCPU(srv.PID())
	for i := 0; b.Loop(); i++ {
		for j := range ids {
			ids[j] = strconv.Itoa(i*benchMaxBatch + j)
		}
		if _, err := store.Claim(ctx, ids); err != nil {
			b.Fatal(err)
		}
	}
	cpu.report(b, b.N*benchMaxBatch, "id")
	b.ReportMetric(float64(b.N*benchMaxBatch)/b.Elapsed().Seconds(), "ids/s")
}

// TestRedisMemoryPerDoneKey measures what a done mark costs a real redis-server: used_memory before and after
// 100k Complete calls with realistic IDs. A done mark is the bulk of what the store holds (it lives for the
// TTL, a week by default), so its size decides how big the Redis must be.
func TestRedisMemoryPerDoneKey(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 100k keys")
	}
	const keys = 100_000
	srv := redistest.Start(t, redistest.Options{})
	admin := srv.Client(t)
	ctx := context.Background()
	store := dedup.NewRedis(redis.NewClient(srv.ClientOptions()), dedup.RedisOptions{
		KeyPrefix: "kafka-sidecar:orders-consumer:", Owner: "orders-consumer-7d9f8-abcde",
	})
	defer store.Close()

	before := usedMemory(t, admin)
	batch := make([]string, 0, 1000)
	for i := range keys {
		// The default ID: topic/partition/offset of the record.
		batch = append(batch, fmt.Sprintf("orders/%d/%d", i%12, 1_000_000+i))
		if len(batch) == cap(batch) {
			if err := store.Complete(ctx, batch); err != nil {
				t.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	after := usedMemory(t, admin)
	if n, err := admin.DBSize(ctx).Result(); err != nil || n != keys {
		t.Fatalf("DBSIZE = %d, %v; want %d", n, err, keys)
	}
	perKey := float64(after-before) / keys
	keyLen := len(store.Key("orders/11/1099999"))
	t.Logf("redis used_memory per done key: %.1f bytes (%d-byte keys, value %q)", perKey, keyLen, "D")
	// Redis spends about 135 bytes per key besides the key's own bytes (dict entries in the keyspace and the
	// expires table, the value object, allocator rounding); much more means the value or its encoding grew.
	if limit := float64(keyLen + 150); perKey > limit {
		t.Fatalf("%.1f bytes per done key, want at most %.0f", perKey, limit)
	}
}

func usedMemory(t *testing.T, c *redis.Client) int64 {
	t.Helper()
	info, err := c.Info(context.Background(), "memory").Result()
	if err != nil {
		t.Fatalf("INFO memory: %v", err)
	}
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "used_memory:"); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				t.Fatalf("parsing used_memory %q: %v", v, err)
			}
			return n
		}
	}
	t.Fatalf("INFO memory has no used_memory: %q", info)
	return 0
}

// cpuMeter measures CPU time spent by this process and by the server process during a benchmark. On a shared
// or loaded machine, wall-clock throughput says little; CPU time per operation does not depend on what else
// runs, and bounds what an idle machine could reach.
type cpuMeter struct {
	serverPID        int
	self, server     time.Duration
	selfOK, serverOK bool
}

func startCPU(serverPID int) *cpuMeter {
	m := &cpuMeter{serverPID: serverPID}
	m.self, m.selfOK = selfCPU()
	if serverPID > 0 {
		m.server, m.serverOK = processCPU(serverPID)
	}
	return m
}

// report adds go-cpu-µs/<unit> and, with a server, redis-cpu-µs/<unit> to the benchmark's metrics, for n units
// of work.
func (m *cpuMeter) report(b *testing.B, n int, unit string) {
	if self, ok := selfCPU(); ok && m.selfOK {
		b.ReportMetric(float64((self-m.self).Microseconds())/float64(n), "go-cpu-µs/"+unit)
	}
	if m.serverPID > 0 {
		if server, ok := processCPU(m.serverPID); ok && m.serverOK {
			b.ReportMetric(float64((server-m.server).Microseconds())/float64(n), "redis-cpu-µs/"+unit)
		}
	}
}
