package e2e

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"github.com/redis/go-redis/v9"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kafka-sidecar/kafka-sidecar/config"
	"github.com/kafka-sidecar/kafka-sidecar/sidecar"
	"github.com/kafka-sidecar/kafka-sidecar/test/kafkatest"
	"github.com/kafka-sidecar/kafka-sidecar/test/redistest"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
)

// binaryPath is the kafka-sidecar binary TestMain builds; buildErr says why there is none.
var (
	binaryPath string
	buildErr   error
)

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "kafka-sidecar-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "creating a build dir:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	binaryPath = filepath.Join(dir, "kafka-sidecar")
	// Built once for every test that runs the real process; from this package's directory the command's
	// package is two levels up.
	cmd := exec.Command("go", "build", "-o", binaryPath, "../../cmd/kafka-sidecar")
	if out, err := cmd.CombinedOutput(); err != nil {
		buildErr = fmt.Errorf("building kafka-sidecar: %w\n%s", err, out)
	}
	return m.Run()
}

// binary returns the built kafka-sidecar, failing the test when the build failed.
func binary(tb testing.TB) string {
	tb.Helper()
	if buildErr != nil {
		tb.Fatal(buildErr)
	}
	return binaryPath
}

// waitFor polls cond every 20 ms until it holds, failing the test with the message after timeout.
func waitFor(tb testing.TB, timeout time.Duration, cond func() bool, format string, args ...any) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("timed out after %v waiting for "+format, append([]any{timeout}, args...)...)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// holdsFor checks that cond stays true for the whole of d, polling every 20 ms; it fails the test at the
// first poll where it does not.
func holdsFor(tb testing.TB, d time.Duration, cond func() bool, format string, args ...any) {
	tb.Helper()
	end := time.Now().Add(d)
	for time.Now().Before(end) {
		if !cond() {
			tb.Fatalf("expected to hold for %v: "+format, append([]any{d}, args...)...)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stack is everything one test runs the sidecar against.
type stack struct {
	kafka *kafkaEnv
	redis *redistest.Server
	rc    *redis.Client // made by redisClient
	app   *testApp
	topic string
	group string
}

// newStack starts a cluster (or joins the real one), a redis-server and the app, and creates a source topic.
func newStack(tb testing.TB, partitions int32) *stack {
	tb.Helper()
	s := &stack{
		kafka: newKafka(tb),
		redis: redistest.Start(tb, redistest.Options{}),
		app:   newApp(tb),
		topic: uniqueName(tb, "src"),
		group: uniqueName(tb, "g"),
	}
	s.kafka.createTopic(tb, s.topic, partitions)
	if s.kafka.fake == nil {
		// The real cluster outlives the test: leave it as it was found. Registered after the clients and
		// before any sidecar, so it runs once every sidecar has stopped.
		tb.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			_, _ = s.kafka.adm.DeleteTopics(ctx, s.topic, s.retryTopic(1), s.retryTopic(2), s.dlqTopic())
			_, _ = s.kafka.adm.DeleteGroup(ctx, s.group)
		})
	}
	return s
}

// env returns the sidecar's variables for this stack: quick timings for tests, then extra ("KEY=value")
// overriding them.
func (s *stack) env(extra ...string) []string {
	vars := map[string]string{
		"SIDECAR_KAFKA_BROKERS":           strings.Join(s.kafka.seeds, ","),
		"SIDECAR_KAFKA_TOPICS":            s.topic,
		"SIDECAR_KAFKA_GROUP":             s.group,
		"SIDECAR_KAFKA_SESSION_TIMEOUT":   "6s",
		"SIDECAR_REDIS_URL":               s.redis.URL(),
		"SIDECAR_APP_URL":                 s.app.URL(),
		"SIDECAR_APP_TIMEOUT":             "5s",
		"SIDECAR_APP_BACKOFF_MAX":         "200ms",
		"SIDECAR_ADMIN_ADDR":              "127.0.0.1:0",
		"SIDECAR_COMMIT_INTERVAL":         "100ms",
		"SIDECAR_ID_HEADER":               idHeader,
		"SIDECAR_RETRY_DELAYS":            "1s,2s",
		"SIDECAR_RETRY_ATTEMPTS_IN_PLACE": "2",
		"SIDECAR_RETRY_BACKOFF":           "20ms",
		"SIDECAR_RETRY_BACKOFF_MAX":       "50ms",
		"SIDECAR_DEDUP_LEASE_MARGIN":      "1s",
		"SIDECAR_SHUTDOWN_TIMEOUT":        "5s",
		"SIDECAR_REVOKE_TIMEOUT":          "5s",
		"SIDECAR_LOG_LEVEL":               "warn",
		"SIDECAR_LOG_FORMAT":              "console",
	}
	for _, kv := range append(kafkatest.GroupProtocolEnv(), extra...) {
		k, v, _ := strings.Cut(kv, "=")
		vars[k] = v
	}
	out := make([]string, 0, len(vars))
	for k, v := range vars {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}

// retryTopic and dlqTopic name this stack's retry tier n and dead-letter topic.
func (s *stack) retryTopic(n int) string {
	return s.topic + "." + s.group + ".retry." + strconv.Itoa(n)
}
func (s *stack) dlqTopic() string { return s.topic + "." + s.group + ".dlq" }

// running is an in-process sidecar started by startSidecar.
type running struct {
	sc      *sidecar.Sidecar
	cancel  context.CancelFunc
	errc    chan error
	admin   string
	stopped bool
}

// startSidecar builds the sidecar from env, runs it, and waits for its admin address.
func startSidecar(tb testing.TB, env []string) *running {
	tb.Helper()
	return startSidecarLogger(tb, env, zaptest.NewLogger(tb, zaptest.Level(zap.WarnLevel)))
}

func startSidecarLogger(tb testing.TB, env []string, log *zap.Logger) *running {
	tb.Helper()
	cfg, err := config.LoadFrom(env)
	if err != nil {
		tb.Fatalf("loading the configuration: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	sc, err := sidecar.New(ctx, cfg, log)
	if err != nil {
		tb.Fatalf("sidecar.New: %v", err)
	}
	runCtx, stop := context.WithCancel(context.Background())
	r := &running{sc: sc, cancel: stop, errc: make(chan error, 1)}
	go func() { r.errc <- sc.Run(runCtx) }()
	tb.Cleanup(func() { r.stop(tb) })
	r.admin = sc.AdminAddr(ctx)
	if r.admin == "" {
		tb.Fatal("the admin server did not start within 60s")
	}
	return r
}

// stop cancels Run and waits for it to drain and return; Run must return nil.
func (r *running) stop(tb testing.TB) {
	tb.Helper()
	if r.stopped {
		return
	}
	r.stopped = true
	r.cancel()
	select {
	case err := <-r.errc:
		if err != nil {
			tb.Errorf("Run returned %v after cancel, want nil", err)
		}
	case <-time.After(30 * time.Second):
		tb.Errorf("Run did not return within 30s of cancel")
	}
}

// scrape fetches /metrics from an admin address.
func scrape(tb testing.TB, admin string) string {
	tb.Helper()
	body, _, err := get(admin, "/metrics")
	if err != nil {
		tb.Fatalf("scraping /metrics: %v", err)
	}
	return body
}

// get fetches a path from the admin server and returns the body and status.
func get(admin, path string) (string, int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+admin+path, nil)
	if err != nil {
		return "", 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), resp.StatusCode, err
}

// metricValue finds the sample of name whose labels include every pair in labels.
func metricValue(text, name string, labels map[string]string) (float64, bool) {
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name) {
			continue
		}
		rest := line[len(name):]
		got := map[string]string{}
		if strings.HasPrefix(rest, "{") {
			end := strings.Index(rest, "}")
			if end < 0 {
				continue
			}
			for pair := range strings.SplitSeq(rest[1:end], ",") {
				k, v, ok := strings.Cut(pair, "=")
				if ok {
					got[k] = strings.Trim(v, `"`)
				}
			}
			rest = rest[end+1:]
		} else if !strings.HasPrefix(rest, " ") {
			continue // a longer metric name with this prefix
		}
		match := true
		for k, v := range labels {
			if got[k] != v {
				match = false
				break
			}
		}
		if !match {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
		if err == nil {
			return v, true
		}
	}
	return 0, false
}

// syncBuffer is a bytes.Buffer a process writes while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// proc is a running kafka-sidecar binary.
type proc struct {
	cmd    *exec.Cmd
	out    *syncBuffer // stdout and stderr together: the logs
	stderr *syncBuffer
	done   chan struct{}
	code   int
}

// startBinary runs the built binary with exactly env (plus PATH and HOME) and no arguments.
func startBinary(tb testing.TB, env []string, args ...string) *proc {
	tb.Helper()
	cmd := exec.Command(binary(tb), args...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}, env...)
	p := &proc{cmd: cmd, out: &syncBuffer{}, stderr: &syncBuffer{}, done: make(chan struct{})}
	cmd.Stdout = p.out
	cmd.Stderr = io.MultiWriter(p.out, p.stderr)
	if err := cmd.Start(); err != nil {
		tb.Fatalf("starting kafka-sidecar: %v", err)
	}
	go func() {
		err := cmd.Wait()
		var ee *exec.ExitError
		switch {
		case err == nil:
			p.code = 0
		case errors.As(err, &ee):
			p.code = ee.ExitCode()
		default:
			p.code = -1
		}
		close(p.done)
	}()
	tb.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

// signal sends sig to the process this test started.
func (p *proc) signal(tb testing.TB, sig syscall.Signal) {
	tb.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		tb.Fatalf("sending %v to pid %d: %v", sig, p.cmd.Process.Pid, err)
	}
}

// wait waits for the process to exit and returns its exit code (-1 when killed by a signal).
func (p *proc) wait(tb testing.TB, timeout time.Duration) int {
	tb.Helper()
	select {
	case <-p.done:
		return p.code
	case <-time.After(timeout):
		tb.Fatalf("kafka-sidecar (pid %d) did not exit within %v; output:\n%s", p.cmd.Process.Pid, timeout, tail(p.out.String(), 3000))
		return 0
	}
}

// tail keeps the last n bytes of s.
func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "..." + s[len(s)-n:]
}
