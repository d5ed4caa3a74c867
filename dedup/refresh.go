package dedup

import (
	"sync"
	"time"
)

// PositionMarkSlack is how much longer than ttl a position mark may live. A store extends a position key's
// expiry only when it last did so more than half the slack ago, to ttl plus the slack from then, so every mark
// lives at least ttl after it was written while a busy key costs an expiry command only now and then.
func PositionMarkSlack(ttl time.Duration) time.Duration { return ttl / 64 }

// refresher decides, for one store, when a lease or a position key is due for its expiry to be extended again:
// a partition lease when this store last extended it a quarter of the lease ago or more (so it always has
// three quarters of a lease left while this store claims its records), a position key when half the slack has
// passed. Keys unseen for longer are forgotten, so the table stays as small as the keys in use.
type refresher[K comparable] struct {
	now         func() time.Time
	leaseEvery  time.Duration
	markEvery   time.Duration
	mu          sync.Mutex
	last        map[K]time.Time
	nextCleanup int
}

func newRefresher[K comparable](now func() time.Time, lease, ttl time.Duration) *refresher[K] {
	return &refresher[K]{now: now, leaseEvery: lease / 4, markEvery: PositionMarkSlack(ttl) / 2,
		last: make(map[K]time.Time), nextCleanup: 1024}
}

// due reports whether key (a lease when lease is set, else a position key) is due, and if so counts it as
// extended now.
func (f *refresher[K]) due(key K, lease bool) bool {
	every := f.markEvery
	if lease {
		every = f.leaseEvery
	}
	now := f.now()
	f.mu.Lock()
	defer f.mu.Unlock()
	if t, ok := f.last[key]; ok && now.Sub(t) < every {
		return false
	}
	f.last[key] = now
	if len(f.last) >= f.nextCleanup {
		for k, t := range f.last {
			if now.Sub(t) >= max(f.leaseEvery, f.markEvery) {
				delete(f.last, k)
			}
		}
		f.nextCleanup = max(2*len(f.last), 1024)
	}
	return true
}

// forget drops what due counted for keys whose extension may not have reached the server.
func (f *refresher[K]) forget(keys []K) {
	if len(keys) == 0 {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, k := range keys {
		delete(f.last, k)
	}
}
