package dedup

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
)

// flushersPerOp is how many batches of one kind (claims, completions, releases) may be in flight at once. More
// than one is started only while full batches wait, so that a busy store gets big batches (fewer round trips,
// the cost that dominates) and an overloaded queue still drains several batches at a time.
const flushersPerOp = 4

// Coalescer turns per-ID calls from many goroutines into batch calls on a Store. There is no linger: a call made
// while no batch of its kind is in flight is sent at once, so a lone call costs one round trip; calls that
// arrive while a batch is in flight collect and go out together as soon as it returns. Each Store call carries
// at most maxBatch IDs; when a full batch is waiting another call starts alongside, up to flushersPerOp per
// kind. Under load the round trips per ID thus fall as concurrency rises.
//
// All methods are safe for concurrent use. Calls for the same ID from two goroutines at once are not ordered
// against each other; when two claims for one ID land in the same batch the first claims it and the other sees
// Busy (see Store). The Coalescer does not own the Store: Close leaves it open.
type Coalescer struct {
	store    Store
	maxBatch int
	wg       sync.WaitGroup // running flushers
	claims   batcher
	complete batcher
	release  batcher
}

// NewCoalescer returns a Coalescer in front of s sending at most maxBatch IDs per Store call; maxBatch below 1
// means 1 (no batching: one ID per call, up to flushersPerOp calls in flight per kind).
func NewCoalescer(s Store, maxBatch int) *Coalescer {
	c := &Coalescer{store: s, maxBatch: max(maxBatch, 1)}
	c.claims = batcher{c: c, op: opClaim}
	c.complete = batcher{c: c, op: opComplete}
	c.release = batcher{c: c, op: opRelease}
	return c
}

// Claim claims one ID (see Store.Claim). When ctx ends first it returns ctx.Err() at once; should the claim
// still succeed in the background, the Coalescer releases the lease so the ID is not blocked until it expires.
func (c *Coalescer) Claim(ctx context.Context, id string) (Status, error) {
	return c.claims.submit(ctx, id)
}

// Complete writes the done mark for one ID (see Store.Complete). When ctx ends first it returns ctx.Err() at
// once, and the mark may or may not have been written: call Complete again.
func (c *Coalescer) Complete(ctx context.Context, id string) error {
	_, err := c.complete.submit(ctx, id)
	return err
}

// Release drops this owner's lease on one ID (see Store.Release). When ctx ends first it returns ctx.Err() at
// once; the lease is then released or expires.
func (c *Coalescer) Release(ctx context.Context, id string) error {
	_, err := c.release.submit(ctx, id)
	return err
}

// Close stops accepting calls (later ones return ErrClosed) and waits until every call already accepted has
// been sent and answered. It does not close the Store. Calling Close more than once is safe.
func (c *Coalescer) Close() {
	for _, b := range []*batcher{&c.claims, &c.complete, &c.release} {
		b.mu.Lock()
		b.closed = true
		b.mu.Unlock()
	}
	c.wg.Wait()
}

type opKind uint8

const (
	opClaim opKind = iota
	opComplete
	opRelease
)

// Request states: a waiting request is either finished by its flusher or abandoned by its caller, whichever
// compare-and-swaps first; the loser leaves it alone.
const (
	reqWaiting uint32 = iota
	reqFinished
	reqAbandoned
)

// request is one caller's ID and, once finished, its answer. Requests are pooled with their channel: the
// flusher sends exactly once on done for a finished request, and an abandoned request is never reused.
type request struct {
	id     string
	status Status
	err    error
	state  atomic.Uint32
	done   chan struct{}
}

var requestPool = sync.Pool{New: func() any { return &request{done: make(chan struct{}, 1)} }}

// batcher queues the calls of one kind and runs up to flushersPerOp flushers over the queue.
type batcher struct {
	c  *Coalescer
	op opKind

	mu       sync.Mutex
	queue    []*request
	flushers int // running flushers
	starting int // flushers started that have not yet taken their first batch
	closed   bool
}

func (b *batcher) submit(ctx context.Context, id string) (Status, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	r := requestPool.Get().(*request)
	r.id = id
	r.state.Store(reqWaiting)

	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		r.id = ""
		requestPool.Put(r)
		return 0, ErrClosed
	}
	b.queue = append(b.queue, r)
	// Invariant: while the queue is not empty, at least one flusher runs; flushers exit only on an empty queue.
	// A further flusher starts only once a full batch is waiting: until then the requests are better sent
	// together when the running flusher comes back, which costs the store one round trip instead of several.
	// Requests a started flusher will take as soon as it runs do not count towards that full batch.
	start := b.flushers == 0 ||
		(b.flushers < flushersPerOp && len(b.queue)-b.starting*b.c.maxBatch >= b.c.maxBatch)
	if start {
		b.flushers++
		b.starting++
		b.c.wg.Add(1)
	}
	b.mu.Unlock()
	if start {
		go b.flush()
	}

	select {
	case <-r.done:
	case <-ctx.Done():
		if r.state.CompareAndSwap(reqWaiting, reqAbandoned) {
			return 0, ctx.Err()
		}
		// The flusher finished it first and has sent, or is about to send, on done.
		<-r.done
	}
	status, err := r.status, r.err
	*r = request{done: r.done}
	requestPool.Put(r)
	return status, err
}

// flush sends batches until the queue is empty.
func (b *batcher) flush() {
	defer b.c.wg.Done()
	for first := true; ; first = false {
		b.mu.Lock()
		if first {
			b.starting--
		}
		n := min(len(b.queue), b.c.maxBatch)
		if n == 0 {
			b.flushers--
			b.mu.Unlock()
			return
		}
		batch := make([]*request, n)
		copy(batch, b.queue)
		rest := copy(b.queue, b.queue[n:])
		clear(b.queue[rest:])
		b.queue = b.queue[:rest]
		b.mu.Unlock()
		b.send(batch)
	}
}

// send makes one Store call for the batch's live requests and hands out the answers. The Store call runs on a
// background context: it serves many callers, so no single caller's cancellation may abort it, and the client's
// own timeouts bound it.
func (b *batcher) send(batch []*request) {
	live := batch[:0]
	for _, r := range batch {
		if r.state.Load() != reqAbandoned {
			live = append(live, r)
		}
	}
	if len(live) == 0 {
		return
	}
	ids := make([]string, len(live))
	for i, r := range live {
		ids[i] = r.id
	}

	ctx := context.Background()
	var statuses []Status
	var err error
	switch b.op {
	case opClaim:
		statuses, err = b.c.store.Claim(ctx, ids)
	case opComplete:
		err = b.c.store.Complete(ctx, ids)
	case opRelease:
		err = b.c.store.Release(ctx, ids)
	}

	if b.op == opClaim && err == nil && len(statuses) != len(ids) {
		err = fmt.Errorf("claiming: store answered %d statuses for %d ids", len(statuses), len(ids))
	}

	var orphans []string
	for i, r := range live {
		if err == nil && b.op == opClaim {
			r.status = statuses[i]
		}
		r.err = err
		if r.state.CompareAndSwap(reqWaiting, reqFinished) {
			r.done <- struct{}{}
			continue
		}
		// The caller gave up: a lease taken on its behalf would block the ID until it expired.
		if b.op == opClaim && err == nil && statuses[i] == Claimed {
			orphans = append(orphans, r.id)
		}
	}
	if len(orphans) > 0 {
		// Best effort: should this fail, the leases expire on their own.
		_ = b.c.store.Release(ctx, orphans)
	}
}
