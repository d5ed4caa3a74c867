package main

import (
	"os"
	"testing"
	"time"
)

func TestParseStatCPU(t *testing.T) {
	tests := []struct {
		name    string
		stat    string
		want    time.Duration
		wantErr bool
	}{
		{"plain", "42 (kafka-sidecar) S 1 42 42 0 -1 4194560 100 0 0 0 250 30 0 0 20 0 7 0 100 1000 200", 2800 * time.Millisecond, false},
		{"name with spaces and parens", "7 (a) b (c)) R 1 7 7 0 -1 0 0 0 0 0 1 2 0 0 20 0 1 0 1 1 1", 30 * time.Millisecond, false},
		{"no name", "7 a R 1", 0, true},
		{"too short", "7 (a) R 1 2 3", 0, true},
		{"not a number", "7 (a) R 1 7 7 0 -1 0 0 0 0 0 x 2 0", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseStatCPU([]byte(tt.stat))
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("cpu = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestParseStatusKB(t *testing.T) {
	status := "Name:\tkafka-sidecar\nVmPeak:\t  900000 kB\nVmHWM:\t   40960 kB\nVmRSS:\t   30000 kB\n"
	tests := []struct {
		name, status, field string
		want                int64
		wantErr             bool
	}{
		{"hwm", status, "VmHWM", 40960 << 10, false},
		{"rss", status, "VmRSS", 30000 << 10, false},
		{"missing", status, "VmSwap", 0, true},
		{"no unit", "VmHWM:\t12\n", "VmHWM", 0, true},
		{"negative", "VmHWM:\t-1 kB\n", "VmHWM", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseStatusKB([]byte(tt.status), tt.field)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("bytes = %d, want %d", got, tt.want)
			}
		})
	}
}

// TestOwnProcess reads this test process's own figures: they must be positive.
func TestOwnProcess(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("no /proc on this system")
	}
	rss, err := peakRSS(os.Getpid())
	if err != nil || rss <= 0 {
		t.Fatalf("peakRSS = %d, %v; want a positive size", rss, err)
	}
	if _, err := processCPU(os.Getpid()); err != nil {
		t.Fatalf("processCPU: %v", err)
	}
}

// FuzzParseStatCPU: any input either fails or gives a non-negative duration, and never panics.
func FuzzParseStatCPU(f *testing.F) {
	f.Add("42 (kafka-sidecar) S 1 42 42 0 -1 4194560 100 0 0 0 250 30 0 0 20 0 7 0 100 1000 200")
	f.Add("1 ()) ) R 1 1 1 0 0 0 0 0 0 0 18446744073709551615 1")
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		d, err := parseStatCPU([]byte(s))
		if err == nil && d < 0 {
			t.Fatalf("negative cpu %v for %q", d, s)
		}
	})
}

// FuzzParseStatusKB: any input either fails or gives a non-negative size that is a whole number of KiB.
func FuzzParseStatusKB(f *testing.F) {
	f.Add("VmHWM:\t   40960 kB\n")
	f.Add("VmHWM: 99999999999999999999 kB")
	f.Add("VmHWM:")
	f.Fuzz(func(t *testing.T, s string) {
		n, err := parseStatusKB([]byte(s), "VmHWM")
		if err == nil && (n < 0 || n%1024 != 0) {
			t.Fatalf("bad size %d for %q", n, s)
		}
	})
}
