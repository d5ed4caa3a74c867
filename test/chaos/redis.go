package chaos

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// redisReadyTimeout bounds how long a started redis-server may take to answer PING.
const redisReadyTimeout = 15 * time.Second

// Redis is one redis-server process that can be crashed and started again on the same port. Its data is not
// persisted, so a restart loses every dedup mark, as a crash of an unreplicated Redis would. Start, Kill and
// Restart are meant to be called from one goroutine; Addr and URL from any.
type Redis struct {
	bin  string
	dir  string
	port int

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
}

// StartRedis runs redis-server (bin, or the one on PATH when bin is empty) on a free port of 127.0.0.1,
// with its log in dir, and waits until it answers.
func StartRedis(ctx context.Context, bin, dir string) (*Redis, error) {
	if bin == "" {
		p, err := exec.LookPath("redis-server")
		if err != nil {
			return nil, fmt.Errorf("finding redis-server (install the Debian package redis-server): %w", err)
		}
		bin = p
	}
	var lastErr error
	// A port found free can be taken before redis-server binds it; a few tries make that harmless.
	for range 5 {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		r := &Redis{bin: bin, dir: dir, port: port}
		if lastErr = r.start(ctx); lastErr == nil {
			return r, nil
		}
	}
	return nil, lastErr
}

// Addr is the server's host:port.
func (r *Redis) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(r.port)) }

// URL is the redis:// URL the sidecars use.
func (r *Redis) URL() string { return "redis://" + r.Addr() + "/0" }

// Kill crashes the server with SIGKILL and waits until it is reaped. A stopped server is left as it is.
func (r *Redis) Kill() error {
	r.mu.Lock()
	cmd, exited := r.cmd, r.exited
	r.cmd = nil
	r.mu.Unlock()
	if cmd == nil {
		return nil
	}
	if err := cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("killing redis-server (pid %d): %w", cmd.Process.Pid, err)
	}
	select {
	case <-exited:
		return nil
	case <-time.After(redisReadyTimeout):
		return fmt.Errorf("redis-server (pid %d) still running %v after SIGKILL", cmd.Process.Pid, redisReadyTimeout)
	}
}

// Restart starts a stopped server again on the same port and waits until it answers.
func (r *Redis) Restart(ctx context.Context) error {
	r.mu.Lock()
	running := r.cmd != nil
	r.mu.Unlock()
	if running {
		return errors.New("restarting redis-server: it is still running")
	}
	return r.start(ctx)
}

func (r *Redis) start(ctx context.Context) error {
	logFile, err := os.OpenFile(filepath.Join(r.dir, "redis.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("opening the redis log: %w", err)
	}
	defer logFile.Close() // the child holds its own descriptor
	cmd := exec.Command(r.bin,
		"--bind", "127.0.0.1", "--port", strconv.Itoa(r.port), "--save", "", "--appendonly", "no",
		"--dir", r.dir, "--daemonize", "no", "--protected-mode", "yes", "--loglevel", "warning")
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = childAttr()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("running %s: %w", r.bin, err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	r.mu.Lock()
	r.cmd, r.exited = cmd, exited
	r.mu.Unlock()
	if err := r.waitReady(ctx, exited); err != nil {
		_ = r.Kill()
		return fmt.Errorf("starting redis-server on %s (log %s): %w", r.Addr(), logFile.Name(), err)
	}
	return nil
}

func (r *Redis) waitReady(ctx context.Context, exited <-chan struct{}) error {
	c := redis.NewClient(&redis.Options{Addr: r.Addr(), MaxRetries: -1, PoolSize: 1,
		DialTimeout: 250 * time.Millisecond, ReadTimeout: 250 * time.Millisecond})
	defer func() { _ = c.Close() }()
	ctx, cancel := context.WithTimeout(ctx, redisReadyTimeout)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		err := c.Ping(ctx).Err()
		if err == nil {
			return nil
		}
		select {
		case <-exited:
			return errors.New("redis-server exited before answering PING")
		case <-ctx.Done():
			return fmt.Errorf("no answer to PING: %w", err)
		case <-tick.C:
		}
	}
}

// freePort asks the kernel for a free port on 127.0.0.1.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("finding a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}
