package decode

import (
	"context"
	"testing"

	"github.com/kafka-sidecar/kafka-sidecar/handler"
)

// BenchmarkMiddleware measures the decoder's CPU per record in front of a deliverer that does nothing: "off"
// is a value not in wire format (what every record costs with SIDECAR_DECODE=json when producers do not use a
// registry), the others a cached schema of each format. Compare with the sidecar's CPU per record in the
// README's performance table.
func BenchmarkMiddleware(b *testing.B) {
	schemas := fuzzSchemas(b)
	order := compileForTest(b).Messages().ByName("Order")
	cases := []struct {
		name  string
		value []byte
	}{
		{"off", []byte(`{"id":"o-1","amount":"12345.67","status":"PAID","tags":["a","b"],"note":"plain JSON, no schema"}`)},
		{"avro", wire(1, avroSeed(b))},
		{"protobuf", wire(2, protoPayload(b, order, []byte{0x02, 0x02}, `{"id":"o-1","status":"PAID",`+
			`"lines":[{"sku":"a","price":{"currency":"EUR","units":"12"}},{"sku":"b"}],`+
			`"placedAt":"2024-05-06T07:08:09.123Z","counts":{"x":"3"},"sig":"AAH+"}`))},
		{"json", wire(3, []byte(`{"id":"o-1","amount":12345.67,"status":"PAID","tags":["a","b"],"note":"JSON Schema"}`))},
	}
	nop := handler.DelivererFunc(func(_ context.Context, ds []*handler.Delivery, results []handler.Result) {
		for i := range ds {
			results[i] = handler.Result{}
		}
	})
	mw := New(schemas, Options{}).Middleware(nop)
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			d := &handler.Delivery{Topic: "orders", Value: c.value}
			ds := []*handler.Delivery{d}
			results := make([]handler.Result, 1)
			b.SetBytes(int64(len(c.value)))
			b.ReportAllocs()
			for b.Loop() {
				mw.Deliver(context.Background(), ds, results)
				if results[0].Outcome != handler.Success {
					b.Fatalf("%+v", results[0])
				}
			}
		})
	}
}
