package dedup

import (
	"bytes"
	"testing"
)

// FuzzRepeats checks the invariants of repeats on any batch: every index is either a first occurrence or a
// later one pointing at an earlier first occurrence of the same ID, first occurrences are distinct, and the
// small-batch and map-based paths agree (inputs are split on 0xff into IDs, so both sizes occur).
func FuzzRepeats(f *testing.F) {
	f.Add([]byte("a\xffb\xffa\xffa\xffc"))
	f.Add([]byte(""))
	f.Add(bytes.Repeat([]byte("x\xffy\xff"), 20))
	f.Add([]byte("\x00\xff\x00\x00\xff\x00"))
	f.Fuzz(func(t *testing.T, data []byte) {
		var ids []string
		for _, p := range bytes.Split(data, []byte{0xff}) {
			ids = append(ids, string(p))
		}
		firsts, later := repeats(ids)
		role := make([]int, len(ids)) // 0 unseen, 1 first, 2 later
		seen := map[string]bool{}
		for _, i := range firsts {
			if seen[ids[i]] {
				t.Fatalf("ID %q is a first occurrence twice", ids[i])
			}
			seen[ids[i]] = true
			role[i] = 1
		}
		for _, p := range later {
			i, j := p[0], p[1]
			if j >= i || ids[i] != ids[j] || role[j] != 1 {
				t.Fatalf("later occurrence %d points at %d: ids %q, %q", i, j, ids[i], ids[j])
			}
			role[i] = 2
		}
		for i, r := range role {
			if r == 0 {
				t.Fatalf("index %d (%q) is neither a first nor a later occurrence", i, ids[i])
			}
		}
		if len(seen) != len(firsts) {
			t.Fatalf("%d distinct IDs, %d first occurrences", len(seen), len(firsts))
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
			ids := []string{"x", "y", "x", "x"}
			st := make([]Status, len(ids))
			firsts, later := repeats(ids)
			for _, i := range firsts {
				st[i] = tc.first
			}
			fillRepeats(st, later)
			for _, i := range []int{2, 3} {
				if st[i] != tc.want {
					t.Fatalf("repeat at %d = %v, want %v", i, st[i], tc.want)
				}
			}
		})
	}
}

func BenchmarkRepeats(b *testing.B) {
	for _, n := range []int{8, 128} {
		ids := make([]string, n)
		for i := range ids {
			ids[i] = "kafka-sidecar:g:orders/3/" + string(rune('a'+i%26)) + string(rune('a'+i/26))
		}
		b.Run(map[int]string{8: "small", 128: "large"}[n], func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_, _ = repeats(ids)
			}
		})
	}
}
