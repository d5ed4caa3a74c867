package connect

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"

	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/plugin/kzap"
	"go.uber.org/zap"

	"github.com/kafka-sidecar/kafka-sidecar/config"
)

// KafkaLogger routes franz-go's own lines into log, named "kafka", without a caller (it would always be the
// adapter). franz-go reports routine group and metadata work at info; those lines show at debug only, so an
// info log holds franz-go's warnings and errors and the sidecar's own lifecycle lines.
func KafkaLogger(log *zap.Logger) kgo.Logger {
	zl := log.Named("kafka").WithOptions(zap.WithCaller(false))
	core := zl.Core()
	return kzap.New(zl, kzap.LevelFn(func() kgo.LogLevel {
		switch {
		case core.Enabled(zap.DebugLevel):
			return kgo.LogLevelDebug
		case core.Enabled(zap.WarnLevel):
			return kgo.LogLevelWarn
		case core.Enabled(zap.ErrorLevel):
			return kgo.LogLevelError
		}
		return kgo.LogLevelNone
	}))
}

// sentinelNewMaster is the format go-redis logs when Sentinel names a new master (master name, address).
const sentinelNewMaster = "sentinel: new master=%q addr=%q"

// RouteRedisLogs sends go-redis's log lines, which it otherwise prints as plain text on stderr, into log
// (named "redis") as warnings with every configured secret removed. A new Sentinel master becomes one info
// line, "redis: new Sentinel master", with the master's name and address. go-redis has one logger per process,
// so the last call wins. stop, called once the client is closed, drops the lines go-redis's background work
// may still write (a dial it retries after the close), so they do not outlive their logger.
func RouteRedisLogs(log *zap.Logger, cfg *config.Config) (stop func()) {
	var filePass []string
	if p, err := readPasswordFile(cfg.RedisPasswordFile); err == nil && p != "" {
		filePass = append(filePass, p)
	}
	l := &redisLogger{log: log.Named("redis").WithOptions(zap.WithCaller(false)), secrets: secretsOf(cfg, filePass...)}
	redis.SetLogger(l)
	return func() { l.stopped.Store(true) }
}

type redisLogger struct {
	log     *zap.Logger
	secrets []string
	stopped atomic.Bool
}

// Printf implements go-redis's logging interface.
func (l *redisLogger) Printf(_ context.Context, format string, v ...any) {
	if l.stopped.Load() {
		return
	}
	if format == sentinelNewMaster && len(v) == 2 {
		l.log.Info("redis: new Sentinel master",
			zap.String("master", l.clean(fmt.Sprint(v[0]))), zap.String("addr", l.clean(fmt.Sprint(v[1]))))
		return
	}
	msg := strings.TrimPrefix(l.clean(fmt.Sprintf(format, v...)), "redis: ")
	l.log.Warn("redis: "+msg, zap.String("source", "go-redis"))
}

// clean removes secrets from a line: go-redis may quote an address or a URL it was given.
func (l *redisLogger) clean(s string) string {
	for _, sec := range l.secrets {
		s = strings.ReplaceAll(s, sec, redactedMark)
	}
	return s
}
