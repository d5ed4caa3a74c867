package parallel

import (
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/kafka-sidecar/kafka-sidecar/envelope"
	"github.com/kafka-sidecar/kafka-sidecar/topics"
	"github.com/twmb/franz-go/pkg/kgo"
)

// batchApp answers the JSON batch format with a status per record: about one ID in ten is refused for good
// (422), about one in ten fails its first attempt (500), the rest succeed.
type batchApp struct {
	mu       sync.Mutex
	refused  map[string]bool
	failed   map[string]bool
	done     map[string]bool
	batches  int
	maxBatch int
	bad      []string
}

type batchReq struct {
	Records []struct {
		ID      string `json:"id"`
		Attempt int    `json:"attempt"`
	} `json:"records"`
}

type batchResult struct {
	ID     string `json:"id"`
	Status int    `json:"status"`
	Error  string `json:"error,omitempty"`
}

func bucket(id string) uint32 {
	h := fnv.New32a()
	_, _ = h.Write([]byte(id))
	return h.Sum32() % 10
}

func (a *batchApp) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var req batchReq
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		a.mu.Lock()
		a.bad = append(a.bad, err.Error())
		a.mu.Unlock()
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	a.mu.Lock()
	a.batches++
	a.maxBatch = max(a.maxBatch, len(req.Records))
	results := make([]batchResult, 0, len(req.Records))
	for _, rec := range req.Records {
		switch {
		case bucket(rec.ID) == 0:
			a.refused[rec.ID] = true
			results = append(results, batchResult{ID: rec.ID, Status: http.StatusUnprocessableEntity, Error: "refused"})
		case bucket(rec.ID) == 1 && rec.Attempt == 1:
			a.failed[rec.ID] = true
			results = append(results, batchResult{ID: rec.ID, Status: http.StatusInternalServerError, Error: "try later"})
		default:
			a.done[rec.ID] = true
			results = append(results, batchResult{ID: rec.ID, Status: http.StatusOK})
		}
	}
	a.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusMultiStatus)
	_ = json.NewEncoder(w).Encode(map[string]any{"results": results})
}

func (a *batchApp) finished() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.done) + len(a.refused)
}

// TestBatchRoutesPerRecord delivers in batches and answers a status per record: refused records land in the
// dead-letter topic, failed ones pass through the retry tier and succeed there, and the rest are done — all
// from the same batches, each record routed on its own.
func TestBatchRoutesPerRecord(t *testing.T) {
	const (
		partitions = 4
		records    = 2000
	)
	e := newEnv(t, partitions)
	app := &batchApp{refused: map[string]bool{}, failed: map[string]bool{}, done: map[string]bool{}}
	url := serveApp(t, app)
	e.produce(makeRecords(records, partitions, 200))
	r := start(t, e.config(url, "SIDECAR_DELIVERY=batch", "SIDECAR_BATCH_MAX_RECORDS=50", "SIDECAR_MAX_IN_FLIGHT=200",
		"SIDECAR_RETRY_ATTEMPTS_IN_PLACE=1"), nil)

	waitFor(t, 90*time.Second, func() bool {
		tot := r.sc.Metrics().Totals()
		return app.finished() >= records && tot.Delivered+tot.DeadLettered >= records
	}, func() string {
		return fmt.Sprintf("app finished %d of %d; sidecar totals %+v", app.finished(), records, r.sc.Metrics().Totals())
	})
	tot := r.sc.Metrics().Totals()

	app.mu.Lock()
	refused, failed, done := len(app.refused), len(app.failed), len(app.done)
	maxBatch, batches, bad := app.maxBatch, app.batches, app.bad
	dlqWant := make(map[string]bool, len(app.refused))
	for id := range app.refused {
		dlqWant[id] = true
	}
	app.mu.Unlock()

	if len(bad) > 0 {
		t.Fatalf("malformed batches: %v", bad[:min(3, len(bad))])
	}
	if maxBatch < 2 {
		t.Fatalf("largest batch held %d records: batching did not happen", maxBatch)
	}
	if refused == 0 || failed == 0 {
		t.Fatalf("the rule refused %d and failed %d records: both paths must be exercised", refused, failed)
	}
	if done+refused != records {
		t.Errorf("done %d + refused %d = %d, want %d", done, refused, done+refused, records)
	}
	if tot.DeadLettered != int64(refused) {
		t.Errorf("dead-lettered %d, want %d (the refused records)", tot.DeadLettered, refused)
	}
	if tot.Retried != int64(failed) {
		t.Errorf("retried %d, want %d (the records that failed their first attempt)", tot.Retried, failed)
	}
	if tot.Delivered != int64(records-refused) {
		t.Errorf("delivered %d, want %d", tot.Delivered, records-refused)
	}

	// The dead-letter topic holds exactly the refused IDs.
	dlq := topics.DeadLetterTopic(e.topic, e.group, "")
	got := readIDs(t, e, dlq, refused)
	for id := range dlqWant {
		if !got[id] {
			t.Errorf("refused record %s is not in %s", id, dlq)
		}
	}
	for id := range got {
		if !dlqWant[id] {
			t.Errorf("%s holds %s, which the app did not refuse", dlq, id)
		}
	}
	t.Logf("%d batches (largest %d): %d done, %d via the retry tier, %d dead-lettered", batches, maxBatch, done, failed, refused)
}

// readIDs reads n records from topic and returns their sidecar-id headers.
func readIDs(t *testing.T, e *env, topic string, n int) map[string]bool {
	t.Helper()
	cl := e.client(kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ids := map[string]bool{}
	read := 0
	for read < n {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %d of %d records from %s before the deadline", read, n, topic)
		}
		fs.EachError(func(_ string, _ int32, err error) { t.Fatalf("reading %s: %v", topic, err) })
		fs.EachRecord(func(r *kgo.Record) {
			read++
			for _, h := range r.Headers {
				if h.Key == envelope.HeaderID {
					ids[string(h.Value)] = true
				}
			}
		})
	}
	return ids
}
