package dedup_test

import (
	"context"
	"fmt"
	"time"

	"github.com/kafka-sidecar/kafka-sidecar/dedup"
)

// The life of one message ID: the first sidecar claims and completes it; a redelivery is then skipped as done,
// while a second sidecar is kept out during the first one's lease.
func ExampleMemory() {
	ctx := context.Background()
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	podA := dedup.NewMemory(dedup.MemoryOptions{Owner: "pod-a", Lease: 40 * time.Second, TTL: time.Hour, Now: clock})
	podB := podA.Shared(dedup.MemoryOptions{Owner: "pod-b", Lease: 40 * time.Second, TTL: time.Hour})

	st, _ := podA.Claim(ctx, []string{"orders/0/42"})
	fmt.Println("pod-a claims:", st[0])
	st, _ = podB.Claim(ctx, []string{"orders/0/42"})
	fmt.Println("pod-b claims during the lease:", st[0])

	_ = podA.Complete(ctx, []string{"orders/0/42"})
	st, _ = podB.Claim(ctx, []string{"orders/0/42"})
	fmt.Println("pod-b claims after completion:", st[0])

	now = now.Add(time.Hour + time.Second)
	st, _ = podB.Claim(ctx, []string{"orders/0/42"})
	fmt.Println("pod-b claims after the TTL:", st[0])
	// Output:
	// pod-a claims: claimed
	// pod-b claims during the lease: busy
	// pod-b claims after completion: done
	// pod-b claims after the TTL: claimed
}

// A Coalescer in front of a store serves one ID per call from many goroutines, batching them underneath.
func ExampleCoalescer() {
	ctx := context.Background()
	store := dedup.NewMemory(dedup.MemoryOptions{Owner: "pod-a"})
	c := dedup.NewCoalescer(store, 128)
	defer c.Close()

	st, err := c.Claim(ctx, "orders/3/1001")
	if err != nil {
		fmt.Println("store unavailable, pause and retry:", err)
		return
	}
	if st == dedup.Claimed {
		// ... deliver the record to the app, then:
		_ = c.Complete(ctx, "orders/3/1001")
	}
	st, _ = c.Claim(ctx, "orders/3/1001")
	fmt.Println(st)
	// Output: done
}
