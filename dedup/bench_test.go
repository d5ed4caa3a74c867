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
	c.ids.Add(int64(len(ops.Complete) + len(ops.Park) + len(ops.Release) + len(ops.Claim)))
	return c.Store.Apply(ctx, ops)
}

// benchRecord is the n-th record of a benchmark: 16 partitions, consecutive offsets in each; with ownID, a
// message ID of its own (24 bytes, like a UUID without dashes).
func benchRecord(prefix string, n int64, ownID bool) dedup.Mark {
	m := dedup.Mark{TopicID: [16]byte{1, 2, 3}, Topic: "orders", Partition: int32(n % 16), Epoch: 3,
		Offset: n / 16}
	if ownID {
		m.ID, m.OwnID = fmt.Sprintf("%s%012d", prefix, n), true
	} else {
		m.ID = fmt.Sprintf("orders/%d/%d", m.Partition, m.Offset)
	}
	return m
}

// runPairs runs b.N claim+complete pairs through c from the given number of goroutines, each pair on a fresh
// record as a consumer would, and reports pairs per second.
func runPairs(b *testing.B, s dedup.Store, goroutines int, serverPID int) {
	counted := &countingStore{Store: s}
	c := dedup.NewCoalescer(counted, benchMaxBatch)
	defer c.Close()
	ctx := context.Background()
	prefix := strconv.FormatInt(time.Now().UnixNano(), 36)
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
				m := benchRecord(prefix, n, false)
				st, err := c.Claim(ctx, m)
				if err == nil && st != dedup.Claimed {
					err = fmt.Errorf("Claim(%s) = %v, want claimed", m.PositionString(), st)
				}
				if err == nil {
					err = c.Complete(ctx, m)
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
		b.ReportMetric(float64(counted.ids.Load())/float64(calls), "records/call")
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

// BenchmarkRedisBatch measures a batch-mode round on a real redis-server: one Apply claiming a batch of fresh
// records and one marking them done, as ProcessBatch does, with and without IDs of their own. Besides the
// redis-server process's CPU from /proc it reports used_cpu_sys+used_cpu_user from INFO, the server's own
// account, per record.
func BenchmarkRedisBatch(b *testing.B) {
	srv := redistest.Start(b, redistest.Options{})
	for _, ownID := range []bool{false, true} {
		b.Run(fmt.Sprintf("own-id=%v", ownID), func(b *testing.B) {
			admin := srv.Client(b)
			if err := admin.FlushAll(context.Background()).Err(); err != nil {
				b.Fatal(err)
			}
			store := dedup.NewRedis(redis.NewClient(srv.ClientOptions()), dedup.RedisOptions{
				KeyPrefix: "kafka-sidecar:bench:", Owner: "bench-0"})
			defer store.Close()
			ctx := context.Background()
			if _, err := store.LegacyUntil(ctx); err != nil {
				b.Fatal(err)
			}
			batch := make([]dedup.Mark, benchMaxBatch)
			b.ReportAllocs()
			cpu := startCPU(srv.PID())
			info := redisCPU(b, admin)
			n := 0
			for b.Loop() {
				for j := range batch {
					batch[j] = benchRecord("bench-", int64(n), ownID)
					n++
				}
				if _, err := store.Apply(ctx, dedup.Ops{Claim: batch}); err != nil {
					b.Fatal(err)
				}
				if _, err := store.Apply(ctx, dedup.Ops{Complete: batch}); err != nil {
					b.Fatal(err)
				}
			}
			records := b.N * benchMaxBatch
			cpu.report(b, records, "record")
			b.ReportMetric(float64((redisCPU(b, admin)-info).Nanoseconds())/1e3/float64(records), "redis-info-cpu-µs/record")
			b.ReportMetric(float64(records)/b.Elapsed().Seconds(), "records/s")
		})
	}
}

// redisCPU returns used_cpu_sys plus used_cpu_user from INFO cpu.
func redisCPU(tb testing.TB, c *redis.Client) time.Duration {
	tb.Helper()
	info, err := c.Info(context.Background(), "cpu").Result()
	if err != nil {
		tb.Fatalf("INFO cpu: %v", err)
	}
	var total float64
	for _, line := range strings.Split(info, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok || (k != "used_cpu_sys" && k != "used_cpu_user") {
			continue
		}
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			tb.Fatalf("parsing %s %q: %v", k, v, err)
		}
		total += f
	}
	return time.Duration(total * float64(time.Second))
}

// TestRedisMemoryPerRecord measures what marks cost a real redis-server: used_memory growth divided by the
// records marked done, for position marks (records without IDs of their own: 2M records over 8 partitions)
// and for records with IDs of their own (100k, a position mark and an ID key each). Position marks are the bulk
// of what the store holds (they live SIDECAR_DEDUP_TTL, a week by default), so they decide how big the Redis
// must be; the README's sizing section quotes these figures.
func TestRedisMemoryPerRecord(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 2M marks")
	}
	srv := redistest.Start(t, redistest.Options{})
	admin := srv.Client(t)
	ctx := context.Background()
	newStore := func() *dedup.Redis {
		s := dedup.NewRedis(redis.NewClient(srv.ClientOptions()), dedup.RedisOptions{
			KeyPrefix: "kafka-sidecar:orders-consumer:", Owner: "orders-consumer-7d9f8-abcde",
		})
		if _, err := s.LegacyUntil(ctx); err != nil {
			t.Fatal(err)
		}
		return s
	}
	// The first store writes p:format, which is not a mark, and the first script call loads the script and
	// grows the server's Lua heap, which counts in used_memory too: neither is charged to the marks.
	warm := newStore()
	if _, err := warm.Apply(ctx, dedup.Ops{Release: []dedup.Mark{benchRecord("warm-up", 0, true)}}); err != nil {
		t.Fatal(err)
	}
	_ = warm.Close()
	// Each measurement writes through a store of its own, closed before used_memory is read again: a
	// connection's buffers count in used_memory and would be charged to the marks.
	measure := func(records int, mark func(i int) dedup.Mark) float64 {
		t.Helper()
		before := usedMemory(t, admin)
		store := newStore()
		batch := make([]dedup.Mark, 0, 512)
		for i := range records {
			batch = append(batch, mark(i))
			if len(batch) == cap(batch) || i == records-1 {
				if _, err := store.Apply(ctx, dedup.Ops{Complete: batch}); err != nil {
					t.Fatal(err)
				}
				batch = batch[:0]
			}
		}
		if err := store.Close(); err != nil {
			t.Fatal(err)
		}
		return float64(usedMemory(t, admin)-before) / float64(records)
	}
	const positions = 2_000_000
	perPosition := measure(positions, func(i int) dedup.Mark {
		// The default ID: topic/partition/offset; offsets from a realistic place in the log.
		m := benchRecord("", int64(i), false)
		m.Partition, m.Offset = int32(i%8), 5_000_000+int64(i/8)
		return m
	})
	t.Logf("redis used_memory per position mark: %.3f bytes (%d records, %d partitions)", perPosition, positions, 8)
	if perPosition > 1 {
		t.Fatalf("%.3f bytes per position mark, want at most 1", perPosition)
	}
	const ids = 100_000
	perID := measure(ids, func(i int) dedup.Mark {
		m := benchRecord("3f2b8c1e9a7d4e6f", int64(i), true) // 28-byte IDs
		m.Topic, m.TopicID = "payments", [16]byte{9}
		return m
	})
	keyLen := len("kafka-sidecar:orders-consumer:i:") + len(benchRecord("3f2b8c1e9a7d4e6f", 0, true).ID)
	t.Logf("redis used_memory per record with an ID of its own: %.1f bytes (%d-byte ID keys, value %q)",
		perID, keyLen, "d")
	// Redis spends about 135 bytes per key besides the key's own bytes (dict entries in the keyspace and the
	// expires table, the value object, allocator rounding); much more means the value or its encoding grew.
	if limit := float64(keyLen + 150); perID > limit {
		t.Fatalf("%.1f bytes per ID mark, want at most %.0f", perID, limit)
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
