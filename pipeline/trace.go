package pipeline

import (
	"context"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Tracer is told of the steps of a record's path that a trace shows; the delivery attempts themselves are
// traced by middleware around the deliverer. The engine calls it on the record's goroutine or the batch's;
// every method must be safe for concurrent use and cheap when nothing is sampled.
type Tracer interface {
	// Consume starts the span of one record's processing, a child of the trace context in the record's
	// headers when it has one, and returns the context that carries it to the record's later steps. end is
	// called once: with the record's outcome (a metrics outcome name) when it is done, or with the error that
	// left it undone.
	Consume(ctx context.Context, rec *kgo.Record, id string) (traced context.Context, end func(outcome string, err error))
	// Dedup starts the span of a dedup store round trip made for the record of ctx; end is called with the
	// round trip's error.
	Dedup(ctx context.Context, op string) (end func(error))
	// Wait starts the span of the wait before a retry tier's not-before time.
	Wait(ctx context.Context, until time.Time) (end func())
	// Produce starts the span of producing copy (to a retry or dead-letter topic) for the record of ctx and
	// writes the span's trace context into copy's headers, so that the copy's own processing links back to
	// it; end is called with the produce's error.
	Produce(ctx context.Context, copy *kgo.Record) (end func(error))
}

// nopTracer traces nothing, at no cost.
type nopTracer struct{}

func (nopTracer) Consume(ctx context.Context, _ *kgo.Record, _ string) (context.Context, func(string, error)) {
	return ctx, nopEndConsume
}
func (nopTracer) Dedup(context.Context, string) func(error)        { return nopEndErr }
func (nopTracer) Wait(context.Context, time.Time) func()           { return nopEnd }
func (nopTracer) Produce(context.Context, *kgo.Record) func(error) { return nopEndErr }

func nopEndConsume(string, error) {}
func nopEndErr(error)             {}
func nopEnd()                     {}
