package dedup_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/kafka-sidecar/kafka-sidecar/dedup"
	"github.com/kafka-sidecar/kafka-sidecar/test/redistest"
	"github.com/redis/go-redis/v9"
)

// TestReplayMarks runs the replay marks on a real redis-server: a position marked twice, even by racing
// replays, raises its message's count once; another position of the same message raises it again; marks of
// another group are not seen.
func TestReplayMarks(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	rc := redis.NewClient(srv.ClientOptions())
	t.Cleanup(func() { _ = rc.Close() })
	marks, err := dedup.NewReplayMarks(rc, dedup.KeyPrefix("kafka-sidecar", "billing"), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	other, err := dedup.NewReplayMarks(rc, dedup.KeyPrefix("kafka-sidecar", "shipping"), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := marks.Mark(ctx, "orders.billing.dlq/0/7", "orders/0/41"); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if err := marks.Mark(ctx, "orders.billing.dlq/0/9", "orders/0/41"); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		marks    *dedup.ReplayMarks
		pos      string
		replayed bool
		count    int
	}{
		{marks, "orders.billing.dlq/0/7", true, 2},
		{marks, "orders.billing.dlq/0/8", false, 2},
		{other, "orders.billing.dlq/0/7", false, 0},
	} {
		replayed, err := tt.marks.Replayed(ctx, tt.pos)
		if err != nil || replayed != tt.replayed {
			t.Errorf("Replayed(%s) = %v, %v; want %v", tt.pos, replayed, err, tt.replayed)
		}
		count, err := tt.marks.Count(ctx, "orders/0/41")
		if err != nil || count != tt.count {
			t.Errorf("Count = %d, %v; want %d", count, err, tt.count)
		}
	}
	if ttl := rc.PTTL(ctx, "kafka-sidecar:billing:replay:orders.billing.dlq/0/7").Val(); ttl <= 0 || ttl > time.Hour {
		t.Errorf("position mark expires in %v, want within the hour it was given", ttl)
	}
	if _, err := dedup.NewReplayMarks(rc, "p:", 0); err == nil {
		t.Error("NewReplayMarks accepted a ttl of 0")
	}
}
