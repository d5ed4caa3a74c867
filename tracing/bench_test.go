package tracing

import (
	"context"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

// BenchmarkConsume measures a record's consumer span with every span kept and with none (a sampling ratio
// of 0, the cost most records pay at a low ratio).
func BenchmarkConsume(b *testing.B) {
	for _, bc := range []struct {
		name    string
		sampler sdktrace.Sampler
	}{{"sampled", sdktrace.AlwaysSample()}, {"unsampled", sdktrace.TraceIDRatioBased(0)}} {
		b.Run(bc.name, func(b *testing.B) {
			tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(bc.sampler),
				sdktrace.WithSpanProcessor(sdktrace.NewSimpleSpanProcessor(tracetest.NewNoopExporter())))
			defer func() { _ = tp.Shutdown(context.Background()) }()
			tr := newProvider(tp).Tracer("g")
			rec := &kgo.Record{Topic: "orders", Partition: 1, Offset: 42,
				Headers: []kgo.RecordHeader{{Key: "traceparent", Value: []byte(upstream)}}}
			b.ReportAllocs()
			for b.Loop() {
				_, end := tr.Consume(context.Background(), rec, "orders/1/42")
				end("delivered", nil)
			}
		})
	}
}
