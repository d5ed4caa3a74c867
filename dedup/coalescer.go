package dedup

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
)

// directMin is the number of records from which a call for many (ClaimMany, CompleteMany) gets a Store call
// of its own at once instead of waiting in the queue: it fills a worthwhile call by itself, and batches of a
// batch-mode sidecar then reach the store in parallel.
const directMin = 64

// maxFlushers is how many Store calls a Coalescer may have in flight at once. More than one is started only
// while a full batch waits, so that a busy store gets big batches (fewer round trips, the cost that dominates)
// and an overloaded queue still drains several batches at a time.
const maxFlushers = 4

// Coalescer turns per-record calls from many goroutines into Store.Apply calls: claims, completions, parks and
// releases wait in one queue and travel together, so a sidecar whose workers complete one record and claim the next
// pays one round trip for both. There is no linger: a call made while no Store call is in flight is sent at
// once, so a lone call costs one round trip; calls that arrive while one is in flight collect and go out
// together as soon as it returns. Each Store call carries at most maxBatch records; when a full batch is
// waiting another call starts alongside, up to maxFlushers. Under load the round trips per record thus fall as
// concurrency rises.
//
// All methods are safe for concurrent use. Calls for the same record from two goroutines at once are not
// ordered against each other; when two claims for one record land in the same batch the first claims it and
// the other sees Busy (see Ops). The Coalescer does not own the Store: Close leaves it open.
type Coalescer struct {
	store    Store
	maxBatch int
	observer MarkObserver
	wg       sync.WaitGroup // running flushers

	mu    sync.Mutex
	queue []*request
	// queued counts the records of the queued requests.
	queued   int
	flushers int // running flushers
	starting int // flushers started that have not yet taken their first batch
	// idle tells that a flusher waits on wake for the next call: one stays, so that a quiet moment does not
	// cost a new goroutine, with a fresh stack to grow through the client, at the next call.
	idle   bool
	wake   *sync.Cond
	closed bool
}

// MarkObserver is told how many marks each successful store call wrote: positions (every completed or parked
// record) and IDs (completed records with IDs of their own). metrics.Metrics implements it.
type MarkObserver interface {
	MarksWritten(positions, ids int)
}

// CoalescerOption configures a Coalescer.
type CoalescerOption func(*Coalescer)

// ObserveMarks tells o how many marks each store call wrote.
func ObserveMarks(o MarkObserver) CoalescerOption { return func(c *Coalescer) { c.observer = o } }

// NewCoalescer returns a Coalescer in front of s sending at most maxBatch records per Store call; maxBatch
// below 1 means 1 (no batching: one record per call, up to maxFlushers calls in flight).
func NewCoalescer(s Store, maxBatch int, opts ...CoalescerOption) *Coalescer {
	c := &Coalescer{store: s, maxBatch: max(maxBatch, 1)}
	for _, o := range opts {
		o(c)
	}
	c.wake = sync.NewCond(&c.mu)
	return c
}

// Claim claims one record (see Ops.Claim). When ctx ends first it returns ctx.Err() at once; should the claim
// still succeed in the background, the Coalescer releases the lease so the record is not blocked until it
// expires.
func (c *Coalescer) Claim(ctx context.Context, m Mark) (Status, error) {
	return c.submit(ctx, opClaim, m)
}

// Complete marks one delivered record done (see Ops.Complete). When ctx ends first it returns ctx.Err() at
// once, and the mark may or may not have been written: call Complete again.
func (c *Coalescer) Complete(ctx context.Context, m Mark) error {
	_, err := c.submit(ctx, opComplete, m)
	return err
}

// Park marks one record whose copy a retry or dead-letter topic acknowledged (see Ops.Park). When ctx ends
// first it returns ctx.Err() at once, and the mark may or may not have been written: call Park again.
func (c *Coalescer) Park(ctx context.Context, m Mark) error {
	_, err := c.submit(ctx, opPark, m)
	return err
}

// Release drops this owner's lease on one record that is not done (see Ops.Release). When ctx ends first it
// returns ctx.Err() at once; the lease is then released or expires.
func (c *Coalescer) Release(ctx context.Context, m Mark) error {
	_, err := c.submit(ctx, opRelease, m)
	return err
}

// ReleasePartitions gives up this owner's partition leases at once (see Store.ReleasePartitions); it does not
// wait in the queue.
func (c *Coalescer) ReleasePartitions(ctx context.Context, partitions map[string][]int32) error {
	return c.store.ReleasePartitions(ctx, partitions)
}

// CompleteManyThen marks delivered records done (see Ops.Complete) as CompleteMany does — with the waiting
// calls, or from directMin records on in a call of their own — and calls then once with the outcome, instead of
// making the caller wait: then runs on the goroutine that made the Store call, so it must be quick and must
// not block. marks must not change until then runs. After Close, then is called at once with ErrClosed.
func (c *Coalescer) CompleteManyThen(marks []Mark, then func(error)) {
	if len(marks) == 0 {
		then(nil)
		return
	}
	r := requestPool.Get().(*request)
	r.marks, r.statuses, r.then = marks, nil, then
	if err := c.enqueue(r, opComplete); err != nil {
		*r = request{done: r.done}
		requestPool.Put(r)
		then(err)
	}
}

// ClaimMany claims records (see Ops.Claim) in the next Store call, with whatever other calls are waiting, so
// that a small batch of records costs no round trip of its own; from directMin records on, in a call of its own
// at once. It answers as Claim does for each record, and like Claim it releases in the background the leases
// taken for a caller whose ctx ended before the answer.
func (c *Coalescer) ClaimMany(ctx context.Context, marks []Mark) ([]Status, error) {
	statuses := make([]Status, len(marks))
	if len(marks) == 0 {
		return statuses, ctx.Err()
	}
	if err := c.submitMany(ctx, opClaim, marks, statuses); err != nil {
		return nil, err
	}
	return statuses, nil
}

// CompleteMany marks delivered records done (see Ops.Complete) as ClaimMany claims them: with the waiting
// calls, or from directMin records on in a call of its own.
func (c *Coalescer) CompleteMany(ctx context.Context, marks []Mark) error {
	if len(marks) == 0 {
		return ctx.Err()
	}
	return c.submitMany(ctx, opComplete, marks, nil)
}

// Close stops accepting calls (later ones return ErrClosed) and waits until every call already accepted has
// been sent and answered. It does not close the Store. Calling Close more than once is safe.
func (c *Coalescer) Close() {
	c.mu.Lock()
	c.closed = true
	c.wake.Broadcast()
	c.mu.Unlock()
	c.wg.Wait()
}

type opKind uint8

const (
	opClaim opKind = iota
	opComplete
	opPark
	opRelease
)

// Request states: a waiting request is either finished by its flusher or abandoned by its caller, whichever
// compare-and-swaps first; the loser leaves it alone.
const (
	reqWaiting uint32 = iota
	reqFinished
	reqAbandoned
)

// request is one caller's call, for one record or many, and, once finished, its answer. Requests are pooled
// with their channel: the flusher sends exactly once on done for a finished request, and an abandoned request
// is never reused. A call for one record keeps it (and its status) in the request itself, so that it
// allocates nothing.
type request struct {
	op       opKind
	marks    []Mark
	statuses []Status // for claims, one per record
	err      error
	state    atomic.Uint32
	done     chan struct{}
	one      [1]Mark
	oneSt    [1]Status
	// then, when set, is called with the outcome in place of a waiting caller (see CompleteManyThen).
	then func(error)
}

var requestPool = sync.Pool{New: func() any { return &request{done: make(chan struct{}, 1)} }}

// submit makes a call for one record and returns its status (for a claim).
func (c *Coalescer) submit(ctx context.Context, op opKind, m Mark) (Status, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	r := requestPool.Get().(*request)
	r.one[0] = m
	r.marks, r.statuses = r.one[:], r.oneSt[:]
	err := c.wait(ctx, r, op)
	if errors.Is(err, errAbandoned) {
		return 0, ctx.Err()
	}
	status := r.oneSt[0]
	*r = request{done: r.done}
	requestPool.Put(r)
	return status, err
}

// submitMany makes a call for many records, writing claim statuses into statuses.
func (c *Coalescer) submitMany(ctx context.Context, op opKind, marks []Mark, statuses []Status) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	r := requestPool.Get().(*request)
	r.marks, r.statuses = marks, statuses
	err := c.wait(ctx, r, op)
	if errors.Is(err, errAbandoned) {
		return ctx.Err()
	}
	*r = request{done: r.done}
	requestPool.Put(r)
	return err
}

// errAbandoned tells a caller of wait that it gave up on the request, which then belongs to the flusher and
// must be neither touched nor reused.
var errAbandoned = errors.New("abandoned")

// wait queues r as an op, starts a flusher when one is needed, and waits for r's answer or the end of ctx.
func (c *Coalescer) wait(ctx context.Context, r *request, op opKind) error {
	if err := c.enqueue(r, op); err != nil {
		return err
	}
	return c.await(ctx, r)
}

// enqueue queues r as an op and starts a flusher when one is needed; it fails only when the Coalescer is
// closed.
func (c *Coalescer) enqueue(r *request, op opKind) error {
	r.op = op
	r.state.Store(reqWaiting)
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return ErrClosed
	}
	if len(r.marks) >= directMin {
		// Worth a call of its own: sent at once, alongside the queue's, not behind it.
		c.wg.Add(1)
		c.mu.Unlock()
		go func() {
			defer c.wg.Done()
			c.send([]*request{r})
		}()
		return nil
	}
	c.queue = append(c.queue, r)
	c.queued += len(r.marks)
	// Invariant: while the queue is not empty, at least one flusher runs and is not idle; flushers idle or exit
	// only on an empty queue. A further flusher starts only once a full batch is waiting: until then the
	// requests are better sent together when the running flusher comes back, which costs the store one round
	// trip instead of several. records a started flusher will take as soon as it runs do not count towards that
	// full batch.
	start := false
	switch {
	case c.idle:
		c.idle = false
		c.wake.Signal()
	case c.flushers == 0 || (c.flushers < maxFlushers && c.queued-c.starting*c.maxBatch >= c.maxBatch):
		start = true
	}
	if start {
		c.flushers++
		c.starting++
		c.wg.Add(1)
	}
	c.mu.Unlock()
	if start {
		go c.flush()
	}
	return nil
}

// await waits for r's answer or the end of ctx.
func (c *Coalescer) await(ctx context.Context, r *request) error {
	select {
	case <-r.done:
	case <-ctx.Done():
		if r.state.CompareAndSwap(reqWaiting, reqAbandoned) {
			return errAbandoned
		}
		// The flusher finished it first and has sent, or is about to send, on done.
		<-r.done
	}
	return r.err
}

// flush sends batches until the queue is empty, then waits for the next call unless another flusher waits
// already or the Coalescer is closed. A batch takes whole requests while they fit in maxBatch records (a
// request for more goes alone).
func (c *Coalescer) flush() {
	defer c.wg.Done()
	var batch []*request
	c.mu.Lock()
	c.starting--
	for {
		for len(c.queue) == 0 {
			// Woken by a call, idle is false again; still set, it is this flusher's own: Close woke it.
			if c.closed || c.idle {
				c.flushers--
				c.mu.Unlock()
				return
			}
			c.idle = true
			c.wake.Wait()
		}
		n, ids := 0, 0
		for n < len(c.queue) && (n == 0 || ids+len(c.queue[n].marks) <= c.maxBatch) {
			ids += len(c.queue[n].marks)
			n++
		}
		batch = append(batch[:0], c.queue[:n]...)
		rest := copy(c.queue, c.queue[n:])
		clear(c.queue[rest:])
		c.queue = c.queue[:rest]
		c.queued -= ids
		c.mu.Unlock()
		c.send(batch)
		clear(batch)
		c.mu.Lock()
	}
}

// send makes one Store call for the batch's live requests and hands out the answers. The Store call runs on a
// background context: it serves many callers, so no single caller's cancellation may abort it, and the client's
// own timeouts bound it.
func (c *Coalescer) send(batch []*request) {
	var ops Ops
	live := batch[:0]
	for _, r := range batch {
		if r.state.Load() == reqAbandoned {
			continue
		}
		live = append(live, r)
		switch r.op {
		case opClaim:
			ops.Claim = append(ops.Claim, r.marks...)
		case opComplete:
			ops.Complete = append(ops.Complete, r.marks...)
		case opPark:
			ops.Park = append(ops.Park, r.marks...)
		case opRelease:
			ops.Release = append(ops.Release, r.marks...)
		}
	}
	if len(live) == 0 {
		return
	}

	statuses, err := c.store.Apply(context.Background(), ops)
	if err == nil && len(statuses) != len(ops.Claim) {
		err = fmt.Errorf("claiming: store answered %d statuses for %d records", len(statuses), len(ops.Claim))
	}
	if err == nil && c.observer != nil && len(ops.Complete)+len(ops.Park) > 0 {
		ids := 0
		for i := range ops.Complete {
			if ops.Complete[i].OwnID {
				ids++
			}
		}
		c.observer.MarksWritten(len(ops.Complete)+len(ops.Park), ids)
	}

	var orphans []Mark
	next := 0 // the first claim status not handed out yet
	for _, r := range live {
		var claimed []Status
		if r.op == opClaim && err == nil {
			claimed = statuses[next : next+len(r.marks)]
			next += len(r.marks)
			copy(r.statuses, claimed)
		}
		if then := r.then; then != nil {
			// Nobody waits on it: the request goes back to the pool before the callback runs.
			*r = request{done: r.done}
			requestPool.Put(r)
			then(err)
			continue
		}
		r.err = err
		marks := r.marks
		if r.state.CompareAndSwap(reqWaiting, reqFinished) {
			r.done <- struct{}{}
			continue
		}
		// The caller gave up: leases taken on its behalf would block the records until they expired.
		for i, st := range claimed {
			if st == Claimed {
				orphans = append(orphans, marks[i])
			}
		}
	}
	c.releaseOrphans(orphans)
}

// releaseOrphans drops leases taken for callers that gave up. Best effort: should it fail, the leases expire
// on their own.
func (c *Coalescer) releaseOrphans(ms []Mark) {
	if len(ms) > 0 {
		_, _ = c.store.Apply(context.Background(), Ops{Release: ms})
	}
}
