package httpapp

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/kafka-sidecar/kafka-sidecar/handler"
	"github.com/twmb/franz-go/pkg/kgo"
)

func TestDeliverRequest(t *testing.T) {
	srv, ch := capturingServer(t, http.StatusNoContent)
	h := newTestHTTP(t, Options{URL: srv.URL + "/in/{topic}/records"})

	type want struct {
		requestURI string
		body       string
		headers    map[string]string // canonical name -> the single value expected
		absent     []string
		// recordHeaders lists every Kafka-Header-* the app must see, canonical name -> values in order.
		recordHeaders map[string][]string
	}
	tests := []struct {
		name string
		d    *handler.Delivery
		want want
	}{
		{
			name: "typical record",
			d: func() *handler.Delivery {
				d := sampleDelivery()
				d.Attempt = 2
				d.Headers = append(d.Headers,
					kgo.RecordHeader{Key: "traceparent", Value: []byte("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")},
					kgo.RecordHeader{Key: "tracestate", Value: []byte("vendor=abc")})
				return d
			}(),
			want: want{
				requestURI: "/in/orders/records",
				body:       `{"total":12.5}`,
				headers: map[string]string{
					"Content-Type":    "application/json",
					"Idempotency-Key": "orders/3/42",
					"Kafka-Topic":     "orders",
					"Kafka-Partition": "3",
					"Kafka-Offset":    "42",
					"Kafka-Key":       "customer-7",
					"Kafka-Timestamp": "2024-05-01T12:00:00.250Z",
					"Kafka-Attempt":   "2",
					"Traceparent":     "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
					"Tracestate":      "vendor=abc",
					"Content-Length":  "14",
				},
				absent: []string{"Kafka-Key-Encoding", "Idempotency-Key-Encoding", "Authorization", "Accept-Encoding"},
				recordHeaders: map[string][]string{
					"Kafka-Header-Content-Type": {"application/json"},
					"Kafka-Header-Tenant":       {"acme"},
					"Kafka-Header-Traceparent":  {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
					"Kafka-Header-Tracestate":   {"vendor=abc"},
				},
			},
		},
		{
			name: "binary key and non-ASCII ID are sent in base64, no content-type gives octet-stream",
			d: &handler.Delivery{
				ID: "bestellung-ä\n", Topic: "orders", Partition: 0, Offset: 7,
				Timestamp: time.UnixMilli(1714564800001), Key: []byte{0, 1, 0xff}, Value: []byte{0xde, 0xad}, Attempt: 1,
			},
			want: want{
				requestURI: "/in/orders/records",
				body:       "\xde\xad",
				headers: map[string]string{
					"Content-Type":             "application/octet-stream",
					"Idempotency-Key":          "YmVzdGVsbHVuZy3DpAo=",
					"Idempotency-Key-Encoding": "base64",
					"Kafka-Key":                "AAH/",
					"Kafka-Key-Encoding":       "base64",
					"Kafka-Timestamp":          "2024-05-01T12:00:00.001Z",
					"Kafka-Partition":          "0",
				},
				recordHeaders: map[string][]string{},
			},
		},
		{
			name: "nil key sends no key headers",
			d:    &handler.Delivery{ID: "a", Topic: "orders", Value: []byte("v"), Attempt: 1},
			want: want{
				requestURI:    "/in/orders/records",
				body:          "v",
				headers:       map[string]string{"Idempotency-Key": "a"},
				absent:        []string{"Kafka-Key", "Kafka-Key-Encoding"},
				recordHeaders: map[string][]string{},
			},
		},
		{
			name: "empty key is sent empty",
			d:    &handler.Delivery{ID: "a", Topic: "orders", Key: []byte{}, Value: []byte("v"), Attempt: 1},
			want: want{
				requestURI:    "/in/orders/records",
				body:          "v",
				headers:       map[string]string{"Kafka-Key": ""},
				absent:        []string{"Kafka-Key-Encoding"},
				recordHeaders: map[string][]string{},
			},
		},
		{
			name: "key with surrounding spaces is sent in base64 so the spaces survive",
			d:    &handler.Delivery{ID: " id ", Topic: "orders", Key: []byte(" k "), Value: []byte("v"), Attempt: 1},
			want: want{
				requestURI: "/in/orders/records",
				body:       "v",
				headers: map[string]string{
					"Kafka-Key": "IGsg", "Kafka-Key-Encoding": "base64",
					"Idempotency-Key": "IGlkIA==", "Idempotency-Key-Encoding": "base64",
				},
				recordHeaders: map[string][]string{},
			},
		},
		{
			name: "record headers that HTTP cannot carry are left out",
			d: &handler.Delivery{
				ID: "a", Topic: "orders", Value: []byte("v"), Attempt: 1,
				Headers: []kgo.RecordHeader{
					{Key: "bad name", Value: []byte("x")},
					{Key: "", Value: []byte("x")},
					{Key: "a:b", Value: []byte("x")},
					{Key: "grüße", Value: []byte("x")},
					{Key: "newline", Value: []byte("line\r\nInjected: yes")},
					{Key: "nul", Value: []byte("a\x00b")},
					{Key: "del", Value: []byte("a\x7fb")},
					{Key: "tab", Value: []byte("a\tb")},
					{Key: "utf8", Value: []byte("grüße")},
					{Key: "empty", Value: nil},
					{Key: "dup", Value: []byte("1")},
					{Key: "dup", Value: []byte("2")},
					{Key: "Content-Type", Value: []byte("text/plain\x01")},
					{Key: "traceparent", Value: []byte("bad\nvalue")},
				},
			},
			want: want{
				requestURI: "/in/orders/records",
				body:       "v",
				headers:    map[string]string{"Content-Type": "application/octet-stream"},
				absent:     []string{"Injected", "Traceparent"},
				recordHeaders: map[string][]string{
					"Kafka-Header-Tab":   {"a\tb"},
					"Kafka-Header-Utf8":  {"grüße"},
					"Kafka-Header-Empty": {""},
					"Kafka-Header-Dup":   {"1", "2"},
				},
			},
		},
		{
			name: "content-type is matched case-insensitively and the last one wins",
			d: &handler.Delivery{
				ID: "a", Topic: "orders", Value: []byte("v"), Attempt: 1,
				Headers: []kgo.RecordHeader{
					{Key: "Content-Type", Value: []byte("text/plain")},
					{Key: "CONTENT-TYPE", Value: []byte("application/cloudevents+json")},
				},
			},
			want: want{
				requestURI: "/in/orders/records",
				body:       "v",
				headers:    map[string]string{"Content-Type": "application/cloudevents+json"},
				recordHeaders: map[string][]string{
					"Kafka-Header-Content-Type": {"text/plain", "application/cloudevents+json"},
				},
			},
		},
		{
			name: "topic is path-escaped in the URL",
			d:    &handler.Delivery{ID: "a", Topic: "a b/c?d", Value: []byte("v"), Attempt: 1},
			want: want{
				requestURI:    "/in/a%20b%2Fc%3Fd/records",
				body:          "v",
				headers:       map[string]string{"Kafka-Topic": "a b/c?d"},
				recordHeaders: map[string][]string{},
			},
		},
		{
			name: "empty value is an empty body",
			d:    &handler.Delivery{ID: "a", Topic: "orders", Attempt: 1},
			want: want{
				requestURI:    "/in/orders/records",
				body:          "",
				headers:       map[string]string{"Content-Length": "0"},
				recordHeaders: map[string][]string{},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := deliverWithin(t, context.Background(), h, tt.d)
			if res.Outcome != handler.Success || res.Status != http.StatusNoContent || res.Reason != "" {
				t.Fatalf("Deliver = %+v, want success with status 204", res)
			}
			got := receive(t, ch)
			if got.method != http.MethodPost {
				t.Errorf("method = %q, want POST", got.method)
			}
			if got.requestURI != tt.want.requestURI {
				t.Errorf("request URI = %q, want %q", got.requestURI, tt.want.requestURI)
			}
			if string(got.body) != tt.want.body {
				t.Errorf("body = %q, want %q", got.body, tt.want.body)
			}
			for k, v := range tt.want.headers {
				if vals := got.header.Values(k); len(vals) != 1 || vals[0] != v {
					t.Errorf("header %s = %q, want exactly [%q]", k, vals, v)
				}
			}
			for _, k := range tt.want.absent {
				if vals := got.header.Values(k); len(vals) != 0 {
					t.Errorf("header %s = %q, want it absent", k, vals)
				}
			}
			gotRecord := map[string][]string{}
			for k, v := range got.header {
				if strings.HasPrefix(k, HeaderRecordPrefix) {
					gotRecord[k] = v
				}
			}
			if !equalHeaderMaps(gotRecord, tt.want.recordHeaders) {
				t.Errorf("record headers = %q, want %q", gotRecord, tt.want.recordHeaders)
			}
		})
	}
}

func equalHeaderMaps(a, b map[string][]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if !slices.Equal(v, b[k]) {
			return false
		}
	}
	return true
}

// statusServer answers with the status, action, Retry-After and body that the record asks for in its
// headers, so one server and one connection pool serve a whole table.
func statusServer(t *testing.T) *httptest.Server {
	t.Helper()
	return statusServerWatching(t, nil)
}

// statusServerWatching is statusServer with a ConnState hook installed before it starts.
func statusServerWatching(t *testing.T, connState func(net.Conn, http.ConnState)) *httptest.Server {
	t.Helper()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := io.Copy(io.Discard, r.Body); err != nil {
			t.Errorf("server reading body: %v", err)
		}
		if v := r.Header.Get("Kafka-Header-Want-Action"); v != "" {
			w.Header().Set(HeaderAction, v)
		}
		if v := r.Header.Get("Kafka-Header-Want-Retry-After"); v != "" {
			w.Header().Set(HeaderRetryAfter, v)
		}
		code, err := strconv.Atoi(r.Header.Get("Kafka-Header-Want-Status"))
		if err != nil {
			t.Errorf("server: bad wanted status: %v", err)
			code = http.StatusTeapot
		}
		w.WriteHeader(code)
		body := r.Header.Get("Kafka-Header-Want-Body")
		if b64 := r.Header.Get("Kafka-Header-Want-Body-B64"); b64 != "" {
			raw, err := base64.StdEncoding.DecodeString(b64)
			if err != nil {
				t.Errorf("server: bad wanted body: %v", err)
			}
			body = string(raw)
		}
		if n, err := strconv.Atoi(r.Header.Get("Kafka-Header-Want-Body-Repeat")); err == nil {
			body = strings.Repeat(body, n)
		}
		_, _ = w.Write([]byte(body)) // a client that went away fails on its side
	}))
	srv.Config.ConnState = connState
	srv.Start()
	t.Cleanup(srv.Close)
	return srv
}

// b64 encodes s for a want-body-b64 header.
func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// asking builds a delivery whose headers tell statusServer how to answer.
func asking(status int, kv ...string) *handler.Delivery {
	d := &handler.Delivery{ID: "id-1", Topic: "orders", Value: []byte("v"), Attempt: 1}
	d.Headers = append(d.Headers, kgo.RecordHeader{Key: "want-status", Value: []byte(strconv.Itoa(status))})
	for i := 0; i+1 < len(kv); i += 2 {
		d.Headers = append(d.Headers, kgo.RecordHeader{Key: kv[i], Value: []byte(kv[i+1])})
	}
	return d
}

func TestDeliverClassifiesStatus(t *testing.T) {
	srv := statusServer(t)
	h := newTestHTTP(t, Options{URL: srv.URL})
	tests := []struct {
		status  int
		kv      []string
		outcome handler.Outcome
		reason  string
	}{
		{status: 200, outcome: handler.Success},
		{status: 201, outcome: handler.Success},
		{status: 202, outcome: handler.Success},
		{status: 204, outcome: handler.Success},
		{status: 299, outcome: handler.Success},
		{status: 409, kv: []string{"want-body", "already have it"}, outcome: handler.Success},
		{status: 400, kv: []string{"want-body", "bad input"}, outcome: handler.Permanent, reason: "http 400: bad input"},
		{status: 410, outcome: handler.Permanent, reason: "http 410"},
		{status: 413, outcome: handler.Permanent, reason: "http 413"},
		{status: 415, outcome: handler.Permanent, reason: "http 415"},
		{status: 422, kv: []string{"want-body", "total must be positive"}, outcome: handler.Permanent, reason: "http 422: total must be positive"},
		{status: 418, outcome: handler.Permanent, reason: "http 418"},
		{status: 451, outcome: handler.Permanent, reason: "http 451"},
		{status: 408, outcome: handler.Retryable, reason: "http 408"},
		{status: 500, kv: []string{"want-body", "boom"}, outcome: handler.Retryable, reason: "http 500: boom"},
		{status: 502, outcome: handler.Retryable, reason: "http 502"},
		{status: 504, outcome: handler.Retryable, reason: "http 504"},
		{status: 505, outcome: handler.Retryable, reason: "http 505"},
		{status: 599, outcome: handler.Retryable, reason: "http 599"},
		{status: 429, outcome: handler.AppUnavailable, reason: "http 429"},
		{status: 503, kv: []string{"want-body", "warming up"}, outcome: handler.AppUnavailable, reason: "http 503: warming up"},
		{status: 401, outcome: handler.AppUnavailable, reason: "http 401"},
		{status: 403, outcome: handler.AppUnavailable, reason: "http 403"},
		{status: 404, outcome: handler.AppUnavailable, reason: "http 404"},
		{status: 405, outcome: handler.AppUnavailable, reason: "http 405"},
		{status: 301, outcome: handler.AppUnavailable, reason: "http 301"},
		{status: 307, outcome: handler.AppUnavailable, reason: "http 307"},
		{status: 200, kv: []string{"want-action", "dead-letter"}, outcome: handler.Permanent, reason: "http 200 (action dead-letter)"},
		{status: 500, kv: []string{"want-action", " DEAD-LETTER ", "want-body", "poison"}, outcome: handler.Permanent, reason: "http 500 (action dead-letter): poison"},
		{status: 422, kv: []string{"want-action", "retry"}, outcome: handler.Retryable, reason: "http 422 (action retry)"},
		{status: 503, kv: []string{"want-action", "retry"}, outcome: handler.Retryable, reason: "http 503 (action retry)"},
		{status: 200, kv: []string{"want-action", "drop-it"}, outcome: handler.Success},
		{status: 500, kv: []string{"want-action", "unknown"}, outcome: handler.Retryable, reason: "http 500"},
		{status: 500, kv: []string{"want-body-b64", b64("\tmulti\r\nline\x00text\x7f ")}, outcome: handler.Retryable, reason: "http 500: multi  line text"},
		{status: 500, kv: []string{"want-body-b64", b64("bad \xff utf-8 \u2028 \u0085")}, outcome: handler.Retryable, reason: "http 500: bad \ufffd utf-8"},
		{status: 500, kv: []string{"want-body", "x", "want-body-repeat", "1000"}, outcome: handler.Retryable, reason: "http 500: " + strings.Repeat("x", 256)},
		{status: 500, kv: []string{"want-body-b64", b64(strings.Repeat("x", 255) + "é")}, outcome: handler.Retryable, reason: "http 500: " + strings.Repeat("x", 255)},
		{status: 500, kv: []string{"want-body", "é", "want-body-repeat", "200"}, outcome: handler.Retryable, reason: "http 500: " + strings.Repeat("é", 128)},
	}
	for _, tt := range tests {
		name := fmt.Sprintf("%d %v", tt.status, tt.kv)
		t.Run(name, func(t *testing.T) {
			res := deliverWithin(t, context.Background(), h, asking(tt.status, tt.kv...))
			if res.Outcome != tt.outcome || res.Status != tt.status || res.Reason != tt.reason {
				t.Errorf("Deliver = {%v %d %q}, want {%v %d %q}", res.Outcome, res.Status, res.Reason, tt.outcome, tt.status, tt.reason)
			}
			if res.Elapsed <= 0 {
				t.Errorf("Elapsed = %v, want > 0", res.Elapsed)
			}
		})
	}
}

func TestDeliverRetryAfter(t *testing.T) {
	srv := statusServer(t)
	clock := newFakeClock()
	h := newTestHTTP(t, Options{URL: srv.URL, Clock: clock.Now})
	date := func(d time.Duration) string { return clock.Now().Add(d).Format(http.TimeFormat) }
	tests := []struct {
		name   string
		status int
		value  string
		want   time.Duration
	}{
		{name: "seconds on 429", status: 429, value: "120", want: 2 * time.Minute},
		{name: "seconds on 503", status: 503, value: "7", want: 7 * time.Second},
		{name: "http date", status: 503, value: date(90 * time.Second), want: 90 * time.Second},
		{name: "date in the past", status: 429, value: date(-time.Hour), want: 0},
		{name: "capped seconds", status: 429, value: "86400", want: MaxRetryAfter},
		{name: "capped date", status: 503, value: date(24 * time.Hour), want: MaxRetryAfter},
		{name: "garbage", status: 429, value: "soon", want: 0},
		{name: "absent", status: 503, value: "", want: 0},
		{name: "ignored on 500", status: 500, value: "30", want: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := deliverWithin(t, context.Background(), h, asking(tt.status, "want-retry-after", tt.value))
			if res.RetryAfter != tt.want {
				t.Errorf("RetryAfter = %v, want %v (result %+v)", res.RetryAfter, tt.want, res)
			}
		})
	}
}

// blockingServer holds every request until the client goes away, and reports each arrival.
func blockingServer(t *testing.T) (*httptest.Server, <-chan struct{}) {
	t.Helper()
	arrived := make(chan struct{}, 16)
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Reading the body first lets the server notice when the client hangs up.
		discardBody(r)
		arrived <- struct{}{}
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) }) // runs first: no handler outlives the test
	return srv, arrived
}

func TestDeliverTimeout(t *testing.T) {
	srv, _ := blockingServer(t)
	h := newTestHTTP(t, Options{URL: srv.URL, Timeout: 100 * time.Millisecond})
	res := deliverWithin(t, context.Background(), h, sampleDelivery())
	want := handler.Result{Outcome: handler.Retryable, Reason: "timeout after 100ms"}
	if res.Outcome != want.Outcome || res.Reason != want.Reason || res.Status != 0 {
		t.Errorf("Deliver = %+v, want %+v", res, want)
	}
	if res.Elapsed < 100*time.Millisecond {
		t.Errorf("Elapsed = %v, want at least the timeout", res.Elapsed)
	}
}

func TestDeliverCallerCancels(t *testing.T) {
	srv, arrived := blockingServer(t)
	h := newTestHTTP(t, Options{URL: srv.URL})

	t.Run("while the app works", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go func() {
			select {
			case <-arrived:
				cancel()
			case <-time.After(waitLimit):
			}
		}()
		res := deliverWithin(t, ctx, h, sampleDelivery())
		if ctx.Err() == nil {
			t.Fatal("Deliver returned before the cancel")
		}
		if res.Outcome != handler.AppUnavailable || res.Reason != "delivery canceled" {
			t.Errorf("Deliver = %+v, want AppUnavailable \"delivery canceled\"", res)
		}
	})
	t.Run("before the call", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		res := deliverWithin(t, ctx, h, sampleDelivery())
		if res.Outcome != handler.AppUnavailable || res.Reason != "delivery canceled" {
			t.Errorf("Deliver = %+v, want AppUnavailable \"delivery canceled\"", res)
		}
		select {
		case <-arrived:
			t.Error("a request reached the app although the context had ended")
		default:
		}
	})
}

func TestDeliverConnectionRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	h := newTestHTTP(t, Options{URL: "http://" + addr + "/"})
	res := deliverWithin(t, context.Background(), h, sampleDelivery())
	if res.Outcome != handler.AppUnavailable || res.Reason != "connection refused" || res.Status != 0 {
		t.Errorf("Deliver = %+v, want AppUnavailable \"connection refused\"", res)
	}
}

func TestDeliverConnectionBroken(t *testing.T) {
	tests := []struct {
		name string
		// readFirst is how much of the request body the server reads before it breaks the connection.
		readFirst int
		// reset sends a TCP RST instead of a FIN.
		reset bool
		value []byte
	}{
		{name: "closed after reading the request", readFirst: -1, value: []byte("small")},
		{name: "reset after reading the request", readFirst: -1, reset: true, value: []byte("small")},
		{name: "reset in the middle of the body", readFirst: 10, reset: true, value: make([]byte, 8<<20)},
		{name: "closed in the middle of the body", readFirst: 10, value: make([]byte, 8<<20)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if tt.readFirst < 0 {
					discardBody(r)
				} else {
					_, _ = io.ReadFull(r.Body, make([]byte, tt.readFirst))
				}
				conn, _, err := w.(http.Hijacker).Hijack()
				if err != nil {
					t.Errorf("hijacking: %v", err)
					return
				}
				if tt.reset {
					if err := conn.(*net.TCPConn).SetLinger(0); err != nil {
						t.Errorf("setting linger: %v", err)
					}
				}
				conn.Close()
			}))
			defer srv.Close()
			h := newTestHTTP(t, Options{URL: srv.URL})
			d := sampleDelivery()
			d.Value = tt.value
			res := deliverWithin(t, context.Background(), h, d)
			reasons := []string{
				"connection reset",
				"connection closed by the app during the request",
				"connection closed by the app (broken pipe)",
			}
			if res.Outcome != handler.Retryable || res.Status != 0 || !slices.Contains(reasons, res.Reason) {
				t.Errorf("Deliver = %+v, want Retryable with no status and one of the reasons %q", res, reasons)
			}
		})
	}
}

func TestDeliverCapsResponseBody(t *testing.T) {
	const limit = 1024
	const chunk = 1 << 20
	var written atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		discardBody(r)
		code, _ := strconv.Atoi(r.Header.Get("Kafka-Header-Want-Status"))
		w.WriteHeader(code)
		buf := []byte(strings.Repeat("z", chunk))
		// At most 64 MiB: the client stops long before, and the loop ends on the first failed write.
		for range 64 {
			n, err := w.Write(buf)
			written.Add(int64(n))
			if err != nil {
				return
			}
		}
	}))
	defer srv.Close()
	h := newTestHTTP(t, Options{URL: srv.URL, MaxResponseBytes: limit})
	counter := countReads(h)

	for _, status := range []int{200, 500} {
		t.Run(strconv.Itoa(status), func(t *testing.T) {
			counter.Store(0)
			res := deliverWithin(t, context.Background(), h, asking(status))
			if res.Status != status {
				t.Fatalf("Deliver = %+v, want status %d", res, status)
			}
			if got, most := counter.Load(), int64(limit+readSlack); got > most {
				t.Errorf("read %d bytes from the connection, want at most %d", got, most)
			}
			if status == 500 && res.Reason != "http 500: "+strings.Repeat("z", 256) {
				t.Errorf("Reason = %q, want the first 256 bytes", res.Reason)
			}
		})
	}
}

func TestDeliverReusesConnections(t *testing.T) {
	var conns atomic.Int32
	srv := statusServerWatching(t, func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	})
	h := newTestHTTP(t, Options{URL: srv.URL})
	deliveries := []*handler.Delivery{
		asking(200),
		asking(204),
		asking(200, "want-body", "ok", "want-body-repeat", "5000"),
		asking(500, "want-body", "failure detail ", "want-body-repeat", "100"),
		asking(422, "want-body", "short"),
		asking(409),
		asking(503, "want-retry-after", "1"),
	}
	for round := range 3 {
		for i, d := range deliveries {
			if res := deliverWithin(t, context.Background(), h, d); res.Status == 0 {
				t.Fatalf("round %d delivery %d: %+v", round, i, res)
			}
		}
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("the app saw %d connections for sequential deliveries, want 1 reused", n)
	}
}

func TestAuthToken(t *testing.T) {
	t.Run("rewritten in place", func(t *testing.T) {
		srv, ch := capturingServer(t, http.StatusOK)
		path := filepath.Join(t.TempDir(), "token")
		writeFile(t, path, "token-a\n")
		clock := newFakeClock()
		h := newTestHTTP(t, Options{URL: srv.URL, AuthTokenFile: path, Clock: clock.Now})

		wantAuth(t, h, ch, "Bearer token-a")
		writeFile(t, path, "token-bb\n")
		wantAuth(t, h, ch, "Bearer token-a") // within the check interval the file is not looked at
		clock.Advance(time.Second)
		wantAuth(t, h, ch, "Bearer token-bb")
	})
	t.Run("rotated by symlink swap", func(t *testing.T) {
		srv, ch := capturingServer(t, http.StatusOK)
		dir := t.TempDir()
		// The layout of a mounted Secret: token -> ..data/token, ..data -> a timestamped directory.
		for name, tok := range map[string]string{"v1": "token-1", "v2": "token-2"} {
			if err := os.Mkdir(filepath.Join(dir, name), 0o700); err != nil {
				t.Fatal(err)
			}
			writeFile(t, filepath.Join(dir, name, "token"), tok)
		}
		mustSymlink(t, "v1", filepath.Join(dir, "..data"))
		mustSymlink(t, filepath.Join("..data", "token"), filepath.Join(dir, "token"))
		clock := newFakeClock()
		h := newTestHTTP(t, Options{URL: srv.URL, AuthTokenFile: filepath.Join(dir, "token"), Clock: clock.Now})
		wantAuth(t, h, ch, "Bearer token-1")

		mustSymlink(t, "v2", filepath.Join(dir, "..data_tmp"))
		if err := os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")); err != nil {
			t.Fatal(err)
		}
		clock.Advance(1500 * time.Millisecond)
		wantAuth(t, h, ch, "Bearer token-2")
	})
	t.Run("missing for a while keeps the last token", func(t *testing.T) {
		srv, ch := capturingServer(t, http.StatusOK)
		path := filepath.Join(t.TempDir(), "token")
		writeFile(t, path, "token-a")
		clock := newFakeClock()
		h := newTestHTTP(t, Options{URL: srv.URL, AuthTokenFile: path, Clock: clock.Now})
		wantAuth(t, h, ch, "Bearer token-a")
		if err := os.Remove(path); err != nil {
			t.Fatal(err)
		}
		clock.Advance(time.Second)
		wantAuth(t, h, ch, "Bearer token-a")
		writeFile(t, path, "token-c")
		clock.Advance(time.Second)
		wantAuth(t, h, ch, "Bearer token-c")
	})
}

func wantAuth(t *testing.T, h *Deliverer, ch <-chan captured, want string) {
	t.Helper()
	if res := deliverWithin(t, context.Background(), h, sampleDelivery()); res.Outcome != handler.Success {
		t.Fatalf("Deliver = %+v, want success", res)
	}
	if got := receive(t, ch).header.Get("Authorization"); got != want {
		t.Errorf("Authorization = %q, want %q", got, want)
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func mustSymlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}

func TestAuthTokenFileErrorsHideTheToken(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name    string
		content string
		want    string
	}{
		{name: "empty", content: " \n", want: "empty"},
		{name: "control characters", content: "s3cret\x01value", want: "characters"},
		{name: "newline inside", content: "s3cret\nvalue", want: "characters"},
		{name: "too large", content: "s3cret" + strings.Repeat("x", maxTokenBytes), want: "larger"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(tt.name, " ", "-"))
			writeFile(t, path, tt.content)
			_, err := New(Options{URL: "http://127.0.0.1:1/", AuthTokenFile: path})
			if err == nil {
				t.Fatal("New accepted a bad token file")
			}
			if strings.Contains(err.Error(), "s3cret") {
				t.Errorf("error %q quotes the token", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not say %q", err, tt.want)
			}
		})
	}
	t.Run("missing", func(t *testing.T) {
		_, err := New(Options{URL: "http://127.0.0.1:1/", AuthTokenFile: filepath.Join(dir, "absent")})
		if !errors.Is(err, os.ErrNotExist) {
			t.Errorf("New error = %v, want one wrapping os.ErrNotExist", err)
		}
	})
}

func TestNewHTTPChecksOptions(t *testing.T) {
	tests := []struct {
		name string
		opts Options
		ok   bool
	}{
		{name: "default app url", opts: Options{URL: "http://127.0.0.1:8080/"}, ok: true},
		{name: "https", opts: Options{URL: "https://localhost:8443/in"}, ok: true},
		{name: "topic in the path twice", opts: Options{URL: "http://h/{topic}/x/{topic}?q=1"}, ok: true},
		{name: "empty", opts: Options{}},
		{name: "no scheme", opts: Options{URL: "127.0.0.1:8080"}},
		{name: "ftp", opts: Options{URL: "ftp://h/"}},
		{name: "no host", opts: Options{URL: "http:///path"}},
		{name: "topic in the host", opts: Options{URL: "http://{topic}.svc/"}},
		{name: "topic in the user info", opts: Options{URL: "http://u:{topic}@h/"}},
		{name: "topic in the query", opts: Options{URL: "http://h/in?t={topic}"}},
		{name: "topic in the fragment", opts: Options{URL: "http://h/in#{topic}"}},
		{name: "topic without a path", opts: Options{URL: "http://h?{topic}"}},
		{name: "bad escape", opts: Options{URL: "http://h/%zz"}},
		{name: "negative timeout", opts: Options{URL: "http://h/", Timeout: -time.Second}},
		{name: "negative max response bytes", opts: Options{URL: "http://h/", MaxResponseBytes: -1}},
		{name: "negative max conns", opts: Options{URL: "http://h/", MaxConns: -1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := New(tt.opts)
			if (err == nil) != tt.ok {
				t.Fatalf("New(%+v) error = %v, want ok=%v", tt.opts, err, tt.ok)
			}
			if err != nil {
				if msg := err.Error(); !utf8.ValidString(msg) || strings.ContainsAny(msg, "\n\r") {
					t.Errorf("error %q is not one clean line", msg)
				}
				return
			}
			h.CloseIdleConnections()
			if h.timeout != DefaultTimeout || h.maxBody != DefaultMaxResponseBytes {
				t.Errorf("defaults not applied: timeout %v, max body %d", h.timeout, h.maxBody)
			}
			if h.transport.MaxIdleConnsPerHost != DefaultMaxConns || h.transport.Proxy != nil || !h.transport.DisableCompression {
				t.Errorf("transport not tuned: %+v", h.transport)
			}
		})
	}
}

func TestNewHTTPTunesTheTransport(t *testing.T) {
	tests := []struct {
		name         string
		opts         Options
		idlePerHost  int
		tlsHandshake time.Duration
	}{
		{name: "defaults", opts: Options{}, idlePerHost: DefaultMaxConns, tlsHandshake: tlsHandshakeTimeout},
		{name: "large pool", opts: Options{MaxConns: 512}, idlePerHost: 512, tlsHandshake: tlsHandshakeTimeout},
		// A short delivery timeout shortens connecting, so a missing app fails to connect (no attempt used)
		// before the delivery times out (an attempt used).
		{name: "short timeout", opts: Options{Timeout: time.Second}, idlePerHost: DefaultMaxConns, tlsHandshake: 500 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.opts.URL = "http://127.0.0.1:1/"
			h := newTestHTTP(t, tt.opts)
			// The deliveries' pool, and the transport of Client, for the probe.
			p := h.pool
			if p.maxIdle != tt.idlePerHost || p.handshake != tt.tlsHandshake || p.dialer.Timeout != min(dialTimeout, tt.tlsHandshake) {
				t.Errorf("pool: max idle %d, handshake %v, dial %v; want %d, %v, %v", p.maxIdle, p.handshake,
					p.dialer.Timeout, tt.idlePerHost, tt.tlsHandshake, min(dialTimeout, tt.tlsHandshake))
			}
			tr := h.transport
			if tr.MaxIdleConnsPerHost != tt.idlePerHost || tr.TLSHandshakeTimeout != tt.tlsHandshake {
				t.Errorf("MaxIdleConnsPerHost %d, TLSHandshakeTimeout %v; want %d, %v",
					tr.MaxIdleConnsPerHost, tr.TLSHandshakeTimeout, tt.idlePerHost, tt.tlsHandshake)
			}
			if tr.Proxy != nil || !tr.DisableCompression || tr.DisableKeepAlives || tr.ForceAttemptHTTP2 || tr.TLSNextProto == nil {
				t.Errorf("transport not tuned for a local app: %+v", tr)
			}
		})
	}
}

func TestNewHTTPTargets(t *testing.T) {
	tests := []struct {
		url        string
		addr       string // dialled
		host       string // the Host header
		requestURI string // for topic "orders"
		serverName string // TLS; empty for http
	}{
		{url: "http://127.0.0.1:8080/in/{topic}", addr: "127.0.0.1:8080", host: "127.0.0.1:8080", requestURI: "/in/orders"},
		{url: "http://localhost", addr: "localhost:80", host: "localhost", requestURI: "/"},
		{url: "https://app.internal/in?x=1&y=%2F#frag", addr: "app.internal:443", host: "app.internal", requestURI: "/in?x=1&y=%2F", serverName: "app.internal"},
		{url: "http://user:secret@app:9000/a%2Fb/{topic}?q", addr: "app:9000", host: "app:9000", requestURI: "/a%2Fb/orders?q"},
		{url: "http://[::1]:9000/{topic}", addr: "[::1]:9000", host: "[::1]:9000", requestURI: "/orders"},
		{url: "http://[fe80::1%25eth0]:9000/", addr: "[fe80::1%eth0]:9000", host: "[fe80::1]:9000", requestURI: "/"},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			h := newTestHTTP(t, Options{URL: tt.url})
			tg, err := h.url.forTopic("orders")
			if err != nil {
				t.Fatal(err)
			}
			if h.pool.addr != tt.addr || tg.host != tt.host || tg.requestURI != tt.requestURI {
				t.Errorf("dials %q, Host %q, request-target %q; want %q, %q, %q", h.pool.addr, tg.host, tg.requestURI, tt.addr, tt.host, tt.requestURI)
			}
			switch {
			case tt.serverName == "" && h.pool.tls != nil:
				t.Errorf("TLS configured for %s", tt.url)
			case tt.serverName != "" && (h.pool.tls == nil || h.pool.tls.ServerName != tt.serverName):
				t.Errorf("TLS config %+v, want server name %q", h.pool.tls, tt.serverName)
			}
		})
	}
	if _, err := New(Options{URL: "http://bücher.example/"}); err == nil || !strings.Contains(err.Error(), "punycode") {
		t.Errorf("New with a non-ASCII host: %v, want an error asking for the punycode form", err)
	}
}

// TestDeliverMiddlewareHeaders: what middleware sets on a Delivery reaches the app. Extra headers are sent as
// they are and replace the trace context taken from the record; a content type replaces the record's; names
// the deliverer alone writes, and names or values HTTP cannot carry, are not sent.
func TestDeliverMiddlewareHeaders(t *testing.T) {
	srv, ch := capturingServer(t, http.StatusNoContent)
	h := newTestHTTP(t, Options{URL: srv.URL + "/"})
	d := sampleDelivery()
	d.Headers = append(d.Headers, kgo.RecordHeader{Key: "traceparent", Value: []byte("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")})
	d.ContentType = "application/cloudevents+json"
	d.Extra = []handler.Header{
		{Name: "ce-id", Value: "42"},
		{Name: "Traceparent", Value: "00-4bf92f3577b34da6a3ce929d0e0e4736-b7ad6b7169203331-01"},
		{Name: "Kafka-Topic", Value: "forged"},
		{Name: "Idempotency-Key", Value: "forged"},
		{Name: "bad name", Value: "x"},
		{Name: "X-Bad-Value", Value: "a\nb"},
	}
	if res := deliverWithin(t, context.Background(), h, d); res.Outcome != handler.Success {
		t.Fatalf("Deliver = %+v, want success", res)
	}
	c := receive(t, ch)
	for name, want := range map[string][]string{
		"Ce-Id":           {"42"},
		"Traceparent":     {"00-4bf92f3577b34da6a3ce929d0e0e4736-b7ad6b7169203331-01"},
		"Content-Type":    {"application/cloudevents+json"},
		"Kafka-Topic":     {"orders"},
		"Idempotency-Key": {"orders/3/42"},
		"X-Bad-Value":     nil,
	} {
		if got := c.header.Values(name); !slices.Equal(got, want) {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
}

// TestDeliverBatchMode: with Options.Batch, one Deliver call is one request carrying every record, and the
// content type middleware set decides how a value is embedded.
func TestDeliverBatchMode(t *testing.T) {
	srv, ch := capturingServer(t, http.StatusOK)
	h := newTestHTTP(t, Options{URL: srv.URL + "/", Batch: true})
	a, b := sampleDelivery(), sampleDelivery()
	b.ID, b.Offset = "orders/3/43", 43
	b.Headers = nil
	b.Value = []byte(`{"decoded":true}`)
	b.ContentType = "application/json"
	results := make([]handler.Result, 2)
	h.Deliver(context.Background(), []*handler.Delivery{a, b}, results)
	for i, r := range results {
		if r.Outcome != handler.Success {
			t.Errorf("results[%d] = %+v, want success", i, r)
		}
	}
	c := receive(t, ch)
	if got := c.header.Get("Kafka-Batch-Size"); got != "2" {
		t.Errorf("Kafka-Batch-Size = %q, want 2 (one request for both records)", got)
	}
	if !strings.Contains(string(c.body), `"value":{"decoded":true}`) {
		t.Errorf("body %s does not embed the second value as JSON", c.body)
	}
	select {
	case extra := <-ch:
		t.Errorf("a second request reached the app: %s", extra.requestURI)
	default:
	}
}
