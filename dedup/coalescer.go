package dedup

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
)

// maxFlushers is how many Store calls a Coalescer may have in flight at once. More than one is started only
// while a full batch waits, so that a busy store gets big batches (fewer round trips, the cost that dominates)
// and an overloaded queue still drains several batches at a time.
const maxFlushers = 4

// Coalescer turns per-ID calls from many goroutines into Store.Apply calls: claims, completions and releases
// wait in one queue and travel together, so a sidecar whose workers complete one record and claim the next
// pays one round trip for both. There is no linger: a call made while no Store call is in flight is sent at
// once, so a lone call costs one round trip; calls that arrive while one is in flight collect and go out
// together as soon as it returns. Each Store call carries at most maxBatch IDs; when a full batch is waiting
// another call starts alongside, up to maxFlushers. Under load the round trips per ID thus fall as concurrency
// rises.
//
// All methods are safe for concurrent use. Calls for the same ID from two goroutines at once are not ordered
// against each other; when two claims for one ID land in the same batch the first claims it and the other sees
// Busy (see Store). The Coalescer does not own the Store: Close leaves it open.
type Coalescer struct {
	store    Store
	maxBatch int
	wg       sync.WaitGroup // running flushers and direct batch calls

	mu       sync.Mutex
	queue    []*request
	flushers int // running flushers
	starting int // flushers started that have not yet taken their first batch
	closed   bool
}

// NewCoalescer returns a Coalescer in front of s sending at most maxBatch IDs per Store call; maxBatch below 1
// means 1 (no batching: one ID per call, up to maxFlushers calls in flight).
func NewCoalescer(s Store, maxBatch int) *Coalescer {
	return &Coalescer{store: s, maxBatch: max(maxBatch, 1)}
}

// Claim claims one ID (see Store.Claim). When ctx ends first it returns ctx.Err() at once; should the claim
// still succeed in the background, the Coalescer releases the lease so the ID is not blocked until it expires.
func (c *Coalescer) Claim(ctx context.Context, id string) (Status, error) {
	return c.submit(ctx, opClaim, id)
}

// Complete writes the done mark for one ID (see Store.Complete). When ctx ends first it returns ctx.Err() at
// once, and the mark may or may not have been written: call Complete again.
func (c *Coalescer) Complete(ctx context.Context, id string) error {
	_, err := c.submit(ctx, opComplete, id)
	return err
}

// Release drops this owner's lease on one ID (see Store.Release). When ctx ends first it returns ctx.Err() at
// once; the lease is then released or expires.
func (c *Coalescer) Release(ctx context.Context, id string) error {
	_, err := c.submit(ctx, opRelease, id)
	return err
}

// ClaimMany claims ids in one Store call of their own: a caller with a batch in hand needs no coalescing. It
// answers as Claim does for each ID, and like Claim it releases in the background the leases taken for a
// caller whose ctx ended before the answer.
func (c *Coalescer) ClaimMany(ctx context.Context, ids []string) ([]Status, error) {
	if err := c.enterDirect(ctx); err != nil {
		return nil, err
	}
	defer c.wg.Done()
	// Not the caller's ctx: a claim the server made must be answered, so its lease can be released.
	statuses, err := c.store.Apply(context.Background(), Ops{Claim: ids})
	if err == nil && len(statuses) != len(ids) {
		err = fmt.Errorf("claiming: store answered %d statuses for %d ids", len(statuses), len(ids))
	}
	if err != nil {
		return nil, err
	}
	if ctx.Err() != nil {
		var orphans []string
		for i, st := range statuses {
			if st == Claimed {
				orphans = append(orphans, ids[i])
			}
		}
		c.releaseOrphans(orphans)
		return nil, ctx.Err()
	}
	return statuses, nil
}

// CompleteMany writes the done marks of ids in one Store call of their own (see Store.Complete).
func (c *Coalescer) CompleteMany(ctx context.Context, ids []string) error {
	if err := c.enterDirect(ctx); err != nil {
		return err
	}
	defer c.wg.Done()
	_, err := c.store.Apply(ctx, Ops{Complete: ids})
	return err
}

// enterDirect admits a direct batch call, counted so Close waits for it.
func (c *Coalescer) enterDirect(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return ErrClosed
	}
	c.wg.Add(1)
	return nil
}

// Close stops accepting calls (later ones return ErrClosed) and waits until every call already accepted has
// been sent and answered. It does not close the Store. Calling Close more than once is safe.
func (c *Coalescer) Close() {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
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

// request is one caller's call and, once finished, its answer. Requests are pooled with their channel: the
// flusher sends exactly once on done for a finished request, and an abandoned request is never reused.
type request struct {
	op     opKind
	id     string
	status Status
	err    error
	state  atomic.Uint32
	done   chan struct{}
}

var requestPool = sync.Pool{New: func() any { return &request{done: make(chan struct{}, 1)} }}

func (c *Coalescer) submit(ctx context.Context, op opKind, id string) (Status, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	r := requestPool.Get().(*request)
	r.op, r.id = op, id
	r.state.Store(reqWaiting)

	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		r.id = ""
		requestPool.Put(r)
		return 0, ErrClosed
	}
	c.queue = append(c.queue, r)
	// Invariant: while the queue is not empty, at least one flusher runs; flushers exit only on an empty queue.
	// A further flusher starts only once a full batch is waiting: until then the requests are better sent
	// together when the running flusher comes back, which costs the store one round trip instead of several.
	// Requests a started flusher will take as soon as it runs do not count towards that full batch.
	start := c.flushers == 0 ||
		(c.flushers < maxFlushers && len(c.queue)-c.starting*c.maxBatch >= c.maxBatch)
	if start {
		c.flushers++
		c.starting++
		c.wg.Add(1)
	}
	c.mu.Unlock()
	if start {
		go c.flush()
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
func (c *Coalescer) flush() {
	defer c.wg.Done()
	var batch []*request
	for first := true; ; first = false {
		c.mu.Lock()
		if first {
			c.starting--
		}
		n := min(len(c.queue), c.maxBatch)
		if n == 0 {
			c.flushers--
			c.mu.Unlock()
			return
		}
		batch = append(batch[:0], c.queue[:n]...)
		rest := copy(c.queue, c.queue[n:])
		clear(c.queue[rest:])
		c.queue = c.queue[:rest]
		c.mu.Unlock()
		c.send(batch)
		clear(batch)
	}
}

// send makes one Store call for the batch's live requests and hands out the answers. The Store call runs on a
// background context: it serves many callers, so no single caller's cancellation may abort it, and the client's
// own timeouts bound it.
func (c *Coalescer) send(batch []*request) {
	var ops Ops
	claims := make([]*request, 0, len(batch))
	live := batch[:0]
	for _, r := range batch {
		if r.state.Load() == reqAbandoned {
			continue
		}
		live = append(live, r)
		switch r.op {
		case opClaim:
			ops.Claim = append(ops.Claim, r.id)
			claims = append(claims, r)
		case opComplete:
			ops.Complete = append(ops.Complete, r.id)
		case opRelease:
			ops.Release = append(ops.Release, r.id)
		}
	}
	if len(live) == 0 {
		return
	}

	statuses, err := c.store.Apply(context.Background(), ops)
	if err == nil && len(statuses) != len(claims) {
		err = fmt.Errorf("claiming: store answered %d statuses for %d ids", len(statuses), len(claims))
	}
	if err == nil {
		for i, r := range claims {
			r.status = statuses[i]
		}
	}

	var orphans []string
	for _, r := range live {
		r.err = err
		claimed := err == nil && r.op == opClaim && r.status == Claimed
		id := r.id
		if r.state.CompareAndSwap(reqWaiting, reqFinished) {
			r.done <- struct{}{}
			continue
		}
		// The caller gave up: a lease taken on its behalf would block the ID until it expired.
		if claimed {
			orphans = append(orphans, id)
		}
	}
	c.releaseOrphans(orphans)
}

// releaseOrphans drops leases taken for callers that gave up. Best effort: should it fail, the leases expire
// on their own.
func (c *Coalescer) releaseOrphans(ids []string) {
	if len(ids) > 0 {
		_ = c.store.Release(context.Background(), ids)
	}
}
