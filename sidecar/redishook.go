package sidecar

import (
	"context"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/kafka-sidecar/kafka-sidecar/metrics"
)

// redisTimer is a go-redis hook that times every round trip to the dedup store for
// kafka_sidecar_dedup_store_duration_seconds: a pipeline (how the store sends a batch of claims and done marks)
// as one, a single command under its own name.
type redisTimer struct{ m *metrics.Metrics }

// DialHook passes through: a dial is timed as part of the round trip that needed it.
func (h redisTimer) DialHook(next redis.DialHook) redis.DialHook { return next }

// ProcessHook times one command.
func (h redisTimer) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		start := time.Now()
		err := next(ctx, cmd)
		h.m.DedupStoreCall(strings.ToLower(cmd.Name()), time.Since(start))
		return err
	}
}

// ProcessPipelineHook times one pipeline.
func (h redisTimer) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		start := time.Now()
		err := next(ctx, cmds)
		h.m.DedupStoreCall("pipeline", time.Since(start))
		return err
	}
}

var _ redis.Hook = redisTimer{}
