package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// result is one row of the table. Pointer fields are nil where the figure does not apply (the baselines run
// inside the bench process, so they have no CPU or RSS of their own).
type result struct {
	Name               string   `json:"name"`
	Records            int      `json:"records"`
	Seconds            float64  `json:"seconds"`
	RecordsPerSec      float64  `json:"records_per_sec"`
	CPUMicrosPerRecord *float64 `json:"cpu_us_per_record,omitempty"`
	// RedisCPUMicrosPerRecord is redis-server's CPU per record in the same window.
	RedisCPUMicrosPerRecord *float64 `json:"redis_cpu_us_per_record,omitempty"`
	// RedisCommandsPerRecord is the commands redis-server processed per record in the same window, as its
	// total_commands_processed counts them: a script call counts once, and so does each command it runs.
	RedisCommandsPerRecord *float64 `json:"redis_commands_per_record,omitempty"`
	// RedisBytesPerRecord is redis-server's used_memory growth over the same window divided by the records done
	// in it: what the dedup marks of a record cost the store.
	RedisBytesPerRecord *float64 `json:"redis_bytes_per_record,omitempty"`
	// BusyPercent is the CPU of every process of the run (sidecar, redis-server, and this tool with kfake and
	// the app) over the window, as a share of all the machine's cores: near 100 the machine is the limit.
	BusyPercent *float64 `json:"busy_percent,omitempty"`
	PeakRSSMiB  *float64 `json:"peak_rss_mib,omitempty"`
	P50Ms       *float64 `json:"latency_p50_ms,omitempty"`
	P99Ms       *float64 `json:"latency_p99_ms,omitempty"`
	Note        string   `json:"note,omitempty"`
}

// check is one target from the issue, measured in this run.
type check struct {
	Name     string  `json:"name"`
	Measured float64 `json:"measured"`
	Unit     string  `json:"unit"`
	// Target is the bound; AtMost tells whether measured must stay at or below it (else at or above).
	Target float64 `json:"target"`
	AtMost bool    `json:"at_most"`
	Pass   bool    `json:"pass"`
}

// report is what one bench run found, as written by -json.
type report struct {
	Started time.Time `json:"started"`
	CPUs    int       `json:"cpus"`
	Go      string    `json:"go"`
	Results []result  `json:"results"`
	Checks  []check   `json:"checks"`
	Errors  []string  `json:"errors,omitempty"`
}

func newCheck(name string, measured float64, unit string, target float64, atMost bool) check {
	pass := measured >= target
	if atMost {
		pass = measured <= target
	}
	if math.IsNaN(measured) || math.IsInf(measured, 0) {
		pass = false
	}
	return check{Name: name, Measured: measured, Unit: unit, Target: target, AtMost: atMost, Pass: pass}
}

// percentile returns the q-quantile (0..1) of ds by the nearest-rank method; 0 for no samples.
func percentile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	rank := int(math.Ceil(q*float64(len(s)))) - 1
	return s[min(max(rank, 0), len(s)-1)]
}

func millis(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func ptr(f float64) *float64 { return &f }

func cell(f *float64, prec int) string {
	if f == nil {
		return "—"
	}
	return strconv.FormatFloat(*f, 'f', prec, 64)
}

// writeMarkdown prints the results and the checks as two markdown tables.
func writeMarkdown(w io.Writer, r report) error {
	var b strings.Builder
	b.WriteString("| mode | records | records/s | CPU µs/record | Redis CPU µs/record | Redis commands/record | Redis used_memory growth ÷ records done | machine busy % | peak RSS MiB | latency p50 ms | latency p99 ms | note |\n")
	b.WriteString("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n")
	for _, x := range r.Results {
		fmt.Fprintf(&b, "| %s | %d | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", x.Name, x.Records,
			strconv.FormatFloat(x.RecordsPerSec, 'f', 0, 64), cell(x.CPUMicrosPerRecord, 1),
			cell(x.RedisCPUMicrosPerRecord, 1), cell(x.RedisCommandsPerRecord, 3), cell(x.RedisBytesPerRecord, 2),
			cell(x.BusyPercent, 0),
			cell(x.PeakRSSMiB, 1), cell(x.P50Ms, 1), cell(x.P99Ms, 1), x.Note)
	}
	if len(r.Checks) > 0 {
		b.WriteString("\n| target | measured | bound | |\n|---|---:|---:|---|\n")
		for _, c := range r.Checks {
			op, verdict := "≥", "FAIL"
			if c.AtMost {
				op = "≤"
			}
			if c.Pass {
				verdict = "pass"
			}
			fmt.Fprintf(&b, "| %s | %s%s | %s %s%s | %s |\n", c.Name, strconv.FormatFloat(c.Measured, 'f', 2, 64),
				c.Unit, op, strconv.FormatFloat(c.Target, 'f', -1, 64), c.Unit, verdict)
		}
	}
	for _, e := range r.Errors {
		fmt.Fprintf(&b, "\nerror: %s\n", e)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// writeJSON writes the report as indented JSON.
func writeJSON(w io.Writer, r report) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(r); err != nil {
		return fmt.Errorf("encoding the report: %w", err)
	}
	return nil
}
