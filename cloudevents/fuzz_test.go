package cloudevents_test

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafka-sidecar/kafka-sidecar/cloudevents"
	"github.com/kafka-sidecar/kafka-sidecar/handler"
)

// headersFrom splits fuzz input into record headers: lines of name=value.
func headersFrom(s string) []kgo.RecordHeader {
	var hs []kgo.RecordHeader
	for _, line := range strings.Split(s, "\n") {
		k, v, _ := strings.Cut(line, "=")
		hs = append(hs, kgo.RecordHeader{Key: k, Value: []byte(v)})
	}
	return hs
}

// FuzzPresent feeds arbitrary headers and values through the middleware in both modes. Invariants: no panic;
// the record's headers are never written; a record in binary mode that reaches the next deliverer shows no
// ce_* record header, and every ce-* header it carries is printable ASCII without
// spaces (the HTTP binding's percent-encoding); one that does not reach it is answered Permanent with a reason.
func FuzzPresent(f *testing.F) {
	f.Add("ce_specversion=1.0\nce_id=1\nce_source=/s\nce_type=t\ncontent-type=application/json", []byte(`{}`), "id")
	f.Add("ce_specversion=1.0\nce_id=\xff\xfe\nce_source=a b\nce_type=\"t\"\nce_time=2018-04-05T03:56:24Z", []byte{0}, "x/0/1")
	f.Add("content-type=application/cloudevents+json", []byte(specJSONFormat), "")
	f.Add("ce_specversion=0.3\nce_id=1\nce_source=/s\nce_type=t\nce_schemaurl=http://x", []byte("v"), "é")
	f.Fuzz(func(t *testing.T, headers string, value []byte, id string) {
		for _, mode := range []cloudevents.Mode{cloudevents.Auto, cloudevents.Wrap} {
			hs := headersFrom(headers)
			orig := make([]kgo.RecordHeader, len(hs))
			for i, h := range hs {
				orig[i] = kgo.RecordHeader{Key: h.Key, Value: bytes.Clone(h.Value)}
			}
			d := &handler.Delivery{ID: id, Topic: "t", Headers: hs, Value: value}
			binaryIn := false
			for _, h := range hs {
				binaryIn = binaryIn || h.Key == "ce_specversion"
			}
			reached := false
			next := handler.DelivererFunc(func(_ context.Context, ds []*handler.Delivery, results []handler.Result) {
				reached = true
				for i, d := range ds {
					for _, h := range d.Headers {
						if binaryIn && strings.HasPrefix(h.Key, "ce_") {
							t.Errorf("record header %q still shown beside the ce-* headers", h.Key)
						}
					}
					for _, x := range d.Extra {
						for j := 0; j < len(x.Value); j++ {
							if c := x.Value[j]; c <= ' ' || c >= 0x7f || c == '"' {
								t.Fatalf("extra header %s=%q holds byte %#x", x.Name, x.Value, c)
							}
						}
					}
					results[i] = handler.Result{Outcome: handler.Success}
				}
			})
			results := make([]handler.Result, 1)
			cloudevents.Middleware(cloudevents.Options{Mode: mode, Type: "t"})(next).Deliver(context.Background(), []*handler.Delivery{d}, results)
			if !reached && (results[0].Outcome != handler.Permanent || results[0].Reason == "") {
				t.Fatalf("not delivered and not answered permanent with a reason: %+v", results[0])
			}
			for i := range orig {
				if hs[i].Key != orig[i].Key || !bytes.Equal(hs[i].Value, orig[i].Value) {
					t.Fatalf("record header %d written: %q=%q, was %q=%q", i, hs[i].Key, hs[i].Value, orig[i].Key, orig[i].Value)
				}
			}
			if len(d.Headers) != len(orig) || len(d.Extra) != 0 {
				t.Fatalf("delivery not given back as it was: %d headers (was %d), extra %v", len(d.Headers), len(orig), d.Extra)
			}
		}
		if got, ok := cloudevents.MessageID(headersFrom(headers), value); ok && !strings.Contains(got, " ") {
			t.Fatalf("MessageID %q has no separator between source and id", got)
		}
	})
}
