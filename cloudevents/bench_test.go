package cloudevents_test

import (
	"context"
	"testing"

	"github.com/kafka-sidecar/kafka-sidecar/cloudevents"
	"github.com/kafka-sidecar/kafka-sidecar/handler"
)

// BenchmarkPresent measures the middleware per delivery: a plain record in auto mode (the common case, which
// must cost nothing), a binary-mode event, and a plain record wrapped.
func BenchmarkPresent(b *testing.B) {
	ok := handler.DelivererFunc(func(_ context.Context, ds []*handler.Delivery, results []handler.Result) {
		for i := range ds {
			results[i] = handler.Result{Outcome: handler.Success}
		}
	})
	for _, bc := range []struct {
		name string
		mode cloudevents.Mode
		d    *handler.Delivery
	}{
		{"auto/plain", cloudevents.Auto, plain()},
		{"auto/binary", cloudevents.Auto, binaryAvro()},
		{"wrap/plain", cloudevents.Wrap, plain()},
	} {
		b.Run(bc.name, func(b *testing.B) {
			d := cloudevents.Middleware(cloudevents.Options{Mode: bc.mode, Type: "t"})(ok)
			ds := []*handler.Delivery{bc.d}
			results := make([]handler.Result, 1)
			b.ReportAllocs()
			for b.Loop() {
				d.Deliver(context.Background(), ds, results)
			}
		})
	}
}
