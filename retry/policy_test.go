package retry

import (
	"math"
	"testing"
	"time"
)

var defaultPolicy = Policy{
	AttemptsInPlace: 3,
	Delays:          []time.Duration{10 * time.Second, time.Minute, 10 * time.Minute},
	Backoff:         200 * time.Millisecond,
	BackoffMax:      5 * time.Second,
}

func TestPolicyNext(t *testing.T) {
	noTiers := defaultPolicy
	noTiers.Delays = nil
	oneAttempt := defaultPolicy
	oneAttempt.AttemptsInPlace = 1
	zeroAttempts := defaultPolicy
	zeroAttempts.AttemptsInPlace = 0

	tests := []struct {
		name      string
		policy    Policy
		tier      int
		attempts  int
		permanent bool
		want      Decision
	}{
		{"first failure on source stays", defaultPolicy, 0, 1, false, Decision{InPlace, 0, 200 * time.Millisecond}},
		{"second failure backs off more", defaultPolicy, 0, 2, false, Decision{InPlace, 0, 400 * time.Millisecond}},
		{"source exhausted goes to tier 1", defaultPolicy, 0, 3, false, Decision{ToTier, 1, 10 * time.Second}},
		{"tier 1 exhausted goes to tier 2", defaultPolicy, 1, 3, false, Decision{ToTier, 2, time.Minute}},
		{"tier 2 exhausted goes to tier 3", defaultPolicy, 2, 3, false, Decision{ToTier, 3, 10 * time.Minute}},
		{"last tier exhausted dead-letters", defaultPolicy, 3, 3, false, Decision{DeadLetter, 3, 0}},
		{"last tier first failure stays", defaultPolicy, 3, 1, false, Decision{InPlace, 3, 200 * time.Millisecond}},
		{"more attempts than allowed moves on", defaultPolicy, 1, 7, false, Decision{ToTier, 2, time.Minute}},
		{"permanent on source dead-letters at once", defaultPolicy, 0, 1, true, Decision{DeadLetter, 0, 0}},
		{"permanent on a tier dead-letters at once", defaultPolicy, 2, 1, true, Decision{DeadLetter, 2, 0}},
		{"no tiers: exhausted dead-letters", noTiers, 0, 3, false, Decision{DeadLetter, 0, 0}},
		{"no tiers: first failure stays", noTiers, 0, 1, false, Decision{InPlace, 0, 200 * time.Millisecond}},
		{"one attempt moves on at once", oneAttempt, 0, 1, false, Decision{ToTier, 1, 10 * time.Second}},
		{"zero attempts counts as one", zeroAttempts, 0, 1, false, Decision{ToTier, 1, 10 * time.Second}},
		{"tier past the policy dead-letters", defaultPolicy, 5, 3, false, Decision{DeadLetter, 5, 0}},
		{"tier past the policy still retries in place", defaultPolicy, 5, 1, false, Decision{InPlace, 5, 200 * time.Millisecond}},
		{"negative tier counts as source", defaultPolicy, -2, 3, false, Decision{ToTier, 1, 10 * time.Second}},
		{"zero policy dead-letters the first failure", Policy{}, 0, 1, false, Decision{DeadLetter, 0, 0}},
		{"negative delay counts as none", Policy{AttemptsInPlace: 1, Delays: []time.Duration{-time.Second}}, 0, 1, false, Decision{ToTier, 1, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.policy.Next(tt.tier, tt.attempts, tt.permanent)
			if got != tt.want {
				t.Fatalf("Next(%d, %d, %v) = %+v, want %+v", tt.tier, tt.attempts, tt.permanent, got, tt.want)
			}
		})
	}
}

func TestPolicyNextWalksEveryTier(t *testing.T) {
	// Following the decisions from the first failure must visit every attempt and tier exactly once and
	// end in the dead-letter topic: no tier is skipped and no record loops forever.
	tier, attempts, total := 0, 0, 0
	var visited []int
	for step := 0; step < 100; step++ {
		attempts++
		total++
		d := defaultPolicy.Next(tier, attempts, false)
		switch d.Action {
		case InPlace:
			continue
		case ToTier:
			visited = append(visited, d.Tier)
			tier, attempts = d.Tier, 0
			continue
		case DeadLetter:
		}
		want := defaultPolicy.AttemptsInPlace * (defaultPolicy.Tiers() + 1)
		if total != want {
			t.Fatalf("dead-lettered after %d attempts, want %d", total, want)
		}
		if len(visited) != 3 || visited[0] != 1 || visited[1] != 2 || visited[2] != 3 {
			t.Fatalf("visited tiers %v, want [1 2 3]", visited)
		}
		return
	}
	t.Fatal("no dead-letter decision after 100 attempts")
}

func TestPolicyBackoffFor(t *testing.T) {
	inverted := Policy{Backoff: time.Second, BackoffMax: time.Millisecond}
	tests := []struct {
		name    string
		policy  Policy
		attempt int
		rnd     float64
		want    time.Duration
	}{
		{"first attempt floor", defaultPolicy, 1, 0, 100 * time.Millisecond},
		{"first attempt middle", defaultPolicy, 1, 0.5, 150 * time.Millisecond},
		{"second attempt floor", defaultPolicy, 2, 0, 200 * time.Millisecond},
		{"third attempt floor", defaultPolicy, 3, 0, 400 * time.Millisecond},
		{"capped floor", defaultPolicy, 6, 0, 2500 * time.Millisecond},
		{"capped near top", defaultPolicy, 6, 0.999999, 5*time.Second - 2500*time.Nanosecond},
		{"huge attempt stays capped", defaultPolicy, math.MaxInt, 0, 2500 * time.Millisecond},
		{"attempt zero counts as first", defaultPolicy, 0, 0, 100 * time.Millisecond},
		{"negative attempt counts as first", defaultPolicy, -4, 0, 100 * time.Millisecond},
		{"rnd one stays below ceiling", defaultPolicy, 1, 1, 200*time.Millisecond - 1},
		{"rnd above one clamps", defaultPolicy, 1, 7, 200*time.Millisecond - 1},
		{"negative rnd clamps", defaultPolicy, 1, -3, 100 * time.Millisecond},
		{"NaN rnd clamps", defaultPolicy, 1, math.NaN(), 100 * time.Millisecond},
		{"no backoff", Policy{}, 3, 0.5, 0},
		{"max below base caps at base", inverted, 4, 0, 500 * time.Millisecond},
		{"max unset caps at base", Policy{Backoff: time.Second}, 4, 0, 500 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.policy.BackoffFor(tt.attempt, tt.rnd); got != tt.want {
				t.Fatalf("BackoffFor(%d, %v) = %v, want %v", tt.attempt, tt.rnd, got, tt.want)
			}
		})
	}
}

func TestPolicyBackoffForBounds(t *testing.T) {
	// For every attempt the pause lies in [ceiling/2, ceiling), never exceeds BackoffMax, and the ceiling
	// never shrinks as attempts grow.
	policies := []Policy{
		defaultPolicy,
		{Backoff: time.Nanosecond, BackoffMax: time.Hour},
		{Backoff: 3 * time.Millisecond, BackoffMax: 7 * time.Millisecond},
		{Backoff: time.Duration(math.MaxInt64 / 3), BackoffMax: time.Duration(math.MaxInt64)},
	}
	rnds := []float64{0, 0.25, 0.5, 0.75, 0.999999999}
	for _, p := range policies {
		t.Run(p.Backoff.String(), func(t *testing.T) {
			prev := time.Duration(0)
			for attempt := 1; attempt <= 80; attempt++ {
				c := p.ceiling(attempt)
				if c < prev {
					t.Fatalf("ceiling(%d) = %v shrank from %v", attempt, c, prev)
				}
				if c > max(p.BackoffMax, p.Backoff) || c <= 0 {
					t.Fatalf("ceiling(%d) = %v outside (0, %v]", attempt, c, p.BackoffMax)
				}
				prev = c
				for _, r := range rnds {
					d := p.BackoffFor(attempt, r)
					if d < c/2 || d >= c {
						t.Fatalf("BackoffFor(%d, %v) = %v outside [%v, %v)", attempt, r, d, c/2, c)
					}
				}
			}
		})
	}
}

func TestActionString(t *testing.T) {
	tests := []struct {
		a    Action
		want string
	}{
		{InPlace, "in_place"},
		{ToTier, "to_tier"},
		{DeadLetter, "dead_letter"},
		{Action(9), "action(9)"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			if got := tt.a.String(); got != tt.want {
				t.Fatalf("String() = %q, want %q", got, tt.want)
			}
		})
	}
}

func BenchmarkPolicyNext(b *testing.B) {
	for i := 0; b.Loop(); i++ {
		_ = defaultPolicy.Next(i%4, i%4+1, false)
	}
}
