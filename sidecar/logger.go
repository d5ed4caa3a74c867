package sidecar

import (
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// Version is the sidecar's version, set by the command before New; the start line and
// kafka_sidecar_build_info report it.
var Version = "dev"

// On the loggers of the parts that report every failure (the Kafka and Redis clients, the consumer, the
// pipeline, the producer), repeats of one message at one level beyond logBurst within logTick are thinned to
// one in logThereafter, so an outage that fails every second cannot flood the log while the first lines of
// every kind still show. The sidecar's own start-up and lifecycle lines are not thinned: each is written once
// per change.
const (
	logTick       = 10 * time.Second
	logBurst      = 10
	logThereafter = 100
)

// NewLogger builds the zap logger for SIDECAR_LOG_LEVEL and SIDECAR_LOG_FORMAT (json or console), on stderr.
func NewLogger(level, format string) (*zap.Logger, error) {
	lvl, err := zapcore.ParseLevel(level)
	if err != nil {
		return nil, err
	}
	cfg := zap.NewProductionConfig()
	if format == "console" {
		cfg = zap.NewDevelopmentConfig()
		cfg.EncoderConfig.EncodeLevel = zapcore.CapitalLevelEncoder
		cfg.DisableStacktrace = true
	}
	cfg.Level = zap.NewAtomicLevelAt(lvl)
	cfg.EncoderConfig.TimeKey = "ts"
	cfg.EncoderConfig.EncodeTime = zapcore.ISO8601TimeEncoder
	cfg.EncoderConfig.EncodeDuration = zapcore.StringDurationEncoder
	cfg.Sampling = nil // see rateLimited: zap's own sampling ticks every second and would thin every logger
	cfg.OutputPaths = []string{"stderr"}
	cfg.ErrorOutputPaths = []string{"stderr"}
	return cfg.Build()
}

// rateLimited returns log with repeats thinned (see logBurst).
func rateLimited(log *zap.Logger) *zap.Logger {
	return log.WithOptions(zap.WrapCore(func(c zapcore.Core) zapcore.Core {
		return zapcore.NewSamplerWithOptions(c, logTick, logBurst, logThereafter)
	}))
}
