package dedup

import (
	"context"
	"fmt"
	"testing"

	"github.com/kafka-sidecar/kafka-sidecar/test/redistest"
)

func TestHashSlot(t *testing.T) {
	for _, tc := range []struct {
		key  string
		want uint16
	}{
		// Values from Redis Cluster (CLUSTER KEYSLOT) and its specification.
		{"foo", 12182},
		{"bar", 5061},
		{"123456789", 0x31c3 & 16383},
		{"", 0},
		{"{user1000}.following", 3443},
		{"{user1000}.followers", 3443},
		{"user1000", 3443},
		{"foo{}{bar}", 8363},    // an empty first tag means the whole key is hashed
		{"foo{{bar}}zap", 4015}, // the tag is "{bar"
		{"foo{bar}{zap}", 5061}, // only the first tag counts
	} {
		t.Run(tc.key, func(t *testing.T) {
			if got := hashSlot(tc.key); got != tc.want {
				t.Fatalf("hashSlot(%q) = %d, want %d", tc.key, got, tc.want)
			}
		})
	}
}

func BenchmarkHashSlot(b *testing.B) {
	key := "kafka-sidecar:orders-consumer:orders/11/1099999"
	for b.Loop() {
		_ = hashSlot(key)
	}
}

// TestHashSlotMatchesServer asks a real cluster node for the slot of keys this package groups by.
func TestHashSlotMatchesServer(t *testing.T) {
	node := redistest.StartCluster(t, 1).Nodes[0].Client(t)
	keys := []string{"foo", "{user1000}.following", "foo{}{bar}", "foo{{bar}}zap", "\x00\xff{\x01}", "kafka-sidecar:g:orders/3/17"}
	for i := range 200 {
		keys = append(keys, fmt.Sprintf("kafka-sidecar:g:%d/%d", i%7, i*7919))
	}
	for _, k := range keys {
		want, err := node.ClusterKeySlot(context.Background(), k).Result()
		if err != nil {
			t.Fatalf("CLUSTER KEYSLOT %q: %v", k, err)
		}
		if got := hashSlot(k); int64(got) != want {
			t.Fatalf("hashSlot(%q) = %d, server says %d", k, got, want)
		}
	}
}
