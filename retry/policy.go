package retry

import (
	"strconv"
	"time"
)

// Action is what to do with a record after a failed attempt.
type Action uint8

const (
	// InPlace means attempt the record again where it is, after Decision.Delay.
	InPlace Action = iota
	// ToTier means copy the record to retry tier Decision.Tier; it is offered again after Decision.Delay.
	ToTier
	// DeadLetter means copy the record to the dead-letter topic.
	DeadLetter
)

// String names the action for logs and metrics.
func (a Action) String() string {
	switch a {
	case InPlace:
		return "in_place"
	case ToTier:
		return "to_tier"
	case DeadLetter:
		return "dead_letter"
	}
	return "action(" + strconv.Itoa(int(a)) + ")"
}

// Decision is the outcome of Policy.Next.
type Decision struct {
	// Action says where the record goes.
	Action Action
	// Tier is the retry tier (1-based) to copy to for ToTier; for InPlace and DeadLetter it is the tier the
	// record is on (0 for the source topic).
	Tier int
	// Delay is how long the record waits before its next attempt: for ToTier the tier's delay, for InPlace
	// the backoff ceiling without jitter (see Policy.BackoffFor), for DeadLetter zero.
	Delay time.Duration
}

// Policy is the retry configuration: a few attempts in place on every tier, then one retry topic per delay,
// then the dead-letter topic. The zero value sends every failure straight to the dead-letter topic after one
// attempt. A Policy is a value; it is safe for concurrent use.
type Policy struct {
	// AttemptsInPlace is the number of attempts on each tier (the source topic and every retry topic)
	// before the record moves on. Values below 1 count as 1: every tier gets at least one attempt.
	AttemptsInPlace int
	// Delays holds one delay per retry tier, tier 1 first. Empty means no retry tiers.
	Delays []time.Duration
	// Backoff is the pause after the first failed attempt on a tier; it doubles with every further one.
	Backoff time.Duration
	// BackoffMax caps the pause between attempts in place. A value below Backoff counts as Backoff.
	BackoffMax time.Duration
}

// Tiers is the number of retry tiers.
func (p Policy) Tiers() int { return len(p.Delays) }

// Next decides where a record goes after a failed attempt. tier is the tier the record is on (0 for the
// source topic, n for retry tier n), attemptsOnTier the attempts made on that tier including the one that
// just failed, and permanent whether the failure can never succeed (the record then goes to the dead-letter
// topic at once).
//
// While attemptsOnTier is below AttemptsInPlace the record stays where it is. Then it moves to tier+1 with
// that tier's delay, and from the last tier to the dead-letter topic. A tier outside the policy (a negative
// one counts as the source topic; one past the last delay means the policy shrank since the record was
// copied) still gets its attempts in place and then goes to the dead-letter topic.
func (p Policy) Next(tier, attemptsOnTier int, permanent bool) Decision {
	if tier < 0 {
		tier = 0
	}
	if permanent {
		return Decision{Action: DeadLetter, Tier: tier}
	}
	if attemptsOnTier < max(p.AttemptsInPlace, 1) {
		return Decision{Action: InPlace, Tier: tier, Delay: p.ceiling(attemptsOnTier)}
	}
	if tier < len(p.Delays) {
		return Decision{Action: ToTier, Tier: tier + 1, Delay: max(p.Delays[tier], 0)}
	}
	return Decision{Action: DeadLetter, Tier: tier}
}

// BackoffFor is the pause before the next attempt in place after attemptOnTier failed attempts on a tier:
// Backoff doubled for every attempt after the first, capped at BackoffMax, with equal jitter — a uniform
// pick from the upper half, [ceiling/2, ceiling). rnd is a random number in [0,1) (rand.Float64()), given
// by the caller so the result is testable; values outside that range are clamped.
//
// Equal jitter rather than full jitter keeps a floor under the pause: an app that failed gets at least half
// the intended breathing room, while sidecars that failed together still spread their next attempts.
func (p Policy) BackoffFor(attemptOnTier int, rnd float64) time.Duration {
	c := p.ceiling(attemptOnTier)
	if c <= 0 {
		return 0
	}
	switch {
	case !(rnd >= 0): // also catches NaN
		rnd = 0
	case rnd >= 1:
		rnd = 1
	}
	half := c / 2
	d := half + time.Duration(rnd*float64(c-half))
	if d >= c && c > half { // rnd clamped to 1, or float rounding: stay below the ceiling
		d = c - 1
	}
	return d
}

// ceiling is the un-jittered pause after attempt failed attempts: Backoff·2^(attempt-1), capped.
func (p Policy) ceiling(attempt int) time.Duration {
	if p.Backoff <= 0 {
		return 0
	}
	limit := max(p.BackoffMax, p.Backoff)
	d := p.Backoff
	// Doubling in a loop rather than shifting: a large attempt count cannot overflow, and the loop stops
	// as soon as the cap is reached (a few dozen steps at most).
	for i := 1; i < attempt && d < limit; i++ {
		if d > limit/2 {
			d = limit
			break
		}
		d *= 2
	}
	return min(d, limit)
}
