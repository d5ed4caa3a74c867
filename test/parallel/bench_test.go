package parallel

import (
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"
)

// makeRecords builds n records of 200-byte values over keys keys; a key always maps to the same partition,
// as the default partitioner would place it.
func makeRecords(n, partitions, keys int) []*kgo.Record {
	pad := strings.Repeat("x", 160)
	recs := make([]*kgo.Record, n)
	for i := range recs {
		k := i % keys
		v := `{"n":` + strconv.Itoa(i) + `,"pad":"` + pad + `"}`
		recs[i] = &kgo.Record{
			Key:       []byte("key-" + strconv.Itoa(k)),
			Value:     []byte(v + strings.Repeat(" ", max(0, 200-len(v)))),
			Partition: int32(k % partitions),
			Headers:   []kgo.RecordHeader{{Key: "content-type", Value: []byte("application/json")}},
		}
	}
	return recs
}

// countingApp answers 200 at once and counts records (a batch counts as Kafka-Batch-Size records).
type countingApp struct{ n atomic.Int64 }

func (a *countingApp) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	n := int64(1)
	if s := r.Header.Get("Kafka-Batch-Size"); s != "" {
		if v, err := strconv.ParseInt(s, 10, 64); err == nil {
			n = v
		}
	}
	a.n.Add(n)
	w.WriteHeader(http.StatusOK)
}

// benchSidecar measures the in-process sidecar draining a backlog of b.N records: the time between Run and
// the app's last answer. Profile it with
//
//	go test ./test/parallel -run '^$' -bench BenchmarkSidecar -benchtime 50000x -cpuprofile cpu.out
//
// The profile holds kfake and the app too; the sidecar's own share is under the pipeline, consumer,
// dedup and handler packages and their kgo, go-redis and net/http callees.
func benchSidecar(b *testing.B, extra ...string) {
	b.StopTimer()
	e := newEnv(b, 12)
	e.produce(makeRecords(b.N, 12, 1000))
	app := &countingApp{}
	cfg := e.config(serveApp(b, app), extra...)
	b.ReportAllocs()
	b.StartTimer()
	r := start(b, cfg, zap.NewNop())
	waitFor(b, 5*time.Minute, func() bool { return app.n.Load() >= int64(b.N) },
		func() string {
			return strconv.FormatInt(app.n.Load(), 10) + " of " + strconv.Itoa(b.N) + " records delivered"
		})
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
	if err := r.stop(); err != nil {
		b.Fatalf("stopping sidecar: %v", err)
	}
}

// BenchmarkSidecarPerRecord is the bench tool's per-record run in process: key order, redis dedup.
func BenchmarkSidecarPerRecord(b *testing.B) {
	benchSidecar(b, "SIDECAR_ORDERING=key")
}

// BenchmarkSidecarBatch is the bench tool's batch run in process: batches of 100, 1000 in flight.
func BenchmarkSidecarBatch(b *testing.B) {
	benchSidecar(b, "SIDECAR_ORDERING=key", "SIDECAR_DELIVERY=batch", "SIDECAR_BATCH_MAX_RECORDS=100",
		"SIDECAR_MAX_IN_FLIGHT=1000")
}
