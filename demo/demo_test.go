package demo

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"
)

func TestDemoFinishesEveryRecord(t *testing.T) {
	var out bytes.Buffer
	sum, err := Run(context.Background(), Options{
		Records: 300, Duplicates: 40, Partitions: 4, Timeout: 90 * time.Second, Progress: 50 * time.Millisecond,
	}, &out)
	if err != nil {
		t.Fatalf("demo: %v\n%s", err, out.String())
	}
	if sum.Produced != 340 {
		t.Fatalf("produced %d, want 340", sum.Produced)
	}
	if got := sum.Delivered + sum.Duplicates + sum.DeadLettered; got != int64(sum.Produced) {
		t.Fatalf("delivered %d + duplicates %d + dead-lettered %d = %d, want every produced record (%d)",
			sum.Delivered, sum.Duplicates, sum.DeadLettered, got, sum.Produced)
	}
	// Records 13 and 110 and 207 are poison; 7, 48, 89, … are flaky (one visit to retry tier 1 each).
	if sum.DeadLettered < 3 || sum.Retried < 1 || sum.Duplicates < 30 {
		t.Fatalf("summary %+v: want dead letters, retries and suppressed duplicates all shown", sum)
	}
	if !strings.Contains(out.String(), "delivered=") {
		t.Fatalf("no progress line in the output:\n%s", out.String())
	}
}
