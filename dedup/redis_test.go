package dedup_test

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"hash/fnv"
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

// msgs returns records with the IDs of their own ids, each at an offset derived from its ID, so distinct IDs
// are distinct records.
func msgs(ids ...string) []dedup.Mark {
	ms := make([]dedup.Mark, len(ids))
	for i, id := range ids {
		h := fnv.New64a()
		_, _ = h.Write([]byte(id))
		ms[i] = msg(id, int64(h.Sum64()>>2))
	}
	return ms
}

// applyErr keeps the error of an Apply that claims nothing.
func applyErr(_ []dedup.Status, err error) error { return err }

// TestRedisKeyLayout checks the keys a store writes, their values and expiries: what operators see and what
// the sizing figures assume.
func TestRedisKeyLayout(t *testing.T) {
	for _, be := range redisBackends(t) {
		t.Run(be.name, func(t *testing.T) {
			ctx := context.Background()
			client := be.client(t)
			s := dedup.NewRedis(client, dedup.RedisOptions{
				KeyPrefix: "kafka-sidecar:grp:", Owner: "pod-0", Lease: 40 * time.Second, TTL: 168 * time.Hour,
				IDTTL: 24 * time.Hour,
			})
			defer s.Close()
			topicID := [16]byte{0xab, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 0xcd}
			own := dedup.Mark{TopicID: topicID, Topic: "orders", Partition: 3, Epoch: 7, Offset: 2*dedup.ChunkOffsets + 9,
				ID: "m-\x00\xff", OwnID: true}
			plain := dedup.Mark{TopicID: topicID, Topic: "orders", Partition: 3, Epoch: 7, Offset: 10,
				ID: "orders/3/10"}
			byName := plain
			byName.TopicID = [16]byte{}
			const partition = "kafka-sidecar:grp:p:{ab0102030405060708090a0b0c0d0ecd:3}"
			for _, k := range []struct{ got, want string }{
				{s.IDKey(own.ID), "kafka-sidecar:grp:i:m-\x00\xff"},
				{s.LegacyKey(own.ID), "kafka-sidecar:grp:m-\x00\xff"},
				{s.PartitionLeaseKey(plain), partition + ":lease"},
				{s.PartitionLeaseKey(byName), "kafka-sidecar:grp:p:{~orders:3}:lease"},
			} {
				if k.got != k.want {
					t.Fatalf("key %q, want %q", k.got, k.want)
				}
			}
			posKey, bit := s.PositionKey(own)
			if posKey != partition+":7:2" || bit != 9 {
				t.Fatalf("PositionKey = %q, %d; want %q, 9", posKey, bit, partition+":7:2")
			}

			check := func(step, key, want string, ttl time.Duration) {
				t.Helper()
				if got, err := client.Get(ctx, key).Result(); err != nil || got != want {
					t.Fatalf("after %s: GET %q = %q, %v; want %q", step, key, got, err, want)
				}
				got, err := client.PTTL(ctx, key).Result()
				if err != nil || got <= ttl-5*time.Second || got > ttl {
					t.Fatalf("after %s: PTTL %q = %v, %v; want just under %v", step, key, got, err, ttl)
				}
			}
			if _, err := s.Apply(ctx, dedup.Ops{Claim: []dedup.Mark{own, plain}}); err != nil {
				t.Fatal(err)
			}
			check("claim", s.IDKey(own.ID), "Lpod-0", 40*time.Second)
			check("claim", s.PartitionLeaseKey(plain), "Lpod-0", 40*time.Second)
			if n, _ := client.Exists(ctx, posKey).Result(); n != 0 {
				t.Fatal("a claim wrote a position key")
			}
			if _, err := s.Apply(ctx, dedup.Ops{Complete: []dedup.Mark{own, plain}}); err != nil {
				t.Fatal(err)
			}
			check("complete", s.IDKey(own.ID), "d", 24*time.Hour)
			for _, m := range []dedup.Mark{own, plain} {
				key, bit := s.PositionKey(m)
				if got, err := client.GetBit(ctx, key, bit).Result(); err != nil || got != 1 {
					t.Fatalf("after complete: GETBIT %q %d = %d, %v; want 1", key, bit, got, err)
				}
				// Created at full length at once: no growth, no slack.
				if n, err := client.StrLen(ctx, key).Result(); err != nil || n != 1018 {
					t.Fatalf("STRLEN %q = %d, %v; want 1018", key, n, err)
				}
				if got, err := client.PTTL(ctx, key).Result(); err != nil || got <= 168*time.Hour-5*time.Second {
					t.Fatalf("PTTL %q = %v, %v; want just under 168h", key, got, err)
				}
			}
			// The completed record's partition lease stays until the partition is given up.
			check("complete", s.PartitionLeaseKey(plain), "Lpod-0", 40*time.Second)
			if err := s.ReleasePartitions(ctx, map[string][]int32{"orders": {3}}); err != nil {
				t.Fatal(err)
			}
			if n, _ := client.Exists(ctx, s.PartitionLeaseKey(plain)).Result(); n != 0 {
				t.Fatal("ReleasePartitions left the partition lease")
			}
			// A fresh Redis: the previous layout is not read, and the decision is kept.
			until, err := s.LegacyUntil(ctx)
			if err != nil || !until.IsZero() {
				t.Fatalf("LegacyUntil on a fresh Redis = %v, %v; want zero", until, err)
			}
			if got, err := client.Get(ctx, "kafka-sidecar:grp:p:format").Result(); err != nil || got != "0" {
				t.Fatalf("GET p:format = %q, %v; want 0", got, err)
			}
			// Park marks the position and drops the lease, nothing else.
			parked := own
			parked.ID, parked.Offset = "parked", 11
			if _, err := s.Apply(ctx, dedup.Ops{Claim: []dedup.Mark{parked}}); err != nil {
				t.Fatal(err)
			}
			if _, err := s.Apply(ctx, dedup.Ops{Park: []dedup.Mark{parked}}); err != nil {
				t.Fatal(err)
			}
			if n, _ := client.Exists(ctx, s.IDKey("parked")).Result(); n != 0 {
				t.Fatal("Park left the ID key")
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
	x := msg("x", 5)
	if _, err := s.Apply(ctx, dedup.Ops{Claim: []dedup.Mark{x}}); err != nil {
		t.Fatal(err)
	}
	if got := mr.TTL(s.IDKey("x")); got != dedup.DefaultLease {
		t.Fatalf("lease TTL = %v, want DefaultLease %v", got, dedup.DefaultLease)
	}
	if _, err := s.Apply(ctx, dedup.Ops{Complete: []dedup.Mark{x}}); err != nil {
		t.Fatal(err)
	}
	if got := mr.TTL(s.IDKey("x")); got != dedup.DefaultIDTTL {
		t.Fatalf("ID mark TTL = %v, want DefaultIDTTL %v", got, dedup.DefaultIDTTL)
	}
	key, _ := s.PositionKey(x)
	if want := dedup.DefaultTTL + dedup.PositionMarkSlack(dedup.DefaultTTL); mr.TTL(key) != want {
		t.Fatalf("position mark TTL = %v, want DefaultTTL and its slack, %v", mr.TTL(key), want)
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
				func() error { return applyErr(a.Apply(ctx, dedup.Ops{Release: msgs("x", "y")})) },
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
	got, err := s.Apply(ctx, dedup.Ops{Claim: msgs(id)})
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
				{"Claim", func() error { _, err := s.Apply(ctx, dedup.Ops{Claim: msgs("x", "y")}); return err }},
				{"Complete", func() error { return applyErr(s.Apply(ctx, dedup.Ops{Complete: msgs("x")})) }},
				{"Release", func() error { return applyErr(s.Apply(ctx, dedup.Ops{Release: msgs("x")})) }},
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
			_, err := s.Apply(ctx, dedup.Ops{Claim: msgs("x")})
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
			_, err := s.Apply(context.Background(), dedup.Ops{Claim: msgs("x")})
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
		{"Claim", func() error { _, err := s.Apply(ctx, dedup.Ops{Claim: msgs("during")}); return err }},
		{"Complete", func() error { return applyErr(s.Apply(ctx, dedup.Ops{Complete: msgs("during")})) }},
		{"Release", func() error { return applyErr(s.Apply(ctx, dedup.Ops{Release: msgs("during")})) }},
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
	_, err := s.Apply(context.Background(), dedup.Ops{Claim: msgs("x")})
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
	_, err = s.Apply(ctx, dedup.Ops{Claim: msgs("x")})
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
