package consumer

import (
	"math/rand/v2"
	"testing"
	"time"
)

// lowestUndone is the model: the commit position is the lowest offset not done, or one past the last record.
func lowestUndone(offsets []int64, done map[int64]bool) int64 {
	for _, o := range offsets {
		if !done[o] {
			return o
		}
	}
	return offsets[len(offsets)-1] + 1
}

func TestOffsetTrackerNeverPassesUndone(t *testing.T) {
	for seed := range uint64(200) {
		rng := rand.New(rand.NewPCG(seed, seed*31+7))
		tr := newOffsetTracker()
		var offsets []int64
		var entries []*trackedOffset
		next := int64(rng.IntN(1000))
		n := 1 + rng.IntN(300)
		for range n {
			next += 1 + int64(rng.IntN(3)) // gaps, as compaction and transaction markers leave
			offsets = append(offsets, next)
			entries = append(entries, tr.add(next, 5, time.Time{}))
		}
		done := map[int64]bool{}
		for _, i := range rng.Perm(n) {
			tr.markDone(entries[i])
			done[offsets[i]] = true
			got, _, ok := tr.position()
			if !ok {
				t.Fatalf("seed %d: no position after records were added", seed)
			}
			if want := lowestUndone(offsets, done); got != want {
				t.Fatalf("seed %d: position %d, want lowest undone %d", seed, got, want)
			}
		}
		if tr.pending() != 0 {
			t.Fatalf("seed %d: %d pending after every record was done", seed, tr.pending())
		}
	}
}

func FuzzOffsetTracker(f *testing.F) {
	f.Add([]byte{3, 1, 2, 0}, uint8(1))
	f.Add([]byte{0, 0, 0}, uint8(2))
	f.Fuzz(func(t *testing.T, order []byte, gap uint8) {
		if len(order) == 0 || len(order) > 512 {
			return
		}
		tr := newOffsetTracker()
		offsets := make([]int64, len(order))
		entries := make([]*trackedOffset, len(order))
		o := int64(0)
		for i := range order {
			o += 1 + int64(gap%4)
			offsets[i] = o
			entries[i] = tr.add(o, 0, time.Time{})
		}
		done := map[int64]bool{}
		for _, b := range order {
			i := int(b) % len(order)
			if done[offsets[i]] {
				continue
			}
			tr.markDone(entries[i])
			done[offsets[i]] = true
			got, _, _ := tr.position()
			if want := lowestUndone(offsets, done); got != want {
				t.Fatalf("position %d, want %d", got, want)
			}
		}
	})
}

func TestOffsetTrackerEmptyHasNoPosition(t *testing.T) {
	tr := newOffsetTracker()
	if _, _, ok := tr.position(); ok {
		t.Fatal("an empty tracker must not offer a commit position")
	}
	e := tr.add(10, 3, time.Unix(5, 0))
	if got, _, _ := tr.position(); got != 10 {
		t.Fatalf("position %d before the record is done, want 10", got)
	}
	if got := tr.oldestUndone(); !got.Equal(time.Unix(5, 0)) {
		t.Fatalf("oldest undone %v, want the record's timestamp", got)
	}
	tr.markDone(e)
	got, epoch, _ := tr.position()
	if got != 11 || epoch != 3 {
		t.Fatalf("position %d epoch %d, want 11 and 3", got, epoch)
	}
	if !tr.oldestUndone().IsZero() {
		t.Fatal("oldest undone must be zero when every record is done")
	}
}

func BenchmarkOffsetTracker(b *testing.B) {
	tr := newOffsetTracker()
	const window = 64
	var ring [window]*trackedOffset
	b.ReportAllocs()
	for i := range b.N {
		if e := ring[i%window]; e != nil {
			tr.markDone(e)
		}
		ring[i%window] = tr.add(int64(i), 0, time.Time{})
	}
}
