package pipeline

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kafka-sidecar/kafka-sidecar/consumer"
	"github.com/kafka-sidecar/kafka-sidecar/dedup"
	"github.com/kafka-sidecar/kafka-sidecar/handler"
	"github.com/twmb/franz-go/pkg/kgo"
)

// batchApp answers batches record by record from a scriptedApp and remembers the size of every batch.
type batchApp struct {
	*scriptedApp
	mu    sync.Mutex
	sizes []int
}

func (a *batchApp) Deliver(ctx context.Context, ds []*handler.Delivery, results []handler.Result) {
	a.mu.Lock()
	a.sizes = append(a.sizes, len(ds))
	a.mu.Unlock()
	a.scriptedApp.Deliver(ctx, ds, results)
}

func (a *batchApp) batchSizes() []int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]int(nil), a.sizes...)
}

// reports collects what ProcessBatch reports, failing the test on a job reported twice.
type reports struct {
	t    *testing.T
	mu   sync.Mutex
	errs map[int]error
	all  chan struct{}
	want int
}

func newReports(t *testing.T, jobs int) *reports {
	return &reports{t: t, errs: map[int]error{}, all: make(chan struct{}), want: jobs}
}

func (r *reports) report(err error, idx ...int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, i := range idx {
		if _, dup := r.errs[i]; dup {
			r.t.Errorf("job %d reported twice", i)
		}
		r.errs[i] = err
	}
	if len(r.errs) == r.want {
		close(r.all)
	}
}

// wait returns every job's error once all are reported, failing after 10s.
func (r *reports) wait() map[int]error {
	r.t.Helper()
	select {
	case <-r.all:
	case <-time.After(10 * time.Second):
		r.mu.Lock()
		defer r.mu.Unlock()
		r.t.Fatalf("%d of %d jobs reported within 10s", len(r.errs), r.want)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[int]error, len(r.errs))
	for k, v := range r.errs {
		out[k] = v
	}
	return out
}

func jobsOf(ctx context.Context, recs ...*kgo.Record) []consumer.Job {
	jobs := make([]consumer.Job, len(recs))
	for i, r := range recs {
		jobs[i] = consumer.Job{Ctx: ctx, Rec: r}
	}
	return jobs
}

func newBatchPipeline(t *testing.T, app *batchApp, lot *parkingLot, opts Options) (*Pipeline, *dedup.Memory) {
	t.Helper()
	opts.BatchDelivery = true
	return newTestPipeline(t, app, lot, opts)
}

// TestProcessBatchRoutesEachRecord runs a batch holding every case a record can meet and checks that each
// ends as Process would end it: one request carries the records that can go at once, and the rest finish alone.
func TestProcessBatchRoutesEachRecord(t *testing.T) {
	app := &batchApp{scriptedApp: &scriptedApp{
		script: map[string][]handler.Result{
			"flaky":   {fail500, ok},
			"refused": {fail400},
			"broken":  {fail500},
			"busy":    {busy503, ok},
		},
		calls:   map[string][]*handler.Delivery{},
		unknown: ok,
	}}
	lot := &parkingLot{}
	opts := testOpts(t)
	opts.MaxRecordBytes = 64
	p, store := newBatchPipeline(t, app, lot, opts)
	ctx := context.Background()
	if err := completeIDs(ctx, store, "seen"); err != nil {
		t.Fatal(err)
	}
	big := sourceRecord("big", 9)
	big.Value = []byte(strings.Repeat("x", 100))
	recs := []*kgo.Record{
		sourceRecord("fine", 1), sourceRecord("flaky", 2), sourceRecord("refused", 3), sourceRecord("broken", 4),
		sourceRecord("busy", 5), sourceRecord("seen", 6), sourceRecord("twice", 7), sourceRecord("twice", 8), big,
	}
	r := newReports(t, len(recs))
	p.ProcessBatch(jobsOf(ctx, recs...), r.report)
	for i, err := range r.wait() {
		if err != nil {
			t.Errorf("job %d (%s) reported %v, want done", i, recs[i].Headers[0].Value, err)
		}
	}

	// Not in the first request: the duplicate, the second record with an ID held by the first, the oversized
	// record. Whatever goes on alone afterwards (two retries in place and the record the app could not take;
	// the second "twice" is found done) goes in a request of its own.
	if sizes := app.batchSizes(); fmt.Sprint(sizes) != "[6 1 1 1]" {
		t.Fatalf("batch sizes %v, want one request with the 6 records that could go at once, then 3 alone", sizes)
	}
	for id, want := range map[string][]int{
		"fine": {1}, "flaky": {1, 2}, "refused": {1}, "broken": {1, 2}, "busy": {1, 1}, "seen": nil, "twice": {1},
		"big": nil,
	} {
		if got := app.attempts(id); !equalInts(got, want) {
			t.Errorf("%s: attempts %v, want %v", id, got, want)
		}
	}
	parked := map[string]string{}
	for _, c := range lot.sent {
		parked[header(c, "sidecar-id")] = c.Topic
	}
	want := map[string]string{"refused": "orders.g.dlq", "broken": "orders.g.retry.1", "big": "orders.g.dlq"}
	if fmt.Sprint(parked) != fmt.Sprint(want) {
		t.Fatalf("parked %v, want %v", parked, want)
	}
	st, err := claimIDs(ctx, store, "fine", "flaky", "busy", "twice", "refused")
	if err != nil {
		t.Fatal(err)
	}
	if want := []dedup.Status{dedup.Done, dedup.Done, dedup.Done, dedup.Done, dedup.Claimed}; fmt.Sprint(st) != fmt.Sprint(want) {
		t.Fatalf("store after the batch %v, want %v (delivered IDs done, a parked ID released)", st, want)
	}
}

// TestProcessBatchWaitsOutUnavailableApp answers "unavailable" for the whole batch twice: the batch is sent
// again after the pause, and no attempt is used.
func TestProcessBatchWaitsOutUnavailableApp(t *testing.T) {
	app := &batchApp{scriptedApp: &scriptedApp{
		script: map[string][]handler.Result{"a": {busy503, busy503, ok}, "b": {busy503, busy503, ok}},
		calls:  map[string][]*handler.Delivery{},
	}}
	p, _ := newBatchPipeline(t, app, &parkingLot{}, testOpts(t))
	r := newReports(t, 2)
	p.ProcessBatch(jobsOf(context.Background(), sourceRecord("a", 1), sourceRecord("b", 2)), r.report)
	for i, err := range r.wait() {
		if err != nil {
			t.Fatalf("job %d: %v", i, err)
		}
	}
	if sizes := app.batchSizes(); fmt.Sprint(sizes) != "[2 2 2]" {
		t.Fatalf("batch sizes %v, want the whole batch sent three times", sizes)
	}
	if got := app.attempts("a"); !equalInts(got, []int{1, 1, 1}) {
		t.Fatalf("attempts %v, want 1 each time (unavailable uses no attempt)", got)
	}
}

// TestProcessBatchEndedJobContext ends one job's context before the batch starts: that record stops undone with
// its lease released, and the others are delivered.
func TestProcessBatchEndedJobContext(t *testing.T) {
	app := &batchApp{scriptedApp: &scriptedApp{calls: map[string][]*handler.Delivery{}, unknown: ok}}
	p, store := newBatchPipeline(t, app, &parkingLot{}, testOpts(t))
	live := context.Background()
	revoked, cancel := context.WithCancel(context.Background())
	cancel()
	jobs := []consumer.Job{
		{Ctx: live, Rec: sourceRecord("kept", 1)},
		{Ctx: revoked, Rec: sourceRecord("dropped", 2)},
		{Ctx: live, Rec: sourceRecord("kept-too", 3)},
	}
	r := newReports(t, len(jobs))
	p.ProcessBatch(jobs, r.report)
	errs := r.wait()
	if errs[0] != nil || errs[2] != nil {
		t.Fatalf("live jobs reported %v and %v, want done", errs[0], errs[2])
	}
	if !errors.Is(errs[1], context.Canceled) {
		t.Fatalf("the revoked job reported %v, want context.Canceled", errs[1])
	}
	other := store.Shared(dedup.MemoryOptions{Owner: "other"})
	st, err := claimIDs(context.Background(), other, "kept", "dropped", "kept-too")
	if err != nil {
		t.Fatal(err)
	}
	if want := []dedup.Status{dedup.Done, dedup.Claimed, dedup.Done}; fmt.Sprint(st) != fmt.Sprint(want) {
		t.Fatalf("store seen by another member %v, want %v (the revoked record's lease released)", st, want)
	}
	if n := len(app.calls["dropped"]); n != 0 {
		t.Fatalf("the revoked record reached the app %d times", n)
	}
}

// flakyStore fails its first calls as an unreachable Redis would.
type flakyStore struct {
	dedup.Store
	mu    sync.Mutex
	fails int
}

func (f *flakyStore) Apply(ctx context.Context, ops dedup.Ops) ([]dedup.Status, error) {
	f.mu.Lock()
	fail := f.fails > 0
	if fail {
		f.fails--
	}
	f.mu.Unlock()
	if fail {
		return nil, fmt.Errorf("applying: %w: connection refused", dedup.ErrUnavailable)
	}
	return f.Store.Apply(ctx, ops)
}

// TestProcessBatchStoreOutage fails the batch's claim: delivery pauses, nothing reaches the app undeduplicated,
// and every record is delivered once the store answers again.
func TestProcessBatchStoreOutage(t *testing.T) {
	app := &batchApp{scriptedApp: &scriptedApp{calls: map[string][]*handler.Delivery{}, unknown: ok}}
	store := &flakyStore{Store: dedup.NewMemory(dedup.MemoryOptions{Owner: "me", Lease: time.Minute, TTL: time.Hour}), fails: 1}
	coal := dedup.NewCoalescer(store, 64)
	t.Cleanup(coal.Close)
	opts := testOpts(t)
	opts.BatchDelivery = true
	opts.DedupBackoffMax = time.Millisecond
	gate := NewGate(nil)
	p := New(coal, app, &parkingLot{}, gate, opts)
	t.Cleanup(p.Close)
	r := newReports(t, 3)
	p.ProcessBatch(jobsOf(context.Background(), sourceRecord("a", 1), sourceRecord("b", 2), sourceRecord("c", 3)), r.report)
	for i, err := range r.wait() {
		if err != nil {
			t.Fatalf("job %d: %v", i, err)
		}
	}
	for _, id := range []string{"a", "b", "c"} {
		if got := app.attempts(id); !equalInts(got, []int{1}) {
			t.Errorf("%s: attempts %v, want one delivery", id, got)
		}
	}
	if sizes := app.batchSizes(); fmt.Sprint(sizes) != "[3]" {
		t.Errorf("batch requests %v, want the batch to wait out the outage and go in one request", sizes)
	}
}

// concurrencyApp answers every delivery after a short hold and remembers how many were under way at once.
type concurrencyApp struct {
	mu       sync.Mutex
	now, max int
	seen     map[string]int
}

func (a *concurrencyApp) Deliver(_ context.Context, ds []*handler.Delivery, results []handler.Result) {
	for i, d := range ds {
		results[i] = a.answer(d)
	}
}

func (a *concurrencyApp) answer(d *handler.Delivery) handler.Result {
	a.mu.Lock()
	a.now++
	a.max = max(a.max, a.now)
	a.seen[d.ID]++
	a.mu.Unlock()
	time.Sleep(time.Millisecond) // the app's work, so that deliveries overlap; not synchronisation
	a.mu.Lock()
	a.now--
	a.mu.Unlock()
	return ok
}

// TestProcessBatchSingleMode runs a batch without a batch deliverer: each record goes in a request of its own,
// no more than MaxDeliveries at once, and a record is reported done only once its done mark is written.
func TestProcessBatchSingleMode(t *testing.T) {
	app := &concurrencyApp{seen: map[string]int{}}
	store := dedup.NewMemory(dedup.MemoryOptions{Owner: "me", Lease: time.Minute, TTL: time.Hour})
	coal := dedup.NewCoalescer(store, 64)
	t.Cleanup(coal.Close)
	opts := testOpts(t)
	opts.MaxDeliveries = 3
	p := New(coal, app, &parkingLot{}, NewGate(nil), opts)
	t.Cleanup(p.Close)

	const n = 20
	recs := make([]*kgo.Record, n)
	for i := range recs {
		recs[i] = sourceRecord(fmt.Sprint("id-", i), int64(i))
	}
	var mu sync.Mutex
	var notDone []string
	r := newReports(t, n)
	report := func(err error, idx ...int) {
		for _, i := range idx {
			id := fmt.Sprint("id-", i)
			if st, cerr := claimIDs(context.Background(), store, id); err == nil && (cerr != nil || st[0] != dedup.Done) {
				mu.Lock()
				notDone = append(notDone, id)
				mu.Unlock()
			}
		}
		r.report(err, idx...)
	}
	p.ProcessBatch(jobsOf(context.Background(), recs...), report)
	for i, err := range r.wait() {
		if err != nil {
			t.Fatalf("job %d: %v", i, err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(notDone) > 0 {
		t.Fatalf("reported done before their done marks were written: %v", notDone)
	}
	app.mu.Lock()
	defer app.mu.Unlock()
	if app.max > 3 {
		t.Fatalf("%d deliveries under way at once, want at most MaxDeliveries = 3", app.max)
	}
	for i := range n {
		if c := app.seen[fmt.Sprint("id-", i)]; c != 1 {
			t.Fatalf("id-%d delivered %d times, want 1", i, c)
		}
	}
}
