package dedup

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// MemoryOptions configure a Memory store. Zero values take the defaults named on each field.
type MemoryOptions struct {
	// Owner names the leases this store takes (the static instance ID); empty means a random owner.
	Owner string
	// Lease is how long a claim lives without Complete or Release; zero means DefaultLease.
	Lease time.Duration
	// TTL is how long a done mark lives; zero means DefaultTTL.
	TTL time.Duration
	// Now is the clock; nil means time.Now. Tests inject a fake clock to expire leases and marks at will.
	Now func() time.Time
}

// Memory is a Store held in this process's memory, with the same semantics as Redis: leases named by owner,
// expiring leases and done marks. It suits a single sidecar replica (its marks die with the process) and tests.
// All methods are safe for concurrent use; each batch is applied atomically under one lock.
//
// Several Memory values can share one table through Shared, which is how tests model several sidecars (owners)
// in front of one store.
type Memory struct {
	t      *memTable
	closed atomic.Bool
	owner  string
	lease  time.Duration
	ttl    time.Duration
}

// memTable is the state shared by every Memory view on it.
type memTable struct {
	mu      sync.Mutex
	now     func() time.Time
	entries map[string]memEntry
	// nextSweep is the table size at which expired entries are next swept out, so the map stays within twice
	// its live size at an amortised constant cost per write.
	nextSweep int
}

// memEntry is a lease (done false, owner set) or a done mark.
type memEntry struct {
	owner   string
	done    bool
	expires time.Time
}

// expiredAt reports whether the entry is gone at now. Like Redis, an entry still lives at the exact moment of
// its expiry and is gone just after.
func (e memEntry) expiredAt(now time.Time) bool { return now.After(e.expires) }

// minSweep is the smallest table size worth sweeping.
const minSweep = 1024

// NewMemory returns an empty in-memory store.
func NewMemory(opts MemoryOptions) *Memory {
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	t := &memTable{now: now, entries: make(map[string]memEntry), nextSweep: minSweep}
	return t.view(opts)
}

// Shared returns another store on the same table with its own owner, lease and TTL (zero values take the
// defaults; Now is ignored: the table's clock is shared).
func (m *Memory) Shared(opts MemoryOptions) *Memory {
	return m.t.view(opts)
}

func (t *memTable) view(opts MemoryOptions) *Memory {
	return &Memory{
		t:     t,
		owner: ownerOrRandom(opts.Owner),
		lease: orDefault(opts.Lease, DefaultLease),
		ttl:   orDefault(opts.TTL, DefaultTTL),
	}
}

// Owner returns the name this store's leases carry.
func (m *Memory) Owner() string { return m.owner }

// Claim implements Store. Repeats of an ID inside one batch are answered as documented on Store.
func (m *Memory) Claim(ctx context.Context, ids []string) ([]Status, error) {
	return m.apply(ctx, "claiming", Ops{Claim: ids})
}

// Complete implements Store.
func (m *Memory) Complete(ctx context.Context, ids []string) error {
	_, err := m.apply(ctx, "completing", Ops{Complete: ids})
	return err
}

// Release implements Store.
func (m *Memory) Release(ctx context.Context, ids []string) error {
	_, err := m.apply(ctx, "releasing", Ops{Release: ids})
	return err
}

// Apply implements Store, atomically: all of ops happens under one lock.
func (m *Memory) Apply(ctx context.Context, ops Ops) ([]Status, error) {
	return m.apply(ctx, "applying", ops)
}

func (m *Memory) apply(ctx context.Context, action string, ops Ops) ([]Status, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", action, err)
	}
	if m.closed.Load() {
		return nil, fmt.Errorf("%s: %w", action, ErrClosed)
	}
	statuses := make([]Status, len(ops.Claim))
	firsts, later := repeats(ops.Claim)
	t := m.t
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	for _, id := range ops.Complete {
		t.put(id, memEntry{done: true, expires: now.Add(m.ttl)})
	}
	for _, id := range ops.Release {
		if e, ok := t.entries[id]; ok && !e.done && e.owner == m.owner && !e.expiredAt(now) {
			delete(t.entries, id)
		}
	}
	for _, i := range firsts {
		id := ops.Claim[i]
		e, ok := t.entries[id]
		switch {
		case !ok || e.expiredAt(now):
			t.put(id, memEntry{owner: m.owner, expires: now.Add(m.lease)})
			statuses[i] = Claimed
		case e.done:
			statuses[i] = Done
		case e.owner == m.owner:
			e.expires = now.Add(m.lease)
			t.entries[id] = e
			statuses[i] = Claimed
		default:
			statuses[i] = Busy
		}
	}
	fillRepeats(statuses, later)
	return statuses, nil
}

// Ping implements Store: it fails only after Close.
func (m *Memory) Ping(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("pinging: %w", err)
	}
	if m.closed.Load() {
		return fmt.Errorf("pinging: %w", ErrClosed)
	}
	return nil
}

// Close implements Store: later calls on this store return ErrClosed. Other stores sharing the table (see
// Shared) keep working; the table is freed with the last of them. Calling Close again does nothing.
func (m *Memory) Close() error {
	m.closed.Store(true)
	return nil
}

// Len returns the number of live leases and done marks, for metrics and tests.
func (m *Memory) Len() int {
	t := m.t
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	n := 0
	for _, e := range t.entries {
		if !e.expiredAt(now) {
			n++
		}
	}
	return n
}

// put stores e under id, sweeping out expired entries when the table has doubled since the last sweep.
// The caller holds t.mu.
func (t *memTable) put(id string, e memEntry) {
	t.entries[id] = e
	if len(t.entries) < t.nextSweep {
		return
	}
	now := t.now()
	for k, v := range t.entries {
		if v.expiredAt(now) {
			delete(t.entries, k)
		}
	}
	t.nextSweep = max(2*len(t.entries), minSweep)
}
