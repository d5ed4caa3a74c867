package doctor

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/kafka-sidecar/kafka-sidecar/dedup"
)

func TestEvalMinISR(t *testing.T) {
	tests := []struct {
		rf, mis int
		want    Status
	}{
		{rf: 1, mis: 1, want: Fail},
		{rf: 3, mis: 1, want: Fail},
		{rf: 2, mis: 3, want: Fail},
		{rf: 1, mis: 2, want: Fail},
		{rf: 2, mis: 2, want: Warn},
		{rf: 3, mis: 3, want: Warn},
		{rf: 3, mis: 2, want: Pass},
		{rf: 5, mis: 3, want: Pass},
	}
	for _, tt := range tests {
		t.Run(strings.Repeat("r", tt.rf)+"/"+strings.Repeat("m", tt.mis), func(t *testing.T) {
			c := evalMinISR(tt.rf, tt.mis)
			if c.Status != tt.want || c.Why == "" {
				t.Fatalf("evalMinISR(rf %d, min.insync %d) = %s (%q), want %s with a reason", tt.rf, tt.mis, c.Status, c.Why, tt.want)
			}
		})
	}
}

func TestEvalRetention(t *testing.T) {
	const day = 24 * time.Hour
	need := 30*time.Second + 11*time.Minute // 10s + 1m + 10m retry delays and a 30s drain
	ms := func(d time.Duration) int64 { return d.Milliseconds() }
	tests := []struct {
		name     string
		rs       retentionSettings
		role     role
		dedupTTL time.Duration
		want     Status
		whyHas   string
	}{
		{name: "a week with a week of dedup", rs: retentionSettings{retentionMs: ms(7 * day), retentionBytes: -1, cleanupPolicy: "delete"}, dedupTTL: 7 * day, want: Pass},
		{name: "forever without dedup", rs: retentionSettings{retentionMs: -1, retentionBytes: -1, cleanupPolicy: "delete"}, want: Pass},
		{name: "forever outlives the done marks", rs: retentionSettings{retentionMs: -1, retentionBytes: -1, cleanupPolicy: "delete"}, dedupTTL: 7 * day, want: Warn, whyHas: "kept forever but done marks only 7d"},
		{name: "longer than the dedup TTL", rs: retentionSettings{retentionMs: ms(14 * day), retentionBytes: -1, cleanupPolicy: "delete"}, dedupTTL: 7 * day, want: Warn, whyHas: "done marks only 7d"},
		{name: "shorter than the retry path", rs: retentionSettings{retentionMs: ms(5 * time.Minute), retentionBytes: -1, cleanupPolicy: "delete"}, want: Fail, whyHas: "before a record's path"},
		{name: "shorter than a day", rs: retentionSettings{retentionMs: ms(6 * time.Hour), retentionBytes: -1, cleanupPolicy: "delete"}, want: Warn, whyHas: "outage longer than that"},
		{name: "size limit", rs: retentionSettings{retentionMs: ms(3 * day), retentionBytes: 1 << 30, cleanupPolicy: "delete"}, want: Warn, whyHas: "retention.bytes=1073741824"},
		{name: "compact and delete is time based", rs: retentionSettings{retentionMs: ms(3 * day), retentionBytes: -1, cleanupPolicy: "compact,delete"}, want: Pass},
		{name: "compact-only source", rs: retentionSettings{retentionMs: ms(3 * day), retentionBytes: -1, cleanupPolicy: "compact"}, want: Warn, whyHas: "latest record per key"},
		{name: "compact-only retry tier", rs: retentionSettings{retentionMs: ms(3 * day), retentionBytes: -1, cleanupPolicy: "compact"}, role: roleRetry, want: Fail},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := combine(Check{ID: "x"}, "fine", evalRetention(tt.rs, tt.role, need, tt.dedupTTL))
			if c.Status != tt.want {
				t.Fatalf("status %s (%s), want %s", c.Status, c.Why, tt.want)
			}
			if !strings.Contains(c.Why, tt.whyHas) {
				t.Fatalf("why %q, want it to contain %q", c.Why, tt.whyHas)
			}
			if c.Status != Pass && !strings.Contains(c.Fix, "=") {
				t.Fatalf("fix %q names no setting", c.Fix)
			}
		})
	}
}

func TestEvalDLQRetention(t *testing.T) {
	const day = 24 * time.Hour
	tests := []struct {
		name string
		rs   retentionSettings
		want Status
	}{
		{name: "forever", rs: retentionSettings{retentionMs: -1, retentionBytes: -1, cleanupPolicy: "delete"}, want: Pass},
		{name: "exactly 21 days", rs: retentionSettings{retentionMs: (21 * day).Milliseconds(), retentionBytes: -1, cleanupPolicy: "delete"}, want: Pass},
		{name: "Kafka's default week", rs: retentionSettings{retentionMs: (7 * day).Milliseconds(), retentionBytes: -1, cleanupPolicy: "delete"}, want: Fail},
		{name: "compacted", rs: retentionSettings{retentionMs: -1, retentionBytes: -1, cleanupPolicy: "compact"}, want: Fail},
		{name: "size limited", rs: retentionSettings{retentionMs: -1, retentionBytes: 1 << 20, cleanupPolicy: "delete"}, want: Warn},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if c := combine(Check{}, "fine", evalDLQRetention(tt.rs)); c.Status != tt.want {
				t.Fatalf("status %s (%s), want %s", c.Status, c.Why, tt.want)
			}
		})
	}
}

func TestEvalLatency(t *testing.T) {
	ms := time.Millisecond
	tests := []struct {
		name    string
		samples []time.Duration
		want    Status
	}{
		{name: "fast", samples: []time.Duration{ms / 10, ms / 5, ms / 10, ms / 4, ms / 10}, want: Pass},
		{name: "one slow outlier does not count", samples: []time.Duration{ms, ms, 50 * ms, ms, ms}, want: Pass},
		{name: "slow median", samples: []time.Duration{6 * ms, 7 * ms, ms, 8 * ms, 9 * ms}, want: Warn},
		{name: "exactly the limit passes", samples: []time.Duration{5 * ms, 5 * ms, 5 * ms}, want: Pass},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if c := evalLatency(tt.samples); c.Status != tt.want {
				t.Fatalf("status %s (%s), want %s", c.Status, c.Observed, tt.want)
			}
		})
	}
}

func TestEvalRedisSettings(t *testing.T) {
	denied := errors.New("NOPERM this user has no permissions to run the 'config|get' command")
	tests := []struct {
		name string
		eval func(dedup.RedisServer) Check
		ni   dedup.RedisServer
		want Status
	}{
		{name: "noeviction", eval: evalEviction, ni: dedup.RedisServer{Memory: map[string]string{"maxmemory_policy": "noeviction"}}, want: Pass},
		{name: "allkeys-lfu", eval: evalEviction, ni: dedup.RedisServer{Memory: map[string]string{"maxmemory_policy": "allkeys-lfu"}}, want: Fail},
		{name: "volatile-lru", eval: evalEviction, ni: dedup.RedisServer{Memory: map[string]string{"maxmemory_policy": "volatile-lru"}}, want: Fail},
		{name: "policy from CONFIG when INFO lacks it", eval: evalEviction, ni: dedup.RedisServer{Memory: map[string]string{}, Config: map[string]string{"maxmemory-policy": "noeviction"}}, want: Pass},
		{name: "policy unreadable", eval: evalEviction, ni: dedup.RedisServer{Memory: map[string]string{}, ConfigErr: denied}, want: Warn},
		{name: "AOF", eval: evalPersistence, ni: dedup.RedisServer{Config: map[string]string{"appendonly": "yes", "save": ""}}, want: Pass},
		{name: "RDB", eval: evalPersistence, ni: dedup.RedisServer{Config: map[string]string{"appendonly": "no", "save": "3600 1 300 100"}}, want: Pass},
		{name: "no persistence", eval: evalPersistence, ni: dedup.RedisServer{Config: map[string]string{"appendonly": "no", "save": ""}}, want: Warn},
		{name: "CONFIG denied, AOF in INFO", eval: evalPersistence, ni: dedup.RedisServer{ConfigErr: denied, Persistence: map[string]string{"aof_enabled": "1"}}, want: Pass},
		{name: "CONFIG denied, no AOF", eval: evalPersistence, ni: dedup.RedisServer{ConfigErr: denied, Persistence: map[string]string{"aof_enabled": "0"}}, want: Warn},
		{name: "no limit", eval: evalMemory, ni: dedup.RedisServer{Memory: map[string]string{"used_memory": "1048576", "maxmemory": "0"}}, want: Pass},
		{name: "half full", eval: evalMemory, ni: dedup.RedisServer{Memory: map[string]string{"used_memory": "50", "maxmemory": "100"}}, want: Pass},
		{name: "81 percent", eval: evalMemory, ni: dedup.RedisServer{Memory: map[string]string{"used_memory": "81", "maxmemory": "100"}}, want: Warn},
		{name: "INFO memory refused", eval: evalMemory, ni: dedup.RedisServer{MemoryErr: denied}, want: Warn},
		{name: "INFO memory without fields", eval: evalMemory, ni: dedup.RedisServer{Memory: map[string]string{}}, want: Warn},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := tt.eval(tt.ni)
			if c.Status != tt.want {
				t.Fatalf("status %s (%s), want %s", c.Status, c.Observed, tt.want)
			}
			if c.Observed == "" || c.Why == "" {
				t.Fatalf("check %+v lacks observed or why", c)
			}
		})
	}
}

func TestWorstNamesEveryNode(t *testing.T) {
	infos := []dedup.RedisServer{
		{Addr: "n1:7000", Memory: map[string]string{"maxmemory_policy": "noeviction"}},
		{Addr: "n2:7001", Memory: map[string]string{"maxmemory_policy": "allkeys-lru"}},
	}
	c := worst("redis.eviction", infos, evalEviction)
	if c.Status != Fail || c.ID != "redis.eviction" {
		t.Fatalf("got %s %s, want the worst node's FAIL", c.ID, c.Status)
	}
	if c.Observed != "n1:7000: maxmemory-policy=noeviction; n2:7001: maxmemory-policy=allkeys-lru" {
		t.Fatalf("observed %q, want every node named", c.Observed)
	}
}

func TestFormatting(t *testing.T) {
	tests := []struct{ got, want string }{
		{formatDuration(7 * 24 * time.Hour), "7d"},
		{formatDuration(36 * time.Hour), "36h"},
		{formatDuration(11*time.Minute + 30*time.Second), "11m30s"},
		{formatDuration(90 * time.Minute), "90m"},
		{formatBytes(512), "512B"},
		{formatBytes(1536), "1.5KiB"},
		{formatBytes(3 << 30), "3.0GiB"},
		{plural(1, "broker"), "1 broker"},
		{plural(3, "broker"), "3 brokers"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("got %q, want %q", tt.got, tt.want)
		}
	}
}
