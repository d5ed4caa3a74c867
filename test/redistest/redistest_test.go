package redistest_test

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/kafka-sidecar/kafka-sidecar/test/redistest"
)

func TestStartServes(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts redistest.Options
	}{
		{"plain", redistest.Options{}},
		{"password", redistest.Options{Password: "s3cret/with:chars"}},
		{"tls", redistest.Options{TLS: true}},
		{"mutual tls", redistest.Options{TLS: true, TLSAuthClients: true}},
		{"config", redistest.Options{Config: map[string]string{"maxmemory-policy": "noeviction", "maxmemory": "64mb"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := redistest.Start(t, tc.opts)
			ctx := context.Background()
			c := s.Client(t)
			if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
				t.Fatalf("SET through Client: %v", err)
			}

			// The URL alone must carry everything but the certificates.
			opts, err := redis.ParseURL(s.URL())
			if err != nil {
				t.Fatalf("parsing URL %q: %v", s.URL(), err)
			}
			if tc.opts.TLS {
				if !strings.HasPrefix(s.URL(), "rediss://") || s.CAFile() == "" {
					t.Fatalf("TLS server: URL %q, CA file %q", s.URL(), s.CAFile())
				}
				opts.TLSConfig = s.TLSConfig()
			}
			uc := redis.NewClient(opts)
			defer uc.Close()
			if got, err := uc.Get(ctx, "k").Result(); err != nil || got != "v" {
				t.Fatalf("GET through URL client = %q, %v; want v", got, err)
			}

			for k, want := range tc.opts.Config {
				got, err := c.ConfigGet(ctx, k).Result()
				if err != nil {
					t.Fatalf("CONFIG GET %s: %v", k, err)
				}
				if k == "maxmemory" {
					want = "67108864"
				}
				if got[k] != want {
					t.Fatalf("CONFIG GET %s = %q, want %q", k, got[k], want)
				}
			}
			// No persistence by default: nothing to slow a restart or leave files behind.
			if got, err := c.ConfigGet(ctx, "save").Result(); err != nil || got["save"] != "" {
				t.Fatalf("CONFIG GET save = %q, %v; want empty", got["save"], err)
			}
		})
	}
}

func TestPasswordRequired(t *testing.T) {
	s := redistest.Start(t, redistest.Options{Password: "right"})
	opts := s.ClientOptions()
	opts.Password = "wrong"
	c := redis.NewClient(opts)
	defer c.Close()
	err := c.Ping(context.Background()).Err()
	if err == nil || !redis.IsAuthError(err) {
		t.Fatalf("PING with a wrong password = %v, want an authentication error", err)
	}
}

func TestMutualTLSRejectsClientWithoutCertificate(t *testing.T) {
	s := redistest.Start(t, redistest.Options{TLS: true, TLSAuthClients: true})
	certFile, keyFile := s.ClientCertFiles()
	if certFile == "" || keyFile == "" {
		t.Fatal("ClientCertFiles returned empty paths for a TLS server")
	}
	opts := s.ClientOptions()
	opts.TLSConfig = &tls.Config{RootCAs: s.Certs().CAPool(), MinVersion: tls.VersionTLS12}
	opts.MaxRetries = -1
	c := redis.NewClient(opts)
	defer c.Close()
	if err := c.Ping(context.Background()).Err(); err == nil {
		t.Fatal("PING without a client certificate succeeded on a server that requires one")
	}
}

func TestStopAndRestartOnSamePort(t *testing.T) {
	s := redistest.Start(t, redistest.Options{})
	addr := s.Addr()
	opts := s.ClientOptions()
	opts.MaxRetries = -1
	opts.DialTimeout = time.Second
	c := redis.NewClient(opts)
	defer c.Close()
	ctx := context.Background()
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}

	s.Stop()
	s.Stop() // idempotent
	if err := c.Ping(ctx).Err(); err == nil {
		t.Fatal("PING succeeded after Stop")
	}

	s.Start()
	if s.Addr() != addr {
		t.Fatalf("restarted on %s, want the same address %s", s.Addr(), addr)
	}
	// The pool may hand out a connection that died with the old process; one failure is allowed.
	if err := c.Ping(ctx).Err(); err != nil {
		if err = c.Ping(ctx).Err(); err != nil {
			t.Fatalf("PING after restart: %v", err)
		}
	}
	if err := c.Get(ctx, "k").Err(); !errors.Is(err, redis.Nil) {
		t.Fatalf("GET after restart = %v, want redis.Nil (no persistence)", err)
	}
}

func TestClusterServesAllSlots(t *testing.T) {
	c := redistest.StartCluster(t, 3)
	cl := c.Client(t)
	ctx := context.Background()
	// Keys spread over the slots, so every node must answer some of them.
	for i := range 200 {
		if err := cl.Set(ctx, "key-"+strconv.Itoa(i), i, 0).Err(); err != nil {
			t.Fatalf("SET through the cluster client: %v", err)
		}
	}
	for i, n := range c.Nodes {
		size, err := n.Client(t).DBSize(ctx).Result()
		if err != nil {
			t.Fatalf("DBSIZE on node %d: %v", i, err)
		}
		if size == 0 {
			t.Fatalf("node %d holds no keys: the slots are not spread", i)
		}
	}
}

// recordingTB records how Binary ends a test instead of ending the real one.
type recordingTB struct {
	testing.TB
	skipped, failed string
}

func (r *recordingTB) Helper() {}

func (r *recordingTB) Skipf(format string, args ...any) {
	r.skipped = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func (r *recordingTB) Fatalf(format string, args ...any) {
	r.failed = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func TestBinaryMissing(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	for _, tc := range []struct {
		name     string
		ci       string
		wantSkip bool
	}{
		{"locally skips", "", true},
		{"under CI fails", "true", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("CI", tc.ci)
			rec := &recordingTB{TB: t}
			done := make(chan struct{})
			go func() {
				defer close(done)
				redistest.Binary(rec)
			}()
			<-done
			got := rec.failed
			if tc.wantSkip {
				got = rec.skipped
			}
			if !strings.Contains(got, "install the Debian package redis-server") {
				t.Fatalf("skipped %q, failed %q; want the %s to name the Debian package",
					rec.skipped, rec.failed, map[bool]string{true: "skip", false: "failure"}[tc.wantSkip])
			}
		})
	}
}
