package tracing

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/kafka-sidecar/kafka-sidecar/handler"
	"github.com/kafka-sidecar/kafka-sidecar/handler/httpapp"
	"github.com/kafka-sidecar/kafka-sidecar/pipeline"
)

var _ pipeline.Tracer = (*Tracer)(nil)

const upstream = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

func recorded(t *testing.T) (*Provider, *tracetest.SpanRecorder) {
	t.Helper()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	return newProvider(tp), rec
}

func find(t *testing.T, rec *tracetest.SpanRecorder, name string) sdktrace.ReadOnlySpan {
	t.Helper()
	var found []sdktrace.ReadOnlySpan
	for _, s := range rec.Ended() {
		if s.Name() == name {
			found = append(found, s)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d ended spans named %q, want 1", len(found), name)
	}
	return found[0]
}

func TestSetupOffBuildsNothing(t *testing.T) {
	for _, v := range []string{"", "none"} {
		t.Setenv(EnvExporter, v)
		p, err := Setup(context.Background())
		if p != nil || err != nil {
			t.Errorf("%s=%q: Setup = %v, %v; want nil, nil", EnvExporter, v, p, err)
		}
	}
	if err := (*Provider)(nil).Shutdown(context.Background()); err != nil {
		t.Errorf("Shutdown of no provider: %v", err)
	}
}

// TestProduceAndConsumeOfTheCopy follows a record through a retry copy: the copy's headers get the produce
// span's context (the record's own untouched), and its consumer span continues from the produce span and
// links to the first consumer span, without passing the sidecar's tracestate member on.
func TestProduceAndConsumeOfTheCopy(t *testing.T) {
	p, rec := recorded(t)
	tr := p.Tracer("g")
	orig := &kgo.Record{Topic: "orders", Partition: 2, Offset: 7, Timestamp: time.Now().Add(-time.Second),
		Headers: []kgo.RecordHeader{{Key: "traceparent", Value: []byte(upstream)}, {Key: "tenant", Value: []byte("a")}}}
	traced, end := tr.Consume(context.Background(), orig, "m-1")
	copyRec := &kgo.Record{Topic: "orders.g.retry.1", Headers: orig.Headers[:2:2]}
	endProduce := tr.Produce(traced, copyRec)
	endProduce(nil)
	end("retried", nil)
	if string(orig.Headers[0].Value) != upstream || len(orig.Headers) != 2 {
		t.Fatalf("the consumed record's headers were written: %v", orig.Headers)
	}
	first, produce := find(t, rec, "process orders"), find(t, rec, "send orders.g.retry.1")
	if first.Parent().SpanID().String() != "00f067aa0ba902b7" || first.SpanKind() != trace.SpanKindConsumer {
		t.Errorf("first consumer span: parent %s kind %v", first.Parent().SpanID(), first.SpanKind())
	}
	if produce.Parent().SpanID() != first.SpanContext().SpanID() || produce.SpanKind() != trace.SpanKindProducer {
		t.Errorf("produce span: parent %s kind %v, want the consumer span", produce.Parent().SpanID(), produce.SpanKind())
	}
	tp := recordCarrier{&copyRec.Headers}.Get("traceparent")
	if !strings.Contains(tp, produce.SpanContext().SpanID().String()) {
		t.Errorf("copy's traceparent %q does not carry the produce span", tp)
	}
	if ts := (recordCarrier{&copyRec.Headers}).Get("tracestate"); ts != stateKey+"="+first.SpanContext().SpanID().String() {
		t.Errorf("copy's tracestate %q, want the first consumer span's ID", ts)
	}

	copyRec.Timestamp = time.Now().Add(-500 * time.Millisecond)
	traced2, end2 := tr.Consume(context.Background(), copyRec, "m-1")
	tr.Wait(traced2, time.Now())()
	end2("delivered", nil)
	second := find(t, rec, "process orders.g.retry.1")
	if second.Parent().SpanID() != produce.SpanContext().SpanID() {
		t.Errorf("second consumer span's parent %s, want the produce span", second.Parent().SpanID())
	}
	if l := second.Links(); len(l) != 1 || l[0].SpanContext.SpanID() != first.SpanContext().SpanID() {
		t.Errorf("second consumer span links %v, want the first consumer span", l)
	}
	if second.SpanContext().TraceState().Get(stateKey) != "" {
		t.Error("the second consumer span carries the sidecar's tracestate member on")
	}
	wait := find(t, rec, "retry wait")
	if wait.Parent().SpanID() != second.SpanContext().SpanID() || !wait.StartTime().Equal(copyRec.Timestamp) {
		t.Errorf("wait span: parent %s start %v, want the second consumer span from the copy's timestamp", wait.Parent().SpanID(), wait.StartTime())
	}
}

// TestMiddlewareHandsTheAttemptContextToTheApp delivers through the middleware and the HTTP deliverer to a
// real app: one client span per attempt under the record's span, whose context the app receives; in batch
// mode one span linked to every record, whose context the batch request carries.
func TestMiddlewareHandsTheAttemptContextToTheApp(t *testing.T) {
	for _, batch := range []bool{false, true} {
		p, rec := recorded(t)
		got := make(chan http.Header, 4)
		app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			got <- r.Header.Clone()
			w.WriteHeader(http.StatusInternalServerError)
		}))
		d, err := httpapp.New(httpapp.Options{URL: app.URL + "/", Timeout: 5 * time.Second, Batch: batch})
		if err != nil {
			t.Fatal(err)
		}
		var ds []*handler.Delivery
		var consumers []trace.SpanContext
		for i := range 2 {
			r := &kgo.Record{Topic: "t", Offset: int64(i), Headers: []kgo.RecordHeader{{Key: "traceparent", Value: []byte(upstream)},
				{Key: "tracestate", Value: []byte("vendor=1")}}}
			ctx, end := p.Tracer("g").Consume(context.Background(), r, "id")
			defer end("", nil)
			consumers = append(consumers, trace.SpanContextFromContext(ctx))
			ds = append(ds, &handler.Delivery{ID: "id", Topic: "t", Attempt: 1, Headers: r.Headers, Context: ctx})
		}
		results := make([]handler.Result, len(ds))
		handler.Chain(d, p.Middleware(batch)).Deliver(context.Background(), ds, results)
		app.Close()
		d.CloseIdleConnections()
		var attempts []sdktrace.ReadOnlySpan
		for _, s := range rec.Ended() {
			if s.Name() == spanAttempt {
				attempts = append(attempts, s)
			}
		}
		if batch {
			if len(attempts) != 1 || len(attempts[0].Links()) != 2 {
				t.Fatalf("batch: %d attempt spans, want one with 2 links", len(attempts))
			}
			if l := attempts[0].Links(); l[0].SpanContext.SpanID() != consumers[0].SpanID() || l[1].SpanContext.SpanID() != consumers[1].SpanID() {
				t.Errorf("batch span links %v, want the consumer spans", l)
			}
			h := <-got
			if tp := h.Get("traceparent"); !strings.Contains(tp, attempts[0].SpanContext().SpanID().String()) {
				t.Errorf("batch request traceparent %q, want the batch span's", tp)
			}
			continue
		}
		if len(attempts) != 2 {
			t.Fatalf("%d attempt spans, want 2", len(attempts))
		}
		for range 2 {
			h := <-got
			matched := false
			for i, a := range attempts {
				if strings.Contains(h.Get("traceparent"), a.SpanContext().SpanID().String()) {
					matched = true
					if a.Parent().SpanID() != consumers[i].SpanID() || a.SpanKind() != trace.SpanKindClient {
						t.Errorf("attempt span %d: parent %s kind %v, want a client span under its consumer span", i, a.Parent().SpanID(), a.SpanKind())
					}
				}
			}
			if !matched {
				t.Errorf("the app got traceparent %q, no attempt span's", h.Get("traceparent"))
			}
		}
		for _, a := range attempts {
			if a.Status().Code.String() != "Error" {
				t.Errorf("attempt answered 500 has status %v, want Error", a.Status())
			}
		}
	}
}
