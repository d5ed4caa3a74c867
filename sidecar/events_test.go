package sidecar

import (
	"errors"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/kafka-sidecar/kafka-sidecar/config"
	"github.com/kafka-sidecar/kafka-sidecar/connect"
	"github.com/kafka-sidecar/kafka-sidecar/metrics"
)

// fakeClock is a clock the test moves by hand.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time      { return c.t }
func (c *fakeClock) add(d time.Duration) { c.t = c.t.Add(d) }
func newObserved() (*events, *observer.ObservedLogs, *fakeClock) {
	core, logs := observer.New(zapcore.DebugLevel)
	clock := &fakeClock{t: time.Date(2026, 12, 6, 8, 0, 0, 0, time.UTC)}
	e := newEvents(zap.New(core))
	e.now = clock.now
	return e, logs, clock
}

// onlyLine fails unless logs hold exactly one line with msg, and returns its fields.
func onlyLine(t *testing.T, logs *observer.ObservedLogs, msg string) map[string]any {
	t.Helper()
	lines := logs.FilterMessage(msg).All()
	if len(lines) != 1 {
		t.Fatalf("%d lines %q, want exactly 1 (all: %v)", len(lines), msg, messages(logs))
	}
	return lines[0].ContextMap()
}

func messages(logs *observer.ObservedLogs) []string {
	var out []string
	for _, e := range logs.All() {
		out = append(out, e.Message)
	}
	return out
}

// TestPauseLines: a pause reported many times (the gate is told by every worker) is one line when it begins
// and one when it ends, with the reason, its cause and how long it lasted; reasons are independent.
func TestPauseLines(t *testing.T) {
	for _, reason := range []string{metrics.PauseAppUnavailable, metrics.PauseAppUnhealthy, metrics.PauseDedupUnavailable} {
		t.Run(reason, func(t *testing.T) {
			e, logs, clock := newObserved()
			e.paused(reason, false) // an end without a beginning says nothing
			for range 5 {
				e.paused(reason, true)
			}
			begin := onlyLine(t, logs, "delivery paused")
			if begin["reason"] != reason || begin["cause"] == "" || begin["cause"] == nil {
				t.Errorf("begin fields %v, want reason %s and a cause", begin, reason)
			}
			clock.add(90 * time.Second)
			for range 3 {
				e.paused(reason, false)
			}
			end := onlyLine(t, logs, "delivery resumed")
			if end["reason"] != reason || end["paused_for"] != 90*time.Second {
				t.Errorf("end fields %v, want reason %s, paused_for 1m30s", end, reason)
			}
			if n := logs.Len(); n != 2 {
				t.Errorf("%d lines for one pause, want 2: %v", n, messages(logs))
			}
		})
	}
}

// TestReachabilityLines: a dependency that fails check after check is one warning with the (redacted) error,
// and one line when it answers again, with how long it was down.
func TestReachabilityLines(t *testing.T) {
	e, logs, clock := newObserved()
	cfg := &config.Config{RedisURL: config.Secret("redis://app:s3cret-pass@cache:6379/0")}
	redact := func(err error) string { return connect.RedactSecrets(cfg, err.Error()) }
	e.reachable("dedup store", nil, redact) // healthy from the start: nothing to say
	leak := errors.New("dial redis://app:s3cret-pass@cache:6379/0: connection refused")
	for range 10 {
		e.reachable("dedup store", leak, redact)
		clock.add(500 * time.Millisecond)
	}
	lost := onlyLine(t, logs, "dedup store unreachable")
	if msg, _ := lost["error"].(string); msg == "" || strings.Contains(msg, "s3cret-pass") {
		t.Errorf("error field %q: want the redacted error", msg)
	}
	e.reachable("app", errors.New("connection refused"), redact)
	e.reachable("dedup store", nil, redact)
	e.reachable("dedup store", nil, redact)
	back := onlyLine(t, logs, "dedup store reachable again")
	if back["down_for"] != 5*time.Second {
		t.Errorf("down_for %v, want 5s", back["down_for"])
	}
	onlyLine(t, logs, "app unreachable")
	if logs.FilterMessage("app reachable again").Len() != 0 {
		t.Error("the app was reported back although it never answered")
	}
}

// TestStallLines: a stall is one error line when it begins and one line when records finish again.
func TestStallLines(t *testing.T) {
	e, logs, clock := newObserved()
	e.stall(stallState{})
	for range 4 {
		e.stall(stallState{stalled: true, since: 5 * time.Minute, inFlight: 7})
	}
	line := logs.FilterMessage("stalled: records are in flight but none has finished; /healthz fails").All()
	if len(line) != 1 || line[0].Level != zapcore.ErrorLevel || line[0].ContextMap()["in_flight"] != int64(7) {
		t.Fatalf("stall lines %v, want one error line with in_flight 7", line)
	}
	clock.add(time.Minute)
	e.stall(stallState{})
	e.stall(stallState{})
	if back := onlyLine(t, logs, "records finish again; /healthz passes"); back["stalled_for"] != time.Minute {
		t.Errorf("stalled_for %v, want 1m", back["stalled_for"])
	}
}

// TestRateLimitedRepeats: a failure logged on every attempt is thinned after the first logBurst lines, while
// other messages keep their lines.
func TestRateLimitedRepeats(t *testing.T) {
	core, logs := observer.New(zapcore.InfoLevel)
	log := rateLimited(zap.New(core))
	for range 1000 {
		log.Warn("fetch error; retrying")
	}
	log.Info("partitions assigned")
	got := logs.FilterMessage("fetch error; retrying").Len()
	if want := logBurst + (1000-logBurst)/logThereafter; got != want {
		t.Errorf("%d lines of 1000 repeats, want %d", got, want)
	}
	if logs.FilterMessage("partitions assigned").Len() != 1 {
		t.Error("another message was thinned with the repeats")
	}
}
