package sidecar

import "time"

// stallWatch tells a pipeline that has work but makes no progress from one that simply has nothing to do:
// stalled means records are in flight, delivery is not paused, and no record has finished for the timeout.
// A pause (app unavailable, dedup store down) is a known cause reported elsewhere, and a restart would not cure
// it, so time paused does not count. Not safe for concurrent use: one goroutine feeds it.
type stallWatch struct {
	timeout      time.Duration
	lastFinished int64
	lastProgress time.Time
}

// stallState is one verdict of the watch.
type stallState struct {
	stalled  bool
	since    time.Duration // how long nothing has finished while work waited
	inFlight int
}

// observe takes the records finished so far, the records in flight and whether delivery is paused, at now.
func (w *stallWatch) observe(now time.Time, finished int64, inFlight int, paused bool) stallState {
	if w.lastProgress.IsZero() || finished != w.lastFinished || inFlight == 0 || paused {
		w.lastFinished = finished
		w.lastProgress = now
	}
	since := now.Sub(w.lastProgress)
	return stallState{stalled: w.timeout > 0 && since >= w.timeout, since: since, inFlight: inFlight}
}
