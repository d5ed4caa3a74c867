package dedup_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/kafka-sidecar/kafka-sidecar/dedup"
)

// FuzzStoresAgree runs the same sequence of operations, decoded from the input, against the memory store and
// the Redis store (on miniredis, whose clock moves with the memory store's), for two owners, and requires
// identical answers. The Lua scripts and the Go implementation state the same rules twice; this holds them to
// one another, including leases and marks expiring between operations.
//
// Each input byte is one operation: bits 0-2 pick it (claim, complete, release by owner A or B, or a clock
// step), bits 3-7 pick the IDs (a batch of up to three from five IDs, repeats allowed) or the clock step's
// length in 70ms units, a step that never lands exactly on a 1s lease or 2.5s TTL boundary.
func FuzzStoresAgree(f *testing.F) {
	f.Add([]byte{0x00, 0x01, 0x08, 0x02, 0x0b})
	f.Add([]byte{0x00, 0x06 | 15<<3, 0x01, 0x06 | 31<<3, 0x01})
	f.Add([]byte{0x00, 0x02, 0x01, 0x04, 0x05, 0x06 | 20<<3, 0x01})
	f.Add([]byte{0xf8, 0xf9, 0xfa, 0xfb, 0xfc, 0xfe, 0xf8, 0xf9})
	f.Fuzz(func(t *testing.T, ops []byte) {
		if len(ops) > 64 {
			ops = ops[:64]
		}
		const (
			lease = time.Second
			ttl   = 2500 * time.Millisecond
		)
		clock := newFakeClock()
		memA := dedup.NewMemory(dedup.MemoryOptions{Owner: "a", Lease: lease, TTL: ttl, Now: clock.Now})
		memB := memA.Shared(dedup.MemoryOptions{Owner: "b", Lease: lease, TTL: ttl})
		mr := miniredis.RunT(t)
		newRedis := func(owner string) *dedup.Redis {
			s := dedup.NewRedis(redis.NewClient(&redis.Options{Addr: mr.Addr()}), dedup.RedisOptions{
				KeyPrefix: "f:", Owner: owner, Lease: lease, TTL: ttl,
			})
			t.Cleanup(func() { _ = s.Close() })
			return s
		}
		redA, redB := newRedis("a"), newRedis("b")
		ctx := context.Background()

		for step, op := range ops {
			arg := op >> 3
			if op&7 >= 6 {
				d := time.Duration(arg+1) * 70 * time.Millisecond
				clock.Advance(d)
				mr.FastForward(d)
				continue
			}
			mem, red := dedup.Store(memA), dedup.Store(redA)
			if op&1 == 1 {
				mem, red = memB, redB
			}
			batch := []string{fmt.Sprint("id", arg%5)}
			for extra := arg / 5; extra > 0 && len(batch) < 3; extra /= 2 {
				batch = append(batch, fmt.Sprint("id", (int(arg)+int(extra))%5))
			}
			what := fmt.Sprintf("step %d (op %#x, %q)", step, op, batch)
			switch op & 7 >> 1 {
			case 0:
				ms, merr := mem.Claim(ctx, batch)
				rs, rerr := red.Claim(ctx, batch)
				if merr != nil || rerr != nil {
					t.Fatalf("%s: claim errors memory=%v redis=%v", what, merr, rerr)
				}
				if fmt.Sprint(ms) != fmt.Sprint(rs) {
					t.Fatalf("%s: claim answers differ: memory %v, redis %v", what, ms, rs)
				}
			case 1:
				if merr, rerr := mem.Complete(ctx, batch), red.Complete(ctx, batch); merr != nil || rerr != nil {
					t.Fatalf("%s: complete errors memory=%v redis=%v", what, merr, rerr)
				}
			case 2:
				if merr, rerr := mem.Release(ctx, batch), red.Release(ctx, batch); merr != nil || rerr != nil {
					t.Fatalf("%s: release errors memory=%v redis=%v", what, merr, rerr)
				}
			}
		}
		// Finally both must hold the same state for every ID, seen by a third owner that changes nothing it
		// finds taken. (Free IDs it claims in both, equally.)
		all := []string{"id0", "id1", "id2", "id3", "id4"}
		memC := memA.Shared(dedup.MemoryOptions{Owner: "c", Lease: lease, TTL: ttl})
		ms, merr := memC.Claim(ctx, all)
		rs, rerr := newRedis("c").Claim(ctx, all)
		if merr != nil || rerr != nil || fmt.Sprint(ms) != fmt.Sprint(rs) {
			t.Fatalf("final state differs: memory %v (%v), redis %v (%v)", ms, merr, rs, rerr)
		}
	})
}
