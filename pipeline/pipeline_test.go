package pipeline

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/kafka-sidecar/kafka-sidecar/dedup"
	"github.com/kafka-sidecar/kafka-sidecar/envelope"
	"github.com/kafka-sidecar/kafka-sidecar/handler"
	"github.com/kafka-sidecar/kafka-sidecar/retry"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap/zaptest"
)

// scriptedApp answers deliveries from a per-ID script; the last answer repeats.
type scriptedApp struct {
	mu      sync.Mutex
	script  map[string][]handler.Result
	calls   map[string][]*handler.Delivery
	unknown handler.Result
}

func (a *scriptedApp) Deliver(_ context.Context, ds []*handler.Delivery, results []handler.Result) {
	for i, d := range ds {
		results[i] = a.answer(d)
	}
}

func (a *scriptedApp) answer(d *handler.Delivery) handler.Result {
	a.mu.Lock()
	defer a.mu.Unlock()
	cp := *d
	a.calls[d.ID] = append(a.calls[d.ID], &cp)
	s := a.script[d.ID]
	if len(s) == 0 {
		return a.unknown
	}
	r := s[0]
	if len(s) > 1 {
		a.script[d.ID] = s[1:]
	}
	return r
}

func (a *scriptedApp) attempts(id string) []int {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []int
	for _, d := range a.calls[id] {
		out = append(out, d.Attempt)
	}
	return out
}

// parkingLot records the copies sent to retry and dead-letter topics; it can fail a number of sends first.
type parkingLot struct {
	mu       sync.Mutex
	sent     []*kgo.Record
	failures int
}

func (p *parkingLot) Send(ctx context.Context, rec *kgo.Record) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.failures > 0 {
		p.failures--
		return errors.New("not enough replicas")
	}
	p.sent = append(p.sent, rec)
	return ctx.Err()
}

var (
	ok       = handler.Result{Outcome: handler.Success, Status: 200}
	fail500  = handler.Result{Outcome: handler.Retryable, Status: 500, Reason: "http 500: boom"}
	fail400  = handler.Result{Outcome: handler.Permanent, Status: 400, Reason: "http 400: bad"}
	busy503  = handler.Result{Outcome: handler.AppUnavailable, Status: 503, Reason: "http 503", RetryAfter: time.Millisecond}
	instant  = retry.Policy{AttemptsInPlace: 2, Delays: []time.Duration{time.Second, time.Minute}, Backoff: time.Microsecond, BackoffMax: time.Microsecond}
	testOpts = func(t *testing.T) Options {
		return Options{
			Group:    "g",
			IDHeader: "message-id",
			Policy:   instant,
			RetryTopics: map[string]Tier{
				"orders.g.retry.1": {Source: "orders", Tier: 1},
				"orders.g.retry.2": {Source: "orders", Tier: 2},
			},
			RetryTopic:      func(src string, n int) string { return src + ".g.retry." + string(rune('0'+n)) },
			DeadLetterTopic: func(src string) string { return src + ".g.dlq" },
			Logger:          zaptest.NewLogger(t),
		}
	}
)

func newTestPipeline(t *testing.T, app handler.Deliverer, lot *parkingLot, opts Options) (*Pipeline, *dedup.Memory) {
	t.Helper()
	store := dedup.NewMemory(dedup.MemoryOptions{Owner: "me", Lease: time.Minute, TTL: time.Hour})
	coal := dedup.NewCoalescer(store, 64)
	t.Cleanup(coal.Close)
	p := New(coal, app, lot, NewGate(nil), opts)
	t.Cleanup(p.Close)
	return p, store
}

// probes returns marks for the message IDs ids at positions no test record has, so a claim through them answers
// for the IDs alone: done (ID mark), busy (leased) or claimed (free).
func probes(ids ...string) []dedup.Mark {
	ms := make([]dedup.Mark, len(ids))
	for i, id := range ids {
		ms[i] = dedup.Mark{Topic: "probe", Offset: int64(i), ID: id, OwnID: true}
	}
	return ms
}

// claimIDs claims the message IDs ids through probes.
func claimIDs(ctx context.Context, s dedup.Store, ids ...string) ([]dedup.Status, error) {
	return s.Apply(ctx, dedup.Ops{Claim: probes(ids...)})
}

// completeIDs writes ID marks for ids through probes.
func completeIDs(ctx context.Context, s dedup.Store, ids ...string) error {
	_, err := s.Apply(ctx, dedup.Ops{Complete: probes(ids...)})
	return err
}

func sourceRecord(id string, offset int64) *kgo.Record {
	return &kgo.Record{
		Topic: "orders", Partition: 3, Offset: offset, Key: []byte("k"), Value: []byte(`{"v":1}`),
		Timestamp: time.UnixMilli(1_700_000_000_000),
		Headers:   []kgo.RecordHeader{{Key: "message-id", Value: []byte(id)}, {Key: "trace", Value: []byte("t1")}},
	}
}

func header(r *kgo.Record, key string) string {
	v := ""
	for _, h := range r.Headers {
		if h.Key == key {
			v = string(h.Value)
		}
	}
	return v
}

func TestRouting(t *testing.T) {
	tests := []struct {
		name         string
		script       []handler.Result
		wantAttempts []int
		wantTopic    string // "" means delivered, nothing parked
		wantCount    string
	}{
		{"success", []handler.Result{ok}, []int{1}, "", ""},
		{"500 once then 200 stays in place", []handler.Result{fail500, ok}, []int{1, 2}, "", ""},
		{"always 500 moves to tier 1 after the in-place attempts", []handler.Result{fail500}, []int{1, 2}, "orders.g.retry.1", "2"},
		{"400 goes to the dead-letter topic at once", []handler.Result{fail400}, []int{1}, "orders.g.dlq", "1"},
		{"503 uses no attempt", []handler.Result{busy503, busy503, ok}, []int{1, 1, 1}, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			app := &scriptedApp{script: map[string][]handler.Result{"id-1": tt.script}, calls: map[string][]*handler.Delivery{}}
			lot := &parkingLot{}
			p, store := newTestPipeline(t, app, lot, testOpts(t))
			if err := p.Process(context.Background(), sourceRecord("id-1", 42)); err != nil {
				t.Fatalf("Process: %v", err)
			}
			if got := app.attempts("id-1"); !equalInts(got, tt.wantAttempts) {
				t.Fatalf("attempt numbers %v, want %v", got, tt.wantAttempts)
			}
			st, _ := claimIDs(context.Background(), store, "id-1")
			if tt.wantTopic == "" {
				if len(lot.sent) != 0 {
					t.Fatalf("parked %d copies, want none", len(lot.sent))
				}
				if st[0] != dedup.Busy && st[0] != dedup.Done {
					t.Fatalf("after delivery the ID is %v, want done", st[0])
				}
				return
			}
			if len(lot.sent) != 1 || lot.sent[0].Topic != tt.wantTopic {
				t.Fatalf("parked %v, want one copy in %s", lot.sent, tt.wantTopic)
			}
			c := lot.sent[0]
			if got := header(c, envelope.HeaderAttempts); got != tt.wantCount {
				t.Fatalf("sidecar-attempts %q, want %q", got, tt.wantCount)
			}
			for h, want := range map[string]string{
				envelope.HeaderID: "id-1", envelope.HeaderOriginalTopic: "orders", envelope.HeaderOriginalPartition: "3",
				envelope.HeaderOriginalOffset: "42", envelope.HeaderGroup: "g", "trace": "t1",
			} {
				if got := header(c, h); got != want {
					t.Errorf("header %s = %q, want %q", h, got, want)
				}
			}
			if string(c.Key) != "k" || string(c.Value) != `{"v":1}` || c.Partition != 3 {
				t.Errorf("copy changed key/value/partition: %q %q %d", c.Key, c.Value, c.Partition)
			}
			if st[0] != dedup.Claimed {
				t.Fatalf("a parked record's lease must be released, got %v", st[0])
			}
		})
	}
}

func TestRetryRecordKeepsIdentityAndWalksTiers(t *testing.T) {
	app := &scriptedApp{script: map[string][]handler.Result{"id-9": {fail500}}, calls: map[string][]*handler.Delivery{}}
	lot := &parkingLot{}
	p, _ := newTestPipeline(t, app, lot, testOpts(t))
	first := sourceRecord("id-9", 7)
	if err := p.Process(context.Background(), first); err != nil {
		t.Fatal(err)
	}
	// The tier-1 copy comes back from its retry topic at another offset.
	tier1 := lot.sent[0]
	tier1.Topic, tier1.Offset = "orders.g.retry.1", 1000
	if nb := p.NotBefore(tier1); nb.IsZero() {
		t.Fatal("a retry copy must carry its not-before time")
	}
	if err := p.Process(context.Background(), tier1); err != nil {
		t.Fatal(err)
	}
	if len(lot.sent) != 2 || lot.sent[1].Topic != "orders.g.retry.2" {
		t.Fatalf("second copy %v, want tier 2", lot.sent[1].Topic)
	}
	calls := app.calls["id-9"]
	last := calls[len(calls)-1]
	if last.Topic != "orders" || last.Offset != 7 || last.Partition != 3 || last.Attempt != 4 {
		t.Fatalf("tier-1 delivery described %s/%d/%d attempt %d, want orders/3/7 attempt 4",
			last.Topic, last.Partition, last.Offset, last.Attempt)
	}
	for _, h := range last.Headers {
		if len(h.Key) >= 8 && h.Key[:8] == "sidecar-" {
			t.Fatalf("provenance header %s leaked to the app", h.Key)
		}
	}
	tier2 := lot.sent[1]
	tier2.Topic = "orders.g.retry.2"
	if err := p.Process(context.Background(), tier2); err != nil {
		t.Fatal(err)
	}
	if dl := lot.sent[2]; dl.Topic != "orders.g.dlq" || header(dl, envelope.HeaderAttempts) != "6" || header(dl, envelope.HeaderNotBefore) != "" {
		t.Fatalf("final copy %s attempts %s not-before %q, want the DLQ with 6 attempts and no not-before",
			dl.Topic, header(dl, envelope.HeaderAttempts), header(dl, envelope.HeaderNotBefore))
	}
}

func TestDuplicateIsSkipped(t *testing.T) {
	app := &scriptedApp{script: map[string][]handler.Result{}, calls: map[string][]*handler.Delivery{}, unknown: ok}
	p, _ := newTestPipeline(t, app, &parkingLot{}, testOpts(t))
	for off := range int64(3) {
		if err := p.Process(context.Background(), sourceRecord("same", off)); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(app.calls["same"]); n != 1 {
		t.Fatalf("the app saw the same ID %d times, want 1", n)
	}
}

func TestParkFailureKeepsRecordUndone(t *testing.T) {
	app := &scriptedApp{script: map[string][]handler.Result{"x": {fail400}}, calls: map[string][]*handler.Delivery{}}
	blocking := sendFunc(func(ctx context.Context, _ *kgo.Record) error { <-ctx.Done(); return ctx.Err() })
	store := dedup.NewMemory(dedup.MemoryOptions{Owner: "me", Lease: time.Minute, TTL: time.Hour})
	coal := dedup.NewCoalescer(store, 8)
	defer coal.Close()
	p := New(coal, app, blocking, NewGate(nil), testOpts(t))
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := p.Process(ctx, sourceRecord("x", 1)); err == nil {
		t.Fatal("Process must not report done while the dead-letter copy is unacknowledged")
	}
	if st, _ := claimIDs(context.Background(), store, "x"); st[0] != dedup.Claimed {
		t.Fatalf("lease not released after the failed park: %v", st[0])
	}
}

func TestOversizedRecordIsDeadLettered(t *testing.T) {
	app := &scriptedApp{calls: map[string][]*handler.Delivery{}, unknown: ok}
	lot := &parkingLot{}
	opts := testOpts(t)
	opts.MaxRecordBytes = 10
	p, _ := newTestPipeline(t, app, lot, opts)
	if err := p.Process(context.Background(), sourceRecord("big", 1)); err != nil {
		t.Fatal(err)
	}
	if len(app.calls) != 0 || len(lot.sent) != 1 || lot.sent[0].Topic != "orders.g.dlq" {
		t.Fatalf("oversized record: %d deliveries, parked %v", len(app.calls), lot.sent)
	}
	if got := header(lot.sent[0], envelope.HeaderError); got == "" {
		t.Fatal("the dead letter must say why")
	}
}

func TestMalformedProvenanceIsDeliveredNotStuck(t *testing.T) {
	app := &scriptedApp{calls: map[string][]*handler.Delivery{}, unknown: ok}
	p, _ := newTestPipeline(t, app, &parkingLot{}, testOpts(t))
	rec := &kgo.Record{Topic: "orders.g.retry.1", Partition: 0, Offset: 5, Value: []byte("v"), Headers: []kgo.RecordHeader{
		{Key: envelope.HeaderAttempts, Value: []byte("many")},
		{Key: envelope.HeaderNotBefore, Value: []byte("\xff")},
		{Key: envelope.HeaderOriginalOffset, Value: []byte("-3")},
	}}
	if !p.NotBefore(rec).IsZero() {
		t.Fatal("a malformed not-before must not hold the record")
	}
	if err := p.Process(context.Background(), rec); err != nil {
		t.Fatal(err)
	}
	if len(app.calls) != 1 {
		t.Fatalf("record with malformed headers delivered %d times, want 1", len(app.calls))
	}
}

type sendFunc func(ctx context.Context, rec *kgo.Record) error

func (f sendFunc) Send(ctx context.Context, rec *kgo.Record) error { return f(ctx, rec) }

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestReplayedDeadLetterKeepsIdentityAndHidesBookkeeping(t *testing.T) {
	app := &scriptedApp{calls: map[string][]*handler.Delivery{}, unknown: ok}
	p, _ := newTestPipeline(t, app, &parkingLot{}, testOpts(t))
	rec := &kgo.Record{Topic: "orders", Partition: 1, Offset: 900, Value: []byte("v"), Headers: []kgo.RecordHeader{
		{Key: "own", Value: []byte("kept")},
		{Key: envelope.HeaderID, Value: []byte("original-id")},
		{Key: envelope.HeaderOriginalTopic, Value: []byte("orders")},
		{Key: envelope.HeaderOriginalPartition, Value: []byte("1")},
		{Key: envelope.HeaderOriginalOffset, Value: []byte("12")},
		{Key: "sidecar-replayed-from", Value: []byte("orders.g.dlq/1/3")},
		{Key: "sidecar-replay-count", Value: []byte("1")},
	}}
	if err := p.Process(context.Background(), rec); err != nil {
		t.Fatal(err)
	}
	d := app.calls["original-id"]
	if len(d) != 1 {
		t.Fatalf("replayed record delivered under IDs %v, want original-id", app.calls)
	}
	if d[0].Offset != 12 {
		t.Errorf("Kafka-Offset %d, want the original 12", d[0].Offset)
	}
	if len(d[0].Headers) != 1 || d[0].Headers[0].Key != "own" {
		t.Errorf("headers forwarded %v, want only the record's own", d[0].Headers)
	}
}
