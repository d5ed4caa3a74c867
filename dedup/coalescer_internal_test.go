package dedup

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"sync"
	"testing"
	"time"
)

// gatedStore wraps a Memory store, records every batch, and holds each call at a gate until the test opens it,
// so tests can line up calls behind batches in flight.
type gatedStore struct {
	*Memory
	entered chan struct{} // receives a value for every call as it arrives
	gate    chan struct{}
	opened  sync.Once
	fail    error // returned by every call when set

	mu       sync.Mutex
	batches  map[string][][]string
	calls    int
	inFlight int
	maxIn    int
}

func newGatedStore(open bool) *gatedStore {
	g := &gatedStore{
		Memory:  NewMemory(MemoryOptions{Owner: "me"}),
		entered: make(chan struct{}, 1024),
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

// enter records one store call, the IDs of each kind it carries under that kind's name, and holds it at the
// gate.
func (g *gatedStore) enter(ops Ops) {
	g.mu.Lock()
	for op, ms := range map[string][]Mark{"claim": ops.Claim, "complete": ops.Complete, "park": ops.Park,
		"release": ops.Release} {
		if len(ms) > 0 {
			g.batches[op] = append(g.batches[op], idsOf(ms))
		}
	}
	g.calls++
	g.inFlight++
	g.maxIn = max(g.maxIn, g.inFlight)
	g.mu.Unlock()
	g.entered <- struct{}{}
	<-g.gate
}

func (g *gatedStore) leave() {
	g.mu.Lock()
	g.inFlight--
	g.mu.Unlock()
}

func (g *gatedStore) Apply(ctx context.Context, ops Ops) ([]Status, error) {
	g.enter(ops)
	defer g.leave()
	if g.fail != nil {
		return nil, g.fail
	}
	return g.Memory.Apply(ctx, ops)
}

// mk returns a record with the ID of its own id, at an offset derived from it, so distinct IDs are distinct
// records.
func mk(id string) Mark {
	h := fnv.New64a()
	_, _ = h.Write([]byte(id))
	return Mark{Topic: "t", Offset: int64(h.Sum64() >> 2), ID: id, OwnID: true}
}

// mks returns mk of each ID.
func mks(ids ...string) []Mark {
	ms := make([]Mark, len(ids))
	for i, id := range ids {
		ms[i] = mk(id)
	}
	return ms
}

func idsOf(ms []Mark) []string {
	ids := make([]string, len(ms))
	for i := range ms {
		ids[i] = ms[i].ID
	}
	return ids
}

// claimOne claims one record on s directly.
func claimOne(s Store, id string) ([]Status, error) {
	return s.Apply(context.Background(), Ops{Claim: mks(id)})
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

// waitQueued waits until n requests sit in c's queue.
func waitQueued(t *testing.T, c *Coalescer, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for {
		c.mu.Lock()
		q := len(c.queue)
		c.mu.Unlock()
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
		st, err := c.Claim(ctx, mk(id))
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
	waitQueued(t, c, queued%maxBatch)
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
		{"claim", func() error { _, err := c.Claim(context.Background(), mk("x")); return err }},
		{"complete", func() error { return c.Complete(context.Background(), mk("x")) }},
		{"release", func() error { return c.Release(context.Background(), mk("x")) }},
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
	g.occupy(t, c, maxFlushers, out)
	for i := range 2 * maxFlushers {
		goClaim(c, context.Background(), fmt.Sprint(i), out)
	}
	waitQueued(t, c, 2*maxFlushers)
	g.open()
	collect(t, out, 3*maxFlushers)
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.maxIn != maxFlushers {
		t.Fatalf("%d claim calls in flight at most, want %d", g.maxIn, maxFlushers)
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
	if st, err := claimOne(other, "x"); err != nil || st[0] != Claimed {
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
	waitQueued(t, c, 1)
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
	if _, err := c.Claim(ctx, mk("x")); !errors.Is(err, context.Canceled) {
		t.Fatalf("Claim = %v, want context.Canceled", err)
	}
	if err := c.Complete(ctx, mk("x")); !errors.Is(err, context.Canceled) {
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
	waitQueued(t, c, 8)
	g.open()
	for _, r := range collect(t, out, 1+8) {
		if !errors.Is(r.err, ErrUnavailable) {
			t.Fatalf("Claim(%q) = %v, want ErrUnavailable", r.id, r.err)
		}
	}
	if err := c.Complete(context.Background(), mk("x")); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Complete = %v, want ErrUnavailable", err)
	}
}

// shortStore answers claims with the wrong number of statuses, as a buggy Store might.
type shortStore struct{ Store }

func (shortStore) Apply(context.Context, Ops) ([]Status, error) { return nil, nil }

func TestCoalescerRejectsShortAnswer(t *testing.T) {
	c := NewCoalescer(shortStore{Off()}, 8)
	defer c.Close()
	if _, err := c.Claim(context.Background(), mk("x")); err == nil {
		t.Fatal("Claim succeeded although the store answered no status")
	}
	if _, err := c.ClaimMany(context.Background(), mks("x", "y")); err == nil {
		t.Fatal("ClaimMany succeeded although the store answered no status")
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
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.closed
	})
	if _, err := c.Claim(context.Background(), mk("y")); !errors.Is(err, ErrClosed) {
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
	if err := c.Complete(context.Background(), mk("x")); !errors.Is(err, ErrClosed) {
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
				if st, err := c.Claim(ctx, mk(id)); err != nil {
					errs <- fmt.Errorf("Claim(%s): %w", id, err)
					return
				} else if st != Claimed {
					errs <- fmt.Errorf("Claim(%s) = %v, want claimed", id, st)
					return
				}
				if err := c.Complete(ctx, mk(id)); err != nil {
					errs <- err
					return
				}
				if st, err := c.Claim(ctx, mk(id)); err != nil {
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
	if got := idMarks(m); got != goroutines*perG {
		t.Fatalf("%d ID marks, want %d", got, goroutines*perG)
	}
}

// TestCoalescerMixesKindsInOneCall lines up a claim, a completion, a release and a claim of many IDs behind a
// call in flight: they leave together in one Store call, and the completion is applied before the claim of
// the same ID.
func TestCoalescerMixesKindsInOneCall(t *testing.T) {
	g := newGatedStore(false)
	c := NewCoalescer(g, 8)
	defer c.Close()
	defer g.open()
	out := make(chan result, 4)
	g.occupy(t, c, 1, out)

	ctx := context.Background()
	errs := make(chan error, 2)
	go func() { errs <- c.Complete(ctx, mk("done-now")) }()
	go func() { errs <- c.Release(ctx, mk("held-0")) }()
	waitQueued(t, c, 2)
	goClaim(c, ctx, "done-now", out)
	waitQueued(t, c, 3)
	many := make(chan []Status, 1)
	go func() {
		st, err := c.ClaimMany(ctx, mks("m1", "m2"))
		if err != nil {
			t.Errorf("ClaimMany: %v", err)
		}
		many <- st
	}()
	waitQueued(t, c, 4)
	g.open()
	if st := <-many; fmt.Sprint(st) != fmt.Sprint([]Status{Claimed, Claimed}) {
		t.Fatalf("ClaimMany = %v, want both claimed", st)
	}

	got := map[string]result{}
	for _, r := range collect(t, out, 2) {
		got[r.id] = r
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if r := got["done-now"]; r.err != nil || r.status != Done {
		t.Fatalf("Claim(done-now) queued behind its Complete = %v, %v; want done", r.status, r.err)
	}
	g.mu.Lock()
	calls := g.calls
	g.mu.Unlock()
	if calls != 2 {
		t.Fatalf("%d store calls, want 2: the held claim, then one call for the four queued requests", calls)
	}
	if b := g.batchesOf("complete"); len(b) != 1 || fmt.Sprint(b[0]) != "[done-now]" {
		t.Fatalf("completions %v, want [[done-now]]", b)
	}
	if b := g.batchesOf("release"); len(b) != 1 || fmt.Sprint(b[0]) != "[held-0]" {
		t.Fatalf("releases %v, want [[held-0]]", b)
	}
}

// TestCoalescerClaimMany checks the calls for many IDs: a request is never split (maxBatch bounds how many
// requests share a call), answers come in order, and leases are released when the caller gave up while the
// call was in flight.
func TestCoalescerClaimMany(t *testing.T) {
	g := newGatedStore(true)
	c := NewCoalescer(g, 2) // the direct calls are not split by maxBatch
	defer c.Close()
	ctx := context.Background()
	if err := c.CompleteMany(ctx, mks("b")); err != nil {
		t.Fatal(err)
	}
	st, err := c.ClaimMany(ctx, mks("a", "b", "c", "a"))
	if err != nil {
		t.Fatal(err)
	}
	if want := []Status{Claimed, Done, Claimed, Busy}; fmt.Sprint(st) != fmt.Sprint(want) {
		t.Fatalf("ClaimMany = %v, want %v", st, want)
	}
	if b := g.batchesOf("claim"); len(b) != 1 || len(b[0]) != 4 {
		t.Fatalf("claim calls %v, want one call with 4 IDs", b)
	}

	gated := newGatedStore(false)
	c2 := NewCoalescer(gated, 8)
	defer c2.Close()
	defer gated.open()
	cctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { _, err := c2.ClaimMany(cctx, mks("x", "y")); done <- err }()
	gated.waitEntered(t, 1)
	cancel()
	// The caller returns at once, while its claim is still held in the store.
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("ClaimMany after cancel = %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("ClaimMany did not return within 10s of its context ending")
	}
	gated.open()
	gated.waitEntered(t, 1) // the release
	c2.Close()
	if b := gated.batchesOf("release"); len(b) != 1 || fmt.Sprint(b[0]) != "[x y]" {
		t.Fatalf("releases %v, want the abandoned leases [x y] released", b)
	}
	if err := c2.CompleteMany(ctx, mks("x")); !errors.Is(err, ErrClosed) {
		t.Fatalf("CompleteMany after Close = %v, want ErrClosed", err)
	}
}

// TestCoalescerLargeCallGoesAtOnce holds a call in the store and sends a claim of directMin IDs: it reaches the
// store alongside the held call instead of waiting behind it.
func TestCoalescerLargeCallGoesAtOnce(t *testing.T) {
	g := newGatedStore(false)
	c := NewCoalescer(g, 256)
	defer c.Close()
	defer g.open()
	out := make(chan result, 1)
	g.occupy(t, c, 1, out)
	ids := make([]string, directMin)
	for i := range ids {
		ids[i] = fmt.Sprint("big-", i)
	}
	done := make(chan error, 1)
	go func() { _, err := c.ClaimMany(context.Background(), mks(ids...)); done <- err }()
	g.waitEntered(t, 1) // while the first call is still held at the gate
	g.open()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	collect(t, out, 1)
	if b := g.batchesOf("claim"); len(b) != 2 || len(b[1]) != directMin {
		t.Fatalf("claim calls carried %d batches, want the held one and one of %d IDs", len(b), directMin)
	}
}

// TestCoalescerCompleteThen checks a completion of one record that calls back instead of waiting: the mark is written before
// the callback runs, it shares the call of waiting requests, store errors reach the callback, and after Close
// the callback runs at once with ErrClosed.
func TestCoalescerCompleteThen(t *testing.T) {
	g := newGatedStore(false)
	c := NewCoalescer(g, 8)
	defer g.open()
	out := make(chan result, 1)
	g.occupy(t, c, 1, out)
	outcome := make(chan error, 1)
	c.CompleteManyThen(mks("x"), func(err error) {
		// The mark is there by now.
		st, cerr := claimOne(g.Memory, "x")
		if cerr == nil && st[0] != Done {
			cerr = fmt.Errorf("claim in the callback = %v, want done", st[0])
		}
		outcome <- errors.Join(err, cerr)
	})
	goClaim(c, context.Background(), "y", out)
	waitQueued(t, c, 2)
	g.open()
	if err := <-outcome; err != nil {
		t.Fatal(err)
	}
	collect(t, out, 2)
	if b := g.batchesOf("complete"); len(b) != 1 || fmt.Sprint(b[0]) != "[x]" {
		t.Fatalf("completions %v, want [[x]]", b)
	}

	g.fail = fmt.Errorf("applying: %w: connection refused", ErrUnavailable)
	c.CompleteManyThen(mks("z"), func(err error) { outcome <- err })
	if err := <-outcome; !errors.Is(err, ErrUnavailable) {
		t.Fatalf("callback after a store error got %v, want ErrUnavailable", err)
	}

	c.Close()
	called := false
	c.CompleteManyThen(mks("late"), func(err error) {
		called = true
		if !errors.Is(err, ErrClosed) {
			t.Errorf("callback after Close got %v, want ErrClosed", err)
		}
	})
	if !called {
		t.Fatal("after Close the callback must run at once")
	}
}

// TestCoalescerCompleteManyThen checks a completion of many records that calls back once: every mark is
// written before the callback runs, a small call shares the store call of waiting requests, a large one goes in
// a call of its own, and an empty one calls back at once.
func TestCoalescerCompleteManyThen(t *testing.T) {
	g := newGatedStore(false)
	c := NewCoalescer(g, 8)
	defer c.Close()
	defer g.open()
	out := make(chan result, 1)
	g.occupy(t, c, 1, out)
	outcome := make(chan error, 1)
	ids := []string{"a", "b", "c"}
	c.CompleteManyThen(mks(ids...), func(err error) {
		st, cerr := g.Memory.Apply(context.Background(), Ops{Claim: mks(ids...)})
		for i := range st {
			if cerr == nil && st[i] != Done {
				cerr = fmt.Errorf("claim of %s in the callback = %v, want done", ids[i], st[i])
			}
		}
		outcome <- errors.Join(err, cerr)
	})
	goClaim(c, context.Background(), "y", out)
	waitQueued(t, c, 2)
	g.open()
	if err := <-outcome; err != nil {
		t.Fatal(err)
	}
	collect(t, out, 2)
	if b := g.batchesOf("complete"); len(b) != 1 || fmt.Sprint(b[0]) != "[a b c]" {
		t.Fatalf("completions %v, want [[a b c]] in the call shared with the claim", b)
	}

	large := make([]string, directMin)
	for i := range large {
		large[i] = fmt.Sprint("big-", i)
	}
	c.CompleteManyThen(mks(large...), func(err error) { outcome <- err })
	if err := <-outcome; err != nil {
		t.Fatalf("large completion: %v", err)
	}
	if b := g.batchesOf("complete"); len(b) != 2 || len(b[1]) != directMin {
		t.Fatalf("completions %v, want the large one in a call of its own", b)
	}

	called := false
	c.CompleteManyThen(nil, func(err error) { called = err == nil })
	if !called {
		t.Fatal("an empty completion must call back at once with nil")
	}
}
