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

// fuzzUniverse is the set of records FuzzStoresAgree works on: two messages with IDs of their own, one of them
// at two offsets; records without one in two partitions; and one at a reused offset under a newer leader epoch.
var fuzzUniverse = []dedup.Mark{
	{Topic: "t", Partition: 0, Epoch: 1, Offset: 0, ID: "x", OwnID: true},
	{Topic: "t", Partition: 0, Epoch: 1, Offset: 1, ID: "x", OwnID: true},
	{Topic: "t", Partition: 0, Epoch: 1, Offset: 2, ID: "y", OwnID: true},
	{Topic: "t", Partition: 0, Epoch: 1, Offset: 3, ID: "t/0/3"},
	{Topic: "t", Partition: 1, Epoch: 1, Offset: 0, ID: "t/1/0"},
	{Topic: "t", Partition: 0, Epoch: 2, Offset: 3, ID: "t/0/3"},
}

// FuzzStoresAgree runs the same sequence of operations, decoded from the input, against the memory store and
// the Redis store (on miniredis, whose clock moves with the memory store's), for two owners, and requires
// identical answers. The Lua script and the Go implementation state the same rules twice; this holds them to
// one another, including leases and marks expiring between operations.
//
// Each operation is two bytes. The first picks it (bits 0-2: claim, complete, park, release, release the
// partitions, or a clock step) and the owner (bit 3), or the clock step's length in 70ms units (bits 3-7), a
// step that never lands exactly on a 1s lease, 2.5s ID TTL or 4s TTL boundary. The second picks the records:
// bit i for fuzzUniverse[i], bit 6 repeats the first of them at the end.
func FuzzStoresAgree(f *testing.F) {
	f.Add([]byte{0x00, 0x01, 0x08, 0x01, 0x01, 0x01, 0x08, 0x01})
	f.Add([]byte{0x00, 0x3f, 0x02, 0x03, 0x08, 0x3f, 0x07 | 20<<3, 0x00, 0x08, 0x3f})
	f.Add([]byte{0x00, 0x18, 0x04, 0x10, 0x08, 0x18, 0x03, 0x08, 0x08, 0x18})
	f.Add([]byte{0x00, 0x07, 0x02, 0x01, 0x08, 0x02, 0x07 | 31<<3, 0x00, 0x08, 0x02})
	f.Fuzz(func(t *testing.T, input []byte) {
		if len(input) > 96 {
			input = input[:96]
		}
		const (
			lease = time.Second
			idTTL = 2500 * time.Millisecond
			ttl   = 4 * time.Second
		)
		clock := newFakeClock()
		memA := dedup.NewMemory(dedup.MemoryOptions{Owner: "a", Lease: lease, TTL: ttl, IDTTL: idTTL, Now: clock.Now})
		memB := memA.Shared(dedup.MemoryOptions{Owner: "b", Lease: lease, TTL: ttl, IDTTL: idTTL})
		mr := miniredis.RunT(t)
		newRedis := func(owner string) *dedup.Redis {
			s := dedup.NewRedis(redis.NewClient(&redis.Options{Addr: mr.Addr()}), dedup.RedisOptions{
				KeyPrefix: "f:", Owner: owner, Lease: lease, TTL: ttl, IDTTL: idTTL, Now: clock.Now,
			})
			t.Cleanup(func() { _ = s.Close() })
			return s
		}
		redA, redB := newRedis("a"), newRedis("b")
		ctx := context.Background()
		// Both decide the format before the clock moves (a fresh server: no old keys are read).
		for _, s := range []*dedup.Redis{redA, redB} {
			if _, err := s.LegacyUntil(ctx); err != nil {
				t.Fatal(err)
			}
		}

		for step := 0; step+1 < len(input); step += 2 {
			op, sel := input[step], input[step+1]
			if op&7 == 7 {
				d := time.Duration(op>>3+1) * 70 * time.Millisecond
				clock.Advance(d)
				mr.FastForward(d)
				continue
			}
			mem, red := dedup.Store(memA), dedup.Store(redA)
			if op&8 != 0 {
				mem, red = memB, redB
			}
			var batch []dedup.Mark
			for i := range fuzzUniverse {
				if sel&(1<<i) != 0 {
					batch = append(batch, fuzzUniverse[i])
				}
			}
			if sel&0x40 != 0 && len(batch) > 0 {
				batch = append(batch, batch[0])
			}
			what := fmt.Sprintf("step %d (op %#x, records %#x)", step/2, op, sel)
			var ops dedup.Ops
			switch op & 7 {
			case 0, 5:
				ops.Claim = batch
			case 1:
				ops.Complete = batch
			case 2:
				ops.Park = batch
			case 3:
				ops.Release = batch
			case 4:
				merr := mem.ReleasePartitions(ctx, map[string][]int32{"t": {0}})
				rerr := red.ReleasePartitions(ctx, map[string][]int32{"t": {0}})
				if merr != nil || rerr != nil {
					t.Fatalf("%s: release partitions errors memory=%v redis=%v", what, merr, rerr)
				}
				continue
			case 6:
				ops.Complete, ops.Claim = batch[:len(batch)/2], batch[len(batch)/2:]
			}
			ms, merr := mem.Apply(ctx, ops)
			rs, rerr := red.Apply(ctx, ops)
			if merr != nil || rerr != nil {
				t.Fatalf("%s: errors memory=%v redis=%v", what, merr, rerr)
			}
			if fmt.Sprint(ms) != fmt.Sprint(rs) {
				t.Fatalf("%s: claim answers differ: memory %v, redis %v", what, ms, rs)
			}
		}
		// Finally both must hold the same state for every record, seen by a third owner one at a time.
		memC := memA.Shared(dedup.MemoryOptions{Owner: "c", Lease: lease, TTL: ttl, IDTTL: idTTL})
		redC := newRedis("c")
		for i, m := range fuzzUniverse {
			ms, merr := memC.Apply(ctx, dedup.Ops{Claim: []dedup.Mark{m}})
			rs, rerr := redC.Apply(ctx, dedup.Ops{Claim: []dedup.Mark{m}})
			if merr != nil || rerr != nil || fmt.Sprint(ms) != fmt.Sprint(rs) {
				t.Fatalf("final state of record %d differs: memory %v (%v), redis %v (%v)", i, ms, merr, rs, rerr)
			}
		}
	})
}
