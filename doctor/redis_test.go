package doctor

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/kafka-sidecar/kafka-sidecar/config"
	"github.com/kafka-sidecar/kafka-sidecar/connect"
	"github.com/kafka-sidecar/kafka-sidecar/dedup"
	"github.com/kafka-sidecar/kafka-sidecar/test/redistest"
)

// redisOnly runs the audit's dedup checks alone against rc.
func redisOnly(t *testing.T, rc redis.UniversalClient, now func() time.Time) Report {
	t.Helper()
	cfg := testConfig(nil)
	cfg.Dedup = config.DedupRedis
	r := &run{deps: Deps{Config: cfg}, cfg: cfg, now: now}
	if rc != nil {
		r.deps.Redis = dedup.NewRedisInspector(rc)
	}
	if r.now == nil {
		r.now = time.Now
	}
	ctx, cancel := context.WithTimeout(context.Background(), runDeadline)
	defer cancel()
	r.dedupChecks(ctx)
	return r.report()
}

func redisClient(t *testing.T, rawURL string) redis.UniversalClient {
	t.Helper()
	cfg := testConfig(nil)
	cfg.Dedup, cfg.RedisURL = config.DedupRedis, config.Secret(rawURL)
	rc, err := connect.Redis(cfg)
	if err != nil {
		t.Fatalf("connect.Redis: %v", err)
	}
	t.Cleanup(func() { _ = rc.Close() })
	return rc
}

func TestRedisChecksAgainstServer(t *testing.T) {
	tests := []struct {
		name     string
		config   map[string]string
		noConfig bool // connect as a user denied the CONFIG command
		want     map[string]Status
	}{
		{
			name:   "allkeys-lru evicts done marks",
			config: map[string]string{"maxmemory-policy": "allkeys-lru"},
			want:   map[string]Status{"redis.eviction": Fail, "redis.persistence": Warn, "redis.reachable": Pass},
		},
		{
			name:   "volatile-ttl evicts them too, since every mark has a TTL",
			config: map[string]string{"maxmemory-policy": "volatile-ttl", "save": "3600 1"},
			want:   map[string]Status{"redis.eviction": Fail, "redis.persistence": Pass},
		},
		{
			name:   "noeviction with AOF",
			config: map[string]string{"maxmemory-policy": "noeviction", "appendonly": "yes"},
			want:   map[string]Status{"redis.eviction": Pass, "redis.persistence": Pass, "redis.memory": Pass, "redis.latency": Pass},
		},
		{
			name:   "memory near maxmemory",
			config: map[string]string{"maxmemory-policy": "noeviction", "maxmemory": "1mb"},
			want:   map[string]Status{"redis.memory": Warn},
		},
		{
			name:     "CONFIG refused, as managed services do",
			config:   map[string]string{"maxmemory-policy": "noeviction"},
			noConfig: true,
			want:     map[string]Status{"redis.persistence": Warn, "redis.eviction": Pass, "redis.memory": Pass},
		},
		{
			name:     "CONFIG refused but INFO shows AOF",
			config:   map[string]string{"maxmemory-policy": "noeviction", "appendonly": "yes"},
			noConfig: true,
			want:     map[string]Status{"redis.persistence": Pass},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := redistest.Start(t, redistest.Options{Config: tt.config})
			rawURL := srv.URL()
			if tt.noConfig {
				rawURL = userWithoutConfig(t, srv)
			}
			rep := redisOnly(t, redisClient(t, rawURL), steppingClock(200*time.Microsecond))
			for id, want := range tt.want {
				wantStatus(t, rep, id, want)
			}
		})
	}
}

func TestRedisEvictionNamesThePolicy(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{Config: map[string]string{"maxmemory-policy": "allkeys-lru"}})
	rep := redisOnly(t, redisClient(t, srv.URL()), nil)
	c := wantStatus(t, rep, "redis.eviction", Fail)
	if c.Observed != "maxmemory-policy=allkeys-lru" || !strings.Contains(c.Fix, "maxmemory-policy noeviction") {
		t.Fatalf("observed %q fix %q, want the policy named and noeviction as the fix", c.Observed, c.Fix)
	}
	if !rep.Failed() {
		t.Fatal("Failed() = false")
	}
}

func TestRedisUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	start := time.Now()
	rep := redisOnly(t, redisClient(t, "redis://:"+"planted-redis-pw"+"@"+addr+"/0"), nil)
	if elapsed := time.Since(start); elapsed > stepTimeout {
		t.Fatalf("the checks took %v against a closed port", elapsed)
	}
	wantStatus(t, rep, "redis.reachable", Fail)
	if len(rep.Checks) != 2 { // dedup.store and redis.reachable: the rest cannot run
		t.Fatalf("got %d checks, want dedup.store and redis.reachable only:\n%s", len(rep.Checks), tableOf(rep))
	}
}

func TestRedisMissingClient(t *testing.T) {
	rep := redisOnly(t, nil, nil)
	wantStatus(t, rep, "redis.reachable", Fail)
}

func TestRedisSlowLatencyWarns(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	rep := redisOnly(t, redisClient(t, srv.URL()), steppingClock(4*time.Millisecond))
	// The stepping clock advances one step per reading, so every PING measures exactly one step.
	c := wantStatus(t, rep, "redis.latency", Pass)
	if !strings.Contains(c.Observed, "median 4.00ms") {
		t.Fatalf("observed %q, want a 4.00ms median", c.Observed)
	}
	rep = redisOnly(t, redisClient(t, srv.URL()), steppingClock(6*time.Millisecond))
	wantStatus(t, rep, "redis.latency", Warn)
}

// userWithoutConfig creates an ACL user that may run everything but CONFIG and returns a URL logging in as it.
func userWithoutConfig(t *testing.T, srv *redistest.Server) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Client(t).Do(ctx, "ACL", "SETUSER", "doctor", "on", ">doctor-pw", "~*", "+@all", "-config").Err(); err != nil {
		t.Fatalf("creating the ACL user: %v", err)
	}
	return "redis://doctor:doctor-pw@" + srv.Addr() + "/0"
}
