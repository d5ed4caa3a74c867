package httpapp

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/kafka-sidecar/kafka-sidecar/handler"
	"github.com/twmb/franz-go/pkg/kgo"
)

// batchWithin runs DeliverBatch and fails the test when it does not return within waitLimit.
func batchWithin(t *testing.T, ctx context.Context, h *Deliverer, ds []*handler.Delivery) []handler.Result {
	t.Helper()
	done := make(chan []handler.Result, 1)
	go func() { done <- h.DeliverBatch(ctx, ds) }()
	select {
	case res := <-done:
		if len(res) != len(ds) {
			t.Fatalf("DeliverBatch returned %d results for %d records", len(res), len(ds))
		}
		return res
	case <-time.After(waitLimit):
		t.Fatalf("DeliverBatch did not return within %v", waitLimit)
		return nil
	}
}

func batchOf(ids ...string) []*handler.Delivery {
	ds := make([]*handler.Delivery, len(ids))
	for i, id := range ids {
		ds[i] = &handler.Delivery{ID: id, Topic: "orders", Offset: int64(i), Value: []byte("v"), Attempt: 1}
	}
	return ds
}

func TestDeliverBatchRequest(t *testing.T) {
	srv, ch := capturingServer(t, http.StatusOK)
	h := newTestHTTP(t, Options{URL: srv.URL + "/batch/{topic}"})
	ts := time.Date(2024, 5, 1, 12, 0, 0, 250_000_000, time.UTC)
	ds := []*handler.Delivery{
		sampleDelivery(),
		{
			ID: "id-\xff", Topic: "orders", Partition: 1, Offset: 43, Timestamp: ts, Key: []byte{0, 1}, Attempt: 2,
			Value: []byte{0xde, 0xad, 0xbe, 0xef},
			Headers: []kgo.RecordHeader{
				{Key: "x", Value: []byte("1")},
				{Key: "x", Value: []byte("2")},
				{Key: "\xff", Value: []byte("v")},
				{Key: "y", Value: []byte("\xfe")},
				{Key: "q", Value: []byte("say \"hi\"\n")},
			},
		},
		{
			ID: "c", Topic: "orders", Partition: 1, Offset: 44, Timestamp: ts, Attempt: 1, Value: []byte("not json"),
			Headers: []kgo.RecordHeader{{Key: "Content-Type", Value: []byte("application/vnd.api+json; charset=utf-8")}},
		},
		{
			ID: "d", Topic: "orders", Partition: 1, Offset: 45, Timestamp: ts, Key: []byte{}, Attempt: 1, Value: []byte(" [1, 2]\n"),
			Headers: []kgo.RecordHeader{{Key: "content-type", Value: []byte("application/vnd.api+json")}},
		},
	}
	res := batchWithin(t, context.Background(), h, ds)
	for i, r := range res {
		if r.Outcome != handler.Success || r.Status != http.StatusOK {
			t.Errorf("result %d = %+v, want success", i, r)
		}
	}
	got := receive(t, ch)
	want := `{"records":[` +
		`{"id":"orders/3/42","topic":"orders","partition":3,"offset":42,"timestamp":"2024-05-01T12:00:00.250Z","key":"customer-7","headers":{"content-type":"application/json","tenant":"acme"},"attempt":1,"value":{"total":12.5}},` +
		`{"id":"aWQt/w==","id_encoding":"base64","topic":"orders","partition":1,"offset":43,"timestamp":"2024-05-01T12:00:00.250Z","key":"AAE=","key_encoding":"base64","headers":{"x":"2","q":"say \"hi\"\n"},"attempt":2,"value":"3q2+7w==","value_encoding":"base64"},` +
		`{"id":"c","topic":"orders","partition":1,"offset":44,"timestamp":"2024-05-01T12:00:00.250Z","headers":{"Content-Type":"application/vnd.api+json; charset=utf-8"},"attempt":1,"value":"bm90IGpzb24=","value_encoding":"base64"},` +
		`{"id":"d","topic":"orders","partition":1,"offset":45,"timestamp":"2024-05-01T12:00:00.250Z","key":"","headers":{"content-type":"application/vnd.api+json"},"attempt":1,"value":[1, 2]}` +
		`]}`
	if string(got.body) != want {
		t.Errorf("body =\n%s\nwant\n%s", got.body, want)
	}
	if !json.Valid(got.body) {
		t.Error("the body is not valid JSON")
	}
	if got.requestURI != "/batch/orders" {
		t.Errorf("request URI = %q, want /batch/orders", got.requestURI)
	}
	for k, v := range map[string]string{
		"Content-Type":     "application/json",
		"Kafka-Batch-Size": "4",
		"Idempotency-Key":  batchKey(ds),
	} {
		if g := got.header.Get(k); g != v {
			t.Errorf("header %s = %q, want %q", k, g, v)
		}
	}
	if !strings.HasPrefix(got.header.Get("Idempotency-Key"), "batch-") || len(got.header.Get("Idempotency-Key")) != len("batch-")+64 {
		t.Errorf("Idempotency-Key = %q, want batch- and a hex SHA-256", got.header.Get("Idempotency-Key"))
	}
	if batchKey(ds) == batchKey(ds[:3]) || batchKey(batchOf("ab", "c")) == batchKey(batchOf("a", "bc")) {
		t.Error("different batches share an Idempotency-Key")
	}
}

func TestDeliverBatchAnswer(t *testing.T) {
	type want struct {
		outcome handler.Outcome
		status  int
		reason  string
	}
	ok200 := want{handler.Success, 200, ""}
	tests := []struct {
		name     string
		status   int
		header   map[string]string
		body     string
		maxBytes int64
		want     []want // for records "a", "b", "c"
		// retryAfter is the RetryAfter expected on every result with status 429 or 503.
		retryAfter time.Duration
	}{
		{name: "all done, empty body", status: 200, want: []want{ok200, ok200, ok200}},
		{
			name: "per-record statuses", status: 200, header: map[string]string{"Retry-After": "5"},
			body:       `{"results":[{"id":"a","status":200},{"id":"b","status":422,"error":"total must be positive"},{"id":"c","status":503}]}`,
			want:       []want{ok200, {handler.Permanent, 422, "http 422: total must be positive"}, {handler.AppUnavailable, 503, "http 503"}},
			retryAfter: 5 * time.Second,
		},
		{
			name: "records not mentioned take the whole status", status: 500,
			body: `{"results":[{"id":"a","status":200}]}`,
			want: []want{ok200,
				{handler.Retryable, 500, "http 500: no result for this record in the batch answer"},
				{handler.Retryable, 500, "http 500: no result for this record in the batch answer"}},
		},
		{name: "unparseable 2xx body means all done", status: 200, body: "<html>oops", want: []want{ok200, ok200, ok200}},
		{
			name: "unparseable 5xx body", status: 502, body: "bad gateway",
			want: []want{{handler.Retryable, 502, "http 502: bad gateway"}, {handler.Retryable, 502, "http 502: bad gateway"}, {handler.Retryable, 502, "http 502: bad gateway"}},
		},
		{
			name: "per-record actions, and a status of 0 takes the whole status", status: 200,
			body: `{"results":[{"id":"a","status":200,"action":"dead-letter"},{"id":"b","action":"RETRY","error":"later"},{"id":"c","status":0}]}`,
			want: []want{{handler.Permanent, 200, "http 200 (action dead-letter)"}, {handler.Retryable, 200, "http 200 (action retry): later"}, ok200},
		},
		{
			name: "the answer's action applies to records without their own", status: 200,
			header: map[string]string{"Kafka-Sidecar-Action": "dead-letter"},
			body:   `{"results":[{"id":"a","status":200,"action":"retry"},{"id":"b","status":200,"action":"bogus"}]}`,
			want: []want{{handler.Retryable, 200, "http 200 (action retry)"}, {handler.Permanent, 200, "http 200 (action dead-letter)"},
				{handler.Permanent, 200, "http 200 (action dead-letter): no result for this record in the batch answer"}},
		},
		{
			name: "the first entry for an id counts and unknown ids are ignored", status: 200,
			body: `{"results":[{"id":"a","status":400},{"id":"a","status":200},{"id":"zzz","status":500}]}`,
			want: []want{{handler.Permanent, 400, "http 400"}, ok200, ok200},
		},
		{
			name: "wrong field types make the body unparseable", status: 500,
			body: `{"results":[{"id":"a","status":"200"}]}`,
			want: []want{
				{handler.Retryable, 500, `http 500: {"results":[{"id":"a","status":"200"}]}`},
				{handler.Retryable, 500, `http 500: {"results":[{"id":"a","status":"200"}]}`},
				{handler.Retryable, 500, `http 500: {"results":[{"id":"a","status":"200"}]}`}},
		},
		{
			name: "a body over the cap counts as unparseable", status: 200, maxBytes: 64,
			body: `{"results":[{"id":"a","status":500}],"padding":"` + strings.Repeat("p", 4096) + `"}`,
			want: []want{ok200, ok200, ok200},
		},
		{
			name: "429 for the whole batch honours Retry-After", status: 429, header: map[string]string{"Retry-After": "2"},
			want:       []want{{handler.AppUnavailable, 429, "http 429"}, {handler.AppUnavailable, 429, "http 429"}, {handler.AppUnavailable, 429, "http 429"}},
			retryAfter: 2 * time.Second,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				discardBody(r)
				for k, v := range tt.header {
					w.Header().Set(k, v)
				}
				w.WriteHeader(tt.status)
				_, _ = io.WriteString(w, tt.body) // a client that went away fails on its side
			}))
			defer srv.Close()
			h := newTestHTTP(t, Options{URL: srv.URL, MaxResponseBytes: tt.maxBytes})
			res := batchWithin(t, context.Background(), h, batchOf("a", "b", "c"))
			for i, w := range tt.want {
				r := res[i]
				if r.Outcome != w.outcome || r.Status != w.status || r.Reason != w.reason {
					t.Errorf("record %d = {%v %d %q}, want {%v %d %q}", i, r.Outcome, r.Status, r.Reason, w.outcome, w.status, w.reason)
				}
				wantRA := time.Duration(0)
				if r.Outcome != handler.Success && (r.Status == 429 || r.Status == 503) {
					wantRA = tt.retryAfter
				}
				if r.RetryAfter != wantRA {
					t.Errorf("record %d RetryAfter = %v, want %v", i, r.RetryAfter, wantRA)
				}
				if r.Elapsed <= 0 {
					t.Errorf("record %d Elapsed = %v, want > 0", i, r.Elapsed)
				}
			}
		})
	}
}

func TestDecodeBatchAnswerDuplicateIDs(t *testing.T) {
	ids := []string{"a", "b", "a"}
	results := make([]handler.Result, len(ids))
	body := []byte(`{"results":[{"id":"a","status":422}]}`)
	decodeBatchAnswer(results, ids, 200, "", "", body, true, time.Now())
	for i, want := range []handler.Outcome{handler.Permanent, handler.Success, handler.Permanent} {
		if results[i].Outcome != want {
			t.Errorf("record %d (id %q) = %v, want %v", i, ids[i], results[i].Outcome, want)
		}
	}
}

func TestDeliverBatchFailures(t *testing.T) {
	t.Run("timeout", func(t *testing.T) {
		srv, _ := blockingServer(t)
		h := newTestHTTP(t, Options{URL: srv.URL, Timeout: 100 * time.Millisecond})
		for i, r := range batchWithin(t, context.Background(), h, batchOf("a", "b")) {
			if r.Outcome != handler.Retryable || r.Reason != "timeout after 100ms" {
				t.Errorf("record %d = %+v, want Retryable timeout", i, r)
			}
		}
	})
	t.Run("canceled", func(t *testing.T) {
		srv, arrived := blockingServer(t)
		h := newTestHTTP(t, Options{URL: srv.URL})
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go func() {
			select {
			case <-arrived:
				cancel()
			case <-time.After(waitLimit):
			}
		}()
		for i, r := range batchWithin(t, ctx, h, batchOf("a", "b")) {
			if r.Outcome != handler.AppUnavailable || r.Reason != "delivery canceled" {
				t.Errorf("record %d = %+v, want AppUnavailable canceled", i, r)
			}
		}
	})
	t.Run("refused", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		h := newTestHTTP(t, Options{URL: "http://" + addr})
		for i, r := range batchWithin(t, context.Background(), h, batchOf("a", "b", "c")) {
			if r.Outcome != handler.AppUnavailable || r.Reason != "connection refused" {
				t.Errorf("record %d = %+v, want AppUnavailable refused", i, r)
			}
		}
	})
	t.Run("empty batch sends nothing", func(t *testing.T) {
		srv, ch := capturingServer(t, http.StatusOK)
		h := newTestHTTP(t, Options{URL: srv.URL})
		if res := batchWithin(t, context.Background(), h, nil); len(res) != 0 {
			t.Errorf("DeliverBatch(nil) = %v, want no results", res)
		}
		select {
		case <-ch:
			t.Error("an empty batch reached the app")
		default:
		}
	})
}

func TestDeliverBatchCapsResponseBody(t *testing.T) {
	const limit = 2048
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		discardBody(r)
		w.WriteHeader(http.StatusOK)
		buf := []byte(strings.Repeat("z", 1<<20))
		for range 64 { // at most 64 MiB; the first failed write ends it
			if _, err := w.Write(buf); err != nil {
				return
			}
		}
	}))
	defer srv.Close()
	h := newTestHTTP(t, Options{URL: srv.URL, MaxResponseBytes: limit})
	counter := countReads(h)
	for i, r := range batchWithin(t, context.Background(), h, batchOf("a", "b")) {
		if r.Outcome != handler.Success {
			t.Errorf("record %d = %+v, want success from the whole status", i, r)
		}
	}
	// One byte past the cap tells that the body is longer.
	if got, most := counter.Load(), int64(limit+1+readSlack); got > most {
		t.Errorf("read %d bytes from the connection, want at most %d", got, most)
	}
}

func TestIsJSONContentType(t *testing.T) {
	for ct, want := range map[string]bool{
		"application/json":                true,
		"Application/JSON; charset=utf-8": true,
		"application/cloudevents+json":    true,
		"application/problem+json":        true,
		"text/json":                       false,
		"application/jsonl":               false,
		"application/octet-stream":        false,
		"":                                false,
		"application/json;;":              true,
		" application/json ; q=1":         true,
		"application/+json":               false,
		"+json":                           false,
		"application/":                    false,
		"/json":                           false,
		"a b/x+json":                      false,
	} {
		if got := isJSONContentType([]byte(ct)); got != want {
			t.Errorf("isJSONContentType(%q) = %v, want %v", ct, got, want)
		}
	}
}

func TestAppendJSONString(t *testing.T) {
	for in, want := range map[string]string{
		"":               `""`,
		"plain":          `"plain"`,
		"q\"b\\":         `"q\"b\\"`,
		"\n\r\t\x00\x1f": `"\n\r\t\u0000\u001f"`,
		"grüße €":        `"grüße €"`,
		"bad\xffbyte":    `"bad\ufffdbyte"`,
		"<html>&":        `"<html>&"`,
	} {
		got := string(appendJSONString(nil, in))
		if got != want {
			t.Errorf("appendJSONString(%q) = %s, want %s", in, got, want)
		}
		var back string
		if err := json.Unmarshal([]byte(got), &back); err != nil {
			t.Errorf("appendJSONString(%q) = %s, not valid JSON: %v", in, got, err)
		}
	}
}
