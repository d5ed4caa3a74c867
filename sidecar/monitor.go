package sidecar

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/kafka-sidecar/kafka-sidecar/connect"
	"github.com/kafka-sidecar/kafka-sidecar/metrics"
	"github.com/redis/go-redis/v9"
)

// Intervals and bounds of the background checks. /readyz and /healthz read their results and never wait on a
// dependency themselves, so they answer at once whatever state Redis or the app is in.
const (
	redisCheckEvery   = 500 * time.Millisecond
	redisCheckTimeout = 500 * time.Millisecond
	redisPingBound    = 10 * time.Second
	appCheckEvery     = time.Second
	appCheckTimeout   = time.Second
	stallCheckEvery   = 500 * time.Millisecond
)

// checks holds the latest result of each background check.
type checks struct {
	mu         sync.Mutex
	redisErr   error
	redisSeen  bool // a Redis check has completed
	appErr     error
	appSeen    bool
	stall      stallState
	stallWatch stallWatch
	// pending is the PING still under way, if any, and when it was sent; used by the Redis check only.
	pending      chan error
	pendingSince time.Time
}

// monitor runs the background checks until ctx ends: Redis answers PING, the app is reachable (its health URL
// answers 2xx, or a TCP connection opens), and records finish while there is work. Each check logs its changes
// through events and keeps its last result for the probes.
func (s *Sidecar) monitor(ctx context.Context) {
	var wg sync.WaitGroup
	if s.redis != nil {
		wg.Add(1)
		go func() { defer wg.Done(); s.every(ctx, redisCheckEvery, s.checkRedis) }()
	}
	wg.Add(2)
	go func() { defer wg.Done(); s.every(ctx, appCheckEvery, s.checkApp) }()
	go func() { defer wg.Done(); s.every(ctx, stallCheckEvery, s.checkStall) }()
	wg.Wait()
}

// every runs check now and then at each interval until ctx ends.
func (s *Sidecar) every(ctx context.Context, interval time.Duration, check func(context.Context)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		check(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (s *Sidecar) checkRedis(ctx context.Context) {
	err := s.checks.ping(ctx, s.redis)
	if ctx.Err() != nil {
		return
	}
	s.checks.mu.Lock()
	s.checks.redisErr, s.checks.redisSeen = err, true
	s.checks.mu.Unlock()
	s.events.reachable("dedup store", err, func(err error) string { return connect.RedactSecrets(s.cfg, err.Error()) })
}

// ping sends PING and waits at most redisCheckTimeout for the answer. A PING that outlives the wait goes on in
// the background (bounded by redisPingBound) and is waited for by the next check instead of sending another,
// so a client stuck on a dead connection costs one goroutine, never a pile of them, and never stalls the check.
func (c *checks) ping(ctx context.Context, rc redis.UniversalClient) error {
	if c.pending == nil {
		ch := make(chan error, 1)
		pctx, cancel := context.WithTimeout(ctx, redisPingBound)
		go func() { defer cancel(); ch <- rc.Ping(pctx).Err() }()
		c.pending, c.pendingSince = ch, time.Now()
	}
	t := time.NewTimer(redisCheckTimeout)
	defer t.Stop()
	select {
	case err := <-c.pending:
		c.pending = nil
		return err
	case <-t.C:
		return fmt.Errorf("no answer to PING for %s", time.Since(c.pendingSince).Round(time.Millisecond))
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *Sidecar) checkApp(ctx context.Context) {
	cctx, cancel := context.WithTimeout(ctx, appCheckTimeout)
	err := s.probe.Check(cctx)
	cancel()
	if ctx.Err() != nil {
		return
	}
	s.checks.mu.Lock()
	s.checks.appErr, s.checks.appSeen = err, true
	s.checks.mu.Unlock()
	s.events.reachable("app", err, func(err error) string { return err.Error() })
	if s.cfg.AppHealthURL != "" {
		// A failing health URL holds delivery; without one, delivery itself finds out that the app is down.
		s.gate.Hold(metrics.PauseAppUnhealthy, err != nil)
		s.metrics.AppUp(err == nil)
	}
}

func (s *Sidecar) checkStall(context.Context) {
	t := s.metrics.Totals()
	finished := t.Delivered + t.Duplicates + t.Retried + t.DeadLettered
	paused := len(s.gate.Reasons()) > 0
	s.checks.mu.Lock()
	st := s.checks.stallWatch.observe(time.Now(), finished, s.cons.InFlight(), paused)
	s.checks.stall = st
	s.checks.mu.Unlock()
	s.metrics.Stalled(st.stalled)
	s.events.stall(st)
}
