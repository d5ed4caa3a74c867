package dedup_test

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/kafka-sidecar/kafka-sidecar/dedup"
	"github.com/kafka-sidecar/kafka-sidecar/test/certs"
	"github.com/kafka-sidecar/kafka-sidecar/test/redistest"
)

// redisBackend is a server the Redis-specific tests run against: miniredis, or a real redis-server.
type redisBackend struct {
	name   string
	client func(t *testing.T) redis.UniversalClient
}

func redisBackends(t *testing.T) []redisBackend {
	return []redisBackend{
		{"miniredis", func(t *testing.T) redis.UniversalClient {
			return redis.NewClient(&redis.Options{Addr: miniredis.RunT(t).Addr()})
		}},
		{"redis-server", func(t *testing.T) redis.UniversalClient {
			return redistest.Start(t, redistest.Options{}).Client(t)
		}},
	}
}

func TestRedisKeyLayout(t *testing.T) {
	for _, be := range redisBackends(t) {
		t.Run(be.name, func(t *testing.T) {
			ctx := context.Background()
			client := be.client(t)
			s := dedup.NewRedis(client, dedup.RedisOptions{
				KeyPrefix: "kafka-sidecar:grp:", Owner: "pod-0", Lease: 40 * time.Second, TTL: 168 * time.Hour,
			})
			id := "orders/3/\x00\xff"
			key := "kafka-sidecar:grp:" + id
			if got := s.Key(id); got != key {
				t.Fatalf("Key(%q) = %q, want %q", id, got, key)
			}

			for _, step := range []struct {
				name      string
				do        func() error
				wantValue string
				wantTTL   time.Duration
			}{
				{"claim", func() error { _, err := s.Claim(ctx, []string{id}); return err }, "Lpod-0", 40 * time.Second},
				{"complete", func() error { return s.Complete(ctx, []string{id}) }, "D", 168 * time.Hour},
			} {
				if err := step.do(); err != nil {
					t.Fatalf("%s: %v", step.name, err)
				}
				if got, err := client.Get(ctx, key).Result(); err != nil || got != step.wantValue {
					t.Fatalf("after %s: GET %q = %q, %v; want %q", step.name, key, got, err, step.wantValue)
				}
				ttl, err := client.PTTL(ctx, key).Result()
				if err != nil || ttl <= step.wantTTL-5*time.Second || ttl > step.wantTTL {
					t.Fatalf("after %s: PTTL = %v, %v; want just under %v", step.name, ttl, err, step.wantTTL)
				}
			}
		})
	}
}

func TestRedisDefaults(t *testing.T) {
	ctx := context.Background()
	mr := miniredis.RunT(t)
	client := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	s := dedup.NewRedis(client, dedup.RedisOptions{})
	defer s.Close()
	if !strings.HasPrefix(s.Owner(), "random-") {
		t.Fatalf("Owner() = %q, want a random owner", s.Owner())
	}
	other := dedup.NewRedis(redis.NewClient(&redis.Options{Addr: mr.Addr()}), dedup.RedisOptions{})
	defer other.Close()
	if other.Owner() == s.Owner() {
		t.Fatal("two stores without an owner got the same random owner")
	}
	if _, err := s.Claim(ctx, []string{"x"}); err != nil {
		t.Fatal(err)
	}
	if got := mr.TTL("x"); got != dedup.DefaultLease {
		t.Fatalf("lease TTL = %v, want DefaultLease %v", got, dedup.DefaultLease)
	}
	if err := s.Complete(ctx, []string{"x"}); err != nil {
		t.Fatal(err)
	}
	if got := mr.TTL("x"); got != dedup.DefaultTTL {
		t.Fatalf("done TTL = %v, want DefaultTTL %v", got, dedup.DefaultTTL)
	}
}

func TestRedisReloadsFlushedScripts(t *testing.T) {
	for _, be := range redisBackends(t) {
		t.Run(be.name, func(t *testing.T) {
			ctx := context.Background()
			client := be.client(t)
			a := dedup.NewRedis(client, dedup.RedisOptions{KeyPrefix: "p:", Owner: "a"})
			// The server forgets its scripts on a restart or failover; SCRIPT FLUSH does the same here.
			for i, step := range []func() error{
				func() error { return client.ScriptFlush(ctx).Err() },
				func() error { return claimWant(ctx, a, "x", dedup.Claimed) },
				func() error { return client.ScriptFlush(ctx).Err() },
				func() error { return a.Release(ctx, []string{"x", "y"}) },
				func() error { return claimWant(ctx, a, "x", dedup.Claimed) },
			} {
				if err := step(); err != nil {
					t.Fatalf("step %d: %v", i, err)
				}
			}
		})
	}
}

func claimWant(ctx context.Context, s dedup.Store, id string, want dedup.Status) error {
	got, err := s.Claim(ctx, []string{id})
	if err != nil {
		return err
	}
	if got[0] != want {
		return fmt.Errorf("Claim(%q) = %v, want %v", id, got[0], want)
	}
	return nil
}

// TestRedisErrorClasses makes miniredis answer every command with a given error and checks what each store
// method reports: the sentinel a caller acts on, and the server's text for the log.
func TestRedisErrorClasses(t *testing.T) {
	const (
		unavailable = "unavailable"
		auth        = "auth"
		other       = "other"
	)
	for _, tc := range []struct {
		reply string
		want  string
	}{
		{"LOADING Redis is loading the dataset in memory", unavailable},
		{"BUSY Redis is busy running a script", unavailable},
		{"MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.", unavailable},
		{"CLUSTERDOWN The cluster is down", unavailable},
		{"TRYAGAIN Multiple keys request during rehashing of slot", unavailable},
		{"READONLY You can't write against a read only replica.", unavailable},
		{"OOM command not allowed when used memory > 'maxmemory'.", unavailable},
		{"MISCONF Redis is configured to save RDB snapshots, but it's currently unable to persist to disk.", unavailable},
		{"NOREPLICAS Not enough good replicas to write.", unavailable},
		{"ERR max number of clients reached", unavailable},
		{"NOAUTH Authentication required.", auth},
		{"WRONGPASS invalid username-password pair or user is disabled.", auth},
		{"NOPERM User sidecar has no permissions to run the 'evalsha' command", auth},
		{"WRONGTYPE Operation against a key holding the wrong kind of value", other},
		{"ERR unknown command 'evalsha'", other},
	} {
		t.Run(strings.Fields(tc.reply)[0]+"/"+tc.want, func(t *testing.T) {
			mr := miniredis.RunT(t)
			s := dedup.NewRedis(redis.NewClient(&redis.Options{Addr: mr.Addr(), MaxRetries: -1}),
				dedup.RedisOptions{KeyPrefix: "p:", Owner: "a"})
			defer s.Close()
			ctx := context.Background()
			// Connect first so the error hits the commands rather than the connection handshake.
			if err := s.Ping(ctx); err != nil {
				t.Fatalf("Ping before the fault: %v", err)
			}
			mr.SetError(tc.reply)
			for _, op := range []struct {
				name string
				call func() error
			}{
				{"Claim", func() error { _, err := s.Claim(ctx, []string{"x", "y"}); return err }},
				{"Complete", func() error { return s.Complete(ctx, []string{"x"}) }},
				{"Release", func() error { return s.Release(ctx, []string{"x"}) }},
				{"Ping", func() error { return s.Ping(ctx) }},
			} {
				err := op.call()
				if err == nil {
					t.Fatalf("%s succeeded, want %s error", op.name, tc.want)
				}
				isUnavailable, isAuth := errors.Is(err, dedup.ErrUnavailable), errors.Is(err, dedup.ErrAuth)
				got := other
				switch {
				case isUnavailable && isAuth:
					t.Fatalf("%s error %q matches both ErrUnavailable and ErrAuth", op.name, err)
				case isUnavailable:
					got = unavailable
				case isAuth:
					got = auth
				}
				if got != tc.want {
					t.Fatalf("%s error %q classed %s, want %s", op.name, err, got, tc.want)
				}
				if !strings.Contains(err.Error(), strings.Fields(tc.reply)[0]) {
					t.Fatalf("%s error %q lost the server's reply", op.name, err)
				}
			}
		})
	}
}

func TestRedisAuthenticationFailures(t *testing.T) {
	const password = "correct-horse"
	srv := redistest.Start(t, redistest.Options{Password: password})
	ctx := context.Background()
	admin := srv.Client(t)
	// A user that may read and write keys but not run scripts: its Claim is refused by the ACL.
	if err := admin.Do(ctx, "ACL", "SETUSER", "noscript", "on", ">pw", "~*", "+@all", "-evalsha", "-eval").Err(); err != nil {
		t.Fatalf("creating ACL user: %v", err)
	}
	for _, tc := range []struct {
		name     string
		username string
		password string
	}{
		{"wrong password", "", "wrong-password-value"},
		{"no password", "", ""},
		{"unknown user", "nobody", "wrong-password-value"},
		{"command not permitted", "noscript", "pw"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := srv.ClientOptions()
			opts.Username, opts.Password = tc.username, tc.password
			opts.MaxRetries = -1
			s := dedup.NewRedis(redis.NewClient(opts), dedup.RedisOptions{KeyPrefix: "p:", Owner: "a"})
			defer s.Close()
			_, err := s.Claim(ctx, []string{"x"})
			if !errors.Is(err, dedup.ErrAuth) {
				t.Fatalf("Claim = %v, want ErrAuth", err)
			}
			if errors.Is(err, dedup.ErrUnavailable) {
				t.Fatalf("Claim error %q also matches ErrUnavailable: the caller would retry forever", err)
			}
			if !strings.Contains(err.Error(), "authentication failed") {
				t.Fatalf("error %q does not say authentication failed", err)
			}
			if tc.password != "" && strings.Contains(err.Error(), tc.password) {
				t.Fatalf("error %q reveals the password", err)
			}
			if !dedup.IsAuthError(err) {
				t.Fatalf("IsAuthError(%v) = false for a store error", err)
			}
			if tc.name != "command not permitted" {
				// The raw client error, as a Ping at start-up sees it, classifies the same way.
				raw := redis.NewClient(opts)
				defer raw.Close()
				if perr := raw.Ping(ctx).Err(); !dedup.IsAuthError(perr) {
					t.Fatalf("IsAuthError(%v) = false for a rejected Ping", perr)
				}
			}
		})
	}
	if dedup.IsAuthError(nil) || dedup.IsAuthError(dedup.ErrUnavailable) {
		t.Fatal("IsAuthError must be false for nil and for an outage")
	}
}

func TestRedisTLSFailuresAreAuth(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{TLS: true, TLSAuthClients: true})
	stranger := certs.Generate(t)
	for _, tc := range []struct {
		name string
		tls  *tls.Config
	}{
		{"server not trusted", stranger.ClientTLSConfig(false)},
		{"no client certificate", &tls.Config{RootCAs: srv.Certs().CAPool(), MinVersion: tls.VersionTLS12}},
		{"client certificate from another CA", func() *tls.Config {
			c := stranger.ClientTLSConfig(true)
			c.RootCAs = srv.Certs().CAPool()
			return c
		}()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := srv.ClientOptions()
			opts.TLSConfig = tc.tls
			opts.MaxRetries, opts.DialerRetries = -1, 1
			s := dedup.NewRedis(redis.NewClient(opts), dedup.RedisOptions{KeyPrefix: "p:", Owner: "a"})
			defer s.Close()
			_, err := s.Claim(context.Background(), []string{"x"})
			if !errors.Is(err, dedup.ErrAuth) || errors.Is(err, dedup.ErrUnavailable) {
				t.Fatalf("Claim = %v, want ErrAuth and not ErrUnavailable", err)
			}
		})
	}
}

// TestRedisOutageAndRecovery stops the real server under a store: calls fail with ErrUnavailable (never as
// done or busy), and once the server is back the same store works again without being rebuilt.
func TestRedisOutageAndRecovery(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	opts := srv.ClientOptions()
	opts.DialTimeout = time.Second
	opts.MaxRetries, opts.DialerRetries = 1, 1
	s := dedup.NewRedis(redis.NewClient(opts), dedup.RedisOptions{KeyPrefix: "p:", Owner: "a"})
	defer s.Close()
	ctx := context.Background()
	if err := claimWant(ctx, s, "before", dedup.Claimed); err != nil {
		t.Fatal(err)
	}

	srv.Stop()
	for _, op := range []struct {
		name string
		call func() error
	}{
		{"Claim", func() error { _, err := s.Claim(ctx, []string{"during"}); return err }},
		{"Complete", func() error { return s.Complete(ctx, []string{"during"}) }},
		{"Release", func() error { return s.Release(ctx, []string{"during"}) }},
		{"Ping", func() error { return s.Ping(ctx) }},
	} {
		start := time.Now()
		err := op.call()
		if !errors.Is(err, dedup.ErrUnavailable) || errors.Is(err, dedup.ErrAuth) {
			t.Fatalf("%s while the server is down = %v, want ErrUnavailable", op.name, err)
		}
		if d := time.Since(start); d > 10*time.Second {
			t.Fatalf("%s took %v to fail while the server is down", op.name, d)
		}
	}

	srv.Start()
	// The pool may still hold connections to the dead process; the store must recover by itself, promptly.
	var lastErr error
	waitFor(t, 10*time.Second, "the store to recover after the restart", func() bool {
		lastErr = claimWant(ctx, s, "after", dedup.Claimed)
		if lastErr != nil && !errors.Is(lastErr, dedup.ErrUnavailable) {
			t.Fatalf("Claim after restart = %v, want success or ErrUnavailable", lastErr)
		}
		return lastErr == nil
	})
	if err := s.Ping(ctx); err != nil {
		t.Fatalf("Ping after recovery: %v", err)
	}
}

func TestRedisNothingListening(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	srv.Stop() // leaves a port nobody listens on
	opts := srv.ClientOptions()
	opts.MaxRetries, opts.DialerRetries = -1, 1
	s := dedup.NewRedis(redis.NewClient(opts), dedup.RedisOptions{})
	defer s.Close()
	_, err := s.Claim(context.Background(), []string{"x"})
	if !errors.Is(err, dedup.ErrUnavailable) {
		t.Fatalf("Claim with nothing listening = %v, want ErrUnavailable", err)
	}
}

// TestRedisCallerDeadline points a store at a server that accepts connections and never answers: a caller's
// deadline ends the call with the context's error, not a late ErrUnavailable.
func TestRedisCallerDeadline(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns sync.WaitGroup
	stop := make(chan struct{})
	conns.Add(1)
	go func() {
		defer conns.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Add(1)
			go func() {
				defer conns.Done()
				<-stop
				_ = c.Close()
			}()
		}
	}()
	defer func() {
		close(stop)
		_ = ln.Close()
		conns.Wait()
	}()

	s := dedup.NewRedis(redis.NewClient(&redis.Options{
		Addr: ln.Addr().String(), ContextTimeoutEnabled: true, MaxRetries: -1, Protocol: 2,
	}), dedup.RedisOptions{})
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = s.Claim(ctx, []string{"x"})
	if !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, dedup.ErrUnavailable) {
		t.Fatalf("Claim past the caller's deadline = %v, want only context.DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("Claim took %v to honour a 200ms deadline", d)
	}
}

// waitFor polls cond until it holds or bound passes.
func waitFor(t *testing.T, bound time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(bound)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", bound, what)
		}
		<-tick.C
	}
}
