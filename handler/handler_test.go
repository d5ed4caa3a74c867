package handler_test

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/kafka-sidecar/kafka-sidecar/handler"
)

// recorder is a Deliverer that remembers the deliveries it saw and answers every one with Success.
type recorder struct{ seen []handler.Delivery }

func (r *recorder) Deliver(_ context.Context, ds []*handler.Delivery, results []handler.Result) {
	for i, d := range ds {
		r.seen = append(r.seen, *d)
		results[i] = handler.Result{Outcome: handler.Success, Status: 200}
	}
}

// tag is a middleware that logs its name on the way in and on the way out.
func tag(name string, log *[]string) handler.Middleware {
	return func(next handler.Deliverer) handler.Deliverer {
		return handler.DelivererFunc(func(ctx context.Context, ds []*handler.Delivery, results []handler.Result) {
			*log = append(*log, "in "+name)
			next.Deliver(ctx, ds, results)
			*log = append(*log, "out "+name)
		})
	}
}

func TestChainOrder(t *testing.T) {
	var log []string
	rec := &recorder{}
	d := handler.Chain(rec, tag("first", &log), nil, tag("second", &log))
	results := make([]handler.Result, 1)
	d.Deliver(context.Background(), []*handler.Delivery{{ID: "a"}}, results)
	want := []string{"in first", "in second", "out second", "out first"}
	if !slices.Equal(log, want) {
		t.Errorf("calls = %v, want %v (first middleware outermost, nil skipped)", log, want)
	}
	if len(rec.seen) != 1 || results[0].Outcome != handler.Success {
		t.Errorf("deliverer saw %d deliveries, result %+v; want 1 and success", len(rec.seen), results[0])
	}
}

func TestChainWithoutMiddlewareIsTheDeliverer(t *testing.T) {
	rec := &recorder{}
	if got := handler.Chain(rec); got != handler.Deliverer(rec) {
		t.Errorf("Chain(d) = %v, want d itself", got)
	}
}

func TestSetExtra(t *testing.T) {
	shared := make([]handler.Header, 1, 4)
	shared[0] = handler.Header{Name: "ce-id", Value: "1"}
	d := handler.Delivery{Extra: shared}
	d.SetExtra("CE-ID", "2")
	d.SetExtra("traceparent", "00-x")
	if v, ok := d.ExtraValue("ce-id"); !ok || v != "2" {
		t.Errorf("ExtraValue(ce-id) = %q, %v; want the replacement 2", v, ok)
	}
	if len(d.Extra) != 2 {
		t.Errorf("Extra = %v, want two headers (a name set twice is kept once)", d.Extra)
	}
	if shared[0].Value != "1" || cap(shared) != 4 || len(shared[:2][1].Name) != 0 {
		t.Errorf("the caller's array was written: %v", shared[:2])
	}
	if _, ok := d.ExtraValue("tracestate"); ok {
		t.Error("ExtraValue reports a header that was never set")
	}
}

func TestFill(t *testing.T) {
	results := make([]handler.Result, 3)
	handler.Fill(results, handler.Result{Outcome: handler.AppUnavailable, Reason: "paused"})
	for i, r := range results {
		if r.Outcome != handler.AppUnavailable || r.Reason != "paused" {
			t.Errorf("results[%d] = %+v", i, r)
		}
	}
}

// A middleware sees every delivery before the app does and can amend it: here it presents a header of its
// own, which the HTTP deliverer would send as a request header.
func ExampleMiddleware() {
	stamp := func(next handler.Deliverer) handler.Deliverer {
		return handler.DelivererFunc(func(ctx context.Context, ds []*handler.Delivery, results []handler.Result) {
			for _, d := range ds {
				d.SetExtra("X-Seen-By", "stamp")
			}
			next.Deliver(ctx, ds, results)
		})
	}
	app := handler.DelivererFunc(func(_ context.Context, ds []*handler.Delivery, results []handler.Result) {
		for i, d := range ds {
			v, _ := d.ExtraValue("x-seen-by")
			fmt.Println(d.ID, "seen by", v)
			results[i] = handler.Result{Outcome: handler.Success}
		}
	})
	results := make([]handler.Result, 2)
	handler.Chain(app, stamp).Deliver(context.Background(), []*handler.Delivery{{ID: "a"}, {ID: "b"}}, results)
	fmt.Println(results[0].Outcome, results[1].Outcome)
	// Output:
	// a seen by stamp
	// b seen by stamp
	// success success
}
