package tracing

import (
	"context"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"
)

// Span names and the attributes of the sidecar's own that the spans carry (the README lists them).
const (
	// spanProcess prefixes the consumer span of a record: "process <topic>".
	spanProcess = "process "
	// spanSend prefixes the producer span of a retry or dead-letter copy: "send <topic>".
	spanSend = "send "
	// spanDedup prefixes the span of a dedup store round trip: "dedup claim".
	spanDedup = "dedup "
	// spanWait is the span of the wait before a retry tier's not-before time.
	spanWait = "retry wait"
	// spanAttempt is the HTTP client span of a delivery attempt (its method, per the HTTP conventions).
	spanAttempt = "POST"

	attrOutcome   = attribute.Key("kafka_sidecar.outcome")
	attrAttempt   = attribute.Key("kafka_sidecar.attempt")
	attrNotBefore = attribute.Key("kafka_sidecar.not_before")
	attrDedupOp   = attribute.Key("kafka_sidecar.dedup.operation")
)

// stateKey is the tracestate member (W3C vendor key) in which a copy carries the span ID of the consumer
// span that produced it, so that the copy's consumer span links back to it.
const stateKey = "kafkasidecar"

// recordTimeKey keys the consumed record's timestamp in the traced context, for the wait span.
type recordTimeKey struct{}

// Tracer implements pipeline.Tracer. It is safe for concurrent use.
type Tracer struct {
	p     *Provider
	group string
}

// Tracer returns the pipeline.Tracer for the consumer group named group.
func (p *Provider) Tracer(group string) *Tracer { return &Tracer{p: p, group: group} }

// Consume starts the consumer span of rec, a child of the trace context in its headers; a copy made by a
// retry produce also links to the consumer span that produced it.
func (t *Tracer) Consume(ctx context.Context, rec *kgo.Record, id string) (context.Context, func(string, error)) {
	parent := t.p.prop.Extract(ctx, recordCarrier{&rec.Headers})
	opts := []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindConsumer)}
	if psc := trace.SpanContextFromContext(parent); psc.IsValid() {
		if v := psc.TraceState().Get(stateKey); v != "" {
			if sid, err := trace.SpanIDFromHex(v); err == nil {
				opts = append(opts, trace.WithLinks(trace.Link{SpanContext: psc.WithSpanID(sid)}))
			}
			// The member is the sidecar's own business: the app's trace context does not carry it on.
			parent = trace.ContextWithRemoteSpanContext(ctx, psc.WithTraceState(psc.TraceState().Delete(stateKey)))
		}
	}
	traced, span := t.p.tracer.Start(parent, spanProcess+rec.Topic, opts...)
	// Attributes only for spans that are kept: with a low sampling ratio most records cost no more than the
	// span's context.
	if span.IsRecording() {
		span.SetAttributes(
			semconv.MessagingSystemKafka,
			semconv.MessagingOperationTypeProcess,
			semconv.MessagingOperationName("process"),
			semconv.MessagingDestinationName(rec.Topic),
			semconv.MessagingDestinationPartitionID(strconv.Itoa(int(rec.Partition))),
			semconv.MessagingKafkaOffset(int(rec.Offset)),
			semconv.MessagingConsumerGroupName(t.group),
			semconv.MessagingMessageID(id),
		)
	}
	traced = context.WithValue(traced, recordTimeKey{}, rec.Timestamp)
	return traced, func(outcome string, err error) {
		if outcome != "" && span.IsRecording() {
			span.SetAttributes(attrOutcome.String(outcome))
		}
		endSpan(span, err)
	}
}

// Dedup starts the span of a dedup store round trip.
func (t *Tracer) Dedup(ctx context.Context, op string) func(error) {
	_, span := t.p.tracer.Start(ctx, spanDedup+op, trace.WithSpanKind(trace.SpanKindClient))
	if span.IsRecording() {
		span.SetAttributes(attrDedupOp.String(op))
	}
	return func(err error) { endSpan(span, err) }
}

// Wait starts the span of the wait before a retry tier's not-before time. The wait happens before the record
// is handed out, so the span starts at the record's timestamp (when the copy was written).
func (t *Tracer) Wait(ctx context.Context, until time.Time) func() {
	start, _ := ctx.Value(recordTimeKey{}).(time.Time)
	if start.IsZero() || start.After(time.Now()) {
		start = time.Now()
	}
	_, span := t.p.tracer.Start(ctx, spanWait, trace.WithTimestamp(start),
		trace.WithAttributes(attrNotBefore.String(until.UTC().Format(time.RFC3339Nano))))
	return func() { span.End() }
}

// Produce starts the producer span of a retry or dead-letter copy and writes its context into the copy's
// traceparent (replacing the record's), with the consumer span's ID in tracestate. The copy gets a headers
// slice of its own: the consumed record's are never written.
func (t *Tracer) Produce(ctx context.Context, copy *kgo.Record) func(error) {
	consumer := trace.SpanContextFromContext(ctx)
	ctx, span := t.p.tracer.Start(ctx, spanSend+copy.Topic, trace.WithSpanKind(trace.SpanKindProducer),
		trace.WithAttributes(
			semconv.MessagingSystemKafka,
			semconv.MessagingOperationTypeSend,
			semconv.MessagingOperationName("send"),
			semconv.MessagingDestinationName(copy.Topic),
		))
	sc := span.SpanContext()
	if consumer.IsValid() {
		if ts, err := sc.TraceState().Insert(stateKey, consumer.SpanID().String()); err == nil {
			sc = sc.WithTraceState(ts)
		}
	}
	headers := withoutTraceContext(copy.Headers)
	t.p.prop.Inject(trace.ContextWithSpanContext(ctx, sc), recordCarrier{&headers})
	copy.Headers = headers
	return func(err error) { endSpan(span, err) }
}

// endSpan ends span, marking it failed with err.
func endSpan(span trace.Span, err error) {
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}
