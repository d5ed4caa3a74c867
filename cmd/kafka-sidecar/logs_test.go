package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafka-sidecar/kafka-sidecar/test/redistest"
)

// envBeSidecar makes the test binary run main instead of the tests, so a test can watch the real process's
// output without building the command separately.
const envBeSidecar = "KAFKA_SIDECAR_TEST_RUN_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(envBeSidecar) == "1" {
		main()
		return
	}
	os.Exit(m.Run())
}

// lockedBuffer collects a child's output from two pipes.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestEveryLineIsJSON runs the sidecar process with SIDECAR_LOG_FORMAT=json through a start, deliveries, a
// Redis outage (go-redis's connection pool complains then) and SIGTERM, and checks that every line it printed on
// stdout and stderr is a JSON object with a level and a message, that go-redis's lines arrived through the log,
// and that no line holds the Redis password.
func TestEveryLineIsJSON(t *testing.T) {
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(2, "orders"))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	const password = "s3cret-redis-pw"
	redisSrv := redistest.Start(t, redistest.Options{Password: password})
	appLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var delivered sync.WaitGroup
	delivered.Add(20)
	var once sync.Map
	app := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		if _, seen := once.LoadOrStore(r.Header.Get("Idempotency-Key"), true); !seen {
			delivered.Done()
		}
	})}
	go func() { _ = app.Serve(appLn) }()
	defer app.Close()
	adminLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	admin := adminLn.Addr().String()
	_ = adminLn.Close()

	cmd := exec.Command(os.Args[0], "run")
	cmd.Env = append(os.Environ(), envBeSidecar+"=1",
		"SIDECAR_KAFKA_BROKERS="+strings.Join(cluster.ListenAddrs(), ","),
		"SIDECAR_KAFKA_TOPICS=orders", "SIDECAR_KAFKA_GROUP=json-logs",
		"SIDECAR_REDIS_URL="+redisSrv.URL(),
		"SIDECAR_APP_URL=http://"+appLn.Addr().String()+"/",
		"SIDECAR_ADMIN_ADDR="+admin, "SIDECAR_SHUTDOWN_TIMEOUT=2s",
		"SIDECAR_LOG_FORMAT=json", "SIDECAR_LOG_LEVEL=debug")
	var out lockedBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		_ = cmd.Process.Kill()
		if t.Failed() {
			t.Logf("output of the sidecar:\n%s", out.String())
		}
	}()

	waitUntil(t, 30*time.Second, "/readyz 200", func() bool {
		resp, err := http.Get("http://" + admin + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	cl, err := kgo.NewClient(kgo.SeedBrokers(cluster.ListenAddrs()...), kgo.DefaultProduceTopic("orders"))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := range 20 {
		if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte{byte(i)}}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	done := make(chan struct{})
	go func() { delivered.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		t.Fatal("20 records not delivered within 30s")
	}

	redisSrv.Stop()
	waitUntil(t, 15*time.Second, "a go-redis line in the log", func() bool { return strings.Contains(out.String(), `"logger":"redis"`) })
	waitUntil(t, 15*time.Second, "the store reported lost", func() bool { return strings.Contains(out.String(), "dedup store unreachable") })
	redisSrv.Start()
	waitUntil(t, 15*time.Second, "the store back", func() bool { return strings.Contains(out.String(), "dedup store reachable again") })

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("the sidecar exited with %v after SIGTERM, want 0", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the sidecar did not exit within 30s of SIGTERM")
	}

	sc := bufio.NewScanner(strings.NewReader(out.String()))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	lines := 0
	for sc.Scan() {
		line := sc.Text()
		lines++
		var obj map[string]any
		if err := json.Unmarshal([]byte(line), &obj); err != nil {
			t.Errorf("line %d is not JSON: %q", lines, line)
			continue
		}
		if obj["level"] == nil || obj["msg"] == nil {
			t.Errorf("line %d has no level or msg: %q", lines, line)
		}
		if strings.Contains(line, password) {
			t.Errorf("line %d holds the Redis password: %q", lines, line)
		}
	}
	if lines < 10 {
		t.Fatalf("only %d lines of output; the run did not log what it should", lines)
	}
	t.Logf("%d lines, all JSON", lines)
}

func waitUntil(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
