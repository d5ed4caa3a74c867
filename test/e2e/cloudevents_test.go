package e2e

import (
	"bytes"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafka-sidecar/kafka-sidecar/test/ceapp"
)

// ceRecord builds a record with the message ID header and the given headers.
func ceRecord(topic, id string, value []byte, kv ...string) *kgo.Record {
	r := &kgo.Record{Topic: topic, Key: []byte("mykey"), Value: value,
		Headers: []kgo.RecordHeader{{Key: idHeader, Value: []byte(id)}}}
	for i := 0; i < len(kv); i += 2 {
		r.Headers = append(r.Headers, kgo.RecordHeader{Key: kv[i], Value: []byte(kv[i+1])})
	}
	return r
}

// binaryEvent is the Kafka binding's binary-mode example with the given event id.
func binaryEvent(topic, msgID, ceID string) *kgo.Record {
	return ceRecord(topic, msgID, ceapp.SpecAvro, "ce_specversion", "1.0", "ce_type", "com.example.someevent",
		"ce_source", "/mycontext/subcontext", "ce_id", ceID, "ce_time", ceapp.SpecTime,
		"ce_comexampleextension1", "value", "content-type", "application/avro")
}

// eventsByID indexes events by id; an id seen twice keeps the last.
func eventsByID(evs []event.Event) map[string]event.Event {
	m := make(map[string]event.Event, len(evs))
	for _, e := range evs {
		m[e.ID()] = e
	}
	return m
}

// TestCloudEventsAuto produces the specs' examples into a topic and checks that the app receives each as the
// HTTP binding says, header by header, that an app built on the SDK's HTTP receiver parses every one with
// the same attributes and data, and that the retry and dead-letter copies keep the ce_* headers untouched
// (the event that fails twice goes through a retry tier and reaches the app in binary mode again).
func TestCloudEventsAuto(t *testing.T) {
	s := newStack(t, 1)
	app := ceapp.Start(t, ceapp.Options{PlainOK: true, Answer: func(id string, n int) int {
		switch {
		case id == "reject-me":
			return http.StatusUnprocessableEntity
		case id == "flaky" && n <= 2:
			return http.StatusInternalServerError
		}
		return 0
	}})
	recs := []*kgo.Record{
		binaryEvent(s.topic, "ce-avro", "1234-1234-1234"),
		ceRecord(s.topic, "ce-json", []byte(`{"much":"wow"}`), "ce_specversion", "1.0", "ce_type", "com.example.someevent",
			"ce_time", ceapp.SpecTime, "ce_id", "1234-1234-1235", "ce_source", "/mycontext/subcontext",
			"content-type", "application/json; charset=utf-8"),
		ceRecord(s.topic, "ce-structured", []byte(ceapp.SpecStructured), "content-type", "application/cloudevents+json; charset=UTF-8"),
		ceRecord(s.topic, "plain", []byte("hello"), "content-type", "text/plain"),
		binaryEvent(s.topic, "ce-flaky", "flaky"),
		binaryEvent(s.topic, "ce-reject", "reject-me"),
	}
	s.kafka.produce(t, recs...)
	since := time.Now()
	sc := startSidecar(t, s.env("SIDECAR_CLOUDEVENTS=auto", "SIDECAR_APP_URL="+app.URL()))
	waitFor(t, 30*time.Second, func() bool {
		tot := sc.sc.Metrics().Totals()
		return tot.Delivered == 5 && tot.DeadLettered == 1
	}, "5 records delivered and 1 dead-lettered (now %+v)", lazyTotals{sc})

	if n := app.Rejected(); n != 0 {
		t.Errorf("the SDK rejected %d requests, want none", n)
	}
	got := eventsByID(app.Events())
	avro := ceapp.NewEvent("1234-1234-1234", "/mycontext/subcontext", "com.example.someevent", ceapp.Time(t, ceapp.SpecTime),
		"application/avro", ceapp.SpecAvro, map[string]any{"comexampleextension1": "value"})
	for _, want := range []event.Event{
		avro,
		ceapp.NewEvent("1234-1234-1235", "/mycontext/subcontext", "com.example.someevent", ceapp.Time(t, ceapp.SpecTime),
			"application/json; charset=utf-8", []byte(`{"much":"wow"}`), nil),
		ceapp.StructuredEvent(),
		ceapp.NewEvent("flaky", "/mycontext/subcontext", "com.example.someevent", ceapp.Time(t, ceapp.SpecTime),
			"application/avro", ceapp.SpecAvro, map[string]any{"comexampleextension1": "value"}),
	} {
		e, ok := got[want.ID()]
		if !ok {
			t.Errorf("the app never parsed event %s", want.ID())
			continue
		}
		if diff := ceapp.SameEvent(e, want); diff != "" {
			t.Errorf("event %s: %s", want.ID(), diff)
		}
	}

	// Header by header, per the HTTP binding: binary mode as ce-* headers with the data's Content-Type, the
	// structured event and the plain record as they were; never a Kafka-Header-Ce_* copy.
	binaryHeaders := map[string]string{"Ce-Specversion": "1.0", "Ce-Type": "com.example.someevent",
		"Ce-Source": "/mycontext/subcontext", "Ce-Time": ceapp.SpecTime, "Ce-Comexampleextension1": "value",
		"Content-Type": "application/avro"}
	flakyTiers := 0
	for _, r := range app.Requests() {
		id := r.Header.Get("Kafka-Header-Message-Id")
		var want map[string]string
		switch id {
		case "ce-avro", "ce-flaky", "ce-reject":
			want = binaryHeaders
		case "ce-json":
			want = map[string]string{"Ce-Id": "1234-1234-1235", "Content-Type": "application/json; charset=utf-8"}
		case "ce-structured":
			want = map[string]string{"Content-Type": "application/cloudevents+json; charset=UTF-8"}
		case "plain":
			want = map[string]string{"Content-Type": "text/plain"}
		default:
			t.Errorf("a request for an unknown record: %v", r.Header)
			continue
		}
		for name, v := range want {
			if g := r.Header.Values(name); len(g) != 1 || g[0] != v {
				t.Errorf("%s (attempt %s): %s = %q, want exactly %q", id, r.Header.Get("Kafka-Attempt"), name, g, v)
			}
		}
		for name := range r.Header {
			lower := strings.ToLower(name)
			if strings.HasPrefix(lower, "kafka-header-ce_") {
				t.Errorf("%s: the attribute header %s was also sent as a record header", id, name)
			}
			if strings.HasPrefix(lower, "ce-") && (id == "ce-structured" || id == "plain") {
				t.Errorf("%s: %s sent for a record not in binary mode", id, name)
			}
		}
		if id == "ce-flaky" && r.Header.Get("Kafka-Attempt") == "3" {
			flakyTiers++
		}
		for _, rec := range recs {
			if headerValue(rec, idHeader) == id && !bytes.Equal(r.Body, rec.Value) {
				t.Errorf("%s: body %q, want the value %q", id, r.Body, rec.Value)
			}
		}
	}
	if flakyTiers != 1 {
		t.Errorf("the flaky event reached the app %d times on attempt 3 (from the retry tier), want 1", flakyTiers)
	}

	// The copies are built from the record: every ce_* header as it was produced.
	retried := s.kafka.readTopic(t, s.retryTopic(1))
	dead := s.kafka.readTopic(t, s.dlqTopic())
	if len(retried) != 1 || len(dead) != 1 {
		t.Fatalf("retry tier holds %d records and the dead-letter topic %d, want 1 and 1", len(retried), len(dead))
	}
	checkCopyStatus(t, retried[0], recs[4], s, 2, since, http.StatusInternalServerError)
	checkCopyStatus(t, dead[0], recs[5], s, 1, since, http.StatusUnprocessableEntity)
}

// TestCloudEventsWrap checks wrap mode: every plain record reaches an SDK app as a binary-mode event with the
// message ID, the kafka:// source of the record's partition, the configured type and the record time; in
// batch mode the same records arrive as one batched-mode request.
func TestCloudEventsWrap(t *testing.T) {
	for _, delivery := range []string{"single", "batch"} {
		t.Run(delivery, func(t *testing.T) {
			const partitions, n = 2, 6
			s := newStack(t, partitions)
			app := ceapp.Start(t, ceapp.Options{})
			recs := makeRecords(s.topic, partitions, n, "wrap")
			s.kafka.produce(t, recs...)
			sc := startSidecar(t, s.env("SIDECAR_CLOUDEVENTS=wrap", "SIDECAR_APP_URL="+app.URL(), "SIDECAR_CLOUDEVENTS_TYPE=com.example.order",
				"SIDECAR_DELIVERY="+delivery, "SIDECAR_BATCH_MAX_WAIT=50ms"))
			waitFor(t, 30*time.Second, func() bool { return sc.sc.Metrics().Totals().Delivered == n },
				"%d records delivered (now %+v)", n, lazyTotals{sc})
			if r := app.Rejected(); r != 0 {
				t.Errorf("the SDK rejected %d requests, want none", r)
			}
			got := eventsByID(app.Events())
			for _, rec := range recs {
				id := headerValue(rec, idHeader)
				want := ceapp.NewEvent(id, "kafka://"+s.topic+"/"+strconv.Itoa(int(rec.Partition)), "com.example.order",
					rec.Timestamp.Truncate(time.Millisecond), "application/octet-stream", rec.Value, nil)
				e, ok := got[id]
				if !ok {
					t.Errorf("the app never parsed an event with id %s (got %d events)", id, len(got))
					continue
				}
				if diff := ceapp.SameEvent(e, want); diff != "" {
					t.Errorf("event %s: %s", id, diff)
				}
			}
			if delivery == "batch" {
				for _, r := range app.Requests() {
					if ct := r.Header.Get("Content-Type"); ct != "application/cloudevents-batch+json" {
						t.Errorf("batch request Content-Type %q, want application/cloudevents-batch+json", ct)
					}
				}
			}
		})
	}
}

// TestCloudEventsMessageID checks that without SIDECAR_ID_HEADER a CloudEvent's message ID is its source and
// id together: the same event produced twice (binary, then structured mode) reaches the app once, with that
// Idempotency-Key, while a plain record keeps topic/partition/offset; with SIDECAR_CLOUDEVENTS=off the two
// copies are two messages.
func TestCloudEventsMessageID(t *testing.T) {
	for _, mode := range []string{"auto", "off"} {
		t.Run(mode, func(t *testing.T) {
			s := newStack(t, 1)
			structuredTwin := `{"specversion":"1.0","type":"com.example.someevent","source":"/mycontext/subcontext",` +
				`"id":"1234-1234-1234","time":"` + ceapp.SpecTime + `","datacontenttype":"application/avro","data_base64":"AgZmb28A/w=="}`
			recs := []*kgo.Record{
				binaryEvent(s.topic, "a", "1234-1234-1234"),
				ceRecord(s.topic, "b", []byte(structuredTwin), "content-type", "application/cloudevents+json"),
				ceRecord(s.topic, "c", []byte("plain")),
			}
			s.kafka.produce(t, recs...)
			sc := startSidecar(t, s.env("SIDECAR_ID_HEADER=", "SIDECAR_CLOUDEVENTS="+mode))
			if mode == "auto" {
				waitFor(t, 30*time.Second, func() bool {
					tot := sc.sc.Metrics().Totals()
					return tot.Delivered == 2 && tot.Duplicates == 1
				}, "2 records delivered and 1 duplicate (now %+v)", lazyTotals{sc})
			} else {
				waitFor(t, 30*time.Second, func() bool { return sc.sc.Metrics().Totals().Delivered == 3 },
					"3 records delivered (now %+v)", lazyTotals{sc})
			}
			s.kafka.waitCommitted(t, s.group, s.topic, endsOf(recs), 15*time.Second)
			var keys []string
			for _, r := range s.app.requests() {
				keys = append(keys, r.Header.Get("Idempotency-Key"))
			}
			sort.Strings(keys)
			plainID := s.topic + "/0/" + strconv.FormatInt(recs[2].Offset, 10)
			want := []string{"/mycontext/subcontext 1234-1234-1234", plainID}
			if mode == "off" {
				want = []string{s.topic + "/0/" + strconv.FormatInt(recs[0].Offset, 10),
					s.topic + "/0/" + strconv.FormatInt(recs[1].Offset, 10), plainID}
				sort.Strings(want)
			}
			if !slices.Equal(keys, want) {
				t.Errorf("Idempotency-Keys %q, want %q", keys, want)
			}
		})
	}
}
