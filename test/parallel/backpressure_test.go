package parallel

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// bufferedRecords scrapes /metrics and sums kafka_sidecar_buffered_records over every partition.
func bufferedRecords(ctx context.Context, addr string) (float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
	if err != nil {
		return 0, fmt.Errorf("building the scrape: %w", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, fmt.Errorf("scraping metrics: %w", err)
	}
	defer func() { _ = resp.Body.Close() }()
	return sumGauge(bufio.NewScanner(resp.Body), "kafka_sidecar_buffered_records")
}

// sumGauge adds up every sample of name in a Prometheus text exposition.
func sumGauge(sc *bufio.Scanner, name string) (float64, error) {
	sum, seen := 0.0, false
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			return 0, fmt.Errorf("parsing %q: %w", line, err)
		}
		sum += v
		seen = true
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("reading metrics: %w", err)
	}
	if !seen {
		return 0, fmt.Errorf("no %s sample", name)
	}
	return sum, nil
}

// slowApp takes latency per request and counts them.
type slowApp struct {
	latency time.Duration
	n       atomic.Int64
}

func (a *slowApp) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if _, err := parseDelivery(r); err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	time.Sleep(a.latency)
	a.n.Add(1)
	w.WriteHeader(http.StatusOK)
}

// TestBackpressureBoundsBuffer puts a backlog forty times the buffer cap in front of a slow app: sampled all
// through the run, the records fetched and not done never exceed SIDECAR_MAX_BUFFERED_RECORDS. The heap of
// the test process (sidecar, kfake holding the whole backlog, and the app) is logged for the record.
func TestBackpressureBoundsBuffer(t *testing.T) {
	const (
		capRecords = 500
		backlog    = 20000
		deliveries = 3000
	)
	e := newEnv(t, 12)
	app := &slowApp{latency: 5 * time.Millisecond}
	url := serveApp(t, app)
	e.produce(makeRecords(backlog, 12, 1000))
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)

	r := start(t, e.config(url, "SIDECAR_MAX_BUFFERED_RECORDS="+strconv.Itoa(capRecords), "SIDECAR_MAX_IN_FLIGHT=64"), nil)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	addr := r.sc.AdminAddr(ctx)
	if addr == "" {
		t.Fatal("admin server did not start")
	}

	var (
		samples, peak float64
		peakHeap      uint64
		ms            runtime.MemStats
	)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for app.n.Load() < deliveries {
		select {
		case <-ctx.Done():
			t.Fatalf("only %d of %d deliveries within the deadline", app.n.Load(), deliveries)
		case <-tick.C:
		}
		b, err := bufferedRecords(ctx, addr)
		if err != nil {
			t.Fatalf("sampling the buffer: %v", err)
		}
		samples++
		peak = max(peak, b)
		if b > capRecords {
			t.Errorf("buffered records %v exceed the cap %d", b, capRecords)
		}
		runtime.ReadMemStats(&ms)
		peakHeap = max(peakHeap, ms.HeapInuse)
	}
	if samples < 10 {
		t.Errorf("only %v samples of the buffer: the run was too short to show anything", samples)
	}
	if peak == 0 {
		t.Error("the buffer gauge never showed a record: the sampling saw nothing")
	}
	t.Logf("%v samples, peak buffered %v (cap %d); heap in use: %.1f MiB before the sidecar, peak %.1f MiB during the run",
		samples, peak, capRecords, float64(before.HeapInuse)/(1<<20), float64(peakHeap)/(1<<20))
}
