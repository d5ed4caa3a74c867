package pipeline

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/kafka-sidecar/kafka-sidecar/consumer"
	"github.com/kafka-sidecar/kafka-sidecar/dedup"
	"github.com/kafka-sidecar/kafka-sidecar/envelope"
	"github.com/kafka-sidecar/kafka-sidecar/handler"
	"github.com/kafka-sidecar/kafka-sidecar/metrics"
	"github.com/kafka-sidecar/kafka-sidecar/retry"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"
)

// step is where a record stands on its path: every record is a small state machine that moves through these
// steps, one or many records at a time.
type step uint8

const (
	// stepEnter takes the record's message ID locally, so two records of this sidecar with one ID never run
	// at once (the store's lease names the sidecar, not the record).
	stepEnter step = iota
	// stepClaim takes the lease on the ID in the dedup store: a record found done is skipped.
	stepClaim
	// stepDeliver hands the record to the app and routes the answer.
	stepDeliver
	// stepPark copies the record to the retry tier or dead-letter topic its decision names.
	stepPark
	// stepComplete writes the done mark of a delivered record.
	stepComplete
)

// record is one record on its way through the engine.
type record struct {
	m      message
	job    consumer.Job
	idx    int
	report consumer.Report
	// traced is the job's context carrying the record's trace; job.Ctx alone decides cancellation.
	traced  context.Context
	endSpan func(outcome string, err error)

	step    step
	held    bool // holds its message ID locally
	claimed bool // holds the lease on its message ID
	// wait is slept before the next step: a backoff between attempts, or another member's lease.
	wait     time.Duration
	busyWait time.Duration

	attemptsOnTier int
	// d is the request the app gets; its Attempt is set before each delivery.
	d handler.Delivery
	// decision and answer say where stepPark sends the record and why.
	decision retry.Decision
	answer   handler.Result
	outcome  string
	// slot is true while the record holds one of the MaxDeliveries slots: from its delivery to its done mark.
	slot bool
	// marksFailed is set when writing the done mark failed: the mark is then written again, waiting out the
	// store's outage.
	marksFailed bool
}

// run moves a set of records, all at the same step, through the steps until every one of them is reported.
// A step returns the records that go on together; those that part ways (another step, a wait of their own,
// a job whose context ended) go on as sets of their own through fork. Sets form only within one
// ProcessBatch call, so all records of a set share one Report.
func (p *Pipeline) run(set []*record) {
	if len(set) == 0 {
		return
	}
	// One context for the set's whole run: a record that leaves the set keeps it only from being reused for
	// the rest, which then go on alone should that record's job end.
	ctx, stopCtx := setContext(set)
	defer stopCtx()
	for len(set) > 0 {
		if w := set[0].wait; w > 0 { // only a set of one carries a wait
			set[0].wait = 0
			if err := sleep(set[0].job.Ctx, w); err != nil {
				p.stop(set, err)
				return
			}
		}
		set = p.split(set)
		if len(set) == 0 {
			return
		}
		switch set[0].step {
		case stepEnter:
			set = p.enter(set)
		case stepClaim:
			set = p.claim(ctx, set)
		case stepDeliver:
			set = p.deliverSet(ctx, set)
		case stepPark:
			p.park(set[0])
			set = nil
		case stepComplete:
			if set[0].marksFailed {
				p.completeWaiting(set)
			} else {
				p.complete(set)
			}
			set = nil
		}
	}
}

// split applies the delivery mode to a set before its step: one request per record in per-record mode (each
// record goes on alone, so that a slow answer holds up no other), one request per source topic in batch mode
// (the app URL may name the topic), and a park of its own for every record (each waits for the broker's ack
// alone). It returns the records that go on here; the others go on through fork.
func (p *Pipeline) split(set []*record) []*record {
	if len(set) < 2 {
		return set
	}
	switch set[0].step {
	case stepDeliver:
		if !p.opts.BatchDelivery {
			for _, r := range set {
				p.fork(r)
			}
			return nil
		}
		topic := set[0].m.prov.OriginalTopic
		var others []*record
		same := set[:0]
		for _, r := range set {
			if r.m.prov.OriginalTopic == topic {
				same = append(same, r)
			} else {
				others = append(others, r)
			}
		}
		if len(others) > 0 {
			p.fork(others...)
		}
		return same
	case stepPark:
		for _, r := range set[1:] {
			p.fork(r)
		}
		return set[:1]
	}
	return set
}

// fork lets records go on as a set of their own, on a goroutine of the runner's.
func (p *Pipeline) fork(set ...*record) { p.runner.run(p, set) }

// setContext returns the context for work done for a whole set: it ends when the job context of any of its
// records ends (the set then stops, and its records go on alone, each under its own). stop releases it.
func setContext(set []*record) (ctx context.Context, stop func()) {
	if len(set) == 1 {
		return set[0].job.Ctx, func() {}
	}
	anyEnded, _, stop := jobContexts(set)
	return anyEnded, stop
}

// interrupted handles a set whose step stopped because a job context ended: records whose own context ended
// stop undone (their leases released), the others go on alone from the same step.
func (p *Pipeline) interrupted(set []*record) []*record {
	for _, r := range set {
		if err := r.job.Ctx.Err(); err != nil {
			p.stop([]*record{r}, err)
			continue
		}
		p.fork(r)
	}
	return nil
}

// stop reports records undone with err, releasing the leases they hold.
func (p *Pipeline) stop(set []*record, err error) {
	for _, r := range set {
		if r.claimed {
			p.release(r)
		}
	}
	p.finish(set, err)
}

// finish reports records: nil when they are done, err when they stopped undone.
func (p *Pipeline) finish(set []*record, err error) {
	if len(set) == 0 {
		return
	}
	idx := make([]int, len(set))
	for k, r := range set {
		p.giveSlot(r)
		if r.held {
			p.leaveLocal(r.m.id)
			r.held = false
		}
		r.endSpan(r.outcome, err)
		idx[k] = r.idx
	}
	set[0].report(err, idx...)
}

// enter takes each record's ID locally. A record whose ID another record of this sidecar holds goes on alone
// and waits for it.
func (p *Pipeline) enter(set []*record) []*record {
	if len(set) == 1 {
		r := set[0]
		if err := p.enterLocal(r.job.Ctx, r.m.id); err != nil {
			p.finish(set, err)
			return nil
		}
		r.held, r.step = true, stepClaim
		return set
	}
	entered := set[:0]
	for _, r := range set {
		if !p.tryEnterLocal(r.m.id) {
			p.fork(r)
			continue
		}
		r.held, r.step = true, stepClaim
		entered = append(entered, r)
	}
	return entered
}

// claim takes the leases of a set's IDs in one round trip. Records found done are skipped; a record another
// member holds waits alone and claims again; a record over the size limit is dead-lettered unsent.
func (p *Pipeline) claim(ctx context.Context, set []*record) []*record {
	if err := p.gate.Wait(ctx); err != nil {
		return p.interrupted(set)
	}
	marks := make([]dedup.Mark, len(set))
	for k, r := range set {
		marks[k] = r.m.mark
	}
	end := p.traceDedup(set, "claim")
	statuses, err := p.dedup.ClaimMany(ctx, marks)
	end(err)
	if err != nil {
		if ctx.Err() != nil {
			return p.interrupted(set)
		}
		p.storeFailed(err, &set[0].m)
		return set // the gate holds the next try back
	}
	p.dedupBackoff.reset()
	var duplicates []*record
	claimed := set[:0]
	for k, r := range set {
		switch statuses[k] {
		case dedup.Done:
			p.duplicate(&r.m)
			r.outcome = metrics.OutcomeDuplicate
			duplicates = append(duplicates, r)
		case dedup.Busy:
			// Another member delivers this ID now (a rebalance moved it): wait for its outcome.
			p.log.Debug("message ID leased by another member; waiting", p.fields(&r.m)...)
			r.busyWait = min(max(2*r.busyWait, 50*time.Millisecond), 2*time.Second)
			r.wait = r.busyWait
			p.fork(r)
		default:
			r.claimed = true
			if reason, over := p.oversize(r.m.rec); over {
				r.step = stepPark
				r.decision = retry.Decision{Action: retry.DeadLetter, Tier: r.m.tier}
				r.answer = handler.Result{Outcome: handler.Permanent, Reason: reason}
				p.fork(r)
				continue
			}
			r.step = stepDeliver
			claimed = append(claimed, r)
		}
	}
	p.finish(duplicates, nil)
	return claimed
}

// deliverSet hands a set to the app in one call of the deliverer and routes each answer: a delivered record
// goes on to its done mark; one the app could not take is offered again (the pausing middleware has paused
// delivery; no attempt is used); a failed one is tried again in place after a backoff, or parked in the next
// retry tier or the dead-letter topic, as the retry policy decides.
func (p *Pipeline) deliverSet(ctx context.Context, set []*record) []*record {
	var oneD [1]*handler.Delivery
	var oneR [1]handler.Result
	ds, results := oneD[:], oneR[:]
	if len(set) > 1 {
		ds, results = make([]*handler.Delivery, len(set)), make([]handler.Result, len(set))
	}
	for k, r := range set {
		if err := p.takeSlot(ctx, r); err != nil {
			return p.interrupted(set)
		}
		r.d.Attempt = r.m.prov.Attempts + 1
		ds[k] = &r.d
	}
	p.deliverer.Deliver(ctx, ds, results)
	if ctx.Err() != nil {
		return p.interrupted(set)
	}
	delivered, again := set[:0], []*record(nil)
	for k, r := range set {
		res := results[k]
		switch res.Outcome {
		case handler.Success:
			// The record keeps its slot until its done mark is written: a crash before that redelivers it, so
			// what may be delivered twice stays within SIDECAR_MAX_IN_FLIGHT.
			r.step = stepComplete
			delivered = append(delivered, r)
			continue
		case handler.AppUnavailable:
			p.giveSlot(r)
			again = append(again, r)
			continue
		}
		p.giveSlot(r)
		r.m.prov.Attempts++
		r.attemptsOnTier++
		dec := p.opts.Policy.Next(r.m.tier, r.attemptsOnTier, res.Outcome == handler.Permanent)
		if dec.Action == retry.InPlace {
			r.wait = p.opts.Policy.BackoffFor(r.attemptsOnTier, p.rnd())
			p.log.Info("delivery failed; retrying in place", append(p.fields(&r.m), zap.Int("attempt", r.m.prov.Attempts),
				zap.String("reason", res.Reason), zap.Duration("backoff", r.wait))...)
		} else {
			r.step, r.decision, r.answer = stepPark, dec, res
		}
		if len(set) == 1 {
			return set
		}
		p.fork(r)
	}
	if len(delivered) == 0 {
		return again
	}
	if len(again) > 0 {
		p.fork(again...)
	}
	return delivered
}

// takeSlot waits for one of the MaxDeliveries slots for r (at once when there is no bound or r holds one).
func (p *Pipeline) takeSlot(ctx context.Context, r *record) error {
	if p.slots == nil || r.slot {
		return nil
	}
	select {
	case p.slots <- struct{}{}:
		r.slot = true
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// giveSlot hands r's slot back, if it holds one.
func (p *Pipeline) giveSlot(r *record) {
	if r.slot {
		r.slot = false
		<-p.slots
	}
}

// park copies a record to the retry tier or dead-letter topic of its decision, waits for the broker's ack,
// and marks the record's position done, which drops its lease, so the copy can be delivered later (by
// whichever member consumes it) while the record itself is never delivered again.
func (p *Pipeline) park(r *record) {
	m := &r.m
	prov := m.prov
	prov.Error = r.answer.Reason
	prov.ErrorStatus = r.answer.Status
	prov.FailedAt = p.now()
	if prov.Attempts == 0 {
		prov.Attempts = 1 // a record refused before delivery still used its one chance
	}
	var topic string
	var copyRec *kgo.Record
	outcome := metrics.OutcomeDeadLettered
	if r.decision.Action == retry.ToTier {
		topic = p.opts.RetryTopic(m.source, r.decision.Tier)
		prov.NotBefore = p.now().Add(r.decision.Delay)
		outcome = metrics.OutcomeRetried
		copyRec = envelope.Copy(m.rec, prov, topic)
	} else {
		topic = p.opts.DeadLetterTopic(m.source)
		copyRec = envelope.DeadLetter(m.rec, prov, topic)
	}
	end := p.tracer.Produce(r.traced, copyRec)
	err := p.send.Send(r.job.Ctx, copyRec)
	end(err)
	if err != nil {
		p.release(r)
		p.finish([]*record{r}, fmt.Errorf("parking %s in %s: %w", m.id, topic, err))
		return
	}
	p.markParked(r)
	p.m.Record(m.source, outcome)
	if r.decision.Action == retry.ToTier {
		p.m.Retried(r.decision.Tier)
	} else {
		p.m.DeadLettered(topic)
	}
	p.log.Info("record parked", append(p.fields(m), zap.String("to", topic), zap.Int("attempts", prov.Attempts),
		zap.String("reason", r.answer.Reason))...)
	r.outcome = outcome
	p.finish([]*record{r}, nil)
}

// markParked writes the position mark of a parked record, waiting out store outages while its job lives: the
// record is done (its copy is acknowledged) whatever happens here; the mark keeps a redelivery of the record
// (after an offset loss) from being parked a second time.
func (p *Pipeline) markParked(r *record) {
	r.claimed = false
	ctx := r.job.Ctx
	for {
		err := p.dedup.Park(ctx, r.m.mark)
		if err == nil {
			p.dedupBackoff.reset()
			return
		}
		if ctx.Err() != nil || p.closedStore(err) {
			p.log.Warn("position mark of a parked record not written before shutdown; its lease expires by itself",
				append(p.fields(&r.m), zap.Error(err))...)
			return
		}
		p.storeFailed(err, &r.m)
		if p.gate.Wait(ctx) != nil {
			return
		}
	}
}

// complete writes the done marks of delivered records and reports them once the marks are written. No
// goroutine waits for that: the store calls back, and the marks of records that finish at the same time share
// a round trip. The records were delivered, so they are done whatever happens to the marks; the marks are
// what keep a redelivery (after an offset loss) from reaching the app, so a store outage is waited out, on a
// goroutine of its own, while any of the records' jobs lives.
func (p *Pipeline) complete(set []*record) {
	c := &completion{p: p, set: set, marks: make([]dedup.Mark, len(set))}
	for k, r := range set {
		r.outcome = metrics.OutcomeDelivered
		c.marks[k] = r.m.mark
	}
	p.dedup.CompleteManyThen(c.marks, c.marksWritten)
}

// completion is a set waiting for its done marks.
type completion struct {
	p     *Pipeline
	set   []*record
	marks []dedup.Mark
}

// marksWritten is the store's answer to the done marks of a set; it runs on the goroutine making store calls,
// which must not block.
func (c *completion) marksWritten(err error) {
	if err != nil {
		for _, r := range c.set {
			r.marksFailed = true
		}
		c.p.fork(c.set...)
		return
	}
	c.p.dedupBackoff.reset()
	c.p.delivered(c.set)
}

// completeWaiting writes the done marks of a set, waiting out store outages while any of its jobs lives.
func (p *Pipeline) completeWaiting(set []*record) {
	_, all, stopCtx := jobContexts(set)
	defer stopCtx()
	marks := make([]dedup.Mark, len(set))
	for k, r := range set {
		marks[k] = r.m.mark
	}
	for {
		err := p.dedup.CompleteMany(all, marks)
		if err == nil {
			p.dedupBackoff.reset()
			break
		}
		if all.Err() != nil || p.closedStore(err) {
			p.log.Warn("done marks not written before shutdown; a redelivery of these IDs would not be suppressed",
				append(p.fields(&set[0].m), zap.Int("records", len(marks)), zap.Error(err))...)
			break
		}
		p.storeFailed(err, &set[0].m)
		if p.gate.Wait(all) != nil {
			break
		}
	}
	p.delivered(set)
}

// delivered counts and reports records that the app took.
func (p *Pipeline) delivered(set []*record) {
	source, n := set[0].m.source, 0
	for _, r := range set {
		if r.m.source != source {
			p.m.Records(source, metrics.OutcomeDelivered, n)
			source, n = r.m.source, 0
		}
		n++
	}
	p.m.Records(source, metrics.OutcomeDelivered, n)
	p.finish(set, nil)
}

// traceDedup starts a dedup span for each record of a set and returns what ends them; nothing is built when
// nothing is traced.
func (p *Pipeline) traceDedup(set []*record, op string) func(error) {
	if _, off := p.tracer.(nopTracer); off {
		return nopEndErr
	}
	ends := make([]func(error), len(set))
	for k, r := range set {
		ends[k] = p.tracer.Dedup(r.traced, op)
	}
	return func(err error) {
		for _, end := range ends {
			end(err)
		}
	}
}

// jobContexts returns two contexts for the work done for a set as a whole: anyEnded ends when the job
// context of any record ends, allEnded when the job contexts of all have ended. stop releases them.
func jobContexts(set []*record) (anyEnded, allEnded context.Context, stop func()) {
	anyEnded, cancelAny := context.WithCancel(context.Background())
	allEnded, cancelAll := context.WithCancel(context.Background())
	var seen []context.Context
	for _, r := range set {
		known := false
		for _, c := range seen {
			if c == r.job.Ctx {
				known = true
				break
			}
		}
		if !known {
			seen = append(seen, r.job.Ctx)
		}
	}
	var live atomic.Int32
	live.Store(int32(len(seen)))
	stops := make([]func() bool, 0, len(seen))
	for _, c := range seen {
		stops = append(stops, context.AfterFunc(c, func() {
			cancelAny()
			if live.Add(-1) == 0 {
				cancelAll()
			}
		}))
	}
	return anyEnded, allEnded, func() {
		for _, s := range stops {
			s()
		}
		cancelAny()
		cancelAll()
	}
}
