package sidecar

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest"
	"go.uber.org/zap/zaptest/observer"

	"github.com/kafka-sidecar/kafka-sidecar/config"
	"github.com/kafka-sidecar/kafka-sidecar/test/redistest"
)

// probe is one answer of an admin endpoint and how long it took.
type probe struct {
	status int
	body   string
	took   time.Duration
}

func getProbe(t *testing.T, url string) probe {
	t.Helper()
	start := time.Now()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return probe{status: resp.StatusCode, body: string(b), took: time.Since(start)}
}

// switchApp answers 200, or 503 while unavailable is set.
type switchApp struct {
	unavailable atomic.Bool
	ok          atomic.Int64
}

func (a *switchApp) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	if a.unavailable.Load() {
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	a.ok.Add(1)
	w.WriteHeader(http.StatusOK)
}

// startObserved runs the sidecar with a logger that both records every line for assertions and prints to the
// test log.
func startObserved(t *testing.T, ctx context.Context, env []string) (*Sidecar, *observer.ObservedLogs, func()) {
	t.Helper()
	cfg, err := config.LoadFrom(env)
	if err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zapcore.DebugLevel)
	log := zap.New(zapcore.NewTee(core, zaptest.NewLogger(t).Core()))
	sc, err := New(ctx, cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	errc := make(chan error, 1)
	go func() { errc <- sc.Run(runCtx) }()
	return sc, logs, func() {
		t.Helper()
		cancel()
		if err := <-errc; err != nil {
			t.Fatalf("Run: %v", err)
		}
	}
}

// ordersCluster starts a one-broker kfake cluster with the topic "orders" of 2 partitions, closed when the test
// ends.
func ordersCluster(t *testing.T) *kfake.Cluster {
	t.Helper()
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(2, "orders"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	return cluster
}

// baseEnv is the environment of the tests in this file: the cluster, Redis and app addresses, an admin server on
// a free port, and the group "ops"; extra settings follow.
func baseEnv(cluster *kfake.Cluster, redisURL, appAddr string, extra ...string) []string {
	return append([]string{
		"SIDECAR_KAFKA_BROKERS=" + strings.Join(cluster.ListenAddrs(), ","),
		"SIDECAR_KAFKA_TOPICS=orders", "SIDECAR_KAFKA_GROUP=ops",
		"SIDECAR_REDIS_URL=" + redisURL,
		"SIDECAR_APP_URL=http://" + appAddr + "/",
		"SIDECAR_ADMIN_ADDR=127.0.0.1:0",
	}, extra...)
}

// serveApp serves h on a free port of 127.0.0.1 until the test ends and returns the address.
func serveApp(t *testing.T, h http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return ln.Addr().String()
}

// exactlyOne fails unless logs hold exactly one line with msg, and returns its fields.
func exactlyOne(t *testing.T, logs *observer.ObservedLogs, msg string) map[string]any {
	t.Helper()
	lines := logs.FilterMessage(msg).All()
	if len(lines) != 1 {
		t.Fatalf("%d lines %q, want exactly 1", len(lines), msg)
	}
	return lines[0].ContextMap()
}

// TestProbesAndLifecycleLines runs the assembled sidecar on kfake, a real password-protected redis-server and a
// real app, and checks what an operator sees through an outage of each: /readyz answers within 100 ms with 503
// and the reason while redis-server is stopped and 200 within 2 s of its return; every lifecycle event is
// exactly one log line with its fields; no line holds the Redis password.
func TestProbesAndLifecycleLines(t *testing.T) {
	cluster := ordersCluster(t)
	const password = "s3cret-redis-pw"
	redisSrv := redistest.Start(t, redistest.Options{Password: password})
	app := &switchApp{}
	appAddr := serveApp(t, app)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	sc, logs, stop := startObserved(t, ctx, baseEnv(cluster, redisSrv.URL(), appAddr, "SIDECAR_COMMIT_INTERVAL=50ms",
		"SIDECAR_RETRY_DELAYS=1s", "SIDECAR_SHUTDOWN_TIMEOUT=2s", "SIDECAR_APP_BACKOFF_MAX=200ms"))
	addr := sc.AdminAddr(ctx)
	readyz, healthz := "http://"+addr+"/readyz", "http://"+addr+"/healthz"
	waitFor(t, 20*time.Second, "/readyz 200 after start", func() bool { return getProbe(t, readyz).status == http.StatusOK })

	start := exactlyOne(t, logs, "starting kafka-sidecar")
	if start["version"] != Version {
		t.Errorf("start line version %v, want %s", start["version"], Version)
	}
	cfgField, _ := json.Marshal(start["config"])
	for _, want := range []string{`"SIDECAR_KAFKA_GROUP":"ops"`, `"SIDECAR_REDIS_URL":"redis://:xxxxx@` + redisSrv.Addr() + `/0"`, `"SIDECAR_STALL_TIMEOUT":"5m0s"`} {
		if !strings.Contains(string(cfgField), want) {
			t.Errorf("start line config lacks %s: %s", want, cfgField)
		}
	}
	if joined := exactlyOne(t, logs, "joined the consumer group"); joined["group"] != "ops" || joined["member_id"] == "" {
		t.Errorf("join line fields %v", joined)
	}
	if assigned := exactlyOne(t, logs, "partitions assigned"); assigned["count"] != int64(4) {
		t.Errorf("assignment line fields %v, want count 4 (orders and its retry topic)", assigned)
	}
	produce(t, cluster.ListenAddrs(), "orders", 0, 20)
	waitFor(t, 20*time.Second, "20 deliveries", func() bool { return app.ok.Load() == 20 })

	// Redis stopped: every probe answers at once, and within the check interval it is a 503 naming the store.
	redisSrv.Stop()
	var slowest time.Duration
	var last probe
	waitFor(t, 5*time.Second, "/readyz 503 naming the dedup store", func() bool {
		last = getProbe(t, readyz)
		slowest = max(slowest, last.took)
		return last.status == http.StatusServiceUnavailable && strings.Contains(last.body, "dedup store unreachable: ")
	})
	for range 10 {
		p := getProbe(t, readyz)
		slowest = max(slowest, p.took)
		if p.status != http.StatusServiceUnavailable {
			t.Errorf("/readyz %d while Redis is stopped: %s", p.status, p.body)
		}
	}
	if slowest >= 100*time.Millisecond {
		t.Errorf("slowest /readyz while Redis was stopped took %v, want < 100ms", slowest)
	}
	t.Logf("/readyz while Redis is stopped: %d %s (slowest %v)", last.status, strings.TrimSpace(last.body), slowest)
	if p := getProbe(t, healthz); p.status != http.StatusOK {
		t.Errorf("/healthz %d while Redis is stopped and nothing waits; want 200 (readiness, not liveness)", p.status)
	}
	lost := exactlyOne(t, logs, "dedup store unreachable")
	if e, _ := lost["error"].(string); e == "" {
		t.Error("the store-lost line has no error")
	}

	redisSrv.Start()
	back := time.Now()
	waitFor(t, 2*time.Second, "/readyz 200 within 2s of Redis's return", func() bool {
		return getProbe(t, readyz).status == http.StatusOK
	})
	t.Logf("/readyz 200 %v after Redis returned", time.Since(back).Round(time.Millisecond))
	if b := exactlyOne(t, logs, "dedup store reachable again"); b["down_for"].(time.Duration) <= 0 {
		t.Errorf("down_for %v", b["down_for"])
	}

	// The app answers 503: delivery pauses, and resumes once it answers again; each pause is two lines.
	app.unavailable.Store(true)
	produce(t, cluster.ListenAddrs(), "orders", 20, 5)
	waitFor(t, 10*time.Second, "a pause for app_unavailable", func() bool {
		return logs.FilterMessage("delivery paused").FilterField(zap.String("reason", "app_unavailable")).Len() > 0
	})
	app.unavailable.Store(false)
	waitFor(t, 20*time.Second, "the 5 records after the app's return", func() bool { return app.ok.Load() == 25 })
	waitFor(t, 10*time.Second, "every pause ended", func() bool {
		_ = sc.Ready(ctx) // the gate reports the end of a timed pause when it is next looked at
		return logs.FilterMessage("delivery paused").Len() == logs.FilterMessage("delivery resumed").Len()
	})
	for _, e := range logs.FilterMessage("delivery resumed").All() {
		if f := e.ContextMap(); f["reason"] != "app_unavailable" || f["paused_for"].(time.Duration) <= 0 {
			t.Errorf("resume line fields %v", f)
		}
	}

	stop()
	if revoked := exactlyOne(t, logs, "partitions revoked"); revoked["count"] != int64(4) {
		t.Errorf("revoke line fields %v, want count 4", revoked)
	}
	for _, e := range logs.All() {
		line := fmt.Sprint(e.Message, e.ContextMap())
		if strings.Contains(line, password) {
			t.Errorf("a log line holds the Redis password: %s", line)
		}
	}
}

// hangingApp accepts connections and reads requests but never answers.
type hangingApp struct {
	ln    net.Listener
	conns chan net.Conn
}

func startHangingApp(t *testing.T) *hangingApp {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := &hangingApp{ln: ln, conns: make(chan net.Conn, 1024)}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			a.conns <- c
			go func() { _, _ = io.Copy(io.Discard, c) }()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		close(a.conns)
		for c := range a.conns {
			_ = c.Close()
		}
	})
	return a
}

// TestLivenessFailsOnStall: /healthz stays 200 while there is simply nothing to do, and fails with the reason
// once records wait on an app that accepts connections but never answers, for SIDECAR_STALL_TIMEOUT.
func TestLivenessFailsOnStall(t *testing.T) {
	cluster := ordersCluster(t)
	redisSrv := redistest.Start(t, redistest.Options{})
	app := startHangingApp(t)
	const stall = 3 * time.Second
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	sc, logs, stop := startObserved(t, ctx, baseEnv(cluster, redisSrv.URL(), app.ln.Addr().String(),
		"SIDECAR_SHUTDOWN_TIMEOUT=1s",
		// A delivery times out after 2s and is tried 5 times, so no record finishes for well over 3s.
		"SIDECAR_APP_TIMEOUT=2s", "SIDECAR_STALL_TIMEOUT="+stall.String(),
		"SIDECAR_RETRY_ATTEMPTS_IN_PLACE=5", "SIDECAR_RETRY_BACKOFF=1s"))
	addr := sc.AdminAddr(ctx)
	healthz := "http://" + addr + "/healthz"
	waitFor(t, 20*time.Second, "/readyz 200 (the app accepts connections)", func() bool {
		return getProbe(t, "http://"+addr+"/readyz").status == http.StatusOK
	})

	// No traffic for twice the stall timeout: alive throughout.
	idleUntil := time.Now().Add(2 * stall)
	for time.Now().Before(idleUntil) {
		if p := getProbe(t, healthz); p.status != http.StatusOK {
			t.Fatalf("/healthz %d with no traffic: %s", p.status, p.body)
		}
		time.Sleep(100 * time.Millisecond) // the observation period's pace, not a synchronisation
	}

	produced := time.Now()
	produce(t, cluster.ListenAddrs(), "orders", 0, 10)
	var last probe
	waitFor(t, stall+5*time.Second, "/healthz 503 while records wait on a silent app", func() bool {
		last = getProbe(t, healthz)
		return last.status == http.StatusServiceUnavailable
	})
	t.Logf("/healthz %d %v after the records arrived: %s", last.status, time.Since(produced).Round(100*time.Millisecond), strings.TrimSpace(last.body))
	if !strings.Contains(last.body, "stalled") || !strings.Contains(last.body, "SIDECAR_STALL_TIMEOUT=3s") {
		t.Errorf("/healthz body %q does not give the reason", last.body)
	}
	// The watch counts from its last look at an idle pipeline, at most one check interval before the records.
	if time.Since(produced) < stall-stallCheckEvery {
		t.Errorf("/healthz failed %v after the records arrived, before the stall timeout %v", time.Since(produced), stall)
	}
	exactlyOne(t, logs, "stalled: records are in flight but none has finished; /healthz fails")
	if v := sample(scrape(t, addr), "kafka_sidecar_stalled"); v != 1 {
		t.Errorf("kafka_sidecar_stalled = %v while stalled, want 1", v)
	}
	stop()
}
