package dedup_test

import (
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/kafka-sidecar/kafka-sidecar/dedup"
	"github.com/kafka-sidecar/kafka-sidecar/dedup/storetest"
	"github.com/kafka-sidecar/kafka-sidecar/test/redistest"
)

// fakeClock is a clock tests move by hand.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// perTest keeps one backend per (sub)test, so tests that move a clock do not disturb each other.
type perTest[B any] struct {
	mu sync.Mutex
	m  map[testing.TB]B
}

func (p *perTest[B]) get(t testing.TB, build func() B) B {
	p.mu.Lock()
	defer p.mu.Unlock()
	if b, ok := p.m[t]; ok {
		return b
	}
	if p.m == nil {
		p.m = make(map[testing.TB]B)
	}
	b := build()
	p.m[t] = b
	t.Cleanup(func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		delete(p.m, t)
	})
	return b
}

// clockedMemory is a Memory store whose clock the contract suite can move.
type clockedMemory struct {
	*dedup.Memory
	clock *fakeClock
}

func (c clockedMemory) Advance(d time.Duration) { c.clock.Advance(d) }

type memBackend struct {
	root  *dedup.Memory
	clock *fakeClock
}

// memoryFactory builds Memory stores for the contract suite, one table and clock per test.
func memoryFactory() func(t *testing.T, owner string) dedup.Store {
	var backends perTest[memBackend]
	return func(t *testing.T, owner string) dedup.Store {
		b := backends.get(t, func() memBackend {
			clock := newFakeClock()
			return memBackend{root: dedup.NewMemory(dedup.MemoryOptions{Now: clock.Now}), clock: clock}
		})
		m := b.root.Shared(dedup.MemoryOptions{Owner: owner, Lease: storetest.Lease, TTL: storetest.TTL, IDTTL: storetest.IDTTL})
		t.Cleanup(func() { _ = m.Close() })
		return clockedMemory{Memory: m, clock: b.clock}
	}
}

// fastForwardRedis is a Redis store on miniredis, whose clock the contract suite moves with FastForward, and
// the store's own clock with it.
type fastForwardRedis struct {
	*dedup.Redis
	mr    *miniredis.Miniredis
	clock *fakeClock
}

func (f fastForwardRedis) Advance(d time.Duration) {
	f.mr.FastForward(d)
	f.clock.Advance(d)
}

type miniBackend struct {
	mr    *miniredis.Miniredis
	clock *fakeClock
}

// miniredisFactory builds Redis stores on one miniredis per test.
func miniredisFactory() func(t *testing.T, owner string) dedup.Store {
	var servers perTest[miniBackend]
	return func(t *testing.T, owner string) dedup.Store {
		b := servers.get(t, func() miniBackend { return miniBackend{mr: miniredis.RunT(t), clock: newFakeClock()} })
		s := dedup.NewRedis(redis.NewClient(&redis.Options{Addr: b.mr.Addr()}), dedup.RedisOptions{
			KeyPrefix: "test:", Owner: owner, Lease: storetest.Lease, TTL: storetest.TTL, IDTTL: storetest.IDTTL,
			Now: b.clock.Now,
		})
		t.Cleanup(func() { _ = s.Close() })
		return fastForwardRedis{Redis: s, mr: b.mr, clock: b.clock}
	}
}

// realRedisFactory builds Redis stores on srv, each with its own client, in real time.
func realRedisFactory(srv *redistest.Server) func(t *testing.T, owner string) dedup.Store {
	return func(t *testing.T, owner string) dedup.Store {
		s := dedup.NewRedis(redis.NewClient(srv.ClientOptions()), dedup.RedisOptions{
			KeyPrefix: "kafka-sidecar:test:", Owner: owner, Lease: storetest.Lease, TTL: storetest.TTL, IDTTL: storetest.IDTTL,
		})
		t.Cleanup(func() { _ = s.Close() })
		return s
	}
}
