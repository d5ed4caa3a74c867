package sidecar

import (
	"testing"
	"time"
)

// TestStallWatch: stalled only when records are in flight, delivery is not paused and nothing finished for the
// timeout; an idle sidecar, a paused one and one that finishes records slowly are not stalled.
func TestStallWatch(t *testing.T) {
	type step struct {
		at       time.Duration // since the start
		finished int64
		inFlight int
		paused   bool
		want     bool
	}
	tests := []struct {
		name    string
		timeout time.Duration
		steps   []step
	}{
		{name: "no traffic stays healthy", timeout: time.Minute, steps: []step{
			{at: 0}, {at: 5 * time.Minute}, {at: time.Hour},
		}},
		{name: "work without progress stalls", timeout: time.Minute, steps: []step{
			{at: 0, finished: 10, inFlight: 3}, {at: 59 * time.Second, finished: 10, inFlight: 3},
			{at: 61 * time.Second, finished: 10, inFlight: 3, want: true},
		}},
		{name: "progress resets the clock", timeout: time.Minute, steps: []step{
			{at: 0, finished: 10, inFlight: 3}, {at: 50 * time.Second, finished: 11, inFlight: 3},
			{at: 100 * time.Second, finished: 11, inFlight: 3}, {at: 111 * time.Second, finished: 11, inFlight: 3, want: true},
			{at: 112 * time.Second, finished: 12, inFlight: 3},
		}},
		{name: "time paused does not count", timeout: time.Minute, steps: []step{
			{at: 0, finished: 10, inFlight: 3}, {at: 30 * time.Second, finished: 10, inFlight: 3, paused: true},
			{at: 10 * time.Minute, finished: 10, inFlight: 3, paused: true},
			{at: 10*time.Minute + 30*time.Second, finished: 10, inFlight: 3},
			{at: 11*time.Minute + time.Second, finished: 10, inFlight: 3, want: true},
		}},
		{name: "draining to zero in flight is progress", timeout: time.Minute, steps: []step{
			{at: 0, finished: 10, inFlight: 3}, {at: 50 * time.Second, finished: 10},
			{at: 100 * time.Second, finished: 10, inFlight: 1},
		}},
		{name: "a zero timeout never stalls", timeout: 0, steps: []step{
			{at: 0, finished: 10, inFlight: 3}, {at: time.Hour, finished: 10, inFlight: 3},
		}},
	}
	start := time.Date(2026, 12, 6, 8, 0, 0, 0, time.UTC)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := stallWatch{timeout: tt.timeout}
			for i, s := range tt.steps {
				got := w.observe(start.Add(s.at), s.finished, s.inFlight, s.paused)
				if got.stalled != s.want {
					t.Fatalf("step %d (%v): stalled=%v, want %v (since %v)", i, s.at, got.stalled, s.want, got.since)
				}
			}
		})
	}
}
