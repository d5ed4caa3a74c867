package security

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kafka-sidecar/kafka-sidecar/test/certs"
	"github.com/kafka-sidecar/kafka-sidecar/test/redistest"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

const (
	kafkaUser     = "sidecar"
	kafkaPassword = "kafka-planted-Secret-7f3a9"
	redisPassword = "redis-planted-Secret-51c2e"
	appToken      = "app-planted-Token-0b77d"
	appToken2     = "app-planted-Token-rotated-9e1"
)

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "kafka-sidecar-security")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "kafka-sidecar")
	build := exec.Command("go", "build", "-o", binary, "../../cmd/kafka-sidecar")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building the sidecar:", err)
		os.Exit(1)
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// secureKafka starts kfake with SCRAM-SHA-512 over TLS and a topic.
func secureKafka(t *testing.T, files *certs.Files) *kfake.Cluster {
	t.Helper()
	c, err := kfake.NewCluster(
		kfake.NumBrokers(1),
		kfake.SeedTopics(3, "orders"),
		kfake.EnableSASL(),
		kfake.Superuser("SCRAM-SHA-512", kafkaUser, kafkaPassword),
		kfake.TLS(files.ServerTLSConfig(false)),
	)
	if err != nil {
		t.Fatalf("starting kfake: %v", err)
	}
	t.Cleanup(c.Close)
	return c
}

func produce(t *testing.T, c *kfake.Cluster, files *certs.Files, n int) {
	t.Helper()
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(c.ListenAddrs()...),
		kgo.DialTLSConfig(files.ClientTLSConfig(false)),
		kgo.SASL(scram.Auth{User: kafkaUser, Pass: kafkaPassword}.AsSha512Mechanism()),
		kgo.DefaultProduceTopic("orders"),
	)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for i := range n {
		r := &kgo.Record{Key: []byte(fmt.Sprintf("k%d", i)), Value: []byte(fmt.Sprintf(`{"n":%d}`, i))}
		if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
			t.Fatalf("producing: %v", err)
		}
	}
}

// tokenApp accepts requests only with the current bearer token and counts those it accepted.
type tokenApp struct {
	mu       sync.Mutex
	token    string
	accepted map[string]bool
	rejected int
}

func (a *tokenApp) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	a.mu.Lock()
	defer a.mu.Unlock()
	if r.Header.Get("Authorization") != "Bearer "+a.token {
		a.rejected++
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	a.accepted[r.Header.Get("Idempotency-Key")] = true
	w.WriteHeader(http.StatusOK)
}

func (a *tokenApp) count() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.accepted)
}

func startApp(t *testing.T, app http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: app, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return ln.Addr().String()
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}

// sidecarProcess is the real binary with its combined output captured.
type sidecarProcess struct {
	cmd  *exec.Cmd
	out  *lockedBuffer
	done chan error
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func start(t *testing.T, env []string) *sidecarProcess {
	t.Helper()
	cmd := exec.Command(binary)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}, env...)
	p := &sidecarProcess{cmd: cmd, out: &lockedBuffer{}, done: make(chan error, 1)}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting the sidecar: %v", err)
	}
	go func() { p.done <- cmd.Wait() }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			t.Logf("sidecar stopped at cleanup: %v", <-p.done)
		}
	})
	return p
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

func exitCode(err error) int {
	if err == nil {
		return 0
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	return -1
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func assertNoSecrets(t *testing.T, where, text string) {
	t.Helper()
	for _, s := range []string{kafkaPassword, redisPassword, appToken, appToken2} {
		if strings.Contains(text, s) {
			t.Errorf("%s contains a planted secret (%s…)", where, s[:8])
		}
	}
}

func TestSecureEndToEndLeaksNoSecret(t *testing.T) {
	files := certs.Generate(t)
	cluster := secureKafka(t, files)
	redisSrv := redistest.Start(t, redistest.Options{Password: redisPassword, TLS: true})
	app := &tokenApp{token: appToken, accepted: map[string]bool{}}
	appAddr := startApp(t, app)
	secrets := t.TempDir()
	kafkaPwFile := writeFile(t, secrets, "kafka-password", kafkaPassword+"\n")
	redisPwFile := writeFile(t, secrets, "redis-password", redisPassword)
	tokenFile := writeFile(t, secrets, "token", appToken)
	admin := freeAddr(t)
	const records = 40
	produce(t, cluster, files, records)

	// The Redis URL carries no password: it comes from the file, as a mounted Secret would provide it.
	redisURL := "rediss://" + redisSrv.Addr() + "/0"
	p := start(t, []string{
		"SIDECAR_KAFKA_BROKERS=" + strings.Join(cluster.ListenAddrs(), ","),
		"SIDECAR_KAFKA_TOPICS=orders", "SIDECAR_KAFKA_GROUP=secure",
		"SIDECAR_KAFKA_SASL_MECHANISM=SCRAM-SHA-512", "SIDECAR_KAFKA_SASL_USERNAME=" + kafkaUser,
		"SIDECAR_KAFKA_SASL_PASSWORD_FILE=" + kafkaPwFile,
		"SIDECAR_KAFKA_TLS_ENABLED=true", "SIDECAR_KAFKA_TLS_CA_FILE=" + files.CAFile,
		"SIDECAR_REDIS_URL=" + redisURL, "SIDECAR_REDIS_PASSWORD_FILE=" + redisPwFile,
		"SIDECAR_REDIS_TLS_CA_FILE=" + redisSrv.CAFile(),
		"SIDECAR_APP_URL=http://" + appAddr + "/", "SIDECAR_APP_AUTH_TOKEN_FILE=" + tokenFile,
		"SIDECAR_APP_BACKOFF_MAX=200ms",
		"SIDECAR_ADMIN_ADDR=" + admin, "SIDECAR_LOG_LEVEL=debug", "SIDECAR_SHUTDOWN_TIMEOUT=5s",
		"SIDECAR_RETRY_DELAYS=", "SIDECAR_COMMIT_INTERVAL=100ms",
	})
	waitFor(t, 60*time.Second, "every record delivered over SASL/TLS with the bearer token", func() bool {
		return app.count() == records
	})

	// Rotate the token as a mounted Secret does: the app now wants the new one.
	app.mu.Lock()
	app.token = appToken2
	app.mu.Unlock()
	if err := os.WriteFile(tokenFile+".new", []byte(appToken2), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tokenFile+".new", tokenFile); err != nil {
		t.Fatal(err)
	}
	produce(t, cluster, files, 5)
	waitFor(t, 60*time.Second, "records delivered with the rotated token", func() bool {
		return app.count() == records+5
	})

	// A Redis outage: go-redis's own lines and the sidecar's store-lost and store-back lines must carry no
	// secret either.
	redisSrv.Stop()
	waitFor(t, 30*time.Second, "the store reported lost", func() bool { return strings.Contains(p.out.String(), "dedup store unreachable") })
	redisSrv.Start()
	waitFor(t, 30*time.Second, "the store reported back", func() bool {
		return strings.Contains(p.out.String(), "dedup store reachable again")
	})

	resp, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metricsText, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if !strings.Contains(string(metricsText), "kafka_sidecar_records_total") {
		t.Fatal("/metrics lacks kafka_sidecar_records_total")
	}
	resp, err = http.Get("http://" + admin + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	readyText, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()

	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-p.done:
		if code := exitCode(err); code != 0 {
			t.Fatalf("exit code %d after SIGTERM, want 0\n%s", code, p.out.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the sidecar did not stop within 30s of SIGTERM")
	}
	logs := p.out.String()
	if !strings.Contains(logs, `"level":"debug"`) {
		t.Fatal("debug logging was not on: the secret scan would prove little")
	}
	for _, line := range []string{`"msg":"starting kafka-sidecar"`, `"SIDECAR_KAFKA_SASL_PASSWORD_FILE":`, `"logger":"redis"`} {
		if !strings.Contains(logs, line) {
			t.Errorf("the logs lack %s: the secret scan would not cover it", line)
		}
	}
	assertNoSecrets(t, "the logs", logs)
	assertNoSecrets(t, "/metrics", string(metricsText))
	assertNoSecrets(t, "/readyz", string(readyText))
}

func TestWrongKafkaPasswordExitsWithAuthError(t *testing.T) {
	files := certs.Generate(t)
	cluster := secureKafka(t, files)
	const wrong = "wrong-planted-Secret-kafka"
	began := time.Now()
	p := start(t, []string{
		"SIDECAR_KAFKA_BROKERS=" + strings.Join(cluster.ListenAddrs(), ","),
		"SIDECAR_KAFKA_TOPICS=orders", "SIDECAR_KAFKA_GROUP=secure",
		"SIDECAR_KAFKA_SASL_MECHANISM=SCRAM-SHA-512", "SIDECAR_KAFKA_SASL_USERNAME=" + kafkaUser,
		"SIDECAR_KAFKA_SASL_PASSWORD=" + wrong,
		"SIDECAR_KAFKA_TLS_ENABLED=true", "SIDECAR_KAFKA_TLS_CA_FILE=" + files.CAFile,
		"SIDECAR_DEDUP=memory", "SIDECAR_ADMIN_ADDR=" + freeAddr(t),
	})
	select {
	case err := <-p.done:
		if code := exitCode(err); code != 1 {
			t.Fatalf("exit code %d, want 1\n%s", code, p.out.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("still running 30s after start with a wrong password:\n%s", p.out.String())
	}
	out := p.out.String()
	if !strings.Contains(out, "authentication failed") {
		t.Fatalf("output does not say authentication failed:\n%s", out)
	}
	if strings.Contains(out, wrong) {
		t.Fatal("the output contains the password")
	}
	t.Logf("exited %s after start", time.Since(began).Round(time.Millisecond))
}

func TestWrongRedisPasswordExitsWithAuthError(t *testing.T) {
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "orders"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	redisSrv := redistest.Start(t, redistest.Options{Password: redisPassword, TLS: true})
	const wrong = "wrong-planted-Secret-redis"
	p := start(t, []string{
		"SIDECAR_KAFKA_BROKERS=" + strings.Join(cluster.ListenAddrs(), ","),
		"SIDECAR_KAFKA_TOPICS=orders", "SIDECAR_KAFKA_GROUP=secure",
		"SIDECAR_REDIS_URL=rediss://:" + wrong + "@" + redisSrv.Addr() + "/0",
		"SIDECAR_REDIS_TLS_CA_FILE=" + redisSrv.CAFile(),
		"SIDECAR_ADMIN_ADDR=" + freeAddr(t),
	})
	select {
	case err := <-p.done:
		if code := exitCode(err); code != 1 {
			t.Fatalf("exit code %d, want 1\n%s", code, p.out.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("still running 30s after start with a wrong Redis password:\n%s", p.out.String())
	}
	out := p.out.String()
	if !strings.Contains(out, "authentication failed") {
		t.Fatalf("output does not say authentication failed:\n%s", out)
	}
	if strings.Contains(out, wrong) {
		t.Fatal("the output contains the password")
	}
}
