package dedup_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/kafka-sidecar/kafka-sidecar/dedup"
	"github.com/kafka-sidecar/kafka-sidecar/test/redistest"
)

// The property test drives a store the way a consumer group does, with random interleavings of claims,
// deliveries, parks, releases, crashes, restarts, rebalances and offset resets, and checks after every step:
//
//   - no done record is delivered again: a record whose position was marked (completed or parked) is never
//     handed to the app, nor is a message whose ID was marked done (records with IDs of their own);
//   - no record that is not done is skipped: a claim answers Done only for a marked position or ID;
//   - no record is delivered by two members at once: a claim is never Claimed while another live member has
//     the record (or its message) in flight;
//   - in the end every record is done: after the faults stop, every partition drains.
//
// The whole run stays within the mark lifetimes, where the store promises to remember.

// propLog is the simulated topic: records of two partitions, some with IDs of their own (a few messages at two
// offsets, as a producer's retry writes them), the rest identified by position.
type propLog struct {
	recs [][]dedup.Mark // per partition, by offset
}

func newPropLog(rng *rand.Rand) *propLog {
	l := &propLog{recs: make([][]dedup.Mark, 2)}
	msg := 0
	for p := range l.recs {
		for o := range 40 + rng.IntN(40) {
			m := dedup.Mark{TopicID: [16]byte{7}, Topic: "t", Partition: int32(p), Epoch: 4, Offset: int64(o),
				ID: fmt.Sprintf("t/%d/%d", p, o)}
			switch r := rng.IntN(10); {
			case r < 4:
				m.ID, m.OwnID = fmt.Sprintf("m-%d", msg), true
				msg++
			case r == 4 && msg > 0:
				m.ID, m.OwnID = fmt.Sprintf("m-%d", rng.IntN(msg)), true // the same message again
			}
			l.recs[p] = append(l.recs[p], m)
		}
	}
	return l
}

// propMember is one sidecar: an owner's store, the partitions it consumes and where it is in each.
type propMember struct {
	owner    string
	store    dedup.Store
	alive    bool
	next     map[int]int           // partition -> next offset to claim
	inFlight map[[2]int]dedup.Mark // {partition, offset} -> claimed record
}

// propWorld is the state of one run.
type propWorld struct {
	t         *testing.T
	rng       *rand.Rand
	log       *propLog
	newStore  func(owner string) dedup.Store
	advance   func(d time.Duration)
	lease     time.Duration
	members   []*propMember
	assign    []int // partition -> member index
	committed []int // partition -> committed offset
	// finished per partition and offset: done as far as the group is concerned (delivered and marked,
	// parked and marked, or skipped as done).
	finished [][]bool
	// What the store must remember: marked positions and message IDs marked done.
	donePos map[[2]int]bool
	doneID  map[string]bool
	// deliveries counts the app's receptions per position, and per message ID for records with IDs of
	// their own.
	deliveredPos map[[2]int]int
	deliveredID  map[string]int
	steps        int
}

func runProperty(t *testing.T, seed uint64, steps int, newStore func(owner string) dedup.Store,
	advance func(time.Duration), lease time.Duration) {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	w := &propWorld{t: t, rng: rng, log: newPropLog(rng), newStore: newStore, advance: advance, lease: lease,
		donePos: map[[2]int]bool{}, doneID: map[string]bool{}, deliveredPos: map[[2]int]int{},
		deliveredID: map[string]int{}}
	for i := range 2 {
		w.members = append(w.members, w.startMember(fmt.Sprintf("member-%d", i)))
	}
	w.assign = []int{0, 1}
	w.committed = []int{0, 0}
	w.finished = make([][]bool, len(w.log.recs))
	for p := range w.log.recs {
		w.finished[p] = make([]bool, len(w.log.recs[p]))
	}
	for w.steps = 0; w.steps < steps; w.steps++ {
		switch r := rng.IntN(100); {
		case r < 55:
			w.process(rng.IntN(len(w.members)))
		case r < 65:
			w.finishInFlight(rng.IntN(len(w.members)))
		case r < 72:
			w.commit()
		case r < 78:
			w.crash(rng.IntN(len(w.members)))
		case r < 85:
			w.rebalance(rng.IntN(len(w.log.recs)))
		case r < 90:
			w.resetOffsets(rng.IntN(len(w.log.recs)))
		default:
			w.tick(time.Duration(rng.IntN(int(w.lease/10))) + time.Millisecond)
		}
	}
	w.drain()
}

func (w *propWorld) startMember(owner string) *propMember {
	return &propMember{owner: owner, store: w.newStore(owner), alive: true, next: map[int]int{},
		inFlight: map[[2]int]dedup.Mark{}}
}

// member returns the live member that consumes partition p, starting it again if it crashed.
func (w *propWorld) member(p int) *propMember {
	m := w.members[w.assign[p]]
	if !m.alive {
		// A restart: the same owner (a static instance ID) half of the time, else a new one.
		owner := m.owner
		if w.rng.IntN(2) == 0 {
			owner = fmt.Sprintf("%s-r%d", m.owner, w.steps)
		}
		m = w.startMember(owner)
		w.members[w.assign[p]] = m
	}
	if _, ok := m.next[p]; !ok {
		m.next[p] = w.committed[p]
	}
	return m
}

// process has a member claim its next few records of each partition it consumes, and deliver, park or keep
// in flight what it claimed.
func (w *propWorld) process(i int) {
	for p := range w.log.recs {
		if w.assign[p] != i {
			continue
		}
		m := w.member(p)
		start := m.next[p]
		var batch []dedup.Mark
		for o := start; o < len(w.log.recs[p]) && len(batch) < 1+w.rng.IntN(6); o++ {
			// Like the pipeline, a member holds one record of a message at a time: the next waits for it.
			if _, busy := m.inFlight[[2]int{p, o}]; busy || m.holds(w.log.recs[p][o], batch) {
				break
			}
			batch = append(batch, w.log.recs[p][o])
		}
		if len(batch) == 0 {
			continue
		}
		st, err := m.store.Apply(context.Background(), dedup.Ops{Claim: batch})
		if err != nil {
			w.t.Fatalf("step %d: claim: %v", w.steps, err)
		}
		for k, rec := range batch {
			pos := [2]int{p, int(rec.Offset)}
			switch st[k] {
			case dedup.Done:
				if !w.donePos[pos] && !(rec.OwnID && w.doneID[rec.ID]) {
					w.t.Fatalf("step %d: %s (id %q) answered done, but neither its position nor its ID is marked",
						w.steps, rec.PositionString(), rec.ID)
				}
				w.finished[p][rec.Offset] = true
				m.next[p] = int(rec.Offset) + 1
			case dedup.Claimed:
				w.checkExclusive(m, rec)
				m.inFlight[pos] = rec
				m.next[p] = int(rec.Offset) + 1
			case dedup.Busy:
				// Someone else has it (or the same message) in flight: offered again later.
			}
			if st[k] == dedup.Busy {
				break
			}
		}
	}
}

// holds reports whether the member has rec's message in flight, or in batch.
func (m *propMember) holds(rec dedup.Mark, batch []dedup.Mark) bool {
	if !rec.OwnID {
		return false
	}
	for _, f := range m.inFlight {
		if f.OwnID && f.ID == rec.ID {
			return true
		}
	}
	for _, b := range batch {
		if b.OwnID && b.ID == rec.ID {
			return true
		}
	}
	return false
}

// checkExclusive fails when another live member has rec, or its message, in flight.
func (w *propWorld) checkExclusive(m *propMember, rec dedup.Mark) {
	for _, o := range w.members {
		if o == m || !o.alive {
			continue
		}
		for _, f := range o.inFlight {
			if (f.Partition == rec.Partition && f.Offset == rec.Offset) || (rec.OwnID && f.OwnID && f.ID == rec.ID) {
				w.t.Fatalf("step %d: %s claimed by %s while %s has it in flight", w.steps, rec.PositionString(),
					m.owner, o.owner)
			}
		}
	}
}

// finishInFlight ends a member's in-flight records: delivered and completed, parked, or released undone.
func (w *propWorld) finishInFlight(i int) {
	m := w.members[i]
	if !m.alive {
		return
	}
	var complete, park, release []dedup.Mark
	for pos, rec := range m.inFlight {
		switch r := w.rng.IntN(10); {
		case r < 6:
			w.deliver(rec)
			complete = append(complete, rec)
		case r < 8:
			park = append(park, rec)
		default:
			release = append(release, rec)
			if m.next[pos[0]] > pos[1] {
				m.next[pos[0]] = pos[1] // offered again
			}
		}
		delete(m.inFlight, pos)
	}
	if _, err := m.store.Apply(context.Background(), dedup.Ops{Complete: complete, Park: park, Release: release}); err != nil {
		w.t.Fatalf("step %d: finishing: %v", w.steps, err)
	}
	for _, rec := range complete {
		w.donePos[[2]int{int(rec.Partition), int(rec.Offset)}] = true
		if rec.OwnID {
			w.doneID[rec.ID] = true
		}
		w.finished[rec.Partition][rec.Offset] = true
	}
	for _, rec := range park {
		w.donePos[[2]int{int(rec.Partition), int(rec.Offset)}] = true
		w.finished[rec.Partition][rec.Offset] = true
	}
}

// deliver hands rec to the app, failing when it is done.
func (w *propWorld) deliver(rec dedup.Mark) {
	pos := [2]int{int(rec.Partition), int(rec.Offset)}
	if w.donePos[pos] {
		w.t.Fatalf("step %d: %s delivered although its position is marked done", w.steps, rec.PositionString())
	}
	if rec.OwnID && w.doneID[rec.ID] {
		w.t.Fatalf("step %d: %s delivered although its message %q is marked done", w.steps, rec.PositionString(), rec.ID)
	}
	w.deliveredPos[pos]++
	if rec.OwnID {
		w.deliveredID[rec.ID]++
	}
}

// commit moves each partition's committed offset past the records finished in order.
func (w *propWorld) commit() {
	for p := range w.committed {
		for w.committed[p] < len(w.finished[p]) && w.finished[p][w.committed[p]] {
			w.committed[p]++
		}
	}
}

// crash kills a member: its in-flight records end without release (their leases stay until they expire), and
// what it had not committed is read again by whoever consumes the partition next.
func (w *propWorld) crash(i int) {
	m := w.members[i]
	m.alive = false
	m.inFlight = map[[2]int]dedup.Mark{}
	_ = m.store.Close()
}

// tick lets time pass. A zombie's deliveries end within the app timeout, before its leases can expire: they
// are finished first.
func (w *propWorld) tick(d time.Duration) {
	for i, m := range w.members {
		for pos := range m.inFlight {
			if w.assign[pos[0]] != i {
				w.finishInFlight(i)
				break
			}
		}
	}
	w.advance(d)
}

// rebalance moves partition p to the other member and the new owner starts from the committed offset. The old
// owner either hands over cleanly (ends its in-flight records of p, released, and gives the partition's lease
// up) or is a zombie: it goes on delivering what it has in flight, holding the leases.
func (w *propWorld) rebalance(p int) {
	old := w.members[w.assign[p]]
	if old.alive && w.rng.IntN(2) == 0 {
		delete(old.next, p)
	} else if old.alive {
		var release []dedup.Mark
		for pos, rec := range old.inFlight {
			if pos[0] == p {
				release = append(release, rec)
				delete(old.inFlight, pos)
			}
		}
		ctx := context.Background()
		if _, err := old.store.Apply(ctx, dedup.Ops{Release: release}); err != nil {
			w.t.Fatalf("step %d: releasing on revoke: %v", w.steps, err)
		}
		if err := old.store.ReleasePartitions(ctx, map[string][]int32{"t": {int32(p)}}); err != nil {
			w.t.Fatalf("step %d: ReleasePartitions: %v", w.steps, err)
		}
		delete(old.next, p)
	}
	w.assign[p] = 1 - w.assign[p]
	delete(w.members[w.assign[p]].next, p)
	w.commit()
}

// resetOffsets loses partition p's committed offset: it is read again from the start, after a rebalance-free
// restart of its consumer.
func (w *propWorld) resetOffsets(p int) {
	w.committed[p] = 0
	m := w.members[w.assign[p]]
	if m.alive && len(m.inFlight) == 0 {
		m.next[p] = 0
	}
}

// drain stops the faults, waits out every lease and has the members process until every record is done.
func (w *propWorld) drain() {
	w.tick(w.lease + w.lease/2)
	for i := range w.members {
		w.finishInFlight(i)
	}
	for round := 0; ; round++ {
		done := true
		for p := range w.finished {
			for _, f := range w.finished[p] {
				done = done && f
			}
		}
		if done {
			return
		}
		if round > 2000 {
			w.t.Fatalf("after %d rounds of draining some records are still not done", round)
		}
		for i := range w.members {
			w.process(i)
			w.finishInFlight(i)
		}
		if round%50 == 49 {
			w.tick(w.lease)
		}
	}
}

// FuzzDedupProperty runs the property on the memory store, whose clock the run moves: the fuzzer picks the
// seed of the interleaving.
func FuzzDedupProperty(f *testing.F) {
	for seed := range uint64(8) {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, seed uint64) {
		const lease = time.Second
		clock := newFakeClock()
		root := dedup.NewMemory(dedup.MemoryOptions{Owner: "root", Now: clock.Now})
		runProperty(t, seed, 400, func(owner string) dedup.Store {
			return root.Shared(dedup.MemoryOptions{Owner: owner, Lease: lease, TTL: time.Hour, IDTTL: time.Hour})
		}, clock.Advance, lease)
	})
}

// TestDedupPropertyMemory runs the property for many seeds on the memory store.
func TestDedupPropertyMemory(t *testing.T) {
	for seed := range uint64(200) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			const lease = time.Second
			clock := newFakeClock()
			root := dedup.NewMemory(dedup.MemoryOptions{Owner: "root", Now: clock.Now})
			runProperty(t, seed, 400, func(owner string) dedup.Store {
				return root.Shared(dedup.MemoryOptions{Owner: owner, Lease: lease, TTL: time.Hour, IDTTL: time.Hour})
			}, clock.Advance, lease)
		})
	}
}

// TestDedupPropertyRedis runs the property on a real redis-server, in real time (leases of 150ms expire while
// the run waits), for a few seeds.
func TestDedupPropertyRedis(t *testing.T) {
	if testing.Short() {
		t.Skip("waits out leases in real time")
	}
	srv := redistest.Start(t, redistest.Options{})
	for seed := range uint64(6) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			const lease = 150 * time.Millisecond
			prefix := fmt.Sprintf("prop-%d:", seed)
			runProperty(t, seed, 300, func(owner string) dedup.Store {
				s := dedup.NewRedis(redis.NewClient(srv.ClientOptions()), dedup.RedisOptions{
					KeyPrefix: prefix, Owner: owner, Lease: lease, TTL: time.Hour, IDTTL: time.Hour})
				t.Cleanup(func() { _ = s.Close() })
				return s
			}, func(d time.Duration) {
				timer := time.NewTimer(d)
				defer timer.Stop()
				<-timer.C
			}, lease)
		})
	}
}
