package parallel

import (
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"net/http"
	"sync"
	"testing"
	"time"
)

// orderApp answers after a random latency and records, per key, the offsets of first-attempt deliveries in the
// order they arrived and how many of them were in flight at once. Deliveries with Kafka-Attempt above 1 come
// from a retry tier: they are the documented exception to key order, so they are kept apart.
type orderApp struct {
	maxLatency time.Duration
	fail       func(id string, attempt int) bool

	mu        sync.Mutex
	rnd       *rand.Rand
	firstSeen map[string][]int64 // key → offsets of attempt-1 deliveries, in arrival order
	inFlight  map[string]int     // key → attempt-1 deliveries under way
	overlaps  []string
	done      map[string]bool // id → answered 2xx
	retried   map[string]bool // id → seen with attempt > 1
	bad       []string
}

func newOrderApp(seed uint64, maxLatency time.Duration, fail func(string, int) bool) *orderApp {
	return &orderApp{
		maxLatency: maxLatency, fail: fail, rnd: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		firstSeen: map[string][]int64{}, inFlight: map[string]int{}, done: map[string]bool{}, retried: map[string]bool{},
	}
}

func (a *orderApp) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	d, err := parseDelivery(r)
	a.mu.Lock()
	if err != nil {
		a.bad = append(a.bad, err.Error())
		a.mu.Unlock()
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	if d.attempt == 1 {
		a.firstSeen[d.key] = append(a.firstSeen[d.key], d.offset)
		a.inFlight[d.key]++
		if a.inFlight[d.key] > 1 {
			a.overlaps = append(a.overlaps, fmt.Sprintf("key %s: offset %d started while another was in flight", d.key, d.offset))
		}
	} else {
		a.retried[d.id] = true
	}
	latency := time.Duration(a.rnd.Int64N(int64(a.maxLatency) + 1))
	failNow := a.fail(d.id, d.attempt)
	a.mu.Unlock()

	// The latency is the app's work, not a synchronisation: the test waits on the app's counts.
	time.Sleep(latency)

	a.mu.Lock()
	if d.attempt == 1 {
		a.inFlight[d.key]--
	}
	if !failNow {
		a.done[d.id] = true
	}
	a.mu.Unlock()
	if failNow {
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	w.WriteHeader(http.StatusOK)
}

func (a *orderApp) doneCount() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.done)
}

// failsFirst picks about one record in every n, by ID, to fail its first attempt.
func failsFirst(n uint32) func(id string, attempt int) bool {
	return func(id string, attempt int) bool {
		if attempt > 1 {
			return false
		}
		h := fnv.New32a()
		_, _ = h.Write([]byte(id))
		return h.Sum32()%n == 0
	}
}

// TestKeyOrderUnderRandomLatency is a property test: for several seeds (app latencies and the record layout),
// in key mode with many keys over several partitions, every key's first-attempt deliveries reach the app in
// strictly increasing offset order and never two at once, and every record is eventually done — including
// those that failed once and went through the retry tier.
func TestKeyOrderUnderRandomLatency(t *testing.T) {
	seeds := []uint64{1, 2, 3}
	if testing.Short() {
		seeds = seeds[:1]
	}
	for _, seed := range seeds {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			const (
				partitions = 6
				records    = 1200
			)
			rnd := rand.New(rand.NewPCG(seed, 7))
			keys := 40 + rnd.IntN(120)
			e := newEnv(t, partitions)
			app := newOrderApp(seed, 3*time.Millisecond, failsFirst(25))
			url := serveApp(t, app)
			recs := makeRecords(records, partitions, keys)
			// Shuffle which partition a key lives on so each seed lays the keys out differently.
			perm := rnd.Perm(keys)
			for i, r := range recs {
				r.Partition = int32(perm[i%keys] % partitions)
			}
			e.produce(recs)

			start(t, e.config(url, "SIDECAR_ORDERING=key", "SIDECAR_MAX_IN_FLIGHT=32",
				"SIDECAR_RETRY_ATTEMPTS_IN_PLACE=1"), nil)
			waitFor(t, 90*time.Second, func() bool { return app.doneCount() >= records },
				func() string { return fmt.Sprintf("%d of %d records done", app.doneCount(), records) })

			app.mu.Lock()
			defer app.mu.Unlock()
			if len(app.bad) > 0 {
				t.Fatalf("malformed deliveries: %v", app.bad[:min(3, len(app.bad))])
			}
			if len(app.overlaps) > 0 {
				t.Errorf("%d same-key deliveries overlapped, e.g. %v", len(app.overlaps), app.overlaps[:min(3, len(app.overlaps))])
			}
			firsts := 0
			for key, offs := range app.firstSeen {
				firsts += len(offs)
				for i := 1; i < len(offs); i++ {
					if offs[i] <= offs[i-1] {
						t.Errorf("key %s: offset %d reached the app after offset %d (sequence %v)", key, offs[i], offs[i-1], offs)
						break
					}
				}
			}
			if firsts != records {
				t.Errorf("first-attempt deliveries: got %d, want %d (one per record)", firsts, records)
			}
			if len(app.retried) == 0 {
				t.Error("no record came back from the retry tier: the exception path was not exercised")
			}
			t.Logf("seed %d: %d keys, %d records, %d via the retry tier", seed, keys, records, len(app.retried))
		})
	}
}
