package pipeline

import (
	"context"
	"sync"
	"time"

	"github.com/kafka-sidecar/kafka-sidecar/handler"
)

// Batcher turns concurrent single deliveries into batch requests: records offered while a batch is open join
// it, and the batch goes out when it holds maxRecords or maxWait has passed since it opened. Each caller gets
// its own record's result, so the pipeline routes per-record outcomes exactly as in single mode.
//
// A batch never holds more records than are in flight, so SIDECAR_MAX_IN_FLIGHT should be at least
// SIDECAR_BATCH_MAX_RECORDS (several times it, to keep a batch in the making while one is under way).
type Batcher struct {
	bd       handler.Deliverer
	max      int
	wait     time.Duration
	mu       sync.Mutex
	open     *batch
	inFlight sync.WaitGroup
}

type batch struct {
	ds      []*handler.Delivery
	results []handler.Result
	full    chan struct{}
	done    chan struct{}
}

// NewBatcher wraps bd. maxRecords below 1 counts as 1.
func NewBatcher(bd handler.Deliverer, maxRecords int, maxWait time.Duration) *Batcher {
	return &Batcher{bd: bd, max: max(maxRecords, 1), wait: maxWait}
}

// Deliver adds each of ds to the open batch in turn and waits for its answer. When ctx ends first it returns
// at once; the caller sees ctx.Err() and treats the records as not delivered.
func (b *Batcher) Deliver(ctx context.Context, ds []*handler.Delivery, results []handler.Result) {
	for i, d := range ds {
		results[i] = b.deliver(ctx, d)
	}
}

func (b *Batcher) deliver(ctx context.Context, d *handler.Delivery) handler.Result {
	b.mu.Lock()
	bt := b.open
	if bt == nil {
		bt = &batch{full: make(chan struct{}), done: make(chan struct{})}
		b.open = bt
		b.inFlight.Add(1)
		go b.send(bt)
	}
	idx := len(bt.ds)
	bt.ds = append(bt.ds, d)
	if len(bt.ds) >= b.max {
		b.open = nil
		close(bt.full)
	}
	b.mu.Unlock()
	select {
	case <-bt.done:
		return bt.results[idx]
	case <-ctx.Done():
		return handler.Result{Outcome: handler.Retryable, Reason: "cancelled: " + ctx.Err().Error()}
	}
}

// send waits for the batch to fill or its time to pass, then delivers it.
func (b *Batcher) send(bt *batch) {
	defer b.inFlight.Done()
	if b.wait > 0 {
		t := time.NewTimer(b.wait)
		select {
		case <-t.C:
		case <-bt.full:
		}
		t.Stop()
	}
	b.mu.Lock()
	if b.open == bt {
		b.open = nil
	}
	ds := bt.ds
	b.mu.Unlock()
	// The batch's records belong to many callers: no single caller's context may cancel it. The deliverer's
	// own timeout bounds it.
	bt.results = make([]handler.Result, len(ds))
	b.bd.Deliver(context.Background(), ds, bt.results)
	close(bt.done)
}

// Wait blocks until every batch under way is answered.
func (b *Batcher) Wait() { b.inFlight.Wait() }
