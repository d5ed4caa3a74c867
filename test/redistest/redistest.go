package redistest

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/kafka-sidecar/kafka-sidecar/test/certs"
)

// readyTimeout bounds how long Start waits for a started server to answer PING.
const readyTimeout = 15 * time.Second

// Options configure one server. The zero value is a plain-text server without a password.
type Options struct {
	// Password, when set, is required from clients (requirepass).
	Password string
	// TLS serves TLS only: the plain-text port is disabled and certificates come from package certs.
	TLS bool
	// TLSAuthClients requires clients to present a certificate signed by the test CA (with TLS only).
	TLSAuthClients bool
	// Config holds further configuration directives passed on the command line, for example
	// {"maxmemory-policy": "noeviction"}. Entries here override the defaults Start sets.
	Config map[string]string
}

// Server is one redis-server process. Its methods are safe for concurrent use, but Stop and Start are meant to
// be called from the test goroutine.
type Server struct {
	tb    testing.TB
	opts  Options
	bin   string
	dir   string
	certs *certs.Files

	mu     sync.Mutex
	port   int
	cmd    *exec.Cmd
	exited chan struct{} // closed when the current process has been reaped
	log    *bytes.Buffer // the current process's output, for failure messages
}

// Start runs a new redis-server and waits until it answers. It skips the test when redis-server is not
// installed (fails under CI), and skips a TLS test when the binary cannot serve TLS.
func Start(tb testing.TB, opts Options) *Server {
	tb.Helper()
	bin := Binary(tb)
	if opts.TLS {
		if err := checkTLSSupport(bin); err != nil {
			tb.Skipf("redis-server cannot serve TLS: %v", err)
		}
	}
	s := &Server{tb: tb, opts: opts, bin: bin, dir: tb.TempDir()}
	if opts.TLS {
		s.certs = certs.Generate(tb)
	}
	tb.Cleanup(s.Stop)

	// A port picked free can be taken by someone else before redis-server binds it; try a few.
	var lastErr error
	for range 5 {
		port, err := freePort()
		if err != nil {
			tb.Fatalf("finding a free port: %v", err)
		}
		s.mu.Lock()
		s.port = port
		s.mu.Unlock()
		if lastErr = s.start(); lastErr == nil {
			return s
		}
		if !strings.Contains(lastErr.Error(), "in use") {
			break
		}
	}
	if opts.TLS && strings.Contains(strings.ToLower(lastErr.Error()), "tls") &&
		strings.Contains(strings.ToLower(lastErr.Error()), "not") {
		tb.Skipf("redis-server cannot serve TLS: %v", lastErr)
	}
	tb.Fatalf("starting redis-server: %v", lastErr)
	return nil
}

// Binary returns the path of redis-server on PATH. When it is missing, it skips the test, or fails it when the
// CI environment variable is set.
func Binary(tb testing.TB) string {
	tb.Helper()
	bin, err := exec.LookPath("redis-server")
	if err == nil {
		return bin
	}
	if os.Getenv("CI") != "" {
		tb.Fatalf("redis-server not found on PATH (%v): install the Debian package redis-server", err)
	}
	tb.Skipf("redis-server not found on PATH (%v); install the Debian package redis-server to run this test", err)
	return ""
}

// Addr returns the server's host:port on 127.0.0.1.
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port))
}

// URL returns a redis:// (or rediss:// with TLS) URL for the server, with the password when one is set.
func (s *Server) URL() string {
	u := url.URL{Scheme: "redis", Host: s.Addr(), Path: "/0"}
	if s.opts.TLS {
		u.Scheme = "rediss"
	}
	if s.opts.Password != "" {
		u.User = url.UserPassword("", s.opts.Password)
	}
	return u.String()
}

// TLSConfig returns the client TLS configuration for the server (trusting the test CA and presenting the client
// certificate when the server requires one), or nil without TLS.
func (s *Server) TLSConfig() *tls.Config {
	if s.certs == nil {
		return nil
	}
	return s.certs.ClientTLSConfig(s.opts.TLSAuthClients)
}

// ClientOptions returns go-redis options that reach the server with its password and TLS settings. Each call
// returns a new value the caller may change.
func (s *Server) ClientOptions() *redis.Options {
	return &redis.Options{
		Addr:      s.Addr(),
		Password:  s.opts.Password,
		TLSConfig: s.TLSConfig(),
	}
}

// Client returns a new go-redis client for the server, closed when the test ends.
func (s *Server) Client(tb testing.TB) *redis.Client {
	tb.Helper()
	c := redis.NewClient(s.ClientOptions())
	tb.Cleanup(func() { _ = c.Close() })
	return c
}

// CAFile returns the PEM file of the CA that signed the server certificate, or "" without TLS.
func (s *Server) CAFile() string {
	if s.certs == nil {
		return ""
	}
	return s.certs.CAFile
}

// ClientCertFiles returns the PEM certificate and key a client presents for mutual TLS, or "" without TLS.
func (s *Server) ClientCertFiles() (certFile, keyFile string) {
	if s.certs == nil {
		return "", ""
	}
	return s.certs.ClientCertFile, s.certs.ClientKeyFile
}

// PID returns the process ID of the running server, or 0 when it is stopped. Tests read it to measure the
// server's CPU time; they must not signal it (use Stop).
func (s *Server) PID() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return 0
	}
	return s.cmd.Process.Pid
}

// Certs returns the generated TLS material, or nil without TLS.
func (s *Server) Certs() *certs.Files { return s.certs }

// Stop kills the server process (SIGKILL to the PID it started, like a crash) and waits until it is reaped.
// Without persistence, its data is gone. Calling Stop on a stopped server does nothing.
func (s *Server) Stop() {
	s.mu.Lock()
	cmd, exited := s.cmd, s.exited
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Kill()
	select {
	case <-exited:
	case <-time.After(readyTimeout):
		s.tb.Errorf("redis-server (pid %d) did not exit within %v after SIGKILL", cmd.Process.Pid, readyTimeout)
	}
}

// Start starts a stopped server again on the same port and waits until it answers. It fails the test when the
// server is running or does not come up.
func (s *Server) Start() {
	s.tb.Helper()
	s.mu.Lock()
	running := s.cmd != nil
	s.mu.Unlock()
	if running {
		s.tb.Fatal("redistest: Start called on a running server")
	}
	if err := s.start(); err != nil {
		s.tb.Fatalf("restarting redis-server on %s: %v", s.Addr(), err)
	}
}

// start launches the process on s.port and waits until it answers PING or exits.
func (s *Server) start() error {
	s.mu.Lock()
	args := s.args()
	cmd := exec.Command(s.bin, args...)
	cmd.Dir = s.dir
	out := &bytes.Buffer{}
	cmd.Stdout = &lockedWriter{w: out, mu: &s.mu}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		s.mu.Unlock()
		return fmt.Errorf("running %s: %w", s.bin, err)
	}
	exited := make(chan struct{})
	s.cmd, s.exited, s.log = cmd, exited, out
	s.mu.Unlock()
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()

	if err := s.waitReady(exited); err != nil {
		s.Stop()
		s.mu.Lock()
		output := strings.TrimSpace(out.String())
		s.mu.Unlock()
		return fmt.Errorf("%w; server output:\n%s", err, tail(output, 2000))
	}
	return nil
}

// args builds the command line: defaults first, then the caller's Config, sorted so runs are reproducible.
func (s *Server) args() []string {
	cfg := map[string]string{
		"bind":           "127.0.0.1",
		"port":           strconv.Itoa(s.port),
		"save":           "",
		"appendonly":     "no",
		"dir":            s.dir,
		"daemonize":      "no",
		"protected-mode": "yes",
		"loglevel":       "warning",
	}
	if s.opts.Password != "" {
		cfg["requirepass"] = s.opts.Password
	}
	if s.certs != nil {
		cfg["port"] = "0"
		cfg["tls-port"] = strconv.Itoa(s.port)
		cfg["tls-cert-file"] = s.certs.ServerCertFile
		cfg["tls-key-file"] = s.certs.ServerKeyFile
		cfg["tls-ca-cert-file"] = s.certs.CAFile
		cfg["tls-auth-clients"] = "no"
		if s.opts.TLSAuthClients {
			cfg["tls-auth-clients"] = "yes"
		}
	}
	for k, v := range s.opts.Config {
		cfg[k] = v
	}
	keys := make([]string, 0, len(cfg))
	for k := range cfg {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	args := make([]string, 0, 2*len(keys))
	for _, k := range keys {
		args = append(args, "--"+k, cfg[k])
	}
	return args
}

// waitReady polls PING until the server answers, the process exits, or readyTimeout passes.
func (s *Server) waitReady(exited <-chan struct{}) error {
	opts := s.ClientOptions()
	opts.MaxRetries = -1
	opts.DialTimeout = 250 * time.Millisecond
	opts.ReadTimeout = 250 * time.Millisecond
	opts.PoolSize = 1
	c := redis.NewClient(opts)
	defer func() { _ = c.Close() }()

	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	var lastErr error
	for {
		if lastErr = c.Ping(ctx).Err(); lastErr == nil {
			return nil
		}
		select {
		case <-exited:
			return errors.New("redis-server exited before answering PING")
		case <-ctx.Done():
			return fmt.Errorf("redis-server did not answer PING within %v: %w", readyTimeout, lastErr)
		case <-tick.C:
		}
	}
}

// lockedWriter lets the process's output be read while the process still writes it.
type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// freePort asks the kernel for a free loopback port.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

var versionRE = regexp.MustCompile(`v=(\d+)\.(\d+)`)

// checkTLSSupport rejects versions before 6.0, which had no TLS; later builds may still lack it, which start
// reports.
func checkTLSSupport(bin string) error {
	major, minor, err := serverVersion(bin)
	if err != nil {
		return err
	}
	if major < 6 {
		return fmt.Errorf("version %d.%d predates TLS support (6.0)", major, minor)
	}
	return nil
}

// serverVersion runs bin --version and returns the major and minor version.
func serverVersion(bin string) (major, minor int, err error) {
	out, err := exec.Command(bin, "--version").Output()
	if err != nil {
		return 0, 0, fmt.Errorf("running %s --version: %w", bin, err)
	}
	m := versionRE.FindSubmatch(out)
	if m == nil {
		return 0, 0, fmt.Errorf("unrecognised version output %q", strings.TrimSpace(string(out)))
	}
	major, _ = strconv.Atoi(string(m[1]))
	minor, _ = strconv.Atoi(string(m[2]))
	return major, minor, nil
}

// tail keeps the last n bytes of s, where a server's fatal message is.
func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "..." + s[len(s)-n:]
}
