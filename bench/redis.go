package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// redisServer is a redis-server child process without persistence on a free 127.0.0.1 port.
type redisServer struct {
	cmd    *exec.Cmd
	addr   string
	dir    string
	out    bytes.Buffer
	exited chan struct{}
}

// startRedis starts redis-server and waits until it answers PING.
func startRedis(ctx context.Context) (*redisServer, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, fmt.Errorf("finding redis-server (install the Debian package redis-server): %w", err)
	}
	dir, err := os.MkdirTemp("", "bench-redis-")
	if err != nil {
		return nil, fmt.Errorf("creating the redis directory: %w", err)
	}
	port, err := freePort()
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	s := &redisServer{addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), dir: dir, exited: make(chan struct{})}
	s.cmd = exec.Command(bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "",
		"--appendonly", "no", "--dir", dir, "--protected-mode", "yes")
	s.cmd.Stdout, s.cmd.Stderr = &s.out, &s.out
	if err := s.cmd.Start(); err != nil {
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("starting redis-server: %w", err)
	}
	go func() { _ = s.cmd.Wait(); close(s.exited) }()
	c := s.client()
	defer func() { _ = c.Close() }()
	deadline := time.Now().Add(15 * time.Second)
	for {
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		err := c.Ping(pctx).Err()
		cancel()
		if err == nil {
			return s, nil
		}
		select {
		case <-s.exited:
			s.stop()
			return nil, fmt.Errorf("redis-server exited at start: %s", s.out.String())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			s.stop()
			return nil, fmt.Errorf("redis-server did not answer PING: %w", err)
		}
	}
}

func (s *redisServer) url() string { return "redis://" + s.addr + "/0" }

// cpuSplit is the CPU time used so far by each process of a run.
type cpuSplit struct {
	sidecar, redis, self time.Duration
}

// machineCPU reads the CPU time of the sidecar (pid), of redis-server and of this process (kfake and the app).
func (s *redisServer) machineCPU(sidecarPID int) (cpuSplit, error) {
	var c cpuSplit
	var err error
	if c.sidecar, err = processCPU(sidecarPID); err != nil {
		return c, err
	}
	if c.redis, err = processCPU(s.cmd.Process.Pid); err != nil {
		return c, err
	}
	c.self, err = processCPU(os.Getpid())
	return c, err
}

func (c cpuSplit) sub(o cpuSplit) cpuSplit {
	return cpuSplit{sidecar: c.sidecar - o.sidecar, redis: c.redis - o.redis, self: c.self - o.self}
}

// busyPercent is the share of the machine's cores the processes used over elapsed.
func (c cpuSplit) busyPercent(elapsed time.Duration) float64 {
	return 100 * float64(c.sidecar+c.redis+c.self) / float64(elapsed) / float64(runtime.NumCPU())
}

func (s *redisServer) client() *redis.Client {
	return redis.NewClient(&redis.Options{Addr: s.addr, PoolSize: 4})
}

// usage is what a run has used so far: CPU per process, commands processed by redis-server and the memory
// it uses.
type usage struct {
	cpu        cpuSplit
	commands   int64
	usedMemory int64
}

func (u usage) sub(o usage) usage {
	return usage{cpu: u.cpu.sub(o.cpu), commands: u.commands - o.commands, usedMemory: u.usedMemory - o.usedMemory}
}

// sample reads the CPU of every process of a run (the sidecar is sidecarPID) and the commands redis-server
// has processed.
func (s *redisServer) sample(ctx context.Context, sidecarPID int) (usage, error) {
	var u usage
	var err error
	if u.cpu, err = s.machineCPU(sidecarPID); err != nil {
		return u, err
	}
	if u.commands, err = s.info(ctx, "stats", "total_commands_processed"); err != nil {
		return u, err
	}
	u.usedMemory, err = s.info(ctx, "memory", "used_memory")
	return u, err
}

// info returns one integer field of a section of INFO: total_commands_processed (stats) counts the commands
// the server has processed, used_memory (memory) the bytes its data takes.
func (s *redisServer) info(ctx context.Context, section, field string) (int64, error) {
	c := s.client()
	defer func() { _ = c.Close() }()
	info, err := c.Info(ctx, section).Result()
	if err != nil {
		return 0, fmt.Errorf("reading redis %s: %w", section, err)
	}
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), field+":"); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return 0, fmt.Errorf("parsing %s %q: %w", field, v, err)
			}
			return n, nil
		}
	}
	return 0, fmt.Errorf("redis %s lacks %s", section, field)
}

// flush empties the server between runs, so every run starts with the same store.
func (s *redisServer) flush(ctx context.Context) error {
	c := s.client()
	defer func() { _ = c.Close() }()
	if err := c.FlushAll(ctx).Err(); err != nil {
		return fmt.Errorf("flushing redis: %w", err)
	}
	return nil
}

// stop kills the process this tool started and removes its directory.
func (s *redisServer) stop() {
	if s.cmd.Process != nil {
		_ = s.cmd.Process.Kill()
		select {
		case <-s.exited:
		case <-time.After(10 * time.Second):
		}
	}
	_ = os.RemoveAll(s.dir)
}

// freePort asks the kernel for a free 127.0.0.1 port.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("finding a free port: %w", err)
	}
	defer func() { _ = ln.Close() }()
	return ln.Addr().(*net.TCPAddr).Port, nil
}
