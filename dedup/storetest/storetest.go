package storetest

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kafka-sidecar/kafka-sidecar/dedup"
)

// Lease, TTL and IDTTL are the durations every store under test must be built with (TTL for position marks,
// IDTTL for ID marks). They are short enough for a real-time run to finish in seconds and long enough that a
// busy machine does not expire a lease mid-check; each is at least a second from the others, so expiries are
// told apart.
const (
	Lease = time.Second
	IDTTL = 2 * time.Second
	TTL   = 3 * time.Second
)

// Clock is implemented by a store under test whose clock the suite can move. Advance moves time forward by d
// for every store the factory built for the same test (they share one backend).
type Clock interface {
	Advance(d time.Duration)
}

// expiryBound is how long a real-time poll waits past an expected expiry before failing.
const expiryBound = 5 * time.Second

// earlyTolerance absorbs the millisecond rounding of Redis expiries when checking nothing expired early.
const earlyTolerance = 5 * time.Millisecond

// Run runs the contract suite. newStore builds a store with the given owner, Lease, TTL and IDTTL; stores it
// builds within one (sub)test must share one backend, and may share it across tests too, since every test uses
// its own topic identity and IDs. Stores are closed by the factory's cleanup; the suite closes one itself only
// to test Close, so Close must tolerate being called twice. Subtests run in parallel.
func Run(t *testing.T, newStore func(t *testing.T, owner string) dedup.Store) {
	run := randomToken()
	for _, tc := range []struct {
		name string
		fn   func(*testing.T, *env)
	}{
		{"ClaimCompleteDone", testClaimCompleteDone},
		{"BusyAcrossOwnersByID", testBusyAcrossOwnersByID},
		{"BusyAcrossOwnersByPartition", testBusyAcrossOwnersByPartition},
		{"OwnLeaseReclaim", testOwnLeaseReclaim},
		{"OwnLeaseReclaimExtends", testOwnLeaseReclaimExtends},
		{"ReleaseCompareAndDelete", testReleaseCompareAndDelete},
		{"ReleasePartitions", testReleasePartitions},
		{"LeaseExpiry", testLeaseExpiry},
		{"PartitionLeaseExpiry", testPartitionLeaseExpiry},
		{"MarksOutliveLease", testMarksOutliveLease},
		{"IDMarkTTL", testIDMarkTTL},
		{"PositionMarkTTL", testPositionMarkTTL},
		{"ParkMarksPositionOnly", testParkMarksPositionOnly},
		{"SameIDOtherOffset", testSameIDOtherOffset},
		{"PositionIdentity", testPositionIdentity},
		{"ChunkBoundaries", testChunkBoundaries},
		{"RepeatsInBatch", testRepeatsInBatch},
		{"ResultsInOrder", testResultsInOrder},
		{"BinaryIDs", testBinaryIDs},
		{"EmptyBatch", testEmptyBatch},
		{"ContextCancelled", testContextCancelled},
		{"ConcurrentOwnersExclusive", testConcurrentOwnersExclusive},
		{"PingAndClose", testPingAndClose},
		{"ApplyInOrder", testApplyInOrder},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := &env{t: t, newStore: newStore, prefix: run + "/" + tc.name + "/", virtual: time.Now(),
				offsets: map[string]int64{}}
			_, _ = rand.Read(e.topicID[:])
			e.a = e.store("owner-a")
			e.b = e.store("owner-b")
			tc.fn(t, e)
		})
	}
}

// env is one subtest's view: two owners on one backend, and a topic identity and IDs private to the subtest.
type env struct {
	t        *testing.T
	newStore func(t *testing.T, owner string) dedup.Store
	prefix   string
	topicID  [16]byte
	a, b     dedup.Store
	// virtual is the suite's reading of a Clock store's time: it starts at the real time and moves only by
	// advance, so marks taken with now are comparable in both modes.
	virtual time.Time
	// offsets gives each record name its own offset, in order of first use.
	mu      sync.Mutex
	offsets map[string]int64
}

// now returns the store's current time as the suite sees it: virtual with a Clock, else the real time.
func (e *env) now() time.Time {
	if e.clock() != nil {
		return e.virtual
	}
	return time.Now()
}

func (e *env) store(owner string) dedup.Store {
	e.t.Helper()
	s := e.newStore(e.t, owner)
	if s == nil {
		e.t.Fatal("newStore returned nil")
	}
	return s
}

// offset returns the offset of the record called name in partition 0.
func (e *env) offset(name string) int64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	o, ok := e.offsets[name]
	if !ok {
		o = int64(len(e.offsets))
		e.offsets[name] = o
	}
	return o
}

// rec returns a record without an ID of its own, in partition 0 of the subtest's topic, at an offset of its
// own.
func (e *env) rec(name string) dedup.Mark {
	o := e.offset(name)
	return dedup.Mark{TopicID: e.topicID, Topic: "orders", Partition: 0, Epoch: 3, Offset: o,
		ID: fmt.Sprintf("orders/0/%d", o)}
}

// own returns a record with the ID of its own id (unique to the subtest), at the offset of the record called
// name (so several records may carry one ID).
func (e *env) own(name, id string) dedup.Mark {
	m := e.rec(name)
	m.ID, m.OwnID = e.id(id), true
	return m
}

// msg returns a record with an ID of its own named like the record.
func (e *env) msg(name string) dedup.Mark { return e.own(name, name) }

// id returns an ID unique to this subtest and run.
func (e *env) id(name string) string { return e.prefix + name }

// clock returns the fake clock, or nil when the store runs in real time.
func (e *env) clock() Clock {
	c, _ := e.a.(Clock)
	return c
}

// apply runs ops through s, failing the test on an error, and returns the claim statuses.
func (e *env) apply(s dedup.Store, ops dedup.Ops) []dedup.Status {
	e.t.Helper()
	got, err := s.Apply(context.Background(), ops)
	if err != nil {
		e.t.Fatalf("Apply: %v", err)
	}
	if len(got) != len(ops.Claim) {
		e.t.Fatalf("Apply answered %d statuses for %d claims", len(got), len(ops.Claim))
	}
	return got
}

// claim claims ms through s and checks the answer.
func (e *env) claim(s dedup.Store, ms []dedup.Mark, want ...dedup.Status) {
	e.t.Helper()
	if got := e.apply(s, dedup.Ops{Claim: ms}); !slices.Equal(got, want) {
		e.t.Fatalf("Claim(%s) = %v, want %v", describe(ms), got, want)
	}
}

func (e *env) complete(s dedup.Store, ms ...dedup.Mark) {
	e.t.Helper()
	e.apply(s, dedup.Ops{Complete: ms})
}

func (e *env) park(s dedup.Store, ms ...dedup.Mark) {
	e.t.Helper()
	e.apply(s, dedup.Ops{Park: ms})
}

func (e *env) release(s dedup.Store, ms ...dedup.Mark) {
	e.t.Helper()
	e.apply(s, dedup.Ops{Release: ms})
}

// status claims one record and returns the answer.
func (e *env) status(s dedup.Store, m dedup.Mark) dedup.Status {
	e.t.Helper()
	return e.apply(s, dedup.Ops{Claim: []dedup.Mark{m}})[0]
}

func describe(ms []dedup.Mark) string {
	parts := make([]string, len(ms))
	for i, m := range ms {
		parts[i] = m.PositionString()
		if m.OwnID {
			parts[i] += fmt.Sprintf(" id %q", m.ID)
		}
	}
	return strings.Join(parts, ", ")
}

// expireAfter checks that the claim probe answers stillWant until d has passed since from and then answers
// then. With a Clock it moves time to just before and just after d. In real time it polls until the change
// shows (failing after expiryBound) and checks that it did not show before d had passed since from, the
// latest moment the store can have started counting. The probe must not change state while it answers
// stillWant (Busy and Done claims do not).
func (e *env) expireAfter(from time.Time, d time.Duration, probe func() dedup.Status, stillWant, then dedup.Status) {
	e.t.Helper()
	if e.clock() != nil {
		e.advance(from.Add(d - time.Millisecond).Sub(e.now()))
		if got := probe(); got != stillWant {
			e.t.Fatalf("1ms before expiry: %v, want %v", got, stillWant)
		}
		e.advance(2 * time.Millisecond)
		if got := probe(); got != then {
			e.t.Fatalf("1ms after expiry: %v, want %v", got, then)
		}
		return
	}
	deadline := time.Now().Add(d + expiryBound)
	tick := time.NewTicker(d / 50)
	defer tick.Stop()
	for {
		got := probe()
		if got == then {
			if elapsed := time.Since(from); elapsed < d-earlyTolerance {
				e.t.Fatalf("expired after %v, before the %v it should live", elapsed, d)
			}
			return
		}
		if got != stillWant {
			e.t.Fatalf("before expiry: %v, want %v", got, stillWant)
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("still %v %v after it should have expired (%v)", got, time.Since(from), d)
		}
		<-tick.C
	}
}

// expireBetween is expireAfter for a change that may come any time from lo to hi after from.
func (e *env) expireBetween(from time.Time, lo, hi time.Duration, probe func() dedup.Status, stillWant, then dedup.Status) {
	e.t.Helper()
	if e.clock() != nil {
		e.advance(from.Add(lo - time.Millisecond).Sub(e.now()))
		if got := probe(); got != stillWant {
			e.t.Fatalf("1ms before the earliest expiry: %v, want %v", got, stillWant)
		}
		e.advance(from.Add(hi + time.Millisecond).Sub(e.now()))
		if got := probe(); got != then {
			e.t.Fatalf("1ms after the latest expiry: %v, want %v", got, then)
		}
		return
	}
	deadline := time.Now().Add(hi + expiryBound)
	tick := time.NewTicker(lo / 50)
	defer tick.Stop()
	for {
		got := probe()
		if got == then {
			if elapsed := time.Since(from); elapsed < lo-earlyTolerance {
				e.t.Fatalf("expired after %v, before the %v it should live at least", elapsed, lo)
			}
			return
		}
		if got != stillWant {
			e.t.Fatalf("before expiry: %v, want %v", got, stillWant)
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("still %v %v after it should have expired (at most %v)", got, time.Since(from), hi)
		}
		<-tick.C
	}
}

// advance moves the store's time forward by d: exactly with a Clock, else by waiting d in real time (expiry is
// a function of elapsed time, so there is nothing to synchronise on but the clock itself).
func (e *env) advance(d time.Duration) {
	if d <= 0 {
		return
	}
	if c := e.clock(); c != nil {
		c.Advance(d)
		e.virtual = e.virtual.Add(d)
		return
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	<-timer.C
}

// beforeDeadline reports whether a real-time check that had to happen before deadline did; when the machine
// was too slow it skips the test, since the check then proves nothing either way.
func (e *env) beforeDeadline(deadline time.Time, what string) {
	e.t.Helper()
	if e.clock() == nil && time.Now().After(deadline) {
		e.t.Skipf("inconclusive: the machine was too slow to check %s in time", what)
	}
}

func testClaimCompleteDone(t *testing.T, e *env) {
	for _, x := range []dedup.Mark{e.rec("x"), e.msg("m")} {
		e.claim(e.a, []dedup.Mark{x}, dedup.Claimed)
		e.complete(e.a, x)
		e.claim(e.a, []dedup.Mark{x}, dedup.Done)
		e.claim(e.b, []dedup.Mark{x}, dedup.Done)
	}
	// Complete without a lease (finished elsewhere) is allowed, and Complete is idempotent.
	for _, y := range []dedup.Mark{e.rec("y"), e.msg("n")} {
		e.complete(e.b, y)
		e.complete(e.b, y)
		e.claim(e.a, []dedup.Mark{y}, dedup.Done)
	}
	// Completing over another owner's lease replaces it: the message is done, whoever finished it.
	z := e.msg("z")
	e.claim(e.a, []dedup.Mark{z}, dedup.Claimed)
	e.complete(e.b, z)
	e.claim(e.a, []dedup.Mark{z}, dedup.Done)
}

func testBusyAcrossOwnersByID(t *testing.T, e *env) {
	x := e.msg("x")
	e.claim(e.a, []dedup.Mark{x}, dedup.Claimed)
	e.claim(e.b, []dedup.Mark{x}, dedup.Busy)
	// The same message at another offset is covered by the same lease.
	e.claim(e.b, []dedup.Mark{e.own("x-again", "x")}, dedup.Busy)
	// B releasing A's lease changes nothing.
	e.release(e.b, x)
	e.claim(e.b, []dedup.Mark{x}, dedup.Busy)
	// Once A releases, B may claim, and then A is the one kept out.
	e.release(e.a, x)
	e.claim(e.b, []dedup.Mark{x}, dedup.Claimed)
	e.claim(e.a, []dedup.Mark{x}, dedup.Busy)
}

func testBusyAcrossOwnersByPartition(t *testing.T, e *env) {
	x, y := e.rec("x"), e.rec("y")
	e.claim(e.a, []dedup.Mark{x}, dedup.Claimed)
	// A holds the partition: B is kept out of every record of it without an ID of its own.
	e.claim(e.b, []dedup.Mark{x}, dedup.Busy)
	e.claim(e.b, []dedup.Mark{y}, dedup.Busy)
	// A record already done is done, whoever holds the partition.
	e.complete(e.a, x)
	e.claim(e.b, []dedup.Mark{x, y}, dedup.Done, dedup.Busy)
	// A may claim the partition's other records; another partition is free.
	e.claim(e.a, []dedup.Mark{y}, dedup.Claimed)
	other := e.rec("other")
	other.Partition = 1
	e.claim(e.b, []dedup.Mark{other}, dedup.Claimed)
	// A record with an ID of its own is claimed by its ID, whoever holds the partition.
	e.claim(e.b, []dedup.Mark{e.msg("m")}, dedup.Claimed)
	// Releasing a record keeps the partition's lease: it covers the partition's other records in flight.
	e.release(e.a, y)
	e.claim(e.b, []dedup.Mark{y}, dedup.Busy)
}

func testOwnLeaseReclaim(t *testing.T, e *env) {
	for _, x := range []dedup.Mark{e.msg("x"), e.rec("y")} {
		e.claim(e.a, []dedup.Mark{x}, dedup.Claimed)
		// A new store with the same owner (a restarted member with the same static instance ID) reclaims at once.
		restarted := e.store("owner-a")
		e.claim(restarted, []dedup.Mark{x}, dedup.Claimed)
		e.claim(e.a, []dedup.Mark{x}, dedup.Claimed)
		e.claim(e.b, []dedup.Mark{x}, dedup.Busy)
	}
	// The restarted store's Release is this owner's Release.
	x := e.msg("x")
	restarted := e.store("owner-a")
	e.release(restarted, x)
	e.claim(e.b, []dedup.Mark{x}, dedup.Claimed)
}

func testOwnLeaseReclaimExtends(t *testing.T, e *env) {
	for _, x := range []dedup.Mark{e.msg("x"), e.rec("y")} {
		start := e.now()
		e.claim(e.a, []dedup.Mark{x}, dedup.Claimed)
		e.advance(Lease / 2)
		reclaimed := e.now()
		e.claim(e.a, []dedup.Mark{x}, dedup.Claimed)
		// Past the first lease's end, only the extension keeps B out.
		e.advance(start.Add(Lease + Lease/4).Sub(e.now()))
		got := e.status(e.b, x)
		e.beforeDeadline(reclaimed.Add(Lease-earlyTolerance), "the extended lease")
		if got != dedup.Busy {
			t.Fatalf("B's claim after the first lease ended but within the extension = %v, want busy", got)
		}
		e.expireAfter(reclaimed, Lease, func() dedup.Status { return e.status(e.b, x) }, dedup.Busy, dedup.Claimed)
	}
}

func testReleaseCompareAndDelete(t *testing.T, e *env) {
	mine, theirs, done, unknown := e.msg("mine"), e.msg("theirs"), e.msg("done"), e.msg("unknown")
	e.claim(e.a, []dedup.Mark{mine}, dedup.Claimed)
	e.claim(e.b, []dedup.Mark{theirs}, dedup.Claimed)
	e.claim(e.a, []dedup.Mark{done}, dedup.Claimed)
	e.complete(e.a, done)

	e.release(e.a, mine, theirs, done, unknown)

	e.claim(e.b, []dedup.Mark{mine}, dedup.Claimed)    // released
	e.claim(e.a, []dedup.Mark{theirs}, dedup.Busy)     // another owner's lease survives
	e.claim(e.b, []dedup.Mark{done}, dedup.Done)       // a mark survives
	e.claim(e.b, []dedup.Mark{unknown}, dedup.Claimed) // releasing nothing created nothing
	never := e.msg("never-claimed")
	e.release(e.a, never) // and is not an error
	e.claim(e.b, []dedup.Mark{never}, dedup.Claimed)
}

func testReleasePartitions(t *testing.T, e *env) {
	ctx := context.Background()
	x := e.rec("x")
	other := e.rec("other")
	other.Partition = 1
	e.claim(e.a, []dedup.Mark{x, other}, dedup.Claimed, dedup.Claimed)
	e.claim(e.b, []dedup.Mark{x}, dedup.Busy)
	// Another owner giving the partition up changes nothing.
	if err := e.b.ReleasePartitions(ctx, map[string][]int32{"orders": {0, 1}}); err != nil {
		t.Fatalf("ReleasePartitions: %v", err)
	}
	e.claim(e.b, []dedup.Mark{x}, dedup.Busy)
	// A gives up partition 0 only; unknown topics and partitions are no error.
	if err := e.a.ReleasePartitions(ctx, map[string][]int32{"orders": {0, 7}, "unknown": {0}}); err != nil {
		t.Fatalf("ReleasePartitions: %v", err)
	}
	e.claim(e.b, []dedup.Mark{x}, dedup.Claimed)
	e.claim(e.b, []dedup.Mark{other}, dedup.Busy)
	if err := e.a.ReleasePartitions(ctx, nil); err != nil {
		t.Fatalf("ReleasePartitions(nil): %v", err)
	}
}

func testLeaseExpiry(t *testing.T, e *env) {
	x := e.msg("x")
	start := e.now()
	e.claim(e.a, []dedup.Mark{x}, dedup.Claimed)
	e.claim(e.b, []dedup.Mark{x}, dedup.Busy)
	e.expireAfter(start, Lease, func() dedup.Status { return e.status(e.b, x) }, dedup.Busy, dedup.Claimed)
	// B holds it now; A's expired lease gives A no claim.
	e.claim(e.a, []dedup.Mark{x}, dedup.Busy)
}

func testPartitionLeaseExpiry(t *testing.T, e *env) {
	x, y := e.rec("x"), e.rec("y")
	start := e.now()
	e.claim(e.a, []dedup.Mark{x}, dedup.Claimed)
	e.expireAfter(start, Lease, func() dedup.Status { return e.status(e.b, y) }, dedup.Busy, dedup.Claimed)
	e.claim(e.a, []dedup.Mark{x}, dedup.Busy)
}

func testMarksOutliveLease(t *testing.T, e *env) {
	x, m := e.rec("x"), e.msg("m")
	e.claim(e.a, []dedup.Mark{x, m}, dedup.Claimed, dedup.Claimed)
	completed := e.now()
	e.complete(e.a, x, m)
	e.advance(Lease + Lease/4)
	got := e.apply(e.b, dedup.Ops{Claim: []dedup.Mark{x, m, e.own("m-again", "m")}})
	e.beforeDeadline(completed.Add(IDTTL-earlyTolerance), "the marks within their TTLs")
	if want := []dedup.Status{dedup.Done, dedup.Done, dedup.Done}; !slices.Equal(got, want) {
		t.Fatalf("claims after the lease time but within the TTLs = %v, want %v (marks live their TTLs, not "+
			"the lease)", got, want)
	}
}

// testIDMarkTTL checks that an ID mark lives IDTTL: the message at another offset is done until then and
// deliverable after, while the record's own position stays done.
func testIDMarkTTL(t *testing.T, e *env) {
	x := e.msg("x")
	completed := e.now()
	e.complete(e.a, x)
	again := e.own("x-again", "x")
	e.claim(e.b, []dedup.Mark{again}, dedup.Done)
	e.expireAfter(completed, IDTTL, func() dedup.Status { return e.status(e.b, again) }, dedup.Done, dedup.Claimed)
	got := e.status(e.b, x)
	e.beforeDeadline(completed.Add(TTL-earlyTolerance), "the position mark within its TTL")
	if got != dedup.Done {
		t.Fatalf("the completed record after its ID mark expired = %v, want done (its position mark lives on)", got)
	}
}

// testPositionMarkTTL checks that a position mark lives at least TTL and at most TTL plus its slack
// (dedup.PositionMarkSlack), also when a later mark in its key comes before the key's expiry is extended.
func testPositionMarkTTL(t *testing.T, e *env) {
	x, y := e.rec("x"), e.rec("y")
	e.complete(e.a, x)
	e.advance(dedup.PositionMarkSlack(TTL) / 4)
	completed := e.now()
	e.complete(e.a, y)
	e.claim(e.b, []dedup.Mark{x, y}, dedup.Done, dedup.Done)
	// B's claims of y are done and take no lease; once the mark expires B claims it.
	e.expireBetween(completed, TTL, TTL+dedup.PositionMarkSlack(TTL), func() dedup.Status { return e.status(e.b, y) },
		dedup.Done, dedup.Claimed)
}

// testParkMarksPositionOnly checks Park: the record itself is done, the message stays deliverable (its copy
// carries the ID) and the ID lease is gone at once.
func testParkMarksPositionOnly(t *testing.T, e *env) {
	x, r := e.msg("x"), e.rec("r")
	e.claim(e.a, []dedup.Mark{x, r}, dedup.Claimed, dedup.Claimed)
	e.park(e.a, x, r)
	e.claim(e.b, []dedup.Mark{x}, dedup.Done)
	// The copy, at another position with the same ID, is claimed at once by another owner.
	e.claim(e.b, []dedup.Mark{e.own("x-copy", "x")}, dedup.Claimed)
	e.claim(e.a, []dedup.Mark{r}, dedup.Done)
}

// testSameIDOtherOffset checks that an ID mark covers the message at any offset, and that a record at a
// position that is done is done whatever its ID's state.
func testSameIDOtherOffset(t *testing.T, e *env) {
	first, second := e.own("first", "x"), e.own("second", "x")
	e.claim(e.a, []dedup.Mark{first}, dedup.Claimed)
	e.claim(e.a, []dedup.Mark{second}, dedup.Claimed) // this owner's lease, as a restarted member would see it
	e.complete(e.a, first)
	e.claim(e.b, []dedup.Mark{second}, dedup.Done)
	// A record without an ID of its own is never matched by an ID mark, even one that looks like its ID.
	plain := e.rec("plain")
	e.complete(e.a, dedup.Mark{TopicID: e.topicID, Topic: "elsewhere", Partition: 5, Epoch: 1, Offset: 99,
		ID: plain.ID, OwnID: true})
	e.claim(e.b, []dedup.Mark{plain}, dedup.Claimed)
}

// testPositionIdentity checks that a mark belongs to one position only: another topic identity (a topic
// re-created under the same name), another leader epoch, partition or offset is another record.
func testPositionIdentity(t *testing.T, e *env) {
	done := e.rec("done")
	e.complete(e.a, done)
	recreated := done
	recreated.TopicID[0] ^= 0xff
	newerEpoch := done
	newerEpoch.Epoch++
	otherPartition := done
	otherPartition.Partition = 9
	nextOffset := done
	nextOffset.Offset++
	byName := done
	byName.TopicID = [16]byte{}
	byName.Topic = e.prefix + "t"
	otherName := byName
	otherName.Topic = e.prefix + "u"
	e.claim(e.b, []dedup.Mark{done, recreated, newerEpoch, otherPartition, nextOffset},
		dedup.Done, dedup.Claimed, dedup.Claimed, dedup.Claimed, dedup.Claimed)
	// Without a topic ID the name identifies the topic.
	e.complete(e.a, byName)
	e.claim(e.b, []dedup.Mark{byName, otherName}, dedup.Done, dedup.Claimed)
	// The name does not count when the ID is known.
	renamed := done
	renamed.Topic = "renamed"
	e.claim(e.b, []dedup.Mark{renamed}, dedup.Done)
}

// testChunkBoundaries marks offsets on both sides of the store's chunk boundaries and at the ends of the
// offset range, and checks that exactly those are done.
func testChunkBoundaries(t *testing.T, e *env) {
	base := e.rec("base")
	at := func(o int64) dedup.Mark {
		m := base
		m.Offset = o
		m.ID = fmt.Sprintf("orders/0/%d", o)
		return m
	}
	c := int64(dedup.ChunkOffsets)
	marked := []int64{0, 7, 8, c - 1, c, 2*c + 1, 1 << 40, 1<<62 + 12345}
	unmarked := []int64{1, 6, 9, c - 2, c + 1, 2 * c, 1<<40 - 1, 1<<40 + 1}
	var ms []dedup.Mark
	for _, o := range marked {
		ms = append(ms, at(o))
	}
	e.complete(e.a, ms...)
	var all []dedup.Mark
	var want []dedup.Status
	for _, o := range marked {
		all, want = append(all, at(o)), append(want, dedup.Done)
	}
	for _, o := range unmarked {
		all, want = append(all, at(o)), append(want, dedup.Claimed)
	}
	e.claim(e.a, all, want...)
}

func testRepeatsInBatch(t *testing.T, e *env) {
	x, y, z, d, busy := e.msg("x"), e.msg("y"), e.msg("z"), e.msg("d"), e.msg("busy")
	e.complete(e.a, d)
	e.claim(e.b, []dedup.Mark{busy}, dedup.Claimed)

	e.claim(e.a, []dedup.Mark{x, y, x, x, z, d, d, busy, busy},
		dedup.Claimed, dedup.Claimed, dedup.Busy, dedup.Busy, dedup.Claimed, dedup.Done, dedup.Done,
		dedup.Busy, dedup.Busy)
	// The repeats did not disturb the lease the first occurrence took.
	e.claim(e.b, []dedup.Mark{x}, dedup.Busy)
	// Repeats in Complete and Release are harmless.
	e.complete(e.a, x, x)
	e.claim(e.a, []dedup.Mark{x, x}, dedup.Done, dedup.Done)
	e.release(e.a, y, y)
	e.claim(e.b, []dedup.Mark{y}, dedup.Claimed)

	// One message at two positions in one batch is claimed once; the second waits for it.
	w1, w2 := e.own("w1", "w"), e.own("w2", "w")
	e.claim(e.a, []dedup.Mark{w1, w2}, dedup.Claimed, dedup.Busy)
	// A parked position says nothing about the message's other position.
	e.park(e.a, w1)
	e.claim(e.a, []dedup.Mark{w1, w2}, dedup.Done, dedup.Claimed)

	// Larger batches take another path in some implementations; the answer must be the same.
	var big []dedup.Mark
	var want []dedup.Status
	for i := range 40 {
		big = append(big, e.rec(fmt.Sprintf("big-%d", i%20)))
		if i < 20 {
			want = append(want, dedup.Claimed)
		} else {
			want = append(want, dedup.Busy)
		}
	}
	e.claim(e.a, big, want...)
}

func testResultsInOrder(t *testing.T, e *env) {
	var ms []dedup.Mark
	var want []dedup.Status
	for i := range 60 {
		m := e.msg(fmt.Sprintf("m-%02d", i))
		if i%2 == 1 {
			m = e.rec(fmt.Sprintf("r-%02d", i))
		}
		ms = append(ms, m)
		switch i % 3 {
		case 0:
			want = append(want, dedup.Claimed)
		case 1:
			e.complete(e.b, m)
			want = append(want, dedup.Done)
		case 2:
			if m.OwnID {
				e.claim(e.b, []dedup.Mark{m}, dedup.Claimed)
				want = append(want, dedup.Busy)
			} else {
				e.park(e.b, m)
				want = append(want, dedup.Done)
			}
		}
	}
	e.claim(e.a, ms, want...)
}

func testBinaryIDs(t *testing.T, e *env) {
	raw := []string{
		"\x00", "\x00\x00", "a\x00b", "a", "\xff\xfe\xfd", "line\nbreak\r\n", "with space", "ключ-日本",
		"{hashtag}x", "*?[glob]", strings.Repeat("long", 512), "", "i:", "p:{x:0}:lease", "p:format",
	}
	ms := make([]dedup.Mark, len(raw))
	claimed := make([]dedup.Status, len(raw))
	busy := make([]dedup.Status, len(raw))
	done := make([]dedup.Status, len(raw))
	for i, r := range raw {
		ms[i] = e.own(fmt.Sprintf("b-%d", i), r)
		ms[i].ID = e.prefix + r
		claimed[i], busy[i], done[i] = dedup.Claimed, dedup.Busy, dedup.Done
	}
	// Every ID is distinct: none may alias another (no truncation at NUL, no glob or hash-tag meaning).
	e.claim(e.a, ms, claimed...)
	e.claim(e.b, ms, busy...)
	e.complete(e.a, ms[:len(ms)/2]...)
	e.release(e.a, ms[len(ms)/2:]...)
	// At other positions, only the IDs tell.
	again := make([]dedup.Mark, len(ms))
	for i := range ms {
		again[i] = e.own(fmt.Sprintf("again-%d", i), "")
		again[i].ID = ms[i].ID
	}
	want := append(append([]dedup.Status(nil), done[:len(ms)/2]...), claimed[len(ms)/2:]...)
	e.claim(e.b, again, want...)
	// IDs that look like the store's own keys alias nothing: a record whose ID names a position key is its own.
	trick := e.own("trick", "")
	trick.ID = "p:{" + fmt.Sprintf("%x", e.topicID) + ":0}:lease"
	e.claim(e.a, []dedup.Mark{e.rec("partition-holder")}, dedup.Claimed)
	e.claim(e.b, []dedup.Mark{trick}, dedup.Claimed)
}

func testEmptyBatch(t *testing.T, e *env) {
	ctx := context.Background()
	for _, ms := range [][]dedup.Mark{nil, {}} {
		got, err := e.a.Apply(ctx, dedup.Ops{Claim: ms, Complete: ms, Park: ms, Release: ms})
		if err != nil || len(got) != 0 {
			t.Fatalf("Apply(%#v) = %v, %v; want no statuses and no error", ms, got, err)
		}
	}
}

func testContextCancelled(t *testing.T, e *env) {
	x, r := e.msg("x"), e.rec("r")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for _, tc := range []struct {
		name string
		call func() error
	}{
		{"Claim", func() error { _, err := e.a.Apply(ctx, dedup.Ops{Claim: []dedup.Mark{x, r}}); return err }},
		{"Complete", func() error { _, err := e.a.Apply(ctx, dedup.Ops{Complete: []dedup.Mark{x, r}}); return err }},
		{"Park", func() error { _, err := e.a.Apply(ctx, dedup.Ops{Park: []dedup.Mark{x, r}}); return err }},
		{"Release", func() error { _, err := e.a.Apply(ctx, dedup.Ops{Release: []dedup.Mark{x}}); return err }},
		{"Ping", func() error { return e.a.Ping(ctx) }},
	} {
		err := tc.call()
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("%s with a cancelled context = %v, want context.Canceled", tc.name, err)
		}
		if errors.Is(err, dedup.ErrUnavailable) {
			t.Fatalf("%s with a cancelled context matches ErrUnavailable: shutdown would look like an outage", tc.name)
		}
	}
	// None of the cancelled calls took effect.
	e.claim(e.b, []dedup.Mark{x, r}, dedup.Claimed, dedup.Claimed)
}

// testConcurrentOwnersExclusive has three stores of each of two owners claim the same records at once, by ID
// and by partition, and checks that no record is claimed by both owners.
func testConcurrentOwnersExclusive(t *testing.T, e *env) {
	const (
		records    = 200
		perOwner   = 3
		batch      = 10
		iterations = 2
	)
	mark := func(i int) dedup.Mark {
		if i%2 == 0 {
			return e.msg(fmt.Sprintf("c-%d", i))
		}
		m := e.rec(fmt.Sprintf("c-%d", i))
		m.Partition = int32(i % 7)
		return m
	}
	var mu sync.Mutex
	holder := make(map[string]string)
	var wg sync.WaitGroup
	errs := make(chan error, 2*perOwner)
	start := time.Now()
	for _, owner := range []string{"owner-a", "owner-b"} {
		for g := range perOwner {
			s := e.store(owner)
			wg.Add(1)
			go func() {
				defer wg.Done()
				for it := range iterations {
					for lo := 0; lo < records; lo += batch {
						var chunk []dedup.Mark
						for i := lo; i < lo+batch; i++ {
							// Goroutines walk the records in different orders so their batches interleave.
							chunk = append(chunk, mark((i*(g+1)+it)%records))
						}
						got, err := s.Apply(context.Background(), dedup.Ops{Claim: chunk})
						if err != nil {
							errs <- err
							return
						}
						mu.Lock()
						for i, st := range got {
							if st != dedup.Claimed {
								continue
							}
							key := chunk[i].PositionString()
							if h, ok := holder[key]; ok && h != owner {
								mu.Unlock()
								if e.clock() == nil && time.Since(start) >= Lease-earlyTolerance {
									// The first lease may have expired: the machine was too slow to tell.
									errs <- errInconclusive
									return
								}
								errs <- fmt.Errorf("%s claimed by %s while %s holds its lease", key, owner, h)
								return
							}
							holder[key] = owner
						}
						mu.Unlock()
					}
				}
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if errors.Is(err, errInconclusive) {
			t.Skip("inconclusive: the machine was too slow to finish within one lease")
		}
		t.Fatal(err)
	}
	if len(holder) != records {
		t.Fatalf("%d of %d records were claimed by someone, want all", len(holder), records)
	}
}

func testPingAndClose(t *testing.T, e *env) {
	if err := e.a.Ping(context.Background()); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	s := e.store("owner-c")
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := s.Apply(context.Background(), dedup.Ops{Claim: []dedup.Mark{e.msg("x")}}); !errors.Is(err, dedup.ErrClosed) {
		t.Fatalf("Claim after Close = %v, want ErrClosed", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

// testApplyInOrder checks that one Apply writes marks, then releases, then claims, each with the semantics of
// its own kind, and answers the claims in order.
func testApplyInOrder(t *testing.T, e *env) {
	finished, parked, held, theirs, fresh := e.msg("finished"), e.msg("parked"), e.msg("held"), e.msg("theirs"),
		e.msg("fresh")
	e.claim(e.a, []dedup.Mark{finished, parked, held}, dedup.Claimed, dedup.Claimed, dedup.Claimed)
	e.claim(e.b, []dedup.Mark{theirs}, dedup.Claimed)

	got := e.apply(e.a, dedup.Ops{
		Complete: []dedup.Mark{finished},
		Park:     []dedup.Mark{parked},
		Release:  []dedup.Mark{held, theirs},
		Claim:    []dedup.Mark{fresh, finished, parked, theirs, fresh},
	})
	if want := []dedup.Status{dedup.Claimed, dedup.Done, dedup.Done, dedup.Busy, dedup.Busy}; !slices.Equal(got, want) {
		t.Fatalf("Apply claims = %v, want %v (the marks are written before the claims; another owner's lease "+
			"survives a release)", got, want)
	}
	// held was released by its owner: the other owner may take it now; parked's copy too.
	if st := e.status(e.b, held); st != dedup.Claimed {
		t.Fatalf("claim by another owner after Apply released the lease = %v, want claimed", st)
	}
	if st := e.status(e.b, e.own("parked-copy", "parked")); st != dedup.Claimed {
		t.Fatalf("claim of a parked record's copy = %v, want claimed", st)
	}
	if st := e.status(e.b, finished); st != dedup.Done {
		t.Fatalf("claim after Apply completed the record = %v, want done", st)
	}
	only := e.apply(e.a, dedup.Ops{Complete: []dedup.Mark{held}})
	if len(only) != 0 {
		t.Fatalf("Apply(marks only) = %v; want no statuses", only)
	}
}

var errInconclusive = errors.New("inconclusive")

func randomToken() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%x", b)
}
