package consumer

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

func records(topic string, partition int32, from int64, keys []string) []*kgo.Record {
	out := make([]*kgo.Record, len(keys))
	for i, k := range keys {
		var key []byte
		if k != "" {
			key = []byte(k)
		}
		out[i] = &kgo.Record{Topic: topic, Partition: partition, Offset: from + int64(i), Key: key}
	}
	return out
}

// next takes one record, as a worker with batches of one does.
func next(s *scheduler, ctx context.Context) (*item, bool) {
	batch, ok := s.nextBatch(ctx, 1, 0)
	if !ok {
		return nil, false
	}
	return batch[0], true
}

// runScheduler drains s with workers that finish records after random delays and reports, per record, the
// order in which records started and the peak number in flight per order key.
func runScheduler(t *testing.T, s *scheduler, total, workers int, seed uint64) (starts []*kgo.Record, violations []string) {
	t.Helper()
	var mu sync.Mutex
	inFlight := map[string]int{}
	var wg sync.WaitGroup
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	started := 0
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(seed, uint64(w)))
			for {
				it, ok := next(s, ctx)
				if !ok {
					return
				}
				k := fmt.Sprintf("%s/%d/%s/%v", it.rec.Topic, it.rec.Partition, it.orderKey, it.hasKey)
				mu.Lock()
				starts = append(starts, it.rec)
				if it.hasKey {
					inFlight[k]++
					if inFlight[k] > 1 {
						violations = append(violations, "two in flight for key "+k)
					}
				}
				started++
				last := started == total
				mu.Unlock()
				if d := rng.IntN(3); d > 0 {
					time.Sleep(time.Duration(d) * 50 * time.Microsecond) // random app latency, not synchronisation
				}
				mu.Lock()
				if it.hasKey {
					inFlight[k]--
				}
				mu.Unlock()
				s.finishMany([]*item{it}, true)
				if last {
					s.stop()
				}
			}
		}()
	}
	wg.Wait()
	if ctx.Err() != nil {
		t.Fatalf("scheduler stalled: %d of %d records started", started, total)
	}
	return starts, violations
}

// addRandomlyKeyed assigns partitions 0-2 of topic t to s and adds 200 records to each, nine in ten with one
// of 12 keys; it returns the number added.
func addRandomlyKeyed(s *scheduler, rng *rand.Rand) int {
	s.assign(context.Background(), map[string][]int32{"t": {0, 1, 2}})
	total := 0
	for p := range int32(3) {
		keys := make([]string, 200)
		for i := range keys {
			if rng.IntN(10) > 0 {
				keys[i] = fmt.Sprintf("k%d", rng.IntN(12))
			}
		}
		s.add("t", [16]byte{}, p, records("t", p, 0, keys), -1)
		total += len(keys)
	}
	return total
}

func TestKeyOrderingProperty(t *testing.T) {
	for seed := range uint64(30) {
		s := newScheduler(ByKey, 1<<20, 1<<30, nil)
		total := addRandomlyKeyed(s, rand.New(rand.NewPCG(seed, 99)))
		starts, violations := runScheduler(t, s, total, 8, seed)
		if len(violations) > 0 {
			t.Fatalf("seed %d: %v", seed, violations[0])
		}
		last := map[string]int64{}
		for _, r := range starts {
			if len(r.Key) == 0 {
				continue
			}
			k := fmt.Sprintf("%d/%s", r.Partition, r.Key)
			if prev, ok := last[k]; ok && r.Offset < prev {
				t.Fatalf("seed %d: key %s started offset %d after %d", seed, k, r.Offset, prev)
			}
			last[k] = r.Offset
		}
		for _, l := range s.lanes {
			if pos, _, _ := l.tracker.position(); pos != 200 {
				t.Fatalf("seed %d: partition %d position %d, want 200", seed, l.tp.partition, pos)
			}
		}
	}
}

func TestPartitionOrderingIsOneAtATime(t *testing.T) {
	s := newScheduler(ByPartition, 1<<20, 1<<30, nil)
	s.assign(context.Background(), map[string][]int32{"t": {0, 1}})
	for p := range int32(2) {
		s.add("t", [16]byte{}, p, records("t", p, 0, make([]string, 100)), -1)
	}
	starts, violations := runScheduler(t, s, 200, 6, 1)
	if len(violations) > 0 {
		t.Fatal(violations[0])
	}
	last := map[int32]int64{0: -1, 1: -1}
	for _, r := range starts {
		if r.Offset != last[r.Partition]+1 {
			t.Fatalf("partition %d started offset %d after %d", r.Partition, r.Offset, last[r.Partition])
		}
		last[r.Partition] = r.Offset
	}
}

func TestUnorderedRunsEverythingAtOnce(t *testing.T) {
	s := newScheduler(Unordered, 1<<20, 1<<30, nil)
	s.assign(context.Background(), map[string][]int32{"t": {0}})
	s.add("t", [16]byte{}, 0, records("t", 0, 0, []string{"a", "a", "a"}), -1)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for i := range 3 {
		if _, ok := next(s, ctx); !ok {
			t.Fatalf("record %d of the same key did not start while others were in flight", i)
		}
	}
}

func TestNotBeforeHoldsRecordAndPausesPartition(t *testing.T) {
	due := time.Now().Add(150 * time.Millisecond)
	s := newScheduler(ByKey, 1<<20, 1<<30, func(*kgo.Record) time.Time { return due })
	s.assign(context.Background(), map[string][]int32{"retry": {0}})
	s.add("retry", [16]byte{}, 0, records("retry", 0, 0, []string{"a"}), -1)
	if paused := s.pausedPartitions(); !paused[topicPartition{"retry", 0}] {
		t.Fatal("a partition whose record waits for its time must be paused")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	it, ok := next(s, ctx)
	if !ok {
		t.Fatal("the held record never became ready")
	}
	if now := time.Now(); now.Before(due) {
		t.Fatalf("record started %v before its not-before time", due.Sub(now))
	}
	if paused := s.pausedPartitions(); len(paused) != 0 {
		t.Fatalf("partition still paused after its record became due: %v", paused)
	}
	s.finishMany([]*item{it}, true)
}

func TestBufferCapBlocksPolling(t *testing.T) {
	s := newScheduler(Unordered, 2, 1<<30, nil)
	s.assign(context.Background(), map[string][]int32{"t": {0}})
	s.add("t", [16]byte{}, 0, records("t", 0, 0, []string{"a", "b"}), -1)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, ok := s.waitForSpace(ctx); ok {
		t.Fatal("polling must wait while the buffer is full")
	}
	it, _ := next(s, context.Background())
	s.finishMany([]*item{it}, true)
	n, ok := s.waitForSpace(context.Background())
	if !ok || n != 1 {
		t.Fatalf("after one record finished: space %d ok %v, want 1 true", n, ok)
	}
}

func TestRevokeDropsWaitingRecords(t *testing.T) {
	s := newScheduler(ByPartition, 100, 1<<30, nil)
	s.assign(context.Background(), map[string][]int32{"t": {0}})
	s.add("t", [16]byte{}, 0, records("t", 0, 0, []string{"", "", ""}), -1)
	it, _ := next(s, context.Background())
	lanes := s.revoke(map[string][]int32{"t": {0}})
	if len(lanes) != 1 {
		t.Fatalf("revoke returned %d lanes, want 1", len(lanes))
	}
	if s.buffered != 1 {
		t.Fatalf("buffered %d after revoke, want only the in-flight record", s.buffered)
	}
	s.finishMany([]*item{it}, true)
	if s.buffered != 0 || s.bytes != 0 {
		t.Fatalf("buffer not empty after the in-flight record finished: %d records, %d bytes", s.buffered, s.bytes)
	}
	pos := s.positions(lanes)
	if got := pos["t"][0].Offset; got != 1 {
		t.Fatalf("commit position %d after revoke, want 1 (only offset 0 done)", got)
	}
	// Records of a revoked partition that arrive late are not taken.
	s.add("t", [16]byte{}, 0, records("t", 0, 3, []string{""}), -1)
	if s.buffered != 0 {
		t.Fatal("records of a revoked partition were buffered")
	}
}

func TestDetachCopiesEverythingItKeeps(t *testing.T) {
	backing := []byte("keyvaluehv1hv2")
	r := &kgo.Record{
		Topic: "t", Partition: 2, Offset: 9, Key: backing[0:3], Value: backing[3:8],
		Headers: []kgo.RecordHeader{{Key: "a", Value: backing[8:11]}, {Key: "b", Value: backing[11:14]}, {Key: "nil"}},
	}
	var d kgo.Record
	detach(&d, r)
	for i := range backing {
		backing[i] = 'x' // the fetch buffer is reused or freed: the copy must not notice
	}
	if string(d.Key) != "key" || string(d.Value) != "value" || string(d.Headers[0].Value) != "hv1" ||
		string(d.Headers[1].Value) != "hv2" || d.Headers[2].Value != nil || d.Offset != 9 || d.Partition != 2 {
		t.Fatalf("detached copy changed with its source: %+v", d)
	}
	d.Key = append(d.Key, '!') // appending must not overwrite the value stored after the key
	if string(d.Value) != "value" {
		t.Fatalf("key append overwrote the value: %q", d.Value)
	}
	var empty kgo.Record
	detach(&empty, &kgo.Record{})
	if empty.Key != nil || empty.Value != nil || empty.Headers != nil {
		t.Fatal("nil key, value and headers must stay nil")
	}
}

func BenchmarkDetach(b *testing.B) {
	r := &kgo.Record{Key: make([]byte, 16), Value: make([]byte, 200), Headers: []kgo.RecordHeader{{Key: "id", Value: make([]byte, 20)}}}
	var d kgo.Record
	b.ReportAllocs()
	for range b.N {
		detach(&d, r)
	}
}

// TestKeyOrderingPropertyInBatches is TestKeyOrderingProperty for batch takes: batch workers take up to 16
// records at once under an in-flight cap of 40 and finish them in random order after random delays. No key
// is ever in flight twice, same-key records start in offset order, the cap holds, and every offset is done.
func TestKeyOrderingPropertyInBatches(t *testing.T) {
	const maxInFlight = 40
	for seed := range uint64(30) {
		s := newScheduler(ByKey, 1<<20, 1<<30, nil)
		s.maxInFlight = maxInFlight
		total := addRandomlyKeyed(s, rand.New(rand.NewPCG(seed, 7)))

		var mu sync.Mutex
		inFlight, peak, started := map[string]int{}, 0, 0
		last := map[string]int64{}
		var problems []string
		var wg sync.WaitGroup
		for w := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				wrng := rand.New(rand.NewPCG(seed, uint64(w)))
				for {
					batch, ok := s.nextBatch(context.Background(), 16, 0)
					if !ok {
						return
					}
					mu.Lock()
					for _, it := range batch {
						started++
						k := fmt.Sprintf("%d/%s", it.rec.Partition, it.rec.Key)
						if it.hasKey {
							if inFlight[k]++; inFlight[k] > 1 {
								problems = append(problems, "two in flight for key "+k)
							}
							if prev, seen := last[k]; seen && it.rec.Offset < prev {
								problems = append(problems, fmt.Sprintf("key %s started offset %d after %d", k, it.rec.Offset, prev))
							}
							last[k] = it.rec.Offset
						}
					}
					s.mu.Lock()
					peak = max(peak, s.inFlight)
					s.mu.Unlock()
					mu.Unlock()
					wrng.Shuffle(len(batch), func(i, j int) { batch[i], batch[j] = batch[j], batch[i] })
					for len(batch) > 0 {
						n := 1 + wrng.IntN(len(batch))
						if d := wrng.IntN(3); d > 0 {
							time.Sleep(time.Duration(d) * 50 * time.Microsecond) // random app latency, not synchronisation
						}
						mu.Lock()
						for _, it := range batch[:n] {
							if it.hasKey {
								inFlight[fmt.Sprintf("%d/%s", it.rec.Partition, it.rec.Key)]--
							}
						}
						done := started == total
						mu.Unlock()
						s.finishMany(batch[:n], true)
						batch = batch[n:]
						if done && len(batch) == 0 {
							s.stop()
						}
					}
				}
			}()
		}
		waitGroupWithin(t, &wg, 20*time.Second, func() string { return fmt.Sprintf("seed %d: %d of %d started", seed, started, total) })
		if len(problems) > 0 {
			t.Fatalf("seed %d: %s", seed, problems[0])
		}
		if peak > maxInFlight {
			t.Fatalf("seed %d: %d records in flight, over the cap of %d", seed, peak, maxInFlight)
		}
		for _, l := range s.lanes {
			if pos, _, _ := l.tracker.position(); pos != 200 {
				t.Fatalf("seed %d: partition %d position %d, want 200", seed, l.tp.partition, pos)
			}
		}
	}
}

// waitGroupWithin waits for wg, failing with what() when it takes longer than d.
func waitGroupWithin(t *testing.T, wg *sync.WaitGroup, d time.Duration, what func() string) {
	t.Helper()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(d):
		t.Fatalf("stalled after %v: %s", d, what())
	}
}

// TestNextBatchLingersForAFullBatch checks the batch wait: a lone ready record waits up to the linger for
// company, a full batch leaves at once, and records arriving during the wait join it.
func TestNextBatchLingersForAFullBatch(t *testing.T) {
	s := newScheduler(Unordered, 1<<20, 1<<30, nil)
	s.assign(context.Background(), map[string][]int32{"t": {0}})

	s.add("t", [16]byte{}, 0, records("t", 0, 0, []string{"a", "b", "c"}), -1)
	full, ok := s.nextBatch(context.Background(), 3, time.Hour)
	if !ok || len(full) != 3 {
		t.Fatalf("a full batch: %d records, ok %v; want 3 at once although the linger is an hour", len(full), ok)
	}
	s.finishMany(full, true)

	const linger = 300 * time.Millisecond
	s.add("t", [16]byte{}, 0, records("t", 0, 3, []string{"d"}), -1)
	start := time.Now()
	got := make(chan []*item, 1)
	go func() {
		b, _ := s.nextBatch(context.Background(), 3, linger)
		got <- b
	}()
	// A record arriving while the batch waits joins it. The worker counts as idle while it waits.
	waitIdle(t, s, 1)
	s.add("t", [16]byte{}, 0, records("t", 0, 4, []string{"e"}), -1)
	select {
	case b := <-got:
		if elapsed := time.Since(start); elapsed < linger {
			t.Fatalf("a batch of %d left after %v, before the linger of %v", len(b), elapsed, linger)
		}
		if len(b) != 2 {
			t.Fatalf("batch of %d records, want 2 (the waiting one and the one that arrived)", len(b))
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a lone record waited more than 10s with a linger of 300ms")
	}
}

// TestNextBatchHonoursInFlightCap checks that batch takes stop at the cap and resume when records finish.
func TestNextBatchHonoursInFlightCap(t *testing.T) {
	s := newScheduler(Unordered, 1<<20, 1<<30, nil)
	s.maxInFlight = 5
	s.assign(context.Background(), map[string][]int32{"t": {0}})
	s.add("t", [16]byte{}, 0, records("t", 0, 0, make([]string, 12)), -1)
	first, _ := s.nextBatch(context.Background(), 4, 0)
	second, _ := s.nextBatch(context.Background(), 4, 0)
	if len(first) != 4 || len(second) != 1 {
		t.Fatalf("took %d then %d records, want 4 then 1 under a cap of 5", len(first), len(second))
	}
	got := make(chan []*item, 1)
	go func() {
		b, _ := s.nextBatch(context.Background(), 4, 0)
		got <- b
	}()
	waitIdle(t, s, 1)
	s.finishMany(first[:3], true)
	select {
	case b := <-got:
		if len(b) != 3 {
			t.Fatalf("after 3 records finished, took %d, want 3", len(b))
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a batch worker at the cap was not woken when records finished")
	}
}

// waitIdle waits until n workers wait in the scheduler.
func waitIdle(t *testing.T, s *scheduler, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		s.mu.Lock()
		idle := s.idle
		s.mu.Unlock()
		if idle >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d workers waiting after 10s, want %d", idle, n)
		}
		time.Sleep(time.Millisecond) // polling a condition with a bounded wait
	}
}
