package httpapp

import (
	"testing"
	"time"
)

func TestAppendTimestampMatchesAppendFormat(t *testing.T) {
	for _, ts := range []time.Time{
		time.UnixMilli(1_700_000_000_123),
		time.Date(2024, 2, 29, 23, 59, 59, 999_999_999, time.UTC),
		time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(9999, 12, 31, 23, 59, 59, 1_000_000, time.UTC),
		time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(-1, 6, 15, 12, 0, 0, 0, time.UTC),
		time.Date(2024, 5, 1, 12, 0, 0, 250_000_000, time.FixedZone("CEST", 2*3600)),
		time.UnixMilli(0),
		time.UnixMilli(-1),
		{},
	} {
		want := ts.UTC().AppendFormat(nil, timestampLayout)
		if got := appendTimestamp([]byte("x"), ts); string(got) != "x"+string(want) {
			t.Errorf("appendTimestamp(%v) = %q, want %q", ts, got[1:], want)
		}
	}
}

func FuzzAppendTimestamp(f *testing.F) {
	f.Add(int64(1_700_000_000_123_456_789))
	f.Add(int64(0))
	f.Add(int64(-62_135_596_800_000_000_0))
	f.Fuzz(func(t *testing.T, nanos int64) {
		ts := time.Unix(0, nanos)
		if got, want := appendTimestamp(nil, ts), ts.UTC().AppendFormat(nil, timestampLayout); string(got) != string(want) {
			t.Fatalf("appendTimestamp(%d) = %q, want %q", nanos, got, want)
		}
	})
}

func BenchmarkAppendTimestamp(b *testing.B) {
	buf := make([]byte, 0, 64)
	ts := time.UnixMilli(1_700_000_000_123)
	for b.Loop() {
		buf = appendTimestamp(buf[:0], ts)
	}
}
