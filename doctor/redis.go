package doctor

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/kafka-sidecar/kafka-sidecar/dedup"
)

// Thresholds of the Redis checks.
const (
	// latencyPings is how many PINGs the latency median is taken over.
	latencyPings = 5
	// latencyWarn is the median above which each record's claim and completion visibly slow delivery.
	latencyWarn = 5 * time.Millisecond
	// memoryWarnRatio is the share of maxmemory above which a burst of new done marks may hit the limit.
	memoryWarnRatio = 0.8
)

// label names a server in a verdict about several.
func label(rs dedup.RedisServer) string {
	if rs.Addr == "" {
		return ""
	}
	return rs.Addr + ": "
}

// redisChecks reports whether Redis answers, how fast, and whether its settings keep done marks.
func (r *run) redisChecks(ctx context.Context) {
	rc := r.deps.Redis
	if rc == nil {
		r.add(Check{ID: "redis.reachable", Status: Fail, Observed: "no Redis client although SIDECAR_DEDUP=redis",
			Why: "the dedup store is required to deliver records", Fix: "set SIDECAR_REDIS_URL"})
		return
	}
	sctx, cancel := step(ctx)
	err := rc.Ping(sctx)
	cancel()
	if err != nil {
		r.add(Check{ID: "redis.reachable", Status: Fail, Observed: "PING: " + describeErr(err),
			Why: "while the dedup store does not answer, the sidecar pauses delivery",
			Fix: "check SIDECAR_REDIS_URL, the credentials (SIDECAR_REDIS_PASSWORD_FILE), TLS settings and the network path to Redis"})
		return
	}
	r.add(Check{ID: "redis.reachable", Status: Pass, Observed: "PING answered", Why: "the dedup store keeps done marks and delivery leases"})
	r.latencyCheck(ctx, rc)

	sctx, cancel = step(ctx)
	infos, err := rc.Servers(sctx)
	cancel()
	if err != nil {
		for _, id := range []string{"redis.persistence", "redis.eviction", "redis.memory"} {
			r.add(Check{ID: id, Status: Warn, Observed: "cannot list the cluster's masters: " + describeErr(err), Why: "the setting could not be checked"})
		}
		return
	}
	r.add(worst("redis.persistence", infos, evalPersistence))
	r.add(worst("redis.eviction", infos, evalEviction))
	r.add(worst("redis.memory", infos, evalMemory))
	r.capacityCheck(ctx, infos)
}

// latencyCheck times a few PINGs with the run's clock and judges their median.
func (r *run) latencyCheck(ctx context.Context, rc RedisAuditor) {
	samples := make([]time.Duration, 0, latencyPings)
	for range latencyPings {
		sctx, cancel := step(ctx)
		start := r.now()
		err := rc.Ping(sctx)
		elapsed := r.now().Sub(start)
		cancel()
		if err != nil {
			r.add(Check{ID: "redis.latency", Status: Warn, Observed: "PING failed while measuring: " + describeErr(err),
				Why: "an unsteady connection to Redis pauses delivery"})
			return
		}
		samples = append(samples, elapsed)
	}
	r.add(evalLatency(samples))
}

// evalLatency judges the median of PING round trips.
func evalLatency(samples []time.Duration) Check {
	sorted := slices.Clone(samples)
	slices.Sort(sorted)
	median := sorted[len(sorted)/2]
	c := Check{ID: "redis.latency",
		Observed: fmt.Sprintf("median %s of %d PINGs (max %s)", roundLatency(median), len(sorted), roundLatency(sorted[len(sorted)-1])),
		Why:      "every record costs a claim and a completion round trip to Redis"}
	if median > latencyWarn {
		c.Status = Warn
		c.Why = fmt.Sprintf("every record costs two round trips to Redis; above %s each, they dominate delivery time and cap throughput", latencyWarn)
		c.Fix = "run Redis in the same zone as the pods (or closer), and check its CPU and network load"
		return c
	}
	c.Status = Pass
	return c
}

func roundLatency(d time.Duration) string {
	return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 2, 64) + "ms"
}

// worst evaluates every node and reports the worst verdict; with several nodes, Observed names each.
func worst(id string, infos []dedup.RedisServer, eval func(dedup.RedisServer) Check) Check {
	var out Check
	var observed []string
	for i, ni := range infos {
		c := eval(ni)
		observed = append(observed, label(ni)+c.Observed)
		if i == 0 || c.Status.severity() > out.Status.severity() {
			out = c
		}
	}
	out.ID = id
	out.Observed = strings.Join(observed, "; ")
	return out
}

// evalPersistence: a Redis restart without AOF or RDB forgets every done mark, so records are delivered again.
func evalPersistence(ni dedup.RedisServer) Check {
	why := "done marks must survive a Redis restart, or every record read again afterwards is delivered again"
	fix := "redis-cli CONFIG SET appendonly yes && redis-cli CONFIG REWRITE (or appendonly yes in redis.conf; managed Redis: enable AOF persistence)"
	if ni.ConfigErr != nil {
		// INFO still says whether AOF is on; the RDB save schedule is only in CONFIG.
		if ni.PersistenceErr == nil && ni.Persistence["aof_enabled"] == "1" {
			return Check{Status: Pass, Observed: "aof_enabled:1 (from INFO; CONFIG cannot be read: " + describeErr(ni.ConfigErr) + ")", Why: why}
		}
		return Check{Status: Warn, Observed: "cannot read the persistence settings: CONFIG GET failed (" + describeErr(ni.ConfigErr) + ") and INFO shows no AOF",
			Why: why + "; CONFIG is disabled or renamed, so whether RDB snapshots run is unknown",
			Fix: "confirm that AOF or RDB persistence is enabled in the Redis configuration or the managed service's settings"}
	}
	aof := ni.Config["appendonly"] == "yes"
	save := strings.TrimSpace(ni.Config["save"])
	switch {
	case aof:
		return Check{Status: Pass, Observed: "appendonly=yes, appendfsync=" + orDash(ni.Config["appendfsync"]), Why: why}
	case save != "":
		return Check{Status: Pass, Observed: "RDB snapshots (save " + save + "), appendonly=no", Why: why + "; with RDB alone, marks written since the last snapshot are lost in a crash"}
	}
	return Check{Status: Warn, Observed: "appendonly=no and no RDB save schedule", Why: why, Fix: fix}
}

// evalEviction: any evicting policy can drop done marks and leases, since all of them carry TTLs.
func evalEviction(ni dedup.RedisServer) Check {
	policy, ok := ni.Memory["maxmemory_policy"]
	if !ok || ni.MemoryErr != nil {
		policy, ok = ni.Config["maxmemory-policy"]
	}
	if !ok {
		err := errors.Join(ni.MemoryErr, ni.ConfigErr)
		observed := "cannot read maxmemory-policy"
		if err != nil {
			observed += ": " + describeErr(err)
		}
		return Check{Status: Warn, Observed: observed, Why: "an evicting policy would drop done marks and leases",
			Fix: "confirm maxmemory-policy is noeviction in the Redis configuration or the managed service's settings"}
	}
	c := Check{Observed: "maxmemory-policy=" + policy}
	if policy == "noeviction" {
		c.Status = Pass
		c.Why = "Redis refuses writes when full instead of dropping done marks; the sidecar then pauses rather than delivering twice"
		return c
	}
	c.Status = Fail
	c.Why = "Redis evicts keys when memory runs out; every done mark and lease carries a TTL, so volatile-* policies evict them as readily as allkeys-*: " +
		"an evicted mark means a record is delivered again, an evicted lease means two sidecars deliver it at once"
	c.Fix = "redis-cli CONFIG SET maxmemory-policy noeviction && redis-cli CONFIG REWRITE (managed Redis: set the parameter maxmemory-policy=noeviction), and size maxmemory for the marks of SIDECAR_DEDUP_TTL"
	return c
}

// evalMemory: used memory near maxmemory means a burst of marks may hit the limit.
func evalMemory(ni dedup.RedisServer) Check {
	why := "when Redis reaches maxmemory with noeviction, claims fail and delivery pauses until memory is freed"
	if ni.MemoryErr != nil {
		return Check{Status: Warn, Observed: "cannot read INFO memory: " + describeErr(ni.MemoryErr), Why: why}
	}
	used, uerr := strconv.ParseInt(ni.Memory["used_memory"], 10, 64)
	limit, lerr := strconv.ParseInt(ni.Memory["maxmemory"], 10, 64)
	if uerr != nil || lerr != nil {
		return Check{Status: Warn, Observed: "INFO memory lacks used_memory or maxmemory", Why: why}
	}
	if limit == 0 {
		return Check{Status: Pass, Observed: fmt.Sprintf("used %s, no maxmemory limit", formatBytes(used)),
			Why: "without maxmemory, the host's or container's memory is the limit: watch it, since reaching it kills Redis"}
	}
	ratio := float64(used) / float64(limit)
	c := Check{Observed: fmt.Sprintf("used %s of maxmemory %s (%.0f%%)", formatBytes(used), formatBytes(limit), ratio*100), Why: why}
	if ratio > memoryWarnRatio {
		c.Status = Warn
		c.Fix = "raise maxmemory (redis-cli CONFIG SET maxmemory <bytes>) or lower SIDECAR_DEDUP_TTL so fewer marks are kept"
		return c
	}
	c.Status = Pass
	return c
}

// formatBytes prints a byte count in binary units.
func formatBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return strconv.FormatInt(n, 10) + "B"
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return strconv.FormatFloat(float64(n)/float64(div), 'f', 1, 64) + string("KMGTPE"[exp]) + "iB"
}
