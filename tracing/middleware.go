package tracing

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/kafka-sidecar/kafka-sidecar/handler"
)

// attrBatchCount is the number of records a batch request carries.
var attrBatchCount = semconv.MessagingBatchMessageCountKey

// Middleware returns the handler.Middleware that makes an HTTP client span per delivery attempt, a child of
// the record's consumer span (Delivery.Context), and gives the app its context in traceparent and
// tracestate. With batch, every call is one request: it gets one span, a child of the call's context and
// linked to each record's, whose context every delivery carries.
func (p *Provider) Middleware(batch bool) handler.Middleware {
	return func(next handler.Deliverer) handler.Deliverer {
		if batch {
			return handler.DelivererFunc(func(ctx context.Context, ds []*handler.Delivery, results []handler.Result) {
				p.deliverBatch(ctx, next, ds, results)
			})
		}
		return handler.DelivererFunc(func(ctx context.Context, ds []*handler.Delivery, results []handler.Result) {
			p.deliverEach(ctx, next, ds, results)
		})
	}
}

// deliverEach traces each delivery of a call with a span of its own.
func (p *Provider) deliverEach(ctx context.Context, next handler.Deliverer, ds []*handler.Delivery, results []handler.Result) {
	spans := make([]trace.Span, len(ds))
	for i, d := range ds {
		parent := d.Context
		if parent == nil {
			parent = ctx
		}
		var sctx context.Context
		sctx, spans[i] = p.tracer.Start(parent, spanAttempt, trace.WithSpanKind(trace.SpanKindClient))
		if spans[i].IsRecording() {
			spans[i].SetAttributes(semconv.HTTPRequestMethodPost, semconv.MessagingMessageID(d.ID), attrAttempt.Int(d.Attempt))
		}
		p.prop.Inject(sctx, deliveryCarrier{d})
	}
	next.Deliver(ctx, ds, results)
	for i, span := range spans {
		endAttempt(span, results[i])
	}
}

// deliverBatch traces a call that is one request with one span linked to every record's.
func (p *Provider) deliverBatch(ctx context.Context, next handler.Deliverer, ds []*handler.Delivery, results []handler.Result) {
	links := make([]trace.Link, 0, len(ds))
	for _, d := range ds {
		if d.Context != nil {
			if l := trace.LinkFromContext(d.Context); l.SpanContext.IsValid() {
				links = append(links, l)
			}
		}
	}
	sctx, span := p.tracer.Start(ctx, spanAttempt, trace.WithSpanKind(trace.SpanKindClient), trace.WithLinks(links...),
		trace.WithAttributes(semconv.HTTPRequestMethodPost, attrBatchCount.Int(len(ds))))
	for _, d := range ds {
		p.prop.Inject(sctx, deliveryCarrier{d})
	}
	next.Deliver(ctx, ds, results)
	worst := handler.Result{}
	for _, r := range results {
		if r.Outcome != handler.Success && worst.Outcome == handler.Success {
			worst = r
		}
	}
	if len(results) > 0 && worst.Status == 0 {
		worst.Status = results[0].Status
	}
	endAttempt(span, worst)
}

// endAttempt records the answer on an attempt span and ends it.
func endAttempt(span trace.Span, r handler.Result) {
	if !span.IsRecording() {
		span.End()
		return
	}
	if r.Status != 0 {
		span.SetAttributes(semconv.HTTPResponseStatusCode(r.Status))
	}
	span.SetAttributes(attribute.String("kafka_sidecar.result", r.Outcome.String()))
	if r.Outcome != handler.Success {
		span.SetStatus(codes.Error, r.Reason)
	}
	span.End()
}
