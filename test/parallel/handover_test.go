package parallel

import (
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"
)

// leaseApp checks what the dedup lease promises the app: the same Idempotency-Key is never in flight twice at
// once, across sidecars. It also counts the IDs it accepted.
type leaseApp struct {
	latency time.Duration

	mu       sync.Mutex
	inFlight map[string]int
	overlaps []string
	done     map[string]int // id → 2xx answers
	bad      []string
}

func newLeaseApp(latency time.Duration) *leaseApp {
	return &leaseApp{latency: latency, inFlight: map[string]int{}, done: map[string]int{}}
}

func (a *leaseApp) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	d, err := parseDelivery(r)
	a.mu.Lock()
	if err != nil {
		a.bad = append(a.bad, err.Error())
		a.mu.Unlock()
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	a.inFlight[d.id]++
	if a.inFlight[d.id] > 1 {
		a.overlaps = append(a.overlaps, d.id)
	}
	a.mu.Unlock()
	// The app's work: long enough that a rebalance lands while deliveries are under way.
	time.Sleep(a.latency)
	a.mu.Lock()
	a.inFlight[d.id]--
	a.done[d.id]++
	a.mu.Unlock()
	w.WriteHeader(http.StatusOK)
}

func (a *leaseApp) distinct() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.done)
}

// TestMembersJoinAndLeave runs one sidecar, starts a second in the same group a third of the way through the
// backlog, and stops the first two thirds of the way: every record reaches the app, no Idempotency-Key is
// ever in flight twice at once, and the group's committed offsets end at the partitions' ends.
func TestMembersJoinAndLeave(t *testing.T) {
	const (
		partitions = 6
		records    = 3000
	)
	e := newEnv(t, partitions)
	app := newLeaseApp(2 * time.Millisecond)
	url := serveApp(t, app)
	e.produce(makeRecords(records, partitions, 300))
	cfg := e.config(url, "SIDECAR_ORDERING=key", "SIDECAR_MAX_IN_FLIGHT=32")

	first := start(t, cfg, nil)
	waitFor(t, 60*time.Second, func() bool { return app.distinct() >= records/3 },
		func() string {
			return fmt.Sprintf("%d of %d records before the second member joins", app.distinct(), records)
		})
	second := start(t, cfg, nil)
	waitFor(t, 60*time.Second, func() bool { return app.distinct() >= 2*records/3 },
		func() string {
			return fmt.Sprintf("%d of %d records before the first member leaves", app.distinct(), records)
		})
	if err := first.stop(); err != nil {
		t.Fatalf("first member did not leave cleanly: %v", err)
	}
	waitFor(t, 90*time.Second, func() bool { return app.distinct() >= records },
		func() string {
			return fmt.Sprintf("%d of %d records after the first member left", app.distinct(), records)
		})

	// The remaining member commits everything: the next owner would start at each partition's end.
	waitFor(t, 30*time.Second, func() bool {
		c, err := e.committed(e.group)
		if err != nil {
			return false
		}
		sum := int64(0)
		for _, o := range c {
			sum += o
		}
		return sum == records
	}, func() string {
		c, err := e.committed(e.group)
		return fmt.Sprintf("committed offsets %v (err %v), want a total of %d", c, err, records)
	})

	app.mu.Lock()
	defer app.mu.Unlock()
	if len(app.bad) > 0 {
		t.Fatalf("malformed deliveries: %v", app.bad[:min(3, len(app.bad))])
	}
	if len(app.overlaps) > 0 {
		t.Errorf("%d deliveries overlapped another of the same Idempotency-Key, e.g. %v", len(app.overlaps),
			app.overlaps[:min(5, len(app.overlaps))])
	}
	dups := 0
	for _, n := range app.done {
		dups += n - 1
	}
	t1, t2 := first.sc.Metrics().Totals(), second.sc.Metrics().Totals()
	t.Logf("delivered %d distinct records; %d accepted again after the hand-over; first member %+v, second %+v",
		len(app.done), dups, t1, t2)
	if t1.Delivered == 0 || t2.Delivered == 0 {
		t.Errorf("both members should have delivered: first %d, second %d", t1.Delivered, t2.Delivered)
	}
}
