package pipeline

import (
	"context"

	"github.com/kafka-sidecar/kafka-sidecar/handler"
	"github.com/kafka-sidecar/kafka-sidecar/metrics"
	"go.uber.org/zap"
)

// canceledResult answers deliveries that did not start because the caller's context ended; the engine sees
// the context's error and treats them as not delivered.
var canceledResult = handler.Result{Outcome: handler.AppUnavailable, Reason: "delivery canceled"}

// pausing is the outermost middleware: no delivery starts while the gate is closed (the app, its health URL or
// the dedup store unavailable), and an answer that the app cannot take records now closes the gate for the
// app's Retry-After or the next backoff. The records so answered are offered again without using an attempt.
func (p *Pipeline) pausing(next handler.Deliverer) handler.Deliverer {
	return handler.DelivererFunc(func(ctx context.Context, ds []*handler.Delivery, results []handler.Result) {
		if err := p.gate.Wait(ctx); err != nil {
			handler.Fill(results, canceledResult)
			return
		}
		next.Deliver(ctx, ds, results)
		if ctx.Err() != nil {
			return
		}
		unavailable := -1
		for i := range results {
			if results[i].Outcome == handler.AppUnavailable &&
				(unavailable < 0 || results[i].RetryAfter > results[unavailable].RetryAfter) {
				unavailable = i
			}
		}
		if unavailable < 0 {
			p.appBackoff.reset()
			p.m.AppUp(true)
			return
		}
		res, d := results[unavailable], ds[unavailable]
		p.m.AppUp(false)
		pause := p.appBackoff.next(p.now())
		if res.RetryAfter > 0 {
			pause = res.RetryAfter
		}
		p.gate.PauseFor(metrics.PauseAppUnavailable, pause)
		p.log.Warn("app unavailable; pausing delivery (no attempt used)",
			zap.String("topic", d.Topic), zap.Int32("partition", d.Partition), zap.Int64("offset", d.Offset),
			zap.String("id", d.ID), zap.Int("records", len(ds)), zap.String("reason", res.Reason),
			zap.Duration("pause", pause))
	})
}

// measuring observes every answer in the delivery metrics, once per outcome for a call.
func (p *Pipeline) measuring(next handler.Deliverer) handler.Deliverer {
	return handler.DelivererFunc(func(ctx context.Context, ds []*handler.Delivery, results []handler.Result) {
		next.Deliver(ctx, ds, results)
		if ctx.Err() != nil || len(results) == 0 {
			return
		}
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
	})
}
