package dedup

import (
	"bytes"
	"testing"
)

// marksFrom decodes a batch of claims from fuzz input: pieces split on 0xff; a piece's first byte (or 0) is
// the offset, its length modulo 3 the partition, and a piece of odd length is a record with the ID of its own
// (the piece) while the others carry a position ID.
func marksFrom(data []byte) []Mark {
	var ms []Mark
	for _, p := range bytes.Split(data, []byte{0xff}) {
		m := Mark{Topic: "t", Partition: int32(len(p) % 3), ID: string(p), OwnID: len(p)%2 == 1}
		if len(p) > 0 {
			m.Offset = int64(p[0])
		}
		ms = append(ms, m)
	}
	return ms
}

// FuzzRepeats checks the invariants of repeats and fillRepeats on any batch: every index is either a first
// occurrence or a later one pointing at an earlier first occurrence of the same position; first occurrences are
// distinct positions; and after fillRepeats no two records of one message are both claimed, while a record
// whose first occurrence was done is done and nothing else changed. Inputs of every size occur, so both the
// small-batch and the map-based path are covered.
func FuzzRepeats(f *testing.F) {
	f.Add([]byte("a\xffb\xffa\xffa\xffc"))
	f.Add([]byte(""))
	f.Add(bytes.Repeat([]byte("x\xffy\xff"), 20))
	f.Add([]byte("\x00\xff\x00\x00\xff\x00"))
	f.Add([]byte("abc\xffadc\xffabc\xffz"))
	f.Fuzz(func(t *testing.T, data []byte) {
		ms := marksFrom(data)
		firsts, later := repeats(ms)
		role := make([]int, len(ms)) // 0 unseen, 1 first, 2 later
		for a, i := range firsts {
			for _, j := range firsts[:a] {
				if samePosition(&ms[i], &ms[j]) {
					t.Fatalf("position of %d is a first occurrence twice (also %d)", i, j)
				}
			}
			role[i] = 1
		}
		for _, p := range later {
			i, j := p[0], p[1]
			if j >= i || !samePosition(&ms[i], &ms[j]) || role[j] != 1 {
				t.Fatalf("later occurrence %d points at %d: %+v, %+v", i, j, ms[i], ms[j])
			}
			role[i] = 2
		}
		for i, r := range role {
			if r == 0 {
				t.Fatalf("index %d is neither a first nor a later occurrence", i)
			}
		}
		// Every first occurrence claimed, except those at an even offset, which are done.
		st := make([]Status, len(ms))
		for _, i := range firsts {
			if ms[i].Offset%2 == 0 {
				st[i] = Done
			}
		}
		fillRepeats(ms, st, later)
		claimedIDs := map[string]bool{}
		for i, s := range st {
			if ms[i].Offset%2 == 0 && s != Done {
				t.Fatalf("record %d at a done position is %v", i, s)
			}
			if s != Claimed {
				continue
			}
			if role[i] == 2 {
				t.Fatalf("repeat %d of a claimed position is claimed too", i)
			}
			if ms[i].OwnID {
				if claimedIDs[ms[i].ID] {
					t.Fatalf("message %q claimed twice in one batch", ms[i].ID)
				}
				claimedIDs[ms[i].ID] = true
			}
		}
	})
}

func TestFillRepeats(t *testing.T) {
	for _, tc := range []struct {
		name  string
		first Status
		want  Status
	}{
		{"claimed first makes repeats busy", Claimed, Busy},
		{"done first makes repeats done", Done, Done},
		{"busy first makes repeats busy", Busy, Busy},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ms := []Mark{{Offset: 1}, {Offset: 2}, {Offset: 1}, {Offset: 1}}
			st := make([]Status, len(ms))
			firsts, later := repeats(ms)
			for _, i := range firsts {
				st[i] = tc.first
			}
			fillRepeats(ms, st, later)
			for _, i := range []int{2, 3} {
				if st[i] != tc.want {
					t.Fatalf("repeat at %d = %v, want %v", i, st[i], tc.want)
				}
			}
		})
	}
}

// TestRepeatsByPosition checks what makes two claims one record: the position (topic identity, partition,
// epoch, offset), the topic's name only when its ID is unknown.
func TestRepeatsByPosition(t *testing.T) {
	id := [16]byte{1}
	base := Mark{TopicID: id, Topic: "t", Partition: 1, Epoch: 2, Offset: 3}
	for _, tc := range []struct {
		name string
		edit func(m *Mark)
		same bool
	}{
		{"same", func(*Mark) {}, true},
		{"other name, same topic ID", func(m *Mark) { m.Topic = "u" }, true},
		{"other topic ID", func(m *Mark) { m.TopicID[0] = 9 }, false},
		{"other partition", func(m *Mark) { m.Partition++ }, false},
		{"other epoch", func(m *Mark) { m.Epoch++ }, false},
		{"other offset", func(m *Mark) { m.Offset++ }, false},
		{"no topic ID, other name", func(m *Mark) { m.TopicID = [16]byte{} }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, b := base, base
			tc.edit(&b)
			if tc.name == "no topic ID, other name" {
				a.TopicID, b.Topic = [16]byte{}, "u"
			}
			// Both paths: the small batch and, padded with distinct records, the map.
			for _, pad := range []int{0, 20} {
				ms := []Mark{a, b}
				for i := range pad {
					ms = append(ms, Mark{Topic: "pad", Offset: int64(i)})
				}
				_, later := repeats(ms)
				if got := len(later) == 1; got != tc.same {
					t.Fatalf("with %d more records: repeat = %v, want %v", pad, got, tc.same)
				}
			}
		})
	}
}

func BenchmarkRepeats(b *testing.B) {
	for _, n := range []int{8, 128} {
		ms := make([]Mark, n)
		for i := range ms {
			ms[i] = Mark{TopicID: [16]byte{7}, Topic: "orders", Partition: 3, Offset: int64(1000 + i)}
		}
		b.Run(map[int]string{8: "small", 128: "large"}[n], func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_, _ = repeats(ms)
			}
		})
	}
}
