package decode

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/twmb/franz-go/pkg/sr"

	"github.com/kafka-sidecar/kafka-sidecar/handler"
)

// recorder is the deliverer after the decoder: it keeps copies of what it was handed and answers Success.
type recorder struct {
	got []handler.Delivery
}

func (r *recorder) Deliver(_ context.Context, ds []*handler.Delivery, results []handler.Result) {
	for i, d := range ds {
		r.got = append(r.got, *d)
		results[i] = handler.Result{Outcome: handler.Success, Status: 200}
	}
}

func TestDecoderPresentsJSONAndKeepsTheRecord(t *testing.T) {
	fake, reg := fakeRegistry(t)
	fake.SeedSchema("orders-value", 1, 11, sr.Schema{Schema: `{"type":"record","name":"R","fields":[{"name":"n","type":"long"}]}`})
	fake.SeedSchema("orders-key", 1, 12, sr.Schema{Schema: stringAvro})
	dec := New(reg, Options{Keys: true})
	rec := &recorder{}
	mw := dec.Middleware(rec)

	value := wire(11, []byte{0x54})
	key := wire(12, []byte{0x06, 'k', '-', '1'})
	valueCopy, keyCopy := bytes.Clone(value), bytes.Clone(key)
	plain := []byte("plain text")
	extra := []handler.Header{{Name: "traceparent", Value: "00-x"}}
	ds := []*handler.Delivery{
		{ID: "a", Topic: "orders", Key: key, Value: value, Extra: extra},
		{ID: "b", Topic: "orders", Value: plain},
	}
	results := make([]handler.Result, len(ds))
	mw.Deliver(context.Background(), ds, results)

	if len(rec.got) != 2 || results[0].Outcome != handler.Success || results[1].Outcome != handler.Success {
		t.Fatalf("delivered %d, results %+v", len(rec.got), results)
	}
	a, b := rec.got[0], rec.got[1]
	if string(a.Value) != `{"n":42}` || a.ContentType != ContentTypeJSON || string(a.Key) != `"k-1"` {
		t.Fatalf("decoded: value %s content type %q key %s", a.Value, a.ContentType, a.Key)
	}
	for name, want := range map[string]string{HeaderSchemaID: "11", HeaderSchemaSubject: "orders-value",
		HeaderKeySchemaID: "12", HeaderKeySchemaSubject: "orders-key", "traceparent": "00-x"} {
		if v, ok := a.ExtraValue(name); !ok || v != want {
			t.Errorf("extra %s = %q, %v; want %q", name, v, ok, want)
		}
	}
	if string(b.Value) != "plain text" || b.ContentType != "" || len(b.Extra) != 0 {
		t.Fatalf("a value not in wire format changed: %+v", b)
	}
	// The record's bytes are untouched and the delivery is as the caller gave it: retry and dead-letter
	// copies are built from them.
	if !bytes.Equal(value, valueCopy) || !bytes.Equal(key, keyCopy) {
		t.Fatal("the decoder wrote into the record's bytes")
	}
	if !bytes.Equal(ds[0].Value, valueCopy) || !bytes.Equal(ds[0].Key, keyCopy) || ds[0].ContentType != "" ||
		len(ds[0].Extra) != 1 || len(extra) != 1 {
		t.Fatalf("the delivery was not put back: %+v", ds[0])
	}
}

func TestDecoderAnswersWhatItCannotDecode(t *testing.T) {
	fake, reg := fakeRegistry(t)
	fake.SeedSchema("orders-value", 1, 11, sr.Schema{Schema: `{"type":"record","name":"R","fields":[{"name":"n","type":"long"}]}`})
	var down atomic.Bool
	fake.Intercept(func(w http.ResponseWriter, r *http.Request) bool {
		if down.Load() {
			http.Error(w, "unavailable", http.StatusServiceUnavailable)
			return true
		}
		return false
	})
	dec := New(reg, Options{})
	rec := &recorder{}
	mw := dec.Middleware(rec)

	ds := []*handler.Delivery{
		{ID: "unknown", Topic: "orders", Value: wire(99, []byte{0x02})},
		{ID: "good", Topic: "orders", Value: wire(11, []byte{0x02})},
		{ID: "corrupt", Topic: "orders", Value: wire(11, []byte{0x02, 0x02})},
		{ID: "short", Topic: "orders", Value: []byte{0, 0, 0, 11}}, // too short for the header: not wire format
	}
	results := make([]handler.Result, len(ds))
	mw.Deliver(context.Background(), ds, results)
	if results[0].Outcome != handler.Permanent || !strings.Contains(results[0].Reason, "schema id 99") ||
		!strings.Contains(results[0].Reason, "not found") {
		t.Errorf("unknown id: %+v, want Permanent naming schema id 99", results[0])
	}
	if results[2].Outcome != handler.Permanent || !strings.Contains(results[2].Reason, "schema id 11") {
		t.Errorf("corrupt data: %+v, want Permanent naming schema id 11", results[2])
	}
	if results[1].Outcome != handler.Success || results[3].Outcome != handler.Success || len(rec.got) != 2 ||
		rec.got[0].ID != "good" || rec.got[1].ID != "short" {
		t.Fatalf("the decodable records were not passed on alone: %+v, %d delivered", results, len(rec.got))
	}
	if dec.Unavailable() != nil {
		t.Fatalf("Unavailable() = %v with the registry up", dec.Unavailable())
	}

	// An outage: the record is offered again later, no attempt used; readiness can tell why.
	down.Store(true)
	ds = []*handler.Delivery{{ID: "new", Topic: "orders", Value: wire(13, []byte{0x02})}}
	results = results[:1]
	mw.Deliver(context.Background(), ds, results)
	if results[0].Outcome != handler.AppUnavailable || !strings.Contains(results[0].Reason, "schema registry unavailable") {
		t.Fatalf("outage: %+v, want AppUnavailable", results[0])
	}
	if err := dec.Unavailable(); err == nil || !strings.Contains(err.Error(), "schema id 13") {
		t.Fatalf("Unavailable() = %v during the outage", err)
	}
	// Cached schemas still decode while the registry is down, and the outage still shows.
	ds = []*handler.Delivery{{ID: "cached", Topic: "orders", Value: wire(11, []byte{0x04})}}
	mw.Deliver(context.Background(), ds, results)
	if results[0].Outcome != handler.Success || string(rec.got[len(rec.got)-1].Value) != `{"n":2}` {
		t.Fatalf("cached schema during the outage: %+v", results[0])
	}
	if dec.Unavailable() == nil {
		t.Fatal("a cached schema hid the outage")
	}
	down.Store(false)
	fake.SeedSchema("other-value", 1, 13, sr.Schema{Schema: stringAvro})
	ds = []*handler.Delivery{{ID: "new", Topic: "orders", Value: wire(13, []byte{0x02, 'x'})}}
	mw.Deliver(context.Background(), ds, results)
	if results[0].Outcome != handler.Success || dec.Unavailable() != nil {
		t.Fatalf("after the outage: %+v, Unavailable() = %v", results[0], dec.Unavailable())
	}
}

func TestDecoderLeavesKeysAloneByDefault(t *testing.T) {
	fake, reg := fakeRegistry(t)
	fake.SeedSchema("orders-key", 1, 12, sr.Schema{Schema: stringAvro})
	rec := &recorder{}
	mw := New(reg, Options{}).Middleware(rec)
	key := wire(12, []byte{0x02, 'k'})
	results := make([]handler.Result, 1)
	mw.Deliver(context.Background(), []*handler.Delivery{{Topic: "orders", Key: key, Value: []byte("v")}}, results)
	if !bytes.Equal(rec.got[0].Key, key) {
		t.Fatalf("key changed to %q without Keys", rec.got[0].Key)
	}
}
