package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"
)

// profileSpec asks for a CPU profile of the child during the measured window of one run.
type profileSpec struct {
	dir     string
	seconds int
	run     string
	// adminAddr is where the child serves /debug/pprof/, set once the child's environment is built.
	adminAddr string
}

func (p profileSpec) enabled() bool { return p.dir != "" }

// start fetches the profile in the background; the channel yields the outcome (nil at once when profiling
// is off). The child serves the profile only after the given seconds, so the fetch spans the window.
func (p profileSpec) start(ctx context.Context) <-chan error {
	done := make(chan error, 1)
	if !p.enabled() {
		done <- nil
		return done
	}
	go func() { done <- p.fetch(ctx) }()
	return done
}

func (p profileSpec) fetch(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, time.Duration(p.seconds)*time.Second+30*time.Second)
	defer cancel()
	url := fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", p.adminAddr, p.seconds)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("building the profile request: %w", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("fetching the CPU profile: %w", err)
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("fetching the CPU profile: status %s", resp.Status)
	}
	if err := os.MkdirAll(p.dir, 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", p.dir, err)
	}
	path := filepath.Join(p.dir, p.run+".pprof")
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("creating %s: %w", path, err)
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		_ = f.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}

// freeLoopbackAddr returns a loopback address with a port that was free a moment ago.
func freeLoopbackAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("finding a free port for the admin server: %w", err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		return "", fmt.Errorf("finding a free port for the admin server: %w", err)
	}
	return addr, nil
}
