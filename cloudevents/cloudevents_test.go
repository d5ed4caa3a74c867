package cloudevents_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafka-sidecar/kafka-sidecar/cloudevents"
	"github.com/kafka-sidecar/kafka-sidecar/handler"
	"github.com/kafka-sidecar/kafka-sidecar/handler/httpapp"
	"github.com/kafka-sidecar/kafka-sidecar/test/ceapp"
)

// The specs' own examples (see package ceapp): the Kafka binding's binary-mode event with Avro data and its
// structured-mode record, and the HTTP binding's binary-mode example (JSON data) arriving in Kafka binary mode.
const (
	specTime       = ceapp.SpecTime
	specJSONFormat = ceapp.SpecStructured
)

var avroData = ceapp.SpecAvro

func hdr(kv ...string) []kgo.RecordHeader {
	var hs []kgo.RecordHeader
	for i := 0; i < len(kv); i += 2 {
		hs = append(hs, kgo.RecordHeader{Key: kv[i], Value: []byte(kv[i+1])})
	}
	return hs
}

// binaryAvro is the Kafka binding's binary-mode example.
func binaryAvro() *handler.Delivery {
	return &handler.Delivery{
		ID: "mytopic/0/7", Topic: "mytopic", Partition: 0, Offset: 7, Attempt: 1,
		Timestamp: time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC), Key: []byte("mykey"), Value: avroData,
		Headers: hdr("ce_specversion", "1.0", "ce_type", "com.example.someevent", "ce_source", "/mycontext/subcontext",
			"ce_id", "1234-1234-1234", "ce_time", specTime, "ce_comexampleextension1", "value",
			"content-type", "application/avro", "tenant", "blue"),
	}
}

// binaryJSON is the HTTP binding's binary-mode example, arriving from Kafka in binary mode.
func binaryJSON() *handler.Delivery {
	return &handler.Delivery{
		ID: "mytopic/1/3", Topic: "mytopic", Partition: 1, Offset: 3, Attempt: 1,
		Timestamp: time.Date(2024, 5, 1, 12, 0, 1, 0, time.UTC), Value: []byte(`{"much":"wow"}`),
		Headers: hdr("ce_specversion", "1.0", "ce_type", "com.example.someevent", "ce_time", specTime,
			"ce_id", "1234-1234-1235", "ce_source", "/mycontext/subcontext", "content-type", "application/json; charset=utf-8"),
	}
}

// structured is the Kafka binding's structured-mode example with the JSON event format's example event.
func structured() *handler.Delivery {
	return &handler.Delivery{
		ID: "mytopic/0/8", Topic: "mytopic", Partition: 0, Offset: 8, Attempt: 1,
		Timestamp: time.Date(2024, 5, 1, 12, 0, 2, 0, time.UTC), Key: []byte("mykey"), Value: []byte(specJSONFormat),
		Headers: hdr("content-type", "application/cloudevents+json; charset=UTF-8"),
	}
}

// plain is a record that is no CloudEvent.
func plain() *handler.Delivery {
	return &handler.Delivery{
		ID: "orders/2/41", Topic: "orders", Partition: 2, Offset: 41, Attempt: 1,
		Timestamp: time.Date(2024, 5, 1, 12, 0, 3, 250e6, time.UTC), Value: []byte("hello"),
		Headers: hdr("content-type", "text/plain"),
	}
}

func wantEvent(t *testing.T, id, source, typ, tm, ct string, data []byte, ext map[string]any) event.Event {
	t.Helper()
	return ceapp.NewEvent(id, source, typ, ceapp.Time(t, tm), ct, data, ext)
}

// avroEvent and jsonEvent are what binaryAvro and binaryJSON carry.
func avroEvent(t *testing.T) event.Event {
	return wantEvent(t, "1234-1234-1234", "/mycontext/subcontext", "com.example.someevent", specTime,
		"application/avro", avroData, map[string]any{"comexampleextension1": "value"})
}

func jsonEvent(t *testing.T) event.Event {
	return wantEvent(t, "1234-1234-1235", "/mycontext/subcontext", "com.example.someevent", specTime,
		"application/json; charset=utf-8", []byte(`{"much":"wow"}`), nil)
}

// deliverTo sends ds through the middleware and the HTTP deliverer to url and returns the results.
func deliverTo(t *testing.T, url string, mode cloudevents.Mode, batch bool, ds ...*handler.Delivery) []handler.Result {
	t.Helper()
	d, err := httpapp.New(httpapp.Options{URL: url, Timeout: 5 * time.Second, Batch: batch})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.CloseIdleConnections)
	chain := handler.Chain(d, cloudevents.Middleware(cloudevents.Options{Mode: mode, Type: "com.example.record"}))
	results := make([]handler.Result, len(ds))
	chain.Deliver(context.Background(), ds, results)
	return results
}

// TestAutoSpeaksTheHTTPBinding sends the specs' examples through the middleware and the HTTP deliverer to an
// app built on the SDK's HTTP receiver, and checks the requests header by header and the events it parsed.
func TestAutoSpeaksTheHTTPBinding(t *testing.T) {
	app := ceapp.Start(t, ceapp.Options{})
	ds := []*handler.Delivery{binaryAvro(), binaryJSON(), structured(), plain()}
	headersBefore := make([][]kgo.RecordHeader, len(ds))
	for i, d := range ds {
		headersBefore[i] = slices.Clone(d.Headers)
	}
	for i, d := range ds {
		res := deliverTo(t, app.URL(), cloudevents.Auto, false, d)
		wantStatus := http.StatusOK
		if i == 3 {
			wantStatus = http.StatusUnsupportedMediaType // the SDK's receiver rejects what is no CloudEvent
		}
		if res[0].Status != wantStatus {
			t.Errorf("delivery %d: status %d (%s), want %d", i, res[0].Status, res[0].Reason, wantStatus)
		}
		if !slices.EqualFunc(d.Headers, headersBefore[i], func(a, b kgo.RecordHeader) bool {
			return a.Key == b.Key && bytes.Equal(a.Value, b.Value)
		}) || len(d.Extra) != 0 {
			t.Errorf("delivery %d: the caller's delivery was left changed: headers %v extra %v", i, d.Headers, d.Extra)
		}
	}
	events, reqs, parseErrors := app.Events(), app.Requests(), app.Rejected()
	if len(reqs) != 4 || len(events) != 3 || parseErrors != 1 {
		t.Fatalf("app saw %d requests, %d events, %d parse errors; want 4, 3, 1 (the plain record)", len(reqs), len(events), parseErrors)
	}

	// Binary mode, header by header: every attribute as ce-<name>, the data as the body, its content type
	// as Content-Type, and no Kafka-Header-Ce_* copies.
	for i, want := range []map[string]string{
		{"Ce-Specversion": "1.0", "Ce-Type": "com.example.someevent", "Ce-Source": "/mycontext/subcontext",
			"Ce-Id": "1234-1234-1234", "Ce-Time": specTime, "Ce-Comexampleextension1": "value",
			"Content-Type": "application/avro", "Kafka-Header-Tenant": "blue", "Kafka-Key": "mykey"},
		{"Ce-Specversion": "1.0", "Ce-Type": "com.example.someevent", "Ce-Source": "/mycontext/subcontext",
			"Ce-Id": "1234-1234-1235", "Ce-Time": specTime, "Content-Type": "application/json; charset=utf-8"},
		{"Content-Type": "application/cloudevents+json; charset=UTF-8", "Kafka-Key": "mykey"},
		{"Content-Type": "text/plain"},
	} {
		h := reqs[i].Header
		for name, v := range want {
			if got := h.Values(name); len(got) != 1 || got[0] != v {
				t.Errorf("request %d: %s = %q, want exactly %q", i, name, got, v)
			}
		}
		for name := range h {
			if strings.HasPrefix(strings.ToLower(name), "kafka-header-ce_") {
				t.Errorf("request %d: the attribute header %s was also sent as a record header", i, name)
			}
			if strings.HasPrefix(strings.ToLower(name), "ce-") && i >= 2 {
				t.Errorf("request %d: %s sent for a record that is not in binary mode", i, name)
			}
		}
		if !bytes.Equal(reqs[i].Body, ds[i].Value) {
			t.Errorf("request %d: body %q, want the value %q", i, reqs[i].Body, ds[i].Value)
		}
	}

	sameEvent(t, events[0], avroEvent(t))
	sameEvent(t, events[1], jsonEvent(t))
	sameEvent(t, events[2], ceapp.StructuredEvent())
}

// TestWrapPresentsEveryRecordAsAnEvent checks wrap mode: a plain record becomes a binary-mode event with the
// message ID, the kafka:// source, the configured type and the record time; CloudEvents keep their own.
func TestWrapPresentsEveryRecordAsAnEvent(t *testing.T) {
	app := ceapp.Start(t, ceapp.Options{})
	p, b := plain(), binaryAvro()
	for _, d := range []*handler.Delivery{p, b} {
		if res := deliverTo(t, app.URL(), cloudevents.Wrap, false, d); res[0].Status != http.StatusOK {
			t.Fatalf("status %d (%s), want 200", res[0].Status, res[0].Reason)
		}
	}
	events, reqs, parseErrors := app.Events(), app.Requests(), app.Rejected()
	if len(events) != 2 || parseErrors != 0 {
		t.Fatalf("app parsed %d events with %d errors; want 2 and none", len(events), parseErrors)
	}
	h := reqs[0].Header
	for name, v := range map[string]string{"Ce-Specversion": "1.0", "Ce-Id": "orders/2/41",
		"Ce-Source": "kafka://orders/2", "Ce-Type": "com.example.record", "Ce-Time": "2024-05-01T12:00:03.25Z",
		"Content-Type": "text/plain", "Idempotency-Key": "orders/2/41"} {
		if got := h.Values(name); len(got) != 1 || got[0] != v {
			t.Errorf("wrapped request: %s = %q, want exactly %q", name, got, v)
		}
	}
	sameEvent(t, events[0], wantEvent(t, "orders/2/41", "kafka://orders/2", "com.example.record",
		"2024-05-01T12:00:03.25Z", "text/plain", []byte("hello"), nil))
	sameEvent(t, events[1], avroEvent(t))
}

// TestBatchOfEventsIsBatchedMode checks that a batch of CloudEvents goes as application/cloudevents-batch+json
// that the SDK parses into the same events, and that a mixed batch keeps the sidecar's own format.
func TestBatchOfEventsIsBatchedMode(t *testing.T) {
	app := ceapp.Start(t, ceapp.Options{})
	res := deliverTo(t, app.URL(), cloudevents.Auto, true, binaryAvro(), binaryJSON(), structured())
	for i, r := range res {
		if r.Outcome != handler.Success {
			t.Errorf("record %d: %+v, want success", i, r)
		}
	}
	events, reqs, parseErrors := app.Events(), app.Requests(), app.Rejected()
	if len(reqs) != 1 || parseErrors != 0 || len(events) != 3 {
		t.Fatalf("app saw %d requests, %d events, %d parse errors; want 1, 3, 0", len(reqs), len(events), parseErrors)
	}
	if ct := reqs[0].Header.Get("Content-Type"); ct != "application/cloudevents-batch+json" {
		t.Errorf("batch Content-Type = %q", ct)
	}
	sameEvent(t, events[0], avroEvent(t))
	sameEvent(t, events[1], jsonEvent(t))
	sameEvent(t, events[2], ceapp.StructuredEvent())

	// Wrapped, every record is an event; in auto mode a plain record makes the batch the sidecar's format.
	wrapped := ceapp.Start(t, ceapp.Options{})
	deliverTo(t, wrapped.URL(), cloudevents.Wrap, true, plain(), binaryJSON())
	if events, errs := wrapped.Events(), wrapped.Rejected(); len(events) != 2 || errs != 0 {
		t.Errorf("wrapped batch: %d events, %d parse errors; want 2, 0", len(events), errs)
	} else {
		sameEvent(t, events[0], wantEvent(t, "orders/2/41", "kafka://orders/2", "com.example.record",
			"2024-05-01T12:00:03.25Z", "text/plain", []byte("hello"), nil))
	}
	srv, seen := capture(t)
	deliverTo(t, srv, cloudevents.Auto, true, plain(), binaryJSON())
	r := <-seen
	var doc struct {
		Records []json.RawMessage `json:"records"`
	}
	if r.Header.Get("Content-Type") != "application/json" || json.Unmarshal(r.body, &doc) != nil || len(doc.Records) != 2 {
		t.Errorf("mixed batch: Content-Type %q body %s; want the sidecar's JSON batch of 2", r.Header.Get("Content-Type"), r.body)
	}
}

// TestInvalidBinaryEventIsPermanent checks that ce_* headers that make no valid event never reach the app
// and are answered Permanent with the reason, while the rest of a batch is delivered.
func TestInvalidBinaryEventIsPermanent(t *testing.T) {
	for _, tt := range []struct {
		name    string
		headers []kgo.RecordHeader
		reason  string
	}{
		{"no source", hdr("ce_specversion", "1.0", "ce_id", "1", "ce_type", "t"), "source"},
		{"unknown version", hdr("ce_specversion", "9.9", "ce_id", "1", "ce_source", "/s", "ce_type", "t"), "specversion"},
		{"bad time", hdr("ce_specversion", "1.0", "ce_id", "1", "ce_source", "/s", "ce_type", "t", "ce_time", "yesterday"), "time"},
		{"bad extension name", hdr("ce_specversion", "1.0", "ce_id", "1", "ce_source", "/s", "ce_type", "t", "ce_my-ext", "x"), "my-ext"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			app := ceapp.Start(t, ceapp.Options{})
			bad := &handler.Delivery{ID: "x/0/1", Topic: "x", Headers: tt.headers, Value: []byte("v")}
			res := deliverTo(t, app.URL(), cloudevents.Auto, true, bad, binaryJSON())
			if res[0].Outcome != handler.Permanent || !strings.Contains(res[0].Reason, tt.reason) ||
				!strings.HasPrefix(res[0].Reason, "cloudevents: ") {
				t.Errorf("invalid event: %+v, want permanent naming %q", res[0], tt.reason)
			}
			if res[1].Outcome != handler.Success {
				t.Errorf("valid event beside it: %+v, want success", res[1])
			}
			if events := app.Events(); len(events) != 1 || events[0].ID() != "1234-1234-1235" {
				t.Errorf("app got %d events, want only the valid one", len(events))
			}
		})
	}
}

func TestMessageID(t *testing.T) {
	for _, tt := range []struct {
		name    string
		headers []kgo.RecordHeader
		value   string
		want    string
		ok      bool
	}{
		{"binary", binaryAvro().Headers, "", "/mycontext/subcontext 1234-1234-1234", true},
		{"structured", structured().Headers, specJSONFormat, "/mycontext A234-1234-1234", true},
		{"source with space and percent", hdr("ce_specversion", "1.0", "ce_id", "7", "ce_source", "a b%"), "", "a%20b%25 7", true},
		{"last header wins", hdr("ce_specversion", "1.0", "ce_id", "1", "ce_source", "/s", "ce_id", "2"), "", "/s 2", true},
		{"no id", hdr("ce_specversion", "1.0", "ce_source", "/s"), "", "", false},
		{"no specversion", hdr("ce_id", "1", "ce_source", "/s"), "", "", false},
		{"plain", plain().Headers, "hello", "", false},
		{"structured but not JSON", structured().Headers, "{", "", false},
		{"batch content type", hdr("content-type", "application/cloudevents-batch+json"), `{"id":"1","source":"/s"}`, "", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := cloudevents.MessageID(tt.headers, []byte(tt.value))
			if got != tt.want || ok != tt.ok {
				t.Errorf("MessageID = %q, %v; want %q, %v", got, ok, tt.want, tt.ok)
			}
		})
	}
}

func TestParseMode(t *testing.T) {
	for s, want := range map[string]cloudevents.Mode{"auto": cloudevents.Auto, "wrap": cloudevents.Wrap, "off": cloudevents.Off} {
		if m, err := cloudevents.ParseMode(s); err != nil || m != want {
			t.Errorf("ParseMode(%q) = %v, %v", s, m, err)
		}
	}
	if _, err := cloudevents.ParseMode("Auto"); err == nil {
		t.Error("ParseMode accepted a value that is not auto, wrap or off")
	}
	if cloudevents.Middleware(cloudevents.Options{Mode: cloudevents.Off}) != nil {
		t.Error("Middleware for off is not nil")
	}
}
