package retry_test

import (
	"fmt"
	"time"

	"github.com/kafka-sidecar/kafka-sidecar/retry"
)

func ExamplePolicy_Next() {
	p := retry.Policy{
		AttemptsInPlace: 2,
		Delays:          []time.Duration{10 * time.Second, time.Minute},
		Backoff:         200 * time.Millisecond,
		BackoffMax:      5 * time.Second,
	}
	tier, attempts := 0, 0
	for {
		attempts++
		d := p.Next(tier, attempts, false)
		fmt.Printf("tier %d attempt %d: %s %d %v\n", tier, attempts, d.Action, d.Tier, d.Delay)
		if d.Action == retry.DeadLetter {
			break
		}
		if d.Action == retry.ToTier {
			tier, attempts = d.Tier, 0
		}
	}
	fmt.Println("permanent:", p.Next(0, 1, true).Action)
	// Output:
	// tier 0 attempt 1: in_place 0 200ms
	// tier 0 attempt 2: to_tier 1 10s
	// tier 1 attempt 1: in_place 1 200ms
	// tier 1 attempt 2: to_tier 2 1m0s
	// tier 2 attempt 1: in_place 2 200ms
	// tier 2 attempt 2: dead_letter 2 0s
	// permanent: dead_letter
}
