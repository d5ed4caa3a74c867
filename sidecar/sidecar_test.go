package sidecar

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kafka-sidecar/kafka-sidecar/test/redistest"
	"github.com/twmb/franz-go/pkg/kgo"
)

// stallingApp answers 200 until stalled; while stalled, requests wait for release.
type stallingApp struct {
	mu      sync.Mutex
	stalled chan struct{}
	seen    int
}

func (a *stallingApp) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	a.mu.Lock()
	gate := a.stalled
	a.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-r.Context().Done():
			return
		}
	}
	a.mu.Lock()
	a.seen++
	a.mu.Unlock()
	w.WriteHeader(http.StatusOK)
}

func (a *stallingApp) count() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.seen
}

func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func scrape(t *testing.T, addr string) string {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatalf("scraping /metrics: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// sample returns the value of the first series matching name and all label pairs, or -1.
func sample(text, name string, labels ...string) float64 {
	for _, line := range strings.Split(text, "\n") {
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		match := true
		for _, l := range labels {
			if !strings.Contains(line, l) {
				match = false
			}
		}
		if !match {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err == nil {
			return v
		}
	}
	return -1
}

func produce(t *testing.T, seeds []string, topic string, from, n int) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.DefaultProduceTopic(topic))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var recs []*kgo.Record
	for i := from; i < from+n; i++ {
		recs = append(recs, &kgo.Record{Key: []byte(fmt.Sprintf("k%d", i%7)), Value: []byte(strconv.Itoa(i))})
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

// startSidecar assembles the sidecar from env and runs it until the returned stop is called; stop fails the
// test unless Run ends cleanly.
func startSidecar(t *testing.T, ctx context.Context, env []string) (*Sidecar, func()) {
	t.Helper()
	sc, _, stop := startObserved(t, ctx, env)
	return sc, stop
}

// TestMetricsReadinessAndLag runs the assembled sidecar against kfake, a real redis-server and a real app, and
// checks the operator-facing surface: metric names and labels from a scrape, the start-up audit as metrics,
// /readyz reasons, and consumer lag in records and seconds growing while the app stalls.
func TestMetricsReadinessAndLag(t *testing.T) {
	cluster := ordersCluster(t)
	redisSrv := redistest.Start(t, redistest.Options{})
	app := &stallingApp{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: app, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	sc, stop := startSidecar(t, ctx, []string{
		"SIDECAR_KAFKA_BROKERS=" + strings.Join(cluster.ListenAddrs(), ","),
		"SIDECAR_KAFKA_TOPICS=orders", "SIDECAR_KAFKA_GROUP=ops",
		"SIDECAR_REDIS_URL=" + redisSrv.URL(),
		"SIDECAR_APP_URL=http://" + ln.Addr().String() + "/",
		"SIDECAR_ADMIN_ADDR=127.0.0.1:0", "SIDECAR_COMMIT_INTERVAL=50ms",
		"SIDECAR_RETRY_DELAYS=1s", "SIDECAR_SHUTDOWN_TIMEOUT=2s", "SIDECAR_APP_TIMEOUT=30s",
	})
	addr := sc.AdminAddr(ctx)

	produce(t, cluster.ListenAddrs(), "orders", 0, 50)
	waitFor(t, 20*time.Second, "50 deliveries", func() bool { return app.count() == 50 })
	waitFor(t, 10*time.Second, "/readyz 200", func() bool {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})

	text := scrape(t, addr)
	for _, want := range []struct {
		name   string
		labels []string
	}{
		{"kafka_sidecar_records_total", []string{`topic="orders"`, `outcome="delivered"`}},
		{"kafka_sidecar_delivery_duration_seconds_count", []string{`result="success"`}},
		{"kafka_sidecar_in_flight", nil},
		{"kafka_sidecar_consumer_lag", []string{`topic="orders"`, `partition="0"`}},
		{"kafka_sidecar_consumer_lag_seconds", []string{`topic="orders"`}},
		{"kafka_sidecar_commits_total", nil},
		{"kafka_sidecar_paused", []string{`reason="app_unavailable"`}},
		{"kafka_sidecar_app_up", nil},
		{"kafka_sidecar_doctor_check", []string{`check="redis.eviction"`}},
		{"kafka_sidecar_build_info", []string{`version="` + Version + `"`, `goversion="go`}},
		{"kafka_sidecar_dedup_store_duration_seconds_count", []string{`op="pipeline"`}},
		{"kafka_sidecar_stalled", nil},
	} {
		if sample(text, want.name, want.labels...) < 0 {
			t.Errorf("scrape lacks %s{%s}", want.name, strings.Join(want.labels, ","))
		}
	}
	if got := sample(text, "kafka_sidecar_records_total", `outcome="delivered"`, `topic="orders"`); got != 50 {
		t.Errorf("records_total delivered = %v, want 50", got)
	}
	if !regexp.MustCompile(`kafka_sidecar_doctor_check\{check="[^"]+",status="(PASS|WARN|FAIL)"\} 1`).MatchString(text) {
		t.Error("no doctor check reported with value 1")
	}

	// Stall the app: lag in records and in seconds must grow while records wait.
	app.mu.Lock()
	app.stalled = make(chan struct{})
	release := app.stalled
	app.mu.Unlock()
	produce(t, cluster.ListenAddrs(), "orders", 50, 20)
	lagSeconds := func() float64 {
		s := scrape(t, addr)
		return max(sample(s, "kafka_sidecar_consumer_lag_seconds", `partition="0"`), sample(s, "kafka_sidecar_consumer_lag_seconds", `partition="1"`))
	}
	waitFor(t, 10*time.Second, "lag in seconds above 0.3 while the app stalls", func() bool { return lagSeconds() > 0.3 })
	first := lagSeconds()
	waitFor(t, 10*time.Second, "lag in seconds still growing", func() bool { return lagSeconds() > first+0.2 })
	s := scrape(t, addr)
	if lag := sample(s, "kafka_sidecar_consumer_lag", `partition="0"`) + sample(s, "kafka_sidecar_consumer_lag", `partition="1"`); lag <= 0 {
		t.Errorf("lag in records %v while 20 records wait, want > 0", lag)
	}
	close(release)
	waitFor(t, 20*time.Second, "the backlog delivered after the stall", func() bool { return app.count() == 70 })
	waitFor(t, 10*time.Second, "lag back to 0", func() bool { return lagSeconds() == 0 })

	// Readiness names its reasons: stop Redis and /readyz turns 503 with a dedup reason.
	redisSrv.Stop()
	var body readiness
	waitFor(t, 10*time.Second, "/readyz 503 naming the dedup store", func() bool {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		body = readiness{}
		_ = json.NewDecoder(resp.Body).Decode(&body)
		return resp.StatusCode == http.StatusServiceUnavailable && strings.Contains(strings.Join(body.Reasons, ";"), "dedup store")
	})
	if body.Ready {
		t.Error("ready=true in a 503 answer")
	}
	redisSrv.Start()

	stop()
}
