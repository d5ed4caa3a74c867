package chaos

import (
	"context"
	"fmt"
	"sort"
	"time"
)

// schedule returns the faults of the run in the order they happen: every round holds one of each kind in
// a random order.
func (r *run) schedule() []Fault {
	kinds := []Fault{FaultSidecarKill, FaultSidecarTerm, FaultRedis}
	if r.kafka.real() && r.kafka.script != "" {
		kinds = append(kinds, FaultBroker)
	}
	var out []Fault
	for range r.opts.Rounds {
		round := append([]Fault(nil), kinds...)
		r.rng.Shuffle(len(round), func(i, j int) { round[i], round[j] = round[j], round[i] })
		out = append(out, round...)
	}
	return out
}

// faults causes the scheduled faults one after the other, each at a random moment of its own slot of the
// fault window (or as soon as the one before is over). They never overlap: each ends with the disturbed
// part working again, so the run proves recovery from each fault rather than from an arbitrary pile-up.
func (r *run) faults(ctx context.Context) {
	plan := r.schedule()
	slot := r.opts.FaultWindow / time.Duration(len(plan))
	start := time.Now()
	for i, f := range plan {
		at := start.Add(slot*time.Duration(i) + time.Duration(r.rng.Int64N(int64(slot/2)+1)))
		if !r.sleep(ctx, time.Until(at)) {
			return
		}
		began := time.Now()
		if err := r.fault(ctx, f); err != nil {
			r.res.Problems = append(r.res.Problems, fmt.Sprintf("fault %s: %v", f, err))
			r.logf("fault %s failed: %v", f, err)
			continue
		}
		r.logf("fault %s done in %v", f, time.Since(began).Round(time.Millisecond))
	}
}

// fault causes one fault and waits until the disturbed part works again.
func (r *run) fault(ctx context.Context, f Fault) error {
	switch f {
	case FaultSidecarKill, FaultSidecarTerm:
		sc := r.sidecars[r.rng.IntN(len(r.sidecars))]
		var err error
		if f == FaultSidecarKill {
			r.logf("SIGKILL %s", sc.name)
			err = sc.Kill()
		} else {
			r.logf("SIGTERM %s", sc.name)
			err = sc.Terminate()
			r.res.SidecarTerms++
		}
		r.res.SidecarKills++
		if err != nil {
			return err
		}
		if !r.sleep(ctx, r.downtime(500*time.Millisecond, 2*time.Second)) {
			return ctx.Err()
		}
		return sc.Start(ctx)
	case FaultRedis:
		r.logf("SIGKILL redis-server")
		if err := r.redis.Kill(); err != nil {
			return err
		}
		r.res.RedisRestarts++
		if !r.sleep(ctx, r.downtime(time.Second, 3*time.Second)) {
			return ctx.Err()
		}
		return r.redis.Restart(ctx)
	case FaultBroker:
		node := 1 + r.rng.IntN(3)
		r.logf("SIGKILL Kafka node %d", node)
		if err := r.kafka.runScript(ctx, "kill", fmt.Sprint(node)); err != nil {
			return err
		}
		r.res.BrokerKills++
		if !r.sleep(ctx, r.downtime(2*time.Second, 5*time.Second)) {
			return ctx.Err()
		}
		if err := r.kafka.runScript(ctx, "start-node", fmt.Sprint(node)); err != nil {
			return err
		}
		return r.kafka.waitInSync(ctx, append([]string{r.dlqTopic}, r.tracked...)...)
	}
	return fmt.Errorf("unknown fault %q", f)
}

// downtime picks how long a stopped part stays down.
func (r *run) downtime(lo, hi time.Duration) time.Duration {
	return lo + time.Duration(r.rng.Int64N(int64(hi-lo)+1))
}

// sleep waits d; it is the fault schedule itself, not a synchronisation. It reports false when ctx ended.
func (r *run) sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// shutdown stops every sidecar with SIGTERM; each must exit 0 after draining.
func (r *run) shutdown() {
	for _, sc := range r.sidecars {
		if !sc.Running() {
			continue
		}
		if err := sc.Terminate(); err != nil {
			r.res.Problems = append(r.res.Problems, "final shutdown: "+err.Error())
		}
	}
	r.logf("sidecars stopped")
}

// verdict reads the dead-letter topic to its end and the group's committed offsets, and fills the result.
func (r *run) verdict(ctx context.Context) {
	for _, sc := range r.sidecars {
		r.res.Problems = append(r.res.Problems, sc.Unexpected()...)
	}
	if err := r.waitDLQRead(ctx); err != nil {
		r.res.Problems = append(r.res.Problems, err.Error())
	}
	r.stopReader()

	delivered := r.app.Delivered()
	dead, noID := r.dlq.snapshot()
	r.res.App = r.app.Stats()
	if noID > 0 {
		r.res.Problems = append(r.res.Problems, fmt.Sprintf("%d dead-letter records without a sidecar-id header", noID))
	}
	if r.res.App.NoID > 0 {
		r.res.Problems = append(r.res.Problems, fmt.Sprintf("%d deliveries without an Idempotency-Key", r.res.App.NoID))
	}
	known := make(map[string]bool, len(r.ids))
	for _, id := range r.ids {
		known[id] = true
		n := delivered[id]
		if n > 1 {
			r.res.Duplicates += n - 1
		}
		if n == 0 && dead[id] == 0 {
			r.res.Lost++
		}
		if ClassOf(r.opts.Seed, id) != Normal {
			if dead[id] == 0 {
				r.res.MissingDeadLetters = append(r.res.MissingDeadLetters, id)
			}
		} else if dead[id] > 0 {
			what := id
			if n > 0 {
				what += " (also got a 2xx)"
			}
			r.res.UnexpectedDeadLetters = append(r.res.UnexpectedDeadLetters, what)
		}
	}
	for id, n := range dead {
		r.res.DeadLettered++
		r.res.DeadLetterCopies += n - 1
		if !known[id] {
			r.res.UnexpectedDeadLetters = append(r.res.UnexpectedDeadLetters, id+" (not produced by this run)")
		}
	}
	for id := range delivered {
		if !known[id] {
			r.res.Problems = append(r.res.Problems, fmt.Sprintf("the app got ID %q, which this run never produced", id))
		}
	}
	sort.Strings(r.res.UnexpectedDeadLetters)

	behind, err := r.kafka.behind(ctx, r.group, r.tracked)
	if err != nil {
		r.res.Problems = append(r.res.Problems, "reading committed offsets: "+err.Error())
	}
	r.res.Behind = behind
}

// waitDLQRead waits until the reader has read the dead-letter topic to its current end.
func (r *run) waitDLQRead(ctx context.Context) error {
	ends, err := r.kafka.adm.ListEndOffsets(ctx, r.dlqTopic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return fmt.Errorf("listing the end of %s: %w", r.dlqTopic, err)
	}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for !r.dlq.caughtUp(ends, r.dlqTopic) {
		select {
		case <-ctx.Done():
			return fmt.Errorf("reading %s to its end: %w", r.dlqTopic, ctx.Err())
		case <-tick.C:
		}
	}
	return nil
}

// teardown stops whatever setup started, in reverse order.
func (r *run) teardown() {
	for _, sc := range r.sidecars {
		if sc.Running() {
			_ = sc.Kill()
		}
	}
	if r.stopReader != nil {
		r.stopReader()
	}
	if r.dlq != nil {
		r.dlq.close()
	}
	if r.kafka != nil {
		r.kafka.close()
	}
	if r.redis != nil {
		_ = r.redis.Kill()
	}
	if r.app != nil {
		_ = r.app.Close()
	}
}
