package dedup

import (
	"bytes"
	"cmp"
	"crypto/rand"
	"encoding/hex"
	"slices"
	"strings"
	"time"
)

// DefaultLease is the lease used when options leave it zero: the default app timeout (30s) plus the default
// margin (10s), so a lease outlives the delivery it guards.
const DefaultLease = 40 * time.Second

// DefaultTTL is the position-mark lifetime used when options leave it zero; it matches SIDECAR_DEDUP_TTL's
// default.
const DefaultTTL = 168 * time.Hour

// DefaultIDTTL is the ID-mark lifetime used when options leave it zero; it matches SIDECAR_DEDUP_ID_TTL's
// default.
const DefaultIDTTL = 24 * time.Hour

// leasePrefix starts the value of a lease, before the owner's name.
const leasePrefix = "L"

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

// repeats finds claims that repeat an earlier one in the same batch: the same position, or the same message
// ID between records with IDs of their own. It returns the indexes of first occurrences, which are the ones a
// store looks up, and for each later occurrence the pair {index, index of its first occurrence} (nil when there
// are none, the common case).
//
// A repeat gets what a second sidecar asking right after the first occurrence would get: Busy when the first
// was claimed (the message must not be delivered twice at once), and otherwise the first's status (Done or
// Busy) when it is the same record. A record with the same ID at another position is looked up as well (see
// sameIDs): a done position says nothing about another position.
func repeats(marks []Mark) (firsts []int, later [][2]int) {
	firsts = make([]int, 0, len(marks))
	if len(marks) <= 16 {
		// Quadratic but allocation-free for the small batches a lightly loaded sidecar makes.
	next:
		for i := range marks {
			for _, j := range firsts {
				if samePosition(&marks[i], &marks[j]) {
					later = append(later, [2]int{i, j})
					continue next
				}
			}
			firsts = append(firsts, i)
		}
		return firsts, later
	}
	// Larger batches: sorted by position (then index), so the occurrences of a position are neighbours and the
	// first of them comes first. Cheaper than a map of positions, which would hash every topic ID and name.
	order := make([]int, len(marks))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int {
		if c := comparePositions(&marks[a], &marks[b]); c != 0 {
			return c
		}
		return cmp.Compare(a, b)
	})
	repeated := false
	for k := 1; k < len(order); k++ {
		if samePosition(&marks[order[k]], &marks[order[k-1]]) {
			repeated = true
			break
		}
	}
	if !repeated {
		for i := range marks {
			firsts = append(firsts, i)
		}
		return firsts, nil
	}
	isLater := make([]bool, len(marks))
	first := order[0]
	for k := 1; k < len(order); k++ {
		i := order[k]
		if samePosition(&marks[i], &marks[first]) {
			later = append(later, [2]int{i, first})
			isLater[i] = true
			continue
		}
		first = i
	}
	for i := range marks {
		if !isLater[i] {
			firsts = append(firsts, i)
		}
	}
	slices.SortFunc(later, func(a, b [2]int) int { return cmp.Compare(a[0], b[0]) })
	return firsts, later
}

// comparePositions orders marks by position: offset, partition, epoch, topic ID, and the topic's name when the
// ID is unknown.
func comparePositions(a, b *Mark) int {
	if c := cmp.Compare(a.Offset, b.Offset); c != 0 {
		return c
	}
	if c := cmp.Compare(a.Partition, b.Partition); c != 0 {
		return c
	}
	if c := cmp.Compare(a.Epoch, b.Epoch); c != 0 {
		return c
	}
	if c := bytes.Compare(a.TopicID[:], b.TopicID[:]); c != 0 {
		return c
	}
	if a.TopicID == ([16]byte{}) {
		return strings.Compare(a.Topic, b.Topic)
	}
	return 0
}

func samePosition(a, b *Mark) bool {
	return a.Offset == b.Offset && a.Partition == b.Partition && a.Epoch == b.Epoch && a.TopicID == b.TopicID &&
		(a.TopicID != [16]byte{} || a.Topic == b.Topic)
}

// fillRepeats sets each repeat's status from its first occurrence's, as documented on repeats, and then keeps
// one message from being claimed twice in a batch through records at different positions (see sameIDs).
func fillRepeats(marks []Mark, statuses []Status, later [][2]int) {
	for _, p := range later {
		st := statuses[p[1]]
		if st == Claimed {
			st = Busy
		}
		statuses[p[0]] = st
	}
	sameIDs(marks, statuses)
}

// sameIDs turns Claimed into Busy for a record with an ID of its own whose ID an earlier record of the batch
// claimed: the store answered Claimed because the lease is this owner's, but the message is being delivered
// already.
func sameIDs(marks []Mark, statuses []Status) {
	if len(marks) < 2 {
		return
	}
	var claimed map[string]struct{}
	for i := range marks {
		if !marks[i].OwnID || statuses[i] != Claimed {
			continue
		}
		if _, ok := claimed[marks[i].ID]; ok {
			statuses[i] = Busy
			continue
		}
		if claimed == nil {
			claimed = make(map[string]struct{})
		}
		claimed[marks[i].ID] = struct{}{}
	}
}
