package dedup

import (
	"crypto/rand"
	"encoding/hex"
	"time"
)

// DefaultLease is the lease used when options leave it zero: the default app timeout (30s) plus the default
// margin (10s), so a lease outlives the delivery it guards.
const DefaultLease = 40 * time.Second

// DefaultTTL is the done-mark lifetime used when options leave it zero; it matches SIDECAR_DEDUP_TTL's default.
const DefaultTTL = 168 * time.Hour

// Values stored per ID. They are kept to one byte plus the owner so a done key costs as little memory as Redis
// allows.
const (
	doneValue   = "D"
	leasePrefix = "L"
)

// orDefault returns d, or def when d is not positive.
func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// ownerOrRandom returns owner, or a random one when it is empty. A random owner cannot be reclaimed after a
// restart, so its leases simply expire.
func ownerOrRandom(owner string) string {
	if owner != "" {
		return owner
	}
	var b [12]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms
	return "random-" + hex.EncodeToString(b[:])
}

// repeats finds IDs that occur more than once in a batch. It returns the indexes of first occurrences, which
// are the ones a store looks up, and for each later occurrence the pair {index, index of its first occurrence}
// (nil when there are none, the common case).
//
// Within one batch a repeat gets what a second sidecar asking right after the first occurrence would get: Busy
// when the first claimed the ID (the message must not be delivered twice at once; the repeat is offered again
// and then finds the done mark), and otherwise the first occurrence's status (Done or Busy).
func repeats(ids []string) (firsts []int, later [][2]int) {
	firsts = make([]int, 0, len(ids))
	if len(ids) <= 16 {
		// Quadratic but allocation-free for the small batches a lightly loaded sidecar makes.
	next:
		for i, id := range ids {
			for _, j := range firsts {
				if ids[j] == id {
					later = append(later, [2]int{i, j})
					continue next
				}
			}
			firsts = append(firsts, i)
		}
		return firsts, later
	}
	seen := make(map[string]int, len(ids))
	for i, id := range ids {
		if j, ok := seen[id]; ok {
			later = append(later, [2]int{i, j})
			continue
		}
		seen[id] = i
		firsts = append(firsts, i)
	}
	return firsts, later
}

// fillRepeats sets each repeat's status from its first occurrence's, as documented on repeats.
func fillRepeats(statuses []Status, later [][2]int) {
	for _, p := range later {
		st := statuses[p[1]]
		if st == Claimed {
			st = Busy
		}
		statuses[p[0]] = st
	}
}
