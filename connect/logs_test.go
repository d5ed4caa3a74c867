package connect

import (
	"context"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/kafka-sidecar/kafka-sidecar/config"
)

// TestRedisLogLines: go-redis's lines arrive as warnings of the "redis" logger with the configured passwords
// removed, and a new Sentinel master is exactly one info line with the master's name and address.
func TestRedisLogLines(t *testing.T) {
	core, logs := observer.New(zapcore.DebugLevel)
	cfg := &config.Config{RedisURL: config.Secret("redis-sentinel://:pw-9f2c@s1:26379/mymaster")}
	l := &redisLogger{log: zap.New(core).Named("redis"), secrets: secretsOf(cfg)}
	ctx := context.Background()

	l.Printf(ctx, "redis: connection pool: failed to dial after %d attempts: %v", 5, "dial redis://:pw-9f2c@10.0.0.7:6379 refused")
	l.Printf(ctx, sentinelNewMaster, "mymaster", "10.0.0.8:6379")

	lines := logs.All()
	if len(lines) != 2 {
		t.Fatalf("%d lines, want 2", len(lines))
	}
	dial := lines[0]
	if dial.Level != zapcore.WarnLevel || dial.LoggerName != "redis" || !strings.HasPrefix(dial.Message, "redis: connection pool: failed to dial after 5 attempts") {
		t.Errorf("pool line: %v %q %q", dial.Level, dial.LoggerName, dial.Message)
	}
	if strings.Contains(dial.Message, "pw-9f2c") {
		t.Errorf("pool line holds the password: %q", dial.Message)
	}
	master := logs.FilterMessage("redis: new Sentinel master").All()
	if len(master) != 1 || master[0].Level != zapcore.InfoLevel {
		t.Fatalf("new-master lines %v, want exactly one info line", master)
	}
	if f := master[0].ContextMap(); f["master"] != "mymaster" || f["addr"] != "10.0.0.8:6379" {
		t.Errorf("new-master fields %v", f)
	}
	l.stopped.Store(true)
	l.Printf(ctx, "redis: connection pool: failed to dial after %d attempts: %v", 5, "refused")
	if n := logs.Len(); n != 2 {
		t.Errorf("%d lines after the routing stopped, want the 2 from before", n)
	}
}

// TestKafkaLoggerLevels: at info the Kafka client is asked for warnings and errors only (its info lines are
// routine), at debug for everything; its lines carry the "kafka" logger name and no caller.
func TestKafkaLoggerLevels(t *testing.T) {
	for _, tt := range []struct {
		level zapcore.Level
		want  kgo.LogLevel
	}{
		{zapcore.DebugLevel, kgo.LogLevelDebug},
		{zapcore.InfoLevel, kgo.LogLevelWarn},
		{zapcore.WarnLevel, kgo.LogLevelWarn},
		{zapcore.ErrorLevel, kgo.LogLevelError},
	} {
		core, logs := observer.New(tt.level)
		kl := KafkaLogger(zap.New(core, zap.AddCaller()))
		if got := kl.Level(); got != tt.want {
			t.Errorf("zap level %v: kgo level %v, want %v", tt.level, got, tt.want)
		}
		kl.Log(kgo.LogLevelError, "unable to join group", "group", "ops", "err", "boom")
		e := logs.All()
		if len(e) != 1 || e[0].LoggerName != "kafka" || e[0].Caller.Defined || e[0].ContextMap()["group"] != "ops" {
			t.Errorf("zap level %v: lines %v, want one kafka line without a caller", tt.level, e)
		}
	}
}
