package demo

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// TestDemoFinishesEveryRecord runs the demo as CI would, with its output not a terminal: plain progress lines, no
// carriage-return redraws, and a summary whose outcomes add up to the records produced and to one per message ID.
func TestDemoFinishesEveryRecord(t *testing.T) {
	var out bytes.Buffer
	sum, err := Run(context.Background(), Options{
		Records: 300, Duplicates: 40, Partitions: 4, Timeout: 90 * time.Second, Progress: 50 * time.Millisecond,
	}, &out)
	if err != nil {
		t.Fatalf("demo: %v\n%s", err, out.String())
	}
	if sum.Produced != 340 || sum.IDs != 300 || sum.Again != 40 {
		t.Fatalf("produced %d (%d IDs, %d again), want 340 (300, 40)", sum.Produced, sum.IDs, sum.Again)
	}
	if got := sum.Delivered + sum.Duplicates + sum.DeadLettered; got != int64(sum.Produced) {
		t.Fatalf("delivered %d + duplicates %d + dead-lettered %d = %d, want every produced record (%d)",
			sum.Delivered, sum.Duplicates, sum.DeadLettered, got, sum.Produced)
	}
	// Records 13, 110 and 207 are poison; 7, 48, 89, … are flaky (one visit to retry tier 1 each).
	if sum.DeadLettered < 3 || sum.Retried < 1 || sum.Duplicates < 30 {
		t.Fatalf("summary %+v: want dead letters, retries and suppressed duplicates all shown", sum)
	}
	text := out.String()
	if strings.Contains(text, "\r") || strings.Contains(text, "\x1b") {
		t.Errorf("output that is not a terminal holds redraws:\n%q", text)
	}
	lines := strings.Split(strings.TrimSpace(text), "\n")
	progress := 0
	for _, l := range lines {
		if strings.Contains(l, "delivered=") {
			progress++
		}
	}
	// One line a second (plus the last): a run of a few seconds writes a few, not one per 50ms tick.
	if progress == 0 || time.Duration(progress-1)*plainEvery > sum.Elapsed+plainEvery {
		t.Errorf("%d progress lines in %v, want about one a second:\n%s", progress, sum.Elapsed, text)
	}

	var summary bytes.Buffer
	printSummary(&summary, sum)
	t.Logf("%s", summary.String())
	if !strings.Contains(summary.String(), "= records produced; each message ID delivered or refused once") {
		t.Errorf("the summary does not add up:\n%s", summary.String())
	}
}

// TestSummaryReconciles: the summary says when its outcomes do not add up, rather than printing numbers that
// silently disagree.
func TestSummaryReconciles(t *testing.T) {
	ok := Summary{Produced: 110, IDs: 100, Again: 10, AgainRefused: 1, Delivered: 97, RefusedIDs: 3, DeadLettered: 4, Duplicates: 9}
	for _, tt := range []struct {
		name string
		s    Summary
		want string
	}{
		{"adds up", ok, "= records produced; each message ID delivered or refused once"},
		{"a record unaccounted", func() Summary { s := ok; s.Duplicates = 8; return s }(), "does NOT add up to the 110 records produced"},
		{"an ID delivered twice", func() Summary { s := ok; s.Delivered, s.Duplicates = 98, 8; return s }(), "101 message IDs delivered or refused of 100"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := reconcile(tt.s); !strings.Contains(got, tt.want) {
				t.Errorf("reconcile = %q, want %q", got, tt.want)
			}
		})
	}
	var b bytes.Buffer
	printSummary(&b, ok)
	for _, want := range []string{"3 message IDs the app refused", "1 of them twice", "9 already delivered, 0 already dead-lettered", "110   = records produced"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("summary lacks %q:\n%s", want, b.String())
		}
	}
}

// TestWaitingFor: the progress line names what unfinished records wait for.
func TestWaitingFor(t *testing.T) {
	reg := prometheus.NewRegistry()
	waiting := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "kafka_sidecar_retry_waiting_records"}, []string{"topic"})
	paused := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "kafka_sidecar_paused"}, []string{"reason"})
	reg.MustRegister(waiting, paused)
	delays := map[string]time.Duration{"orders.demo.retry.1": time.Second, "orders.demo.retry.2": 2 * time.Second}
	if got := waitingFor(reg, delays); got != "" {
		t.Errorf("nothing waits, got %q", got)
	}
	waiting.WithLabelValues("orders.demo.retry.1").Set(4)
	waiting.WithLabelValues("orders.demo.retry.2").Set(0)
	paused.WithLabelValues("app_unavailable").Set(1)
	paused.WithLabelValues("dedup_unavailable").Set(0)
	want := "waiting: 4 in orders.demo.retry.1 (its 1s retry delay), delivery paused: app_unavailable"
	if got := waitingFor(reg, delays); got != want {
		t.Errorf("waitingFor = %q, want %q", got, want)
	}
}
