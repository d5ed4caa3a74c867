package dedup_test

import (
	"context"
	"fmt"
	"time"

	"github.com/kafka-sidecar/kafka-sidecar/dedup"
)

// The life of one record: the first sidecar claims and completes it; a redelivery of the same record (same
// position) is then skipped as done, and so is the same message at another offset while its ID mark lives; a
// second sidecar is kept out during the first one's lease.
func ExampleMemory() {
	ctx := context.Background()
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	opts := dedup.MemoryOptions{Lease: 40 * time.Second, TTL: 7 * 24 * time.Hour, IDTTL: 24 * time.Hour, Now: clock}
	opts.Owner = "pod-a"
	podA := dedup.NewMemory(opts)
	opts.Owner = "pod-b"
	podB := podA.Shared(opts)
	first := dedup.Mark{Topic: "orders", Partition: 0, Epoch: 5, Offset: 42, ID: "order-7", OwnID: true}
	resent := dedup.Mark{Topic: "orders", Partition: 0, Epoch: 5, Offset: 99, ID: "order-7", OwnID: true}
	claim := func(s dedup.Store, m dedup.Mark) dedup.Status {
		st, _ := s.Apply(ctx, dedup.Ops{Claim: []dedup.Mark{m}})
		return st[0]
	}

	fmt.Println("pod-a claims:", claim(podA, first))
	fmt.Println("pod-b claims during the lease:", claim(podB, first))
	_, _ = podA.Apply(ctx, dedup.Ops{Complete: []dedup.Mark{first}})
	fmt.Println("pod-b claims after completion:", claim(podB, first))
	fmt.Println("the message resent at another offset:", claim(podB, resent))

	now = now.Add(25 * time.Hour) // past the ID window, within the position window
	fmt.Println("the record itself a day later:", claim(podB, first))
	fmt.Println("the message resent a day later:", claim(podB, resent))
	// Output:
	// pod-a claims: claimed
	// pod-b claims during the lease: busy
	// pod-b claims after completion: done
	// the message resent at another offset: done
	// the record itself a day later: done
	// the message resent a day later: claimed
}

// A Coalescer in front of a store serves one record per call from many goroutines, batching them underneath.
func ExampleCoalescer() {
	ctx := context.Background()
	store := dedup.NewMemory(dedup.MemoryOptions{Owner: "pod-a"})
	c := dedup.NewCoalescer(store, 128)
	defer c.Close()
	rec := dedup.Mark{Topic: "orders", Partition: 3, Epoch: 1, Offset: 1001, ID: "orders/3/1001"}

	st, err := c.Claim(ctx, rec)
	if err != nil {
		fmt.Println("store unavailable, pause and retry:", err)
		return
	}
	if st == dedup.Claimed {
		// ... deliver the record to the app, then:
		_ = c.Complete(ctx, rec)
	}
	st, _ = c.Claim(ctx, rec)
	fmt.Println(st)
	// Output: done
}
