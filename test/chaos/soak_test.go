package chaos

import (
	"strings"
	"testing"
	"time"
)

// TestSoakLevels proves the growth verdict: a steady process passes, each kind of leak fails on its own figure,
// a soak too short for both windows is not judged, and a backlog at the end fails on lag.
func TestSoakLevels(t *testing.T) {
	o := SoakOptions{Warmup: time.Minute, Window: time.Minute, Rate: 100}
	production := 10 * time.Minute
	// series makes a sample every 10s from 0 to production; grow adds to each figure in proportion to time.
	series := func(grow func(s *Sample, frac float64)) []Sample {
		var out []Sample
		for at := time.Duration(0); at <= production; at += 10 * time.Second {
			s := Sample{At: at, RSS: []int64{40 << 20, 30 << 20}, Goroutines: []int{80, 80}, FDs: []int{60, 60},
				RedisMemory: 4 << 20, Lag: 50}
			grow(&s, float64(at)/float64(production))
			out = append(out, s)
		}
		return out
	}
	tests := []struct {
		name     string
		samples  []Sample
		exceeded string // the level that must fail; empty: none
	}{
		{"steady", series(func(*Sample, float64) {}), ""},
		{"the restarted member's growth is not judged", series(func(s *Sample, f float64) { s.RSS[1] += int64(f * (500 << 20)) }), ""},
		{"memory leak", series(func(s *Sample, f float64) { s.RSS[0] += int64(f * (60 << 20)) }), "sidecar-1 RSS"},
		{"goroutine leak", series(func(s *Sample, f float64) { s.Goroutines[0] += int(f * 200) }), "sidecar-1 goroutines"},
		{"fd leak", series(func(s *Sample, f float64) { s.FDs[0] += int(f * 50) }), "sidecar-1 open fds"},
		{"redis keys without end", series(func(s *Sample, f float64) { s.RedisMemory += int64(f * (20 << 20)) }), "redis used_memory"},
		{"falling behind", series(func(s *Sample, f float64) { s.Lag += int64(f * 10000) }), "source lag (records)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var failed []string
			for _, l := range levels(tt.samples, o, production) {
				if l.Unmeasured {
					t.Errorf("%s not measured", l.Name)
				}
				if l.Exceeded {
					failed = append(failed, l.Name)
				}
			}
			want := []string{}
			if tt.exceeded != "" {
				want = []string{tt.exceeded}
			}
			if strings.Join(failed, ",") != strings.Join(want, ",") {
				t.Errorf("exceeded %v, want %v", failed, want)
			}
		})
	}
	short := levels(series(func(*Sample, float64) {})[:3], o, production)
	for _, l := range short {
		if !l.Unmeasured || l.Exceeded {
			t.Errorf("%s judged on a soak shorter than its windows: %s", l.Name, l)
		}
	}
	for _, tt := range []struct {
		level Level
		want  string
	}{
		{Level{Name: "x", Exceeded: true}, "growth beyond the bound"},
		{Level{Name: "x", Unmeasured: true}, "no samples in a window"},
	} {
		res := SoakResult{Run: &Result{}, Levels: []Level{tt.level}}
		if err := res.Err(); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Err() = %v, want one containing %q", err, tt.want)
		}
	}
	if err := (&SoakResult{Run: &Result{}, Levels: levels(series(func(*Sample, float64) {}), o, production)}).Err(); err != nil {
		t.Errorf("Err() = %v for a steady soak", err)
	}
}
