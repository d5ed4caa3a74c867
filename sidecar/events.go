package sidecar

import (
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/kafka-sidecar/kafka-sidecar/metrics"
)

// events writes the lifecycle lines an operator reads: one line when something starts going wrong and one when
// it is over, with how long it lasted. It is fed by state changes (the pause gate, the background checks), never
// by every failure, so an outage of any length costs two lines. Its methods are safe for concurrent use.
type events struct {
	log *zap.Logger
	now func() time.Time

	mu       sync.Mutex
	pausedAt map[string]time.Time // gate reason → when it started pausing delivery
	downAt   map[string]time.Time // dependency → when it stopped answering
	stallAt  time.Time            // when the stall was reported; zero while there is none
}

func newEvents(log *zap.Logger) *events {
	return &events{log: log, now: time.Now, pausedAt: map[string]time.Time{}, downAt: map[string]time.Time{}}
}

// pauseCauses says in words why delivery pauses for each gate reason.
var pauseCauses = map[string]string{
	metrics.PauseAppUnavailable:   "the app answered unavailable (429, 503, connection refused, 401/403/404/405)",
	metrics.PauseAppUnhealthy:     "the app's health URL does not answer 2xx",
	metrics.PauseDedupUnavailable: "the dedup store does not answer",
}

// paused is the pause gate's onChange: one line when a reason starts pausing delivery, one when it stops.
func (e *events) paused(reason string, paused bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	start, was := e.pausedAt[reason]
	switch {
	case paused && !was:
		e.pausedAt[reason] = e.now()
		e.log.Warn("delivery paused", zap.String("reason", reason), zap.String("cause", pauseCauses[reason]))
	case !paused && was:
		delete(e.pausedAt, reason)
		e.log.Info("delivery resumed", zap.String("reason", reason), zap.Duration("paused_for", e.now().Sub(start)))
	}
}

// reachable records the result of a background check of a dependency ("dedup store", "app"): one line when it
// stops answering, with the error, and one when it answers again, with how long it was down.
func (e *events) reachable(what string, err error, describe func(error) string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	since, down := e.downAt[what]
	switch {
	case err != nil && !down:
		e.downAt[what] = e.now()
		e.log.Warn(what+" unreachable", zap.String("error", describe(err)))
	case err == nil && down:
		delete(e.downAt, what)
		e.log.Info(what+" reachable again", zap.Duration("down_for", e.now().Sub(since)))
	}
}

// stall records the stall watch's verdict: one error line when records stop finishing, one when they finish
// again.
func (e *events) stall(s stallState) {
	e.mu.Lock()
	defer e.mu.Unlock()
	switch {
	case s.stalled && e.stallAt.IsZero():
		e.stallAt = e.now()
		e.log.Error("stalled: records are in flight but none has finished; /healthz fails",
			zap.Duration("for", s.since), zap.Int("in_flight", s.inFlight))
	case !s.stalled && !e.stallAt.IsZero():
		e.log.Info("records finish again; /healthz passes", zap.Duration("stalled_for", e.now().Sub(e.stallAt)))
		e.stallAt = time.Time{}
	}
}
