package e2e

import (
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

// otlpReceiver is an OTLP/HTTP trace receiver: it decodes every export request with the protocol's own
// protobuf types and keeps the spans.
type otlpReceiver struct {
	srv   *httptest.Server
	mu    sync.Mutex
	spans []*tracepb.Span
	bad   int
}

func newOTLPReceiver(t *testing.T) *otlpReceiver {
	t.Helper()
	r := &otlpReceiver{}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		var ex coltracepb.ExportTraceServiceRequest
		if req.URL.Path != "/v1/traces" || proto.Unmarshal(body, &ex) != nil {
			r.mu.Lock()
			r.bad++
			r.mu.Unlock()
			http.Error(w, "not an OTLP trace export", http.StatusBadRequest)
			return
		}
		r.mu.Lock()
		for _, rs := range ex.ResourceSpans {
			for _, ss := range rs.ScopeSpans {
				r.spans = append(r.spans, ss.Spans...)
			}
		}
		r.mu.Unlock()
		out, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
		w.Header().Set("Content-Type", "application/x-protobuf")
		_, _ = w.Write(out)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *otlpReceiver) received() []*tracepb.Span {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*tracepb.Span(nil), r.spans...)
}

func spanAttr(s *tracepb.Span, key string) string {
	for _, a := range s.Attributes {
		if a.Key == key {
			if v := a.Value.GetStringValue(); v != "" {
				return v
			}
			return strings.Trim(a.Value.String(), " ")
		}
	}
	return ""
}

// TestTraceOfARetriedRecord sends traces to a real OTLP/HTTP receiver, configured by the standard variables
// only, for a record that fails once, goes through a retry tier and is then delivered, and checks that it
// makes one trace (the producer's, from the record's traceparent): the consumer span, the two delivery
// attempts, the retry produce, the wait before the tier's not-before time, and the second consumer span,
// which continues from the produce span and links to the first; the app receives each attempt's context.
func TestTraceOfARetriedRecord(t *testing.T) {
	recv := newOTLPReceiver(t)
	t.Setenv("OTEL_TRACES_EXPORTER", "otlp")
	t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", recv.srv.URL)
	t.Setenv("OTEL_BSP_SCHEDULE_DELAY", "50")
	t.Setenv("OTEL_SERVICE_NAME", "orders-sidecar")

	s := newStack(t, 1)
	const traceID, upstream = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	rec := makeRecords(s.topic, 1, 1, "traced")[0]
	rec.Headers = append(rec.Headers, kgo.RecordHeader{Key: "traceparent", Value: []byte("00-" + traceID + "-" + upstream + "-01")})
	id := headerValue(rec, idHeader)
	s.app.setRespond(statusSeq(map[string][]int{id: {http.StatusInternalServerError, http.StatusOK}}))
	s.kafka.produce(t, rec)

	sc := startSidecar(t, s.env("SIDECAR_RETRY_ATTEMPTS_IN_PLACE=1", "SIDECAR_RETRY_DELAYS=1s"))
	waitFor(t, 30*time.Second, func() bool { return sc.sc.Metrics().Totals().Delivered == 1 },
		"the record delivered from the retry tier (now %+v)", lazyTotals{sc})
	sc.stop(t) // flushes the spans

	byName := map[string][]*tracepb.Span{}
	for _, sp := range recv.received() {
		if got := hex.EncodeToString(sp.TraceId); got != traceID {
			t.Errorf("span %q is in trace %s, want every span in the record's trace %s", sp.Name, got, traceID)
		}
		byName[sp.Name] = append(byName[sp.Name], sp)
	}
	one := func(name string) *tracepb.Span {
		t.Helper()
		if len(byName[name]) != 1 {
			t.Fatalf("%d spans named %q, want 1 (spans: %v)", len(byName[name]), name, names(byName))
		}
		return byName[name][0]
	}
	first := one("process " + s.topic)
	produce := one("send " + s.retryTopic(1))
	second := one("process " + s.retryTopic(1))
	wait := one("retry wait")
	attempts := byName["POST"]
	if len(attempts) != 2 {
		t.Fatalf("%d attempt spans, want 2 (spans: %v)", len(attempts), names(byName))
	}
	spanID := func(sp *tracepb.Span) string { return hex.EncodeToString(sp.SpanId) }
	parentID := func(sp *tracepb.Span) string { return hex.EncodeToString(sp.ParentSpanId) }

	if first.Kind != tracepb.Span_SPAN_KIND_CONSUMER || parentID(first) != upstream {
		t.Errorf("first consumer span: kind %v parent %s, want a consumer span under the producer's %s", first.Kind, parentID(first), upstream)
	}
	for k, v := range map[string]string{"messaging.system": "kafka", "messaging.destination.name": s.topic,
		"messaging.consumer.group.name": s.group, "messaging.message.id": id, "messaging.operation.type": "process"} {
		if got := spanAttr(first, k); got != v {
			t.Errorf("first consumer span: %s = %q, want %q", k, got, v)
		}
	}
	if produce.Kind != tracepb.Span_SPAN_KIND_PRODUCER || parentID(produce) != spanID(first) {
		t.Errorf("retry produce span: kind %v parent %s, want a producer span under the first consumer span", produce.Kind, parentID(produce))
	}
	if parentID(second) != spanID(produce) {
		t.Errorf("second consumer span's parent %s, want the produce span %s", parentID(second), spanID(produce))
	}
	if len(second.Links) != 1 || hex.EncodeToString(second.Links[0].SpanId) != spanID(first) {
		t.Errorf("second consumer span links %v, want one link to the first consumer span %s", second.Links, spanID(first))
	}
	if parentID(wait) != spanID(second) || wait.EndTimeUnixNano < wait.StartTimeUnixNano {
		t.Errorf("wait span: parent %s, want the second consumer span", parentID(wait))
	}
	// Each attempt is a client span under its consumer span, and the app got that attempt's context.
	reqs := s.app.requestsFor(id)
	if len(reqs) != 2 {
		t.Fatalf("the app saw %d requests, want 2", len(reqs))
	}
	for i, consumer := range []*tracepb.Span{first, second} {
		var attempt *tracepb.Span
		for _, a := range attempts {
			if parentID(a) == spanID(consumer) {
				attempt = a
			}
		}
		if attempt == nil || attempt.Kind != tracepb.Span_SPAN_KIND_CLIENT {
			t.Errorf("attempt %d: no client span under its consumer span", i+1)
			continue
		}
		want := "00-" + traceID + "-" + spanID(attempt) + "-01"
		if got := reqs[i].Header.Get("traceparent"); got != want {
			t.Errorf("attempt %d: the app got traceparent %q, want the attempt span's %q", i+1, got, want)
		}
		if ts := reqs[i].Header.Get("tracestate"); strings.Contains(ts, "kafkasidecar") {
			t.Errorf("attempt %d: the sidecar's tracestate member reached the app: %q", i+1, ts)
		}
	}
}

func names(m map[string][]*tracepb.Span) []string {
	var out []string
	for n, ss := range m {
		out = append(out, n+"×"+string(rune('0'+len(ss))))
	}
	return out
}
