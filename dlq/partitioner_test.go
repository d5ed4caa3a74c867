package dlq

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
)

func TestMurmur2MatchesKafka(t *testing.T) {
	// Vectors from Kafka's own tests of its Java murmur2, as signed 32-bit values.
	tests := []struct {
		in   string
		want int32
	}{
		{"21", -973932308},
		{"foobar", -790332482},
		{"a-little-bit-long-string", -985981536},
		{"a-little-bit-longer-string", -1486304829},
		{"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971},
		{"abc", 479470107},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			if got := int32(murmur2([]byte(tt.in))); got != tt.want {
				t.Fatalf("murmur2(%q) = %d, want %d", tt.in, got, tt.want)
			}
		})
	}
}

func TestPartitionerFallsBackLikeKafka(t *testing.T) {
	// With the source partition out of range, a keyed record must land where kgo's Kafka-compatible key
	// partitioner puts it, for every key length (the tail handling of murmur2) and partition count.
	kafka := kgo.StickyKeyPartitioner(nil).ForTopic("t")
	ours := Partitioner().ForTopic("t")
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 2000 {
		key := make([]byte, i%37)
		for j := range key {
			key[j] = byte(rng.UintN(256))
		}
		n := 1 + rng.IntN(64)
		rec := &kgo.Record{Key: key, Partition: int32(n + rng.IntN(100))}
		want := kafka.Partition(&kgo.Record{Key: key}, n)
		if got := ours.Partition(rec, n); got != want {
			t.Fatalf("key %x over %d partitions: got %d, kafka %d", key, n, got, want)
		}
	}
}

func TestPartitioner(t *testing.T) {
	tests := []struct {
		name      string
		key       []byte
		partition int32
		n         int
		want      int
	}{
		{"source partition kept", []byte("k"), 5, 8, 5},
		{"partition zero kept", nil, 0, 1, 0},
		{"last partition kept", nil, 7, 8, 7},
		{"fewer partitions: key hash", []byte("foobar"), 5, 3, 1357151166 % 3}, // murmur2 -790332482, sign bit cleared
		{"fewer partitions: empty key is hashed too", []byte{}, 5, 3, int(murmur2(nil)&0x7fffffff) % 3},
		{"fewer partitions, no key: modulo", nil, 5, 2, 1},
		{"equal to count, no key: modulo", nil, 4, 4, 0},
		{"negative, no key: modulo of its magnitude", nil, -7, 3, 1},
		{"smallest int32, no key", nil, math.MinInt32, 3, int(-int64(math.MinInt32) % 3)},
	}
	p := Partitioner().ForTopic("any")
	if !p.RequiresConsistency(&kgo.Record{}) {
		t.Fatal("partitioner must be consistent: a retried copy has to land where the first try went")
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &kgo.Record{Key: tt.key, Partition: tt.partition}
			for range 3 { // the same answer every time
				if got := p.Partition(rec, tt.n); got != tt.want {
					t.Fatalf("Partition(key %q, partition %d, n %d) = %d, want %d", tt.key, tt.partition, tt.n, got, tt.want)
				}
			}
		})
	}
}

func BenchmarkPartitionerHash(b *testing.B) {
	p := Partitioner().ForTopic("t")
	rec := &kgo.Record{Key: []byte("customer-000042"), Partition: 12}
	for b.Loop() {
		_ = p.Partition(rec, 6)
	}
}
