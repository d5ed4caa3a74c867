package dedup

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

// gatedStore wraps a Memory store, records every batch, and holds each call at a gate until the test opens it,
// so tests can line up calls behind batches in flight.
type gatedStore struct {
	*Memory
	entered chan string // receives the operation name of every call as it arrives
	gate    chan struct{}
	opened  sync.Once
	fail    error // returned by every call when set

	mu       sync.Mutex
	batches  map[string][][]string
	inFlight int
	maxIn    int
}

func newGatedStore(open bool) *gatedStore {
	g := &gatedStore{
		Memory:  NewMemory(MemoryOptions{Owner: "me"}),
		entered: make(chan string, 1024),
		gate:    make(chan struct{}),
		batches: make(map[string][][]string),
	}
	if open {
		g.open()
	}
	return g
}

// open lets every held and future call through.
func (g *gatedStore) open() { g.opened.Do(func() { close(g.gate) }) }

// occupy starts n claims one after another, each held at the gate as its own one-ID batch.
func (g *gatedStore) occupy(t *testing.T, c *Coalescer, n int, out chan<- result) {
	t.Helper()
	for i := range n {
		goClaim(c, context.Background(), fmt.Sprint("held-", i), out)
		g.waitEntered(t, 1)
	}
}

func (g *gatedStore) enter(op string, ids []string) {
	g.mu.Lock()
	g.batches[op] = append(g.batches[op], append([]string(nil), ids...))
	g.inFlight++
	g.maxIn = max(g.maxIn, g.inFlight)
	g.mu.Unlock()
	g.entered <- op
	<-g.gate
}

func (g *gatedStore) leave() {
	g.mu.Lock()
	g.inFlight--
	g.mu.Unlock()
}

func (g *gatedStore) Claim(ctx context.Context, ids []string) ([]Status, error) {
	g.enter("claim", ids)
	defer g.leave()
	if g.fail != nil {
		return nil, g.fail
	}
	return g.Memory.Claim(ctx, ids)
}

func (g *gatedStore) Complete(ctx context.Context, ids []string) error {
	g.enter("complete", ids)
	defer g.leave()
	if g.fail != nil {
		return g.fail
	}
	return g.Memory.Complete(ctx, ids)
}

func (g *gatedStore) Release(ctx context.Context, ids []string) error {
	g.enter("release", ids)
	defer g.leave()
	if g.fail != nil {
		return g.fail
	}
	return g.Memory.Release(ctx, ids)
}

func (g *gatedStore) batchesOf(op string) [][]string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([][]string(nil), g.batches[op]...)
}

// waitEntered waits for n calls to reach the store.
func (g *gatedStore) waitEntered(t *testing.T, n int) {
	t.Helper()
	timeout := time.NewTimer(10 * time.Second)
	defer timeout.Stop()
	for i := range n {
		select {
		case <-g.entered:
		case <-timeout.C:
			t.Fatalf("only %d of %d store calls arrived within 10s", i, n)
		}
	}
}

// waitQueued waits until n requests sit in b's queue.
func waitQueued(t *testing.T, b *batcher, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for {
		b.mu.Lock()
		q := len(b.queue)
		b.mu.Unlock()
		if q == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d requests queued after 10s, want %d", q, n)
		}
		<-tick.C
	}
}

type result struct {
	id     string
	status Status
	err    error
}

func goClaim(c *Coalescer, ctx context.Context, id string, out chan<- result) {
	go func() {
		st, err := c.Claim(ctx, id)
		out <- result{id, st, err}
	}()
}

func collect(t *testing.T, out <-chan result, n int) []result {
	t.Helper()
	timeout := time.NewTimer(10 * time.Second)
	defer timeout.Stop()
	var res []result
	for range n {
		select {
		case r := <-out:
			res = append(res, r)
		case <-timeout.C:
			t.Fatalf("only %d of %d calls returned within 10s", len(res), n)
		}
	}
	return res
}

// TestCoalescerBatchesWhileInFlight lines up calls behind a batch in flight and checks they leave together:
// a further flusher starts only when a full batch waits, and no Store call carries more than maxBatch IDs.
func TestCoalescerBatchesWhileInFlight(t *testing.T) {
	const maxBatch = 8
	g := newGatedStore(false)
	c := NewCoalescer(g, maxBatch)
	defer c.Close()
	defer g.open()
	out := make(chan result, 64)
	ctx := context.Background()

	g.occupy(t, c, 1, out)
	// 20 more calls: each time 8 wait, another flusher takes them (and is held too); 4 stay queued.
	const queued = 20
	for i := range queued {
		goClaim(c, ctx, fmt.Sprintf("queued-%d", i), out)
	}
	g.waitEntered(t, 2)
	waitQueued(t, &c.claims, queued%maxBatch)
	g.open()

	for _, r := range collect(t, out, 1+queued) {
		if r.err != nil || r.status != Claimed {
			t.Fatalf("Claim(%q) = %v, %v; want claimed", r.id, r.status, r.err)
		}
	}
	var sizes []int
	for _, b := range g.batchesOf("claim") {
		sizes = append(sizes, len(b))
	}
	if want := []int{1, 8, 8, 4}; fmt.Sprint(sizes) != fmt.Sprint(want) {
		t.Fatalf("store calls carried %v IDs, want %v", sizes, want)
	}
}

// TestCoalescerLoneCallSentAtOnce checks that one call is not held back waiting for company.
func TestCoalescerLoneCallSentAtOnce(t *testing.T) {
	g := newGatedStore(true)
	c := NewCoalescer(g, 64)
	defer c.Close()
	defer g.open()
	for _, op := range []struct {
		name string
		call func() error
	}{
		{"claim", func() error { _, err := c.Claim(context.Background(), "x"); return err }},
		{"complete", func() error { return c.Complete(context.Background(), "x") }},
		{"release", func() error { return c.Release(context.Background(), "x") }},
	} {
		t.Run(op.name, func(t *testing.T) {
			if err := op.call(); err != nil {
				t.Fatal(err)
			}
			if got := g.batchesOf(op.name); len(got) != 1 || len(got[0]) != 1 {
				t.Fatalf("store calls %v, want one call with one ID", got)
			}
		})
	}
}

func TestCoalescerAtMostFlushersInFlight(t *testing.T) {
	g := newGatedStore(false)
	c := NewCoalescer(g, 1)
	defer c.Close()
	defer g.open()
	out := make(chan result, 32)
	g.occupy(t, c, flushersPerOp, out)
	for i := range 2 * flushersPerOp {
		goClaim(c, context.Background(), fmt.Sprint(i), out)
	}
	waitQueued(t, &c.claims, 2*flushersPerOp)
	g.open()
	collect(t, out, 3*flushersPerOp)
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.maxIn != flushersPerOp {
		t.Fatalf("%d claim calls in flight at most, want %d", g.maxIn, flushersPerOp)
	}
}

// TestCoalescerCallerGivesUp cancels a caller whose claim is in flight: it returns at once, and the lease the
// store then grants on its behalf is released rather than left to expire.
func TestCoalescerCallerGivesUp(t *testing.T) {
	g := newGatedStore(false)
	c := NewCoalescer(g, 8)
	defer c.Close()
	defer g.open()
	ctx, cancel := context.WithCancel(context.Background())
	out := make(chan result, 1)
	goClaim(c, ctx, "x", out)
	g.waitEntered(t, 1)
	cancel()
	r := collect(t, out, 1)[0]
	if !errors.Is(r.err, context.Canceled) {
		t.Fatalf("Claim after cancel = %v, %v; want context.Canceled", r.status, r.err)
	}
	g.open()
	g.waitEntered(t, 1) // the release
	c.Close()
	if got := g.batchesOf("release"); len(got) != 1 || len(got[0]) != 1 || got[0][0] != "x" {
		t.Fatalf("releases %v, want the abandoned lease on x released", got)
	}
	other := g.Memory.Shared(MemoryOptions{Owner: "other"})
	if st, err := other.Claim(context.Background(), []string{"x"}); err != nil || st[0] != Claimed {
		t.Fatalf("another owner's claim after the release = %v, %v; want claimed", st, err)
	}
}

// TestCoalescerCancelledWhileQueued cancels a caller whose request has not been sent yet: it is never sent.
func TestCoalescerCancelledWhileQueued(t *testing.T) {
	g := newGatedStore(false)
	c := NewCoalescer(g, 8)
	defer c.Close()
	defer g.open()
	out := make(chan result, 2)
	g.occupy(t, c, 1, out)
	ctx, cancel := context.WithCancel(context.Background())
	goClaim(c, ctx, "late", out)
	waitQueued(t, &c.claims, 1)
	cancel()
	var late result
	for _, r := range collect(t, out, 1) {
		late = r
	}
	if late.id != "late" || !errors.Is(late.err, context.Canceled) {
		t.Fatalf("queued caller after cancel = %+v, want late with context.Canceled", late)
	}
	g.open()
	collect(t, out, 1)
	c.Close()
	for _, b := range g.batchesOf("claim") {
		for _, id := range b {
			if id == "late" {
				t.Fatal("a request cancelled while queued was sent to the store")
			}
		}
	}
	if got := g.batchesOf("release"); len(got) != 0 {
		t.Fatalf("releases %v, want none", got)
	}
}

func TestCoalescerCancelledBeforeCall(t *testing.T) {
	g := newGatedStore(true)
	c := NewCoalescer(g, 8)
	defer c.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.Claim(ctx, "x"); !errors.Is(err, context.Canceled) {
		t.Fatalf("Claim = %v, want context.Canceled", err)
	}
	if err := c.Complete(ctx, "x"); !errors.Is(err, context.Canceled) {
		t.Fatalf("Complete = %v, want context.Canceled", err)
	}
	if got := g.batchesOf("claim"); len(got) != 0 {
		t.Fatalf("store calls %v, want none", got)
	}
}

func TestCoalescerSharesBatchErrors(t *testing.T) {
	g := newGatedStore(false)
	g.fail = fmt.Errorf("claiming: %w: connection refused", ErrUnavailable)
	c := NewCoalescer(g, 64)
	defer c.Close()
	defer g.open()
	out := make(chan result, 16)
	g.occupy(t, c, 1, out)
	for i := range 8 {
		goClaim(c, context.Background(), fmt.Sprint("b-", i), out)
	}
	waitQueued(t, &c.claims, 8)
	g.open()
	for _, r := range collect(t, out, 1+8) {
		if !errors.Is(r.err, ErrUnavailable) {
			t.Fatalf("Claim(%q) = %v, want ErrUnavailable", r.id, r.err)
		}
	}
	if err := c.Complete(context.Background(), "x"); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Complete = %v, want ErrUnavailable", err)
	}
}

// shortStore answers Claim with the wrong number of statuses, as a buggy Store might.
type shortStore struct{ Store }

func (shortStore) Claim(context.Context, []string) ([]Status, error) { return nil, nil }

func TestCoalescerRejectsShortAnswer(t *testing.T) {
	c := NewCoalescer(shortStore{Off()}, 8)
	defer c.Close()
	if _, err := c.Claim(context.Background(), "x"); err == nil {
		t.Fatal("Claim succeeded although the store answered no status")
	}
}

// TestCoalescerCloseDrains checks that Close waits for calls in flight and refuses new ones.
func TestCoalescerCloseDrains(t *testing.T) {
	g := newGatedStore(false)
	c := NewCoalescer(g, 8)
	out := make(chan result, 1)
	goClaim(c, context.Background(), "x", out)
	g.waitEntered(t, 1)

	closed := make(chan struct{})
	go func() {
		c.Close()
		close(closed)
	}()
	// Close must be refusing new calls before it can return; wait for that, then check it is still waiting.
	waitFor(t, func() bool {
		c.release.mu.Lock() // Close marks the release batcher last
		defer c.release.mu.Unlock()
		return c.release.closed
	})
	if _, err := c.Claim(context.Background(), "y"); !errors.Is(err, ErrClosed) {
		t.Fatalf("Claim while closing = %v, want ErrClosed", err)
	}
	select {
	case <-closed:
		t.Fatal("Close returned while a call was in flight")
	default:
	}
	g.open()
	if r := collect(t, out, 1)[0]; r.err != nil || r.status != Claimed {
		t.Fatalf("in-flight Claim = %v, %v; want claimed", r.status, r.err)
	}
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not return within 10s after the call finished")
	}
	if err := c.Complete(context.Background(), "x"); !errors.Is(err, ErrClosed) {
		t.Fatalf("Complete after Close = %v, want ErrClosed", err)
	}
	c.Close() // again: no-op
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		<-tick.C
	}
}

// TestCoalescerConcurrentUse runs many goroutines through claim and complete on a memory store: every ID is
// claimed exactly once and then reported done.
func TestCoalescerConcurrentUse(t *testing.T) {
	const (
		goroutines = 32
		perG       = 100
	)
	m := NewMemory(MemoryOptions{Owner: "me"})
	c := NewCoalescer(m, 16)
	defer c.Close()
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, goroutines)
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perG {
				id := fmt.Sprintf("%d/%d", g, i)
				if st, err := c.Claim(ctx, id); err != nil {
					errs <- fmt.Errorf("Claim(%s): %w", id, err)
					return
				} else if st != Claimed {
					errs <- fmt.Errorf("Claim(%s) = %v, want claimed", id, st)
					return
				}
				if err := c.Complete(ctx, id); err != nil {
					errs <- err
					return
				}
				if st, err := c.Claim(ctx, id); err != nil {
					errs <- fmt.Errorf("second Claim(%s): %w", id, err)
					return
				} else if st != Done {
					errs <- fmt.Errorf("second Claim(%s) = %v, want done", id, st)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if got := m.Len(); got != goroutines*perG {
		t.Fatalf("%d entries, want %d", got, goroutines*perG)
	}
}
