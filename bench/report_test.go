package main

import (
	"bytes"
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"
)

func TestPercentile(t *testing.T) {
	ms := func(n ...int) []time.Duration {
		out := make([]time.Duration, len(n))
		for i, v := range n {
			out[i] = time.Duration(v) * time.Millisecond
		}
		return out
	}
	tests := []struct {
		name string
		in   []time.Duration
		q    float64
		want time.Duration
	}{
		{"empty", nil, 0.5, 0},
		{"one", ms(7), 0.99, 7 * time.Millisecond},
		{"median of unsorted", ms(5, 1, 3, 2, 4), 0.5, 3 * time.Millisecond},
		{"p99 of 100", ms(seq(100)...), 0.99, 99 * time.Millisecond},
		{"q zero", ms(3, 1, 2), 0, 1 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := percentile(tt.in, tt.q); got != tt.want {
				t.Errorf("percentile = %v, want %v", got, tt.want)
			}
		})
	}
}

func seq(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i + 1
	}
	return out
}

func TestNewCheck(t *testing.T) {
	tests := []struct {
		name     string
		measured float64
		target   float64
		atMost   bool
		pass     bool
	}{
		{"at least, above", 0.8, 0.7, false, true},
		{"at least, equal", 5, 5, false, true},
		{"at least, below", 4.9, 5, false, false},
		{"at most, below", 12, 20, true, true},
		{"at most, above", 21, 20, true, false},
		{"nan never passes", math.NaN(), 1, true, false},
		{"inf never passes", math.Inf(1), 1, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := newCheck("x", tt.measured, "", tt.target, tt.atMost).Pass; got != tt.pass {
				t.Errorf("pass = %v, want %v", got, tt.pass)
			}
		})
	}
}

func TestValueIsRecordSized(t *testing.T) {
	for _, i := range []int{0, 9, 123456, 99999999} {
		v := value(i)
		if len(v) != recordBytes {
			t.Errorf("value(%d) has %d bytes, want %d", i, len(v), recordBytes)
		}
		if !json.Valid(v) {
			t.Errorf("value(%d) is not JSON: %s", i, v)
		}
	}
}

func TestReportOutputs(t *testing.T) {
	r := report{
		Results: []result{
			{Name: "bare HTTP", Records: 10, RecordsPerSec: 1000, BusyPercent: ptr(97.6), P50Ms: ptr(1), P99Ms: ptr(2)},
			{Name: "sidecar", Records: 10, RecordsPerSec: 800, CPUMicrosPerRecord: ptr(12.34),
				RedisCPUMicrosPerRecord: ptr(4.56), RedisCommandsPerRecord: ptr(0.0625), RedisBytesPerRecord: ptr(0.184),
				BusyPercent: ptr(88.8), PeakRSSMiB: ptr(40)},
		},
		Checks: checks(map[string]result{
			runBareName:   {RecordsPerSec: 1000},
			runSingleName: {RecordsPerSec: 800, CPUMicrosPerRecord: ptr(12.34), PeakRSSMiB: ptr(40)},
		}, 10),
	}
	var md bytes.Buffer
	if err := writeMarkdown(&md, r); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"| bare HTTP | 10 | 1000 | — | — | — | — | 98 | — | 1.0 | 2.0 |",
		"| sidecar | 10 | 800 | 12.3 | 4.6 | 0.062 | 0.18 | 89 | 40.0 | — | — |",
		"| per record ÷ bare HTTP | 0.80× | ≥ 0.7× | pass |", "| CPU per record, per-record mode | 12.34 µs | ≤ 20 µs | pass |"} {
		if !strings.Contains(md.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, md.String())
		}
	}
	var js bytes.Buffer
	if err := writeJSON(&js, r); err != nil {
		t.Fatal(err)
	}
	var back report
	if err := json.Unmarshal(js.Bytes(), &back); err != nil {
		t.Fatalf("JSON does not read back: %v", err)
	}
	if len(back.Results) != 2 || len(back.Checks) != 3 || *back.Results[1].CPUMicrosPerRecord != 12.34 {
		t.Errorf("JSON round trip lost data: %+v", back)
	}
}

func TestParseFlags(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"ok", []string{"-binary", "x"}, ""},
		{"no binary", nil, "-binary is required"},
		{"unknown run", []string{"-binary", "x", "-only", "single,nope"}, `unknown run "nope"`},
		{"zero records", []string{"-binary", "x", "-records", "0"}, "-records must be"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseFlags(tt.args, &bytes.Buffer{})
			if tt.wantErr == "" && err != nil {
				t.Fatalf("unexpected error %v", err)
			}
			if tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("err = %v, want it to mention %q", err, tt.wantErr)
			}
		})
	}
}
