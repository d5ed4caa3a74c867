package pipeline

import (
	"context"
	"sync/atomic"

	"github.com/kafka-sidecar/kafka-sidecar/consumer"
	"github.com/kafka-sidecar/kafka-sidecar/dedup"
	"github.com/kafka-sidecar/kafka-sidecar/handler"
	"github.com/kafka-sidecar/kafka-sidecar/metrics"
	"go.uber.org/zap"
)

// batchEntry is one record of a batch on its way through ProcessBatch: the index of its job and what the
// pipeline knows of it.
type batchEntry struct {
	job int
	m   message
}

// ProcessBatch implements consumer.BatchProcessor. A batch costs one claim round trip to the dedup store. In
// batch delivery mode (Options.Batch) the claimed records then go to the app in one request per source topic
// (the app URL may name the topic) and their done marks to the store in one round trip, whatever the batch's
// size. In single delivery mode each claimed record goes to the app in a request of its own, so that claims
// are made ahead of deliveries and in bulk while the deliveries under way stay within MaxDeliveries.
//
// The records a batch cannot finish at once go on alone, each on a goroutine of the runner's, exactly as
// Process would finish them from that point: an ID another record of this sidecar holds, another member's
// lease, a record over the size limit, a failed delivery (retried in place, parked in a retry tier or
// dead-lettered), a store outage, or the end of a job's context.
func (p *Pipeline) ProcessBatch(jobs []consumer.Job, report consumer.Report) {
	b := &batchRun{p: p, jobs: jobs, report: report}
	entries := make([]batchEntry, 0, len(jobs))
	live := jobs[:0:0]
	for i, j := range jobs {
		if err := j.Ctx.Err(); err != nil {
			report(err, i)
			continue
		}
		live = append(live, j)
		m := p.decode(j.Rec)
		if !p.tryEnterLocal(m.id) {
			// Another record with this ID is under way here: this one waits for it on its own.
			p.goAlone(j, i, report, m, false, p.processHeld)
			continue
		}
		entries = append(entries, batchEntry{job: i, m: m})
	}
	var stop func()
	b.ctx, b.marksCtx, stop = batchContexts(live)
	defer stop()
	entries = b.claim(entries)
	if p.opts.Batch == nil {
		// One request per record, all at once: each finishes on its own, under MaxDeliveries.
		b.alone(entries, func(ctx context.Context, m *message) error { return p.deliverClaimed(ctx, m, nil) })
		return
	}
	entries = b.deliver(entries)
	b.complete(entries)
}

// batchRun is the state of one ProcessBatch call.
type batchRun struct {
	p   *Pipeline
	ctx context.Context // ends when the context of any job ends
	// marksCtx ends when the contexts of all jobs have ended.
	marksCtx context.Context
	jobs     []consumer.Job
	report   consumer.Report
}

// processHeld finishes a record from the start, as Process does: it waits for its ID locally and leaves it.
func (p *Pipeline) processHeld(ctx context.Context, m *message) error {
	return p.Process(ctx, m.rec)
}

// goAlone finishes one job with finish on a goroutine of the runner's, under the job's own context, then
// leaves the ID locally (when held) and reports the job.
func (p *Pipeline) goAlone(job consumer.Job, i int, report consumer.Report, m message, held bool,
	finish func(ctx context.Context, m *message) error) {
	p.runner.run(p, aloneTask{job: job, idx: i, report: report, m: m, held: held, finish: finish})
}

// alone hands entries over to finish, each on its own.
func (b *batchRun) alone(entries []batchEntry, finish func(ctx context.Context, m *message) error) {
	for _, e := range entries {
		b.p.goAlone(b.jobs[e.job], e.job, b.report, e.m, true, finish)
	}
}

// aloneFromAnswer hands one delivered entry over with the app's answer to its first attempt.
func (b *batchRun) aloneFromAnswer(e batchEntry, res handler.Result) {
	b.p.goAlone(b.jobs[e.job], e.job, b.report, e.m, true, func(ctx context.Context, m *message) error {
		return b.p.deliverClaimed(ctx, m, &res)
	})
}

// claim claims the batch's IDs in one round trip. Duplicates are done at once; the claimed records that may
// be delivered are returned; the rest go on alone.
func (b *batchRun) claim(entries []batchEntry) []batchEntry {
	p := b.p
	if len(entries) == 0 {
		return nil
	}
	if err := p.gate.Wait(b.ctx); err != nil {
		b.alone(entries, p.claimAndDeliver)
		return nil
	}
	ids := make([]string, len(entries))
	for k := range entries {
		ids[k] = entries[k].m.id
	}
	statuses, err := p.dedup.ClaimMany(b.ctx, ids)
	if err != nil {
		if b.ctx.Err() == nil {
			p.storeFailed(err, &entries[0].m)
		}
		b.alone(entries, p.claimAndDeliver)
		return nil
	}
	p.dedupBackoff.reset()
	claimed := entries[:0]
	var duplicates []int
	for k, e := range entries {
		switch statuses[k] {
		case dedup.Done:
			p.duplicate(&e.m)
			p.leaveLocal(e.m.id)
			duplicates = append(duplicates, e.job)
		case dedup.Busy:
			// Another member delivers it now: wait for its outcome alone.
			b.alone(entries[k:k+1], p.claimAndDeliver)
		default:
			if _, over := p.oversize(e.m.rec); over {
				b.alone(entries[k:k+1], func(ctx context.Context, m *message) error {
					return p.deliverClaimed(ctx, m, nil)
				})
				continue
			}
			claimed = append(claimed, e)
		}
	}
	if len(duplicates) > 0 {
		b.report(nil, duplicates...)
	}
	return claimed
}

// deliver sends the claimed entries to the app, one request per source topic, and returns the ones the app
// accepted; the others go on alone with the app's answer.
func (b *batchRun) deliver(entries []batchEntry) []batchEntry {
	var delivered []batchEntry
	for len(entries) > 0 {
		// Entries of the first entry's topic to the front; usually that is all of them.
		topic := entries[0].m.prov.OriginalTopic
		n := 0
		for k := range entries {
			if entries[k].m.prov.OriginalTopic == topic {
				entries[n], entries[k] = entries[k], entries[n]
				n++
			}
		}
		delivered = append(delivered, b.deliverTopic(entries[:n])...)
		entries = entries[n:]
	}
	return delivered
}

// deliverTopic sends entries of one source topic in one request. While the app is unavailable for the whole
// batch it pauses and sends the batch again, using no attempt.
func (b *batchRun) deliverTopic(entries []batchEntry) []batchEntry {
	p := b.p
	requests := make([]handler.Delivery, len(entries))
	ds := make([]*handler.Delivery, len(entries))
	for k := range entries {
		requests[k] = entries[k].m.delivery()
		ds[k] = &requests[k]
	}
	var results []handler.Result
	for {
		if err := p.gate.Wait(b.ctx); err != nil {
			b.alone(entries, func(ctx context.Context, m *message) error { return p.deliverClaimed(ctx, m, nil) })
			return nil
		}
		results = make([]handler.Result, len(ds))
		p.opts.Batch.Deliver(b.ctx, ds, results)
		if b.ctx.Err() != nil {
			// Cancelled: this attempt does not count; each record finishes (or stops) under its own context.
			b.alone(entries, func(ctx context.Context, m *message) error { return p.deliverClaimed(ctx, m, nil) })
			return nil
		}
		if !allUnavailable(results) {
			break
		}
		res := results[0]
		p.m.Deliveries(res.Outcome.String(), res.Elapsed, len(results))
		p.m.AppUp(false)
		pause := p.appBackoff.next(p.now())
		if res.RetryAfter > 0 {
			pause = res.RetryAfter
		}
		p.gate.PauseFor(metrics.PauseAppUnavailable, pause)
		p.log.Warn("app unavailable; pausing delivery (no attempt used)", zap.Int("records", len(entries)),
			zap.String("topic", entries[0].m.rec.Topic), zap.String("reason", res.Reason), zap.Duration("pause", pause))
	}
	p.countAnswers(results)
	accepted := entries[:0]
	for k, e := range entries {
		if results[k].Outcome == handler.Success {
			accepted = append(accepted, e)
			continue
		}
		b.aloneFromAnswer(e, results[k])
	}
	if len(accepted) > 0 {
		p.appBackoff.reset()
		p.m.AppUp(true)
	}
	return accepted
}

// countAnswers observes a batch's answers in the delivery metrics, once per outcome.
func (p *Pipeline) countAnswers(results []handler.Result) {
	var counts [handler.AppUnavailable + 1]int
	for _, r := range results {
		if int(r.Outcome) < len(counts) {
			counts[r.Outcome]++
		}
	}
	for o, n := range counts {
		if n > 0 {
			p.m.Deliveries(handler.Outcome(o).String(), results[0].Elapsed, n)
		}
	}
}

// allUnavailable reports whether the app answered "unavailable" for every record of a batch.
func allUnavailable(results []handler.Result) bool {
	for _, r := range results {
		if r.Outcome != handler.AppUnavailable {
			return false
		}
	}
	return len(results) > 0
}

// complete writes the done marks of the delivered entries in one round trip, waiting out store outages while
// the context of any job lives, and reports them done: they were delivered, so they are done whatever happens to
// the marks.
func (b *batchRun) complete(entries []batchEntry) {
	p := b.p
	if len(entries) == 0 {
		return
	}
	ids := make([]string, len(entries))
	jobs := make([]int, len(entries))
	for k, e := range entries {
		ids[k], jobs[k] = e.m.id, e.job
	}
	ctx := b.marksCtx
	for {
		err := p.dedup.CompleteMany(ctx, ids)
		if err == nil {
			p.dedupBackoff.reset()
			break
		}
		if ctx.Err() != nil {
			p.log.Warn("done marks not written before shutdown; a redelivery of these IDs would not be suppressed",
				zap.Int("records", len(ids)), zap.String("first_id", ids[0]), zap.Error(err))
			break
		}
		p.storeFailed(err, &entries[0].m)
		if p.gate.Wait(ctx) != nil {
			break
		}
	}
	source, n := entries[0].m.source, 0
	for _, e := range entries {
		if e.m.source != source {
			p.m.Records(source, metrics.OutcomeDelivered, n)
			source, n = e.m.source, 0
		}
		n++
		p.leaveLocal(e.m.id)
	}
	p.m.Records(source, metrics.OutcomeDelivered, n)
	b.report(nil, jobs...)
}

// batchContexts returns two contexts for the work done for a batch as a whole: anyEnded ends when the
// context of any job ends (the batch then stops and its records finish alone, each under its own), allEnded
// when the contexts of all jobs have ended (the done marks of delivered records are worth writing while any
// job lives). stop releases them.
func batchContexts(jobs []consumer.Job) (anyEnded, allEnded context.Context, stop func()) {
	anyEnded, cancelAny := context.WithCancel(context.Background())
	allEnded, cancelAll := context.WithCancel(context.Background())
	var seen []context.Context
	for _, j := range jobs {
		known := false
		for _, c := range seen {
			if c == j.Ctx {
				known = true
				break
			}
		}
		if !known {
			seen = append(seen, j.Ctx)
		}
	}
	var live atomic.Int32
	live.Store(int32(len(seen)))
	ended := func() {
		if live.Add(-1) == 0 {
			cancelAll()
		}
	}
	stops := make([]func() bool, 0, len(seen))
	for _, c := range seen {
		stops = append(stops, context.AfterFunc(c, func() {
			cancelAny()
			ended()
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
