package storetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kafka-sidecar/kafka-sidecar/dedup"
)

// Lease and TTL are the durations every store under test must be built with. They are short enough for a
// real-time run to finish in seconds and long enough that a busy machine does not expire a lease mid-check.
const (
	Lease = time.Second
	TTL   = 2 * time.Second
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

// Run runs the contract suite. newStore builds a store with the given owner, Lease and TTL; stores it builds
// within one (sub)test must share one backend, and may share it across tests too, since every test uses its
// own IDs. Stores are closed by the factory's cleanup; the suite closes one itself only to test Close, so Close
// must tolerate being called twice. Subtests run in parallel.
func Run(t *testing.T, newStore func(t *testing.T, owner string) dedup.Store) {
	run := randomToken()
	for _, tc := range []struct {
		name string
		fn   func(*testing.T, *env)
	}{
		{"ClaimCompleteDone", testClaimCompleteDone},
		{"BusyAcrossOwners", testBusyAcrossOwners},
		{"OwnLeaseReclaim", testOwnLeaseReclaim},
		{"OwnLeaseReclaimExtends", testOwnLeaseReclaimExtends},
		{"ReleaseCompareAndDelete", testReleaseCompareAndDelete},
		{"LeaseExpiry", testLeaseExpiry},
		{"DoneMarkOutlivesLease", testDoneMarkOutlivesLease},
		{"DoneMarkTTL", testDoneMarkTTL},
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
			e := &env{t: t, newStore: newStore, prefix: run + "/" + tc.name + "/", virtual: time.Now()}
			e.a = e.store("owner-a")
			e.b = e.store("owner-b")
			tc.fn(t, e)
		})
	}
}

// env is one subtest's view: two owners on one backend and IDs private to the subtest.
type env struct {
	t        *testing.T
	newStore func(t *testing.T, owner string) dedup.Store
	prefix   string
	a, b     dedup.Store
	// virtual is the suite's reading of a Clock store's time: it starts at the real time and moves only by
	// advance, so marks taken with now are comparable in both modes.
	virtual time.Time
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

// id returns an ID unique to this subtest and run.
func (e *env) id(name string) string { return e.prefix + name }

// clock returns the fake clock, or nil when the store runs in real time.
func (e *env) clock() Clock {
	c, _ := e.a.(Clock)
	return c
}

// claim claims ids through s and checks the answer.
func (e *env) claim(s dedup.Store, ids []string, want ...dedup.Status) {
	e.t.Helper()
	got, err := s.Claim(context.Background(), ids)
	if err != nil {
		e.t.Fatalf("Claim(%q): %v", ids, err)
	}
	if !equal(got, want) {
		e.t.Fatalf("Claim(%q) = %v, want %v", ids, got, want)
	}
}

func (e *env) complete(s dedup.Store, ids ...string) {
	e.t.Helper()
	if err := s.Complete(context.Background(), ids); err != nil {
		e.t.Fatalf("Complete(%q): %v", ids, err)
	}
}

func (e *env) release(s dedup.Store, ids ...string) {
	e.t.Helper()
	if err := s.Release(context.Background(), ids); err != nil {
		e.t.Fatalf("Release(%q): %v", ids, err)
	}
}

// status claims one ID and returns the answer.
func (e *env) status(s dedup.Store, id string) dedup.Status {
	e.t.Helper()
	got, err := s.Claim(context.Background(), []string{id})
	if err != nil {
		e.t.Fatalf("Claim(%q): %v", id, err)
	}
	if len(got) != 1 {
		e.t.Fatalf("Claim(%q) returned %d statuses, want 1", id, len(got))
	}
	return got[0]
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
	x := e.id("x")
	e.claim(e.a, []string{x}, dedup.Claimed)
	e.complete(e.a, x)
	e.claim(e.a, []string{x}, dedup.Done)
	e.claim(e.b, []string{x}, dedup.Done)
	// Complete without a lease (the copy went to a retry topic, say) is allowed, and Complete is idempotent.
	y := e.id("y")
	e.complete(e.b, y)
	e.complete(e.b, y)
	e.claim(e.a, []string{y}, dedup.Done)
	// Completing over another owner's lease replaces it: the message is done, whoever finished it.
	z := e.id("z")
	e.claim(e.a, []string{z}, dedup.Claimed)
	e.complete(e.b, z)
	e.claim(e.a, []string{z}, dedup.Done)
}

func testBusyAcrossOwners(t *testing.T, e *env) {
	x := e.id("x")
	e.claim(e.a, []string{x}, dedup.Claimed)
	e.claim(e.b, []string{x}, dedup.Busy)
	e.claim(e.b, []string{x}, dedup.Busy)
	// B releasing A's lease changes nothing.
	e.release(e.b, x)
	e.claim(e.b, []string{x}, dedup.Busy)
	// Once A releases, B may claim, and then A is the one kept out.
	e.release(e.a, x)
	e.claim(e.b, []string{x}, dedup.Claimed)
	e.claim(e.a, []string{x}, dedup.Busy)
}

func testOwnLeaseReclaim(t *testing.T, e *env) {
	x := e.id("x")
	e.claim(e.a, []string{x}, dedup.Claimed)
	// A new store with the same owner (a restarted member with the same static instance ID) reclaims at once.
	restarted := e.store("owner-a")
	e.claim(restarted, []string{x}, dedup.Claimed)
	e.claim(e.a, []string{x}, dedup.Claimed)
	e.claim(e.b, []string{x}, dedup.Busy)
	// The restarted store's Release is this owner's Release.
	e.release(restarted, x)
	e.claim(e.b, []string{x}, dedup.Claimed)
}

func testOwnLeaseReclaimExtends(t *testing.T, e *env) {
	x := e.id("x")
	start := e.now()
	e.claim(e.a, []string{x}, dedup.Claimed)
	e.advance(Lease / 2)
	reclaimed := e.now()
	e.claim(e.a, []string{x}, dedup.Claimed)
	// Past the first lease's end, only the extension keeps B out.
	e.advance(start.Add(Lease + Lease/4).Sub(e.now()))
	got := e.status(e.b, x)
	e.beforeDeadline(reclaimed.Add(Lease-earlyTolerance), "the extended lease")
	if got != dedup.Busy {
		t.Fatalf("B's claim after the first lease ended but within the extension = %v, want busy", got)
	}
	e.expireAfter(reclaimed, Lease, func() dedup.Status { return e.status(e.b, x) }, dedup.Busy, dedup.Claimed)
}

func testReleaseCompareAndDelete(t *testing.T, e *env) {
	mine, theirs, done, unknown := e.id("mine"), e.id("theirs"), e.id("done"), e.id("unknown")
	e.claim(e.a, []string{mine}, dedup.Claimed)
	e.claim(e.b, []string{theirs}, dedup.Claimed)
	e.claim(e.a, []string{done}, dedup.Claimed)
	e.complete(e.a, done)

	e.release(e.a, mine, theirs, done, unknown)

	e.claim(e.b, []string{mine}, dedup.Claimed)    // released
	e.claim(e.a, []string{theirs}, dedup.Busy)     // another owner's lease survives
	e.claim(e.b, []string{done}, dedup.Done)       // a done mark survives
	e.claim(e.b, []string{unknown}, dedup.Claimed) // releasing nothing created nothing
	e.release(e.a, e.id("never-claimed"))          // and is not an error
	e.claim(e.b, []string{e.id("never-claimed")}, dedup.Claimed)
}

func testLeaseExpiry(t *testing.T, e *env) {
	x := e.id("x")
	start := e.now()
	e.claim(e.a, []string{x}, dedup.Claimed)
	e.claim(e.b, []string{x}, dedup.Busy)
	e.expireAfter(start, Lease, func() dedup.Status { return e.status(e.b, x) }, dedup.Busy, dedup.Claimed)
	// B holds it now; A's expired lease gives A no claim.
	e.claim(e.a, []string{x}, dedup.Busy)
}

func testDoneMarkOutlivesLease(t *testing.T, e *env) {
	x := e.id("x")
	e.claim(e.a, []string{x}, dedup.Claimed)
	completed := e.now()
	e.complete(e.a, x)
	e.advance(Lease + Lease/4)
	got := e.status(e.b, x)
	e.beforeDeadline(completed.Add(TTL-earlyTolerance), "the done mark within its TTL")
	if got != dedup.Done {
		t.Fatalf("claim after the lease time but within the TTL = %v, want done (the mark lives TTL, not Lease)", got)
	}
}

func testDoneMarkTTL(t *testing.T, e *env) {
	x := e.id("x")
	completed := e.now()
	e.complete(e.a, x)
	e.claim(e.b, []string{x}, dedup.Done)
	e.expireAfter(completed, TTL, func() dedup.Status { return e.status(e.b, x) }, dedup.Done, dedup.Claimed)
}

func testRepeatsInBatch(t *testing.T, e *env) {
	x, y, z, d, busy := e.id("x"), e.id("y"), e.id("z"), e.id("d"), e.id("busy")
	e.complete(e.a, d)
	e.claim(e.b, []string{busy}, dedup.Claimed)

	e.claim(e.a, []string{x, y, x, x, z, d, d, busy, busy},
		dedup.Claimed, dedup.Claimed, dedup.Busy, dedup.Busy, dedup.Claimed, dedup.Done, dedup.Done,
		dedup.Busy, dedup.Busy)
	// The repeats did not disturb the lease the first occurrence took.
	e.claim(e.b, []string{x}, dedup.Busy)
	// Repeats in Complete and Release are harmless.
	e.complete(e.a, x, x)
	e.claim(e.a, []string{x, x}, dedup.Done, dedup.Done)
	e.release(e.a, y, y)
	e.claim(e.b, []string{y}, dedup.Claimed)

	// Larger batches take another path in some implementations; the answer must be the same.
	var big []string
	var want []dedup.Status
	for i := range 40 {
		id := e.id(fmt.Sprintf("big-%d", i%20))
		big = append(big, id)
		if i < 20 {
			want = append(want, dedup.Claimed)
		} else {
			want = append(want, dedup.Busy)
		}
	}
	e.claim(e.a, big, want...)
}

func testResultsInOrder(t *testing.T, e *env) {
	var ids []string
	var want []dedup.Status
	for i := range 60 {
		id := e.id(fmt.Sprintf("m-%02d", i))
		ids = append(ids, id)
		switch i % 3 {
		case 0:
			want = append(want, dedup.Claimed)
		case 1:
			e.complete(e.b, id)
			want = append(want, dedup.Done)
		case 2:
			e.claim(e.b, []string{id}, dedup.Claimed)
			want = append(want, dedup.Busy)
		}
	}
	e.claim(e.a, ids, want...)
}

func testBinaryIDs(t *testing.T, e *env) {
	raw := []string{
		"\x00", "\x00\x00", "a\x00b", "a", "\xff\xfe\xfd", "line\nbreak\r\n", "with space", "ключ-日本",
		"{hashtag}x", "*?[glob]", strings.Repeat("long", 512), "",
	}
	ids := make([]string, len(raw))
	claimed := make([]dedup.Status, len(raw))
	busy := make([]dedup.Status, len(raw))
	done := make([]dedup.Status, len(raw))
	for i, r := range raw {
		ids[i] = e.prefix + r
		claimed[i], busy[i], done[i] = dedup.Claimed, dedup.Busy, dedup.Done
	}
	// Every ID is distinct: none may alias another (no truncation at NUL, no glob or hash-tag meaning).
	e.claim(e.a, ids, claimed...)
	e.claim(e.b, ids, busy...)
	e.complete(e.a, ids[:len(ids)/2]...)
	e.release(e.a, ids[len(ids)/2:]...)
	want := append(append([]dedup.Status(nil), done[:len(ids)/2]...), claimed[len(ids)/2:]...)
	e.claim(e.b, ids, want...)
}

func testEmptyBatch(t *testing.T, e *env) {
	ctx := context.Background()
	for _, ids := range [][]string{nil, {}} {
		got, err := e.a.Claim(ctx, ids)
		if err != nil || len(got) != 0 {
			t.Fatalf("Claim(%#v) = %v, %v; want no statuses and no error", ids, got, err)
		}
		if err := e.a.Complete(ctx, ids); err != nil {
			t.Fatalf("Complete(%#v): %v", ids, err)
		}
		if err := e.a.Release(ctx, ids); err != nil {
			t.Fatalf("Release(%#v): %v", ids, err)
		}
	}
}

func testContextCancelled(t *testing.T, e *env) {
	x := e.id("x")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for _, tc := range []struct {
		name string
		call func() error
	}{
		{"Claim", func() error { _, err := e.a.Claim(ctx, []string{x}); return err }},
		{"Complete", func() error { return e.a.Complete(ctx, []string{x}) }},
		{"Release", func() error { return e.a.Release(ctx, []string{x}) }},
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
	e.claim(e.b, []string{x}, dedup.Claimed)
}

func testConcurrentOwnersExclusive(t *testing.T, e *env) {
	const (
		ids        = 200
		perOwner   = 3
		batch      = 10
		iterations = 2
	)
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
					for lo := 0; lo < ids; lo += batch {
						var chunk []string
						for i := lo; i < lo+batch; i++ {
							// Goroutines walk the IDs in different orders so their batches interleave.
							chunk = append(chunk, e.id(fmt.Sprintf("c-%d", (i*(g+1)+it)%ids)))
						}
						got, err := s.Claim(context.Background(), chunk)
						if err != nil {
							errs <- err
							return
						}
						mu.Lock()
						for i, st := range got {
							if st != dedup.Claimed {
								continue
							}
							if h, ok := holder[chunk[i]]; ok && h != owner {
								mu.Unlock()
								if e.clock() == nil && time.Since(start) >= Lease-earlyTolerance {
									// The first lease may have expired: the machine was too slow to tell.
									errs <- errInconclusive
									return
								}
								errs <- fmt.Errorf("%q claimed by %s while %s holds its lease", chunk[i], owner, h)
								return
							}
							holder[chunk[i]] = owner
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
	if len(holder) != ids {
		t.Fatalf("%d of %d IDs were claimed by someone, want all", len(holder), ids)
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
	if _, err := s.Claim(context.Background(), []string{e.id("x")}); !errors.Is(err, dedup.ErrClosed) {
		t.Fatalf("Claim after Close = %v, want ErrClosed", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

var errInconclusive = errors.New("inconclusive")

func equal(a, b []dedup.Status) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func randomToken() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// testApplyInOrder checks that one Apply writes done marks, then releases, then claims, each with the semantics
// of its own method, and answers the claims in order.
func testApplyInOrder(t *testing.T, e *env) {
	finished, held, theirs, fresh := e.id("finished"), e.id("held"), e.id("theirs"), e.id("fresh")
	e.claim(e.a, []string{finished, held}, dedup.Claimed, dedup.Claimed)
	e.claim(e.b, []string{theirs}, dedup.Claimed)

	got, err := e.a.Apply(context.Background(), dedup.Ops{
		Complete: []string{finished},
		Release:  []string{held, theirs},
		Claim:    []string{fresh, finished, theirs, fresh},
	})
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	if want := []dedup.Status{dedup.Claimed, dedup.Done, dedup.Busy, dedup.Busy}; !equal(got, want) {
		t.Fatalf("Apply claims = %v, want %v (the done mark is written before the claims; another owner's lease "+
			"survives a release)", got, want)
	}
	// held was released by its owner: the other owner may take it now.
	if st := e.status(e.b, held); st != dedup.Claimed {
		t.Fatalf("claim by another owner after Apply released the lease = %v, want claimed", st)
	}
	if st := e.status(e.b, finished); st != dedup.Done {
		t.Fatalf("claim after Apply completed the ID = %v, want done", st)
	}

	empty, err := e.a.Apply(context.Background(), dedup.Ops{})
	if err != nil || len(empty) != 0 {
		t.Fatalf("Apply(no work) = %v, %v; want no statuses and no error", empty, err)
	}
	only, err := e.a.Apply(context.Background(), dedup.Ops{Complete: []string{held}})
	if err != nil || len(only) != 0 {
		t.Fatalf("Apply(done marks only) = %v, %v; want no statuses and no error", only, err)
	}
}
