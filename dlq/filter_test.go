package dlq

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParseOffsets(t *testing.T) {
	tests := []struct {
		in      string
		want    []Position
		wantErr string
	}{
		{in: "0:17", want: []Position{{0, 17}}},
		{in: " 3:5 , 0:17,3:5", want: []Position{{0, 17}, {3, 5}}},
		{in: "2:9,1:0,2:1", want: []Position{{1, 0}, {2, 1}, {2, 9}}},
		{in: "", wantErr: "empty list"},
		{in: "   ", wantErr: "empty list"},
		{in: "5", wantErr: `"5" is not P:O`},
		{in: "0:1,", wantErr: `"" is not P:O`},
		{in: "a:1", wantErr: "partition"},
		{in: "-1:1", wantErr: "partition"},
		{in: "2147483648:1", wantErr: "partition"},
		{in: "1:x", wantErr: "offset"},
		{in: "1:-3", wantErr: "offset"},
		{in: "1:2:3", wantErr: "offset"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseOffsets(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseOffsets(%q) error = %v, want one containing %q", tt.in, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseOffsets(%q): %v", tt.in, err)
			}
			if !slices.Equal(got, tt.want) {
				t.Fatalf("ParseOffsets(%q) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}

func TestParseTime(t *testing.T) {
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		in      string
		want    time.Time
		wantErr string
	}{
		{in: "2025-02-28T10:00:00Z", want: time.Date(2025, 2, 28, 10, 0, 0, 0, time.UTC)},
		{in: "2025-02-28T10:00:00+02:00", want: time.Date(2025, 2, 28, 8, 0, 0, 0, time.UTC)},
		{in: "90m", want: now.Add(-90 * time.Minute)},
		{in: " 36h ", want: now.Add(-36 * time.Hour)},
		{in: "", wantErr: "empty"},
		{in: "0s", wantErr: "positive"},
		{in: "-1h", wantErr: "positive"},
		{in: "yesterday", wantErr: "not RFC 3339"},
		{in: "2025-02-28", wantErr: "not RFC 3339"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseTime(tt.in, now)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseTime(%q) error = %v, want one containing %q", tt.in, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseTime(%q): %v", tt.in, err)
			}
			if !got.Equal(tt.want) {
				t.Fatalf("ParseTime(%q) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}

func TestValidateStatus(t *testing.T) {
	for _, ok := range []string{"", "none", "422", "100", "599", "5xx", "4XX"} {
		if err := ValidateStatus(ok); err != nil {
			t.Errorf("ValidateStatus(%q) = %v, want nil", ok, err)
		}
	}
	for _, bad := range []string{"99", "600", "6xx", "0xx", "abc", "42", "5x"} {
		if err := ValidateStatus(bad); err == nil {
			t.Errorf("ValidateStatus(%q) = nil, want an error", bad)
		}
	}
}

func TestFilterMatch(t *testing.T) {
	at := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	e := Entry{
		DLQPartition: 2, DLQOffset: 7, ID: "orders/1/40", OriginalTopic: "orders", OriginalPartition: 1,
		OriginalOffset: 40, Attempts: 3, Status: "503", Error: "http 503: database unavailable", FailedAt: at,
		Key: "customer-42",
	}
	noTime := e
	noTime.FailedAt = time.Time{}
	noStatus := e
	noStatus.Status = ""
	tests := []struct {
		name string
		f    Filter
		e    Entry
		want bool
	}{
		{"zero filter", Filter{}, e, true},
		{"since before", Filter{Since: at.Add(-time.Second)}, e, true},
		{"since equal", Filter{Since: at}, e, true},
		{"since after", Filter{Since: at.Add(time.Second)}, e, false},
		{"since without failure time", Filter{Since: at.Add(-time.Hour)}, noTime, false},
		{"until after", Filter{Until: at.Add(time.Second)}, e, true},
		{"until equal is exclusive", Filter{Until: at}, e, false},
		{"until without failure time", Filter{Until: at.Add(time.Hour)}, noTime, false},
		{"original topic", Filter{OriginalTopic: "orders"}, e, true},
		{"other original topic", Filter{OriginalTopic: "payments"}, e, false},
		{"status exact", Filter{Status: "503"}, e, true},
		{"status other", Filter{Status: "500"}, e, false},
		{"status class", Filter{Status: "5xx"}, e, true},
		{"status other class", Filter{Status: "4xx"}, e, false},
		{"status none on a status", Filter{Status: "none"}, e, false},
		{"status none", Filter{Status: "none"}, noStatus, true},
		{"status class without status", Filter{Status: "5xx"}, noStatus, false},
		{"error substring", Filter{Error: "database"}, e, true},
		{"error missing", Filter{Error: "timeout"}, e, false},
		{"key", Filter{Key: "customer-42"}, e, true},
		{"key prefix is not enough", Filter{Key: "customer-4"}, e, false},
		{"offsets hit", Filter{Offsets: []Position{{0, 7}, {2, 7}}}, e, true},
		{"offsets miss", Filter{Offsets: []Position{{2, 6}, {1, 7}}}, e, false},
		{"all set", Filter{Since: at.Add(-time.Hour), Until: at.Add(time.Hour), OriginalTopic: "orders",
			Status: "5xx", Error: "503", Key: "customer-42", Offsets: []Position{{2, 7}}}, e, true},
		{"all set but one", Filter{Since: at.Add(-time.Hour), Until: at.Add(time.Hour), OriginalTopic: "orders",
			Status: "5xx", Error: "503", Key: "other", Offsets: []Position{{2, 7}}}, e, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.f.Match(tt.e); got != tt.want {
				t.Fatalf("Match = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestScanLimits(t *testing.T) {
	if got := (Filter{}).scanLimits(); got != nil {
		t.Fatalf("scanLimits of no offsets = %v, want nil (read everything)", got)
	}
	got := Filter{Offsets: []Position{{0, 3}, {2, 9}, {0, 11}}}.scanLimits()
	if len(got) != 2 || got[0] != 11 || got[2] != 9 {
		t.Fatalf("scanLimits = %v, want map[0:11 2:9]", got)
	}
}

// FuzzParseOffsets states: no panic; on success the list is non-empty, sorted, free of duplicates and
// negative numbers, and formatting it back parses to the same list.
func FuzzParseOffsets(f *testing.F) {
	for _, s := range []string{"0:17", "3:5,0:17,3:5", " 1 : 2 ", "", "5", "a:b", "-1:2", "1:-2", "0:9223372036854775807", "1:2:3", ",,"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := ParseOffsets(s)
		if err != nil {
			return
		}
		if len(got) == 0 {
			t.Fatalf("ParseOffsets(%q) succeeded with no positions", s)
		}
		parts := make([]string, len(got))
		for i, p := range got {
			if p.Partition < 0 || p.Offset < 0 {
				t.Fatalf("ParseOffsets(%q) gave negative position %v", s, p)
			}
			if i > 0 && comparePositions(got[i-1], p) >= 0 {
				t.Fatalf("ParseOffsets(%q) = %v: not sorted and unique", s, got)
			}
			parts[i] = p.String()
		}
		again, err := ParseOffsets(strings.Join(parts, ","))
		if err != nil || !slices.Equal(again, got) {
			t.Fatalf("round trip of %v = %v, %v", got, again, err)
		}
	})
}

// FuzzParseTime states: no panic; a success is either the RFC 3339 time given or a time strictly
// before now (a duration back from now).
func FuzzParseTime(f *testing.F) {
	for _, s := range []string{"2025-02-28T10:00:00Z", "2025-02-28T10:00:00.5+02:00", "90m", "1h30m", "0s", "-1h", "", "x", "9999999999h"} {
		f.Add(s)
	}
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, s string) {
		got, err := ParseTime(s, now)
		if err != nil {
			return
		}
		if _, rfcErr := time.Parse(time.RFC3339, strings.TrimSpace(s)); rfcErr == nil {
			return
		}
		if !got.Before(now) {
			t.Fatalf("ParseTime(%q) = %v, not before now (%v)", s, got, now)
		}
	})
}

func BenchmarkFilterMatch(b *testing.B) {
	f := Filter{Since: time.Unix(1_700_000_000, 0), OriginalTopic: "orders", Status: "5xx", Error: "database",
		Offsets: []Position{{0, 1}, {1, 5}, {2, 7}}}
	e := Entry{DLQPartition: 2, DLQOffset: 7, OriginalTopic: "orders", Status: "503",
		Error: "http 503: database unavailable", FailedAt: time.Unix(1_700_000_100, 0)}
	b.ReportAllocs()
	for b.Loop() {
		if !f.Match(e) {
			b.Fatal("no match")
		}
	}
}
