package pipeline

import (
	"context"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// Gate pauses every delivery while any of its reasons holds: the app answered "unavailable", its health URL
// fails, or the dedup store cannot be reached. A pause either lasts until a time or until it is cleared.
// Waiting on an open gate costs one atomic load. All methods are safe for concurrent use.
type Gate struct {
	mu      sync.Mutex
	until   map[string]time.Time // reason → end of a timed pause
	holds   map[string]bool      // reasons paused until cleared
	changed chan struct{}        // closed and replaced on every change
	active  atomic.Bool
	now     func() time.Time
	// onChange is told when a reason starts or stops pausing, for metrics.
	onChange func(reason string, paused bool)
}

// NewGate returns an open gate. onChange may be nil.
func NewGate(onChange func(reason string, paused bool)) *Gate {
	return &Gate{
		until:    map[string]time.Time{},
		holds:    map[string]bool{},
		changed:  make(chan struct{}),
		now:      time.Now,
		onChange: onChange,
	}
}

// PauseFor closes the gate for reason during d (extending a shorter pause for the same reason).
func (g *Gate) PauseFor(reason string, d time.Duration) {
	g.mu.Lock()
	defer g.mu.Unlock()
	end := g.now().Add(d)
	prev, had := g.until[reason]
	if had && !end.After(prev) {
		return
	}
	g.until[reason] = end
	g.changedLocked(reason, !had && !g.holds[reason])
}

// Hold closes (paused true) or opens (false) the gate for reason until told otherwise.
func (g *Gate) Hold(reason string, paused bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.holds[reason] == paused {
		return
	}
	if paused {
		g.holds[reason] = true
	} else {
		delete(g.holds, reason)
	}
	_, timed := g.until[reason]
	g.changedLocked(reason, !timed)
}

func (g *Gate) changedLocked(reason string, report bool) {
	g.active.Store(len(g.until) > 0 || len(g.holds) > 0)
	close(g.changed)
	g.changed = make(chan struct{})
	if report && g.onChange != nil {
		g.onChange(reason, g.holds[reason] || !g.until[reason].IsZero())
	}
}

// Reasons lists the reasons pausing delivery now, sorted.
func (g *Gate) Reasons() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.expireLocked()
	var out []string
	for r := range g.holds {
		out = append(out, r)
	}
	for r := range g.until {
		if !g.holds[r] {
			out = append(out, r)
		}
	}
	sort.Strings(out)
	return out
}

// expireLocked drops timed pauses that ended and returns the earliest end among the rest.
func (g *Gate) expireLocked() (next time.Time) {
	now := g.now()
	for r, end := range g.until {
		if !end.After(now) {
			delete(g.until, r)
			if !g.holds[r] && g.onChange != nil {
				g.onChange(r, false)
			}
			continue
		}
		if next.IsZero() || end.Before(next) {
			next = end
		}
	}
	g.active.Store(len(g.until) > 0 || len(g.holds) > 0)
	return next
}

// Wait returns nil once no reason pauses delivery, or ctx's error when it ends first.
func (g *Gate) Wait(ctx context.Context) error {
	if !g.active.Load() {
		return nil
	}
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		g.mu.Lock()
		next := g.expireLocked()
		held := len(g.holds) > 0
		changed := g.changed
		g.mu.Unlock()
		if !held && next.IsZero() {
			return nil
		}
		var fire <-chan time.Time
		if !next.IsZero() {
			d := next.Sub(g.now())
			if timer == nil {
				timer = time.NewTimer(d)
			} else {
				timer.Reset(d)
			}
			fire = timer.C
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-changed:
		case <-fire:
		}
	}
}

// backoff is a capped doubling pause shared by every worker: concurrent failures observed during one pause
// do not multiply it, only a failure after the pause ended doubles it.
type backoff struct {
	mu      sync.Mutex
	first   time.Duration
	max     time.Duration
	current time.Duration
	until   time.Time
	armed   atomic.Bool
}

// next returns the pause to apply after a failure at now.
func (b *backoff) next(now time.Time) time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	if now.Before(b.until) {
		return b.until.Sub(now)
	}
	switch {
	case b.current == 0:
		b.current = b.first
	default:
		b.current = min(b.current*2, b.max)
	}
	b.until = now.Add(b.current)
	b.armed.Store(true)
	return b.current
}

// reset forgets past failures after a success; it is one atomic load when nothing failed.
func (b *backoff) reset() {
	if !b.armed.Load() {
		return
	}
	b.mu.Lock()
	b.current = 0
	b.until = time.Time{}
	b.armed.Store(false)
	b.mu.Unlock()
}
