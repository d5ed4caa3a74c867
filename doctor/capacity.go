package doctor

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/kafka-sidecar/kafka-sidecar/config"
	"github.com/kafka-sidecar/kafka-sidecar/dedup"
)

// What one record's dedup marks cost a Redis server, as measured (dedup.TestRedisMemoryPerRecord): a position
// mark is a bit in a chunk of 8,136 offsets, about 0.15 bytes in a full chunk with its key, and up to about 0.25
// with the partly filled chunks a young partition or a new leader epoch starts; an ID mark is a key of its own, about 120 bytes
// besides the key's name.
const (
	positionMarkBytes = 0.25
	idMarkBytes       = 120
	// rateWindow is how far back the record rate of the source topics is measured.
	rateWindow = time.Hour
)

// capacityCheck estimates the Redis memory the dedup marks need at the source topics' current record rate
// and compares it with what the servers allow.
func (r *run) capacityCheck(ctx context.Context, infos []dedup.RedisServer) {
	rate, err := r.recordRate(ctx)
	if err != nil {
		r.add(Check{ID: "redis.capacity", Status: Warn, Observed: "cannot measure the source topics' record rate: " + describeErr(err),
			Why: "the dedup marks need Redis memory in proportion to the record rate and the mark lifetimes"})
		return
	}
	var used, limit int64
	for _, ni := range infos {
		u, uerr := strconv.ParseInt(ni.Memory["used_memory"], 10, 64)
		m, merr := strconv.ParseInt(ni.Memory["maxmemory"], 10, 64)
		if ni.MemoryErr != nil || uerr != nil || merr != nil {
			r.add(Check{ID: "redis.capacity", Status: Warn, Observed: "cannot read INFO memory", Why: "the capacity could not be judged"})
			return
		}
		if m == 0 {
			limit = 0
			used += u
			continue
		}
		used, limit = used+u, limit+m
	}
	r.add(evalCapacity(r.cfg, rate, used, limit, len(infos) > 1 && limit > 0))
}

// recordRate is the records per second produced to the source topics over the last rateWindow: the end
// offsets minus the offsets of the first records newer than the window's start.
func (r *run) recordRate(ctx context.Context) (float64, error) {
	if r.deps.Admin == nil {
		return 0, fmt.Errorf("no Kafka admin client")
	}
	sctx, cancel := step(ctx)
	defer cancel()
	ends, err := r.deps.Admin.ListEndOffsets(sctx, r.cfg.KafkaTopics...)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return 0, fmt.Errorf("listing end offsets: %w", err)
	}
	since, err := r.deps.Admin.ListOffsetsAfterMilli(sctx, r.now().Add(-rateWindow).UnixMilli(), r.cfg.KafkaTopics...)
	if err == nil {
		err = since.Error()
	}
	if err != nil {
		return 0, fmt.Errorf("listing offsets by time: %w", err)
	}
	var n int64
	for topic, ps := range ends {
		for p, end := range ps {
			if s, ok := since.Lookup(topic, p); ok && s.Offset >= 0 && s.Offset < end.Offset {
				n += end.Offset - s.Offset
			}
		}
	}
	return float64(n) / rateWindow.Seconds(), nil
}

// evalCapacity judges whether the marks of rate records per second fit: position marks for SIDECAR_DEDUP_TTL
// and, when records carry IDs of their own (SIDECAR_ID_HEADER set: every record is counted as having one), ID
// marks for SIDECAR_DEDUP_ID_TTL; without the header only CloudEvents have IDs of their own, which the
// estimate leaves out. used and limit are the servers' used_memory and maxmemory (limit 0: none). What is used
// may already hold marks, so up to the marks' own size of it is not counted twice.
func evalCapacity(cfg *config.Config, rate float64, used, limit int64, cluster bool) Check {
	positions := rate * cfg.DedupTTL.Seconds() * positionMarkBytes
	var ids float64
	ownIDs := cfg.IDHeader != ""
	if ownIDs {
		idKey := len(cfg.DedupKeyPrefix) + len(cfg.KafkaGroup) + 4 + 36 // prefix, group, separators, a UUID
		ids = rate * cfg.DedupIDTTL.Seconds() * float64(idMarkBytes+idKey)
	}
	need := int64(positions + ids)
	observed := fmt.Sprintf("%.0f records/s on the source topics (last %s): position marks for %s need about %s",
		rate, rateWindow, cfg.DedupTTL, formatBytes(int64(positions)))
	if ownIDs {
		observed += fmt.Sprintf(", ID marks for %s about %s (every record counted as having an ID of its own)",
			cfg.DedupIDTTL, formatBytes(int64(ids)))
	} else {
		observed += fmt.Sprintf(" (a CloudEvent adds an ID mark of about %d bytes for %s)", idMarkBytes+60, cfg.DedupIDTTL)
	}
	why := "the dedup marks live SIDECAR_DEDUP_TTL (by position) and SIDECAR_DEDUP_ID_TTL (by ID); when Redis is full, claims fail and delivery pauses"
	if limit == 0 {
		return Check{ID: "redis.capacity", Status: Pass, Why: why,
			Observed: observed + fmt.Sprintf("; no maxmemory limit (used %s): the host's memory must hold it", formatBytes(used))}
	}
	others := max(used-need, 0)
	observed += fmt.Sprintf("; maxmemory %s, used %s", formatBytes(limit), formatBytes(used))
	if cluster {
		observed += " (all masters)"
	}
	c := Check{ID: "redis.capacity", Observed: observed, Why: why}
	if float64(need+others) > memoryWarnRatio*float64(limit) {
		c.Status = Warn
		c.Fix = fmt.Sprintf("raise maxmemory to at least %s, or shorten SIDECAR_DEDUP_ID_TTL (ID marks cost about %d bytes each, position marks a bit); see \"Sizing Redis\" in the README",
			formatBytes(int64(float64(need+others)/memoryWarnRatio)), idMarkBytes)
		return c
	}
	c.Status = Pass
	return c
}
