package chaos

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Bounds of a sidecar's life cycle. The drain bound is the sidecar's own SIDECAR_SHUTDOWN_TIMEOUT plus a
// margin for leaving the group.
const (
	sidecarReadyTimeout    = 90 * time.Second
	sidecarDrainTimeout    = sidecarShutdownTimeout + 15*time.Second
	sidecarShutdownTimeout = 15 * time.Second
)

// Sidecar is one kafka-sidecar process of the run. Start, Kill and Terminate are meant to be called from one
// goroutine at a time; Unexpected from any.
type Sidecar struct {
	name    string
	binary  string
	env     []string
	logPath string
	admin   string // host:port of the admin server

	mu       sync.Mutex
	cmd      *exec.Cmd
	exited   chan struct{}
	code     int  // exit code of the last process, valid once exited is closed
	stopping bool // the harness signalled the process, so its exit is expected
	// unexpected lists exits nobody asked for, with the end of the log.
	unexpected []string
}

// newSidecar prepares a sidecar whose environment is env (SIDECAR_* pairs) plus the harness's own
// environment without any SIDECAR_* variable, and whose admin server listens on a free port.
func newSidecar(name, binary, dir string, env []string) (*Sidecar, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	admin := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	var full []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SIDECAR_") {
			full = append(full, kv)
		}
	}
	full = append(full, env...)
	full = append(full, "SIDECAR_ADMIN_ADDR="+admin)
	return &Sidecar{name: name, binary: binary, env: full, admin: admin,
		logPath: filepath.Join(dir, name+".log")}, nil
}

// Start runs the process and waits until its /readyz answers 200: in the group, Redis answering, the app
// reachable.
func (s *Sidecar) Start(ctx context.Context) error {
	logFile, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("opening the log of %s: %w", s.name, err)
	}
	defer logFile.Close() // the child holds its own descriptor
	cmd := exec.Command(s.binary)
	cmd.Env = s.env
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = childAttr()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting %s: %w", s.name, err)
	}
	exited := make(chan struct{})
	s.mu.Lock()
	s.cmd, s.exited, s.stopping = cmd, exited, false
	s.mu.Unlock()
	go s.reap(cmd, exited)
	if err := s.waitReady(ctx, exited); err != nil {
		return fmt.Errorf("starting %s (log %s): %w", s.name, s.logPath, err)
	}
	return nil
}

// reap waits for the process and notes an exit the harness did not cause.
func (s *Sidecar) reap(cmd *exec.Cmd, exited chan struct{}) {
	err := cmd.Wait()
	code := 0
	if err != nil {
		code = -1
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		}
	}
	s.mu.Lock()
	s.code = code
	if !s.stopping {
		s.unexpected = append(s.unexpected, fmt.Sprintf("%s (pid %d) exited on its own with code %d; log tail:\n%s",
			s.name, cmd.Process.Pid, code, logTail(s.logPath, 1500)))
	}
	s.mu.Unlock()
	close(exited)
}

func (s *Sidecar) waitReady(ctx context.Context, exited <-chan struct{}) error {
	ctx, cancel := context.WithTimeout(ctx, sidecarReadyTimeout)
	defer cancel()
	client := &http.Client{Timeout: time.Second}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var last string
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+s.admin+"/readyz", nil)
		if err != nil {
			return fmt.Errorf("building the readiness request: %w", err)
		}
		if resp, err := client.Do(req); err == nil {
			var body bytes.Buffer
			_, _ = body.ReadFrom(resp.Body)
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = fmt.Sprintf("%d %s", resp.StatusCode, strings.TrimSpace(body.String()))
		} else {
			last = err.Error()
		}
		select {
		case <-exited:
			return errors.New("the process exited before it was ready")
		case <-ctx.Done():
			return fmt.Errorf("not ready within %v (last /readyz: %s)", sidecarReadyTimeout, last)
		case <-tick.C:
		}
	}
}

// Kill crashes the process with SIGKILL and waits until it is reaped.
func (s *Sidecar) Kill() error {
	_, err := s.signal(syscall.SIGKILL, 10*time.Second)
	return err
}

// Terminate sends SIGTERM, waits for the drain, and fails unless the process exits with code 0.
func (s *Sidecar) Terminate() error {
	code, err := s.signal(syscall.SIGTERM, sidecarDrainTimeout)
	if err != nil {
		return err
	}
	if code != 0 {
		return fmt.Errorf("%s exited with code %d after SIGTERM, want 0; log tail:\n%s", s.name, code,
			logTail(s.logPath, 1500))
	}
	return nil
}

// signal sends sig to the running process and waits up to bound for its exit code.
func (s *Sidecar) signal(sig syscall.Signal, bound time.Duration) (int, error) {
	s.mu.Lock()
	cmd, exited := s.cmd, s.exited
	s.stopping = true
	s.mu.Unlock()
	if cmd == nil {
		return 0, fmt.Errorf("signalling %s: never started", s.name)
	}
	select {
	case <-exited:
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.code, fmt.Errorf("signalling %s: the process had already exited with code %d", s.name, s.code)
	default:
	}
	if err := cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return 0, fmt.Errorf("sending %v to %s (pid %d): %w", sig, s.name, cmd.Process.Pid, err)
	}
	select {
	case <-exited:
	case <-time.After(bound):
		_ = cmd.Process.Kill()
		<-exited
		return -1, fmt.Errorf("%s (pid %d) did not exit within %v of %v; killed; log tail:\n%s",
			s.name, cmd.Process.Pid, bound, sig, logTail(s.logPath, 1500))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.code, nil
}

// Running reports whether the process is alive.
func (s *Sidecar) Running() bool {
	s.mu.Lock()
	exited := s.exited
	s.mu.Unlock()
	if exited == nil {
		return false
	}
	select {
	case <-exited:
		return false
	default:
		return true
	}
}

// PID returns the process id of the running process, or 0 when it is not running.
func (s *Sidecar) PID() int {
	if !s.Running() {
		return 0
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cmd.Process.Pid
}

// Admin returns the host:port of the process's admin server.
func (s *Sidecar) Admin() string { return s.admin }

// Unexpected returns the exits the harness did not cause.
func (s *Sidecar) Unexpected() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.unexpected...)
}

// logTail returns the last n bytes of a log file, for failure messages.
func logTail(path string, n int64) string {
	f, err := os.Open(path)
	if err != nil {
		return "(" + err.Error() + ")"
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "(" + err.Error() + ")"
	}
	off := max(fi.Size()-n, 0)
	buf := make([]byte, fi.Size()-off)
	if _, err := f.ReadAt(buf, off); err != nil {
		return "(" + err.Error() + ")"
	}
	return string(buf)
}
