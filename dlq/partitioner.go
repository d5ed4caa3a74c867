package dlq

import "github.com/twmb/franz-go/pkg/kgo"

// Partitioner places a copy on the partition number its record carries in Partition — the source record's
// partition, as envelope.Copy sets it — so that records of one source partition stay together on every tier
// (the topics are created with the source's partition count). When the target topic has fewer partitions
// than that number, a keyed record is placed by the hash of its key the way Kafka's default partitioner
// does (murmur2, sign bit cleared, modulo the partition count), so records of one key still share a
// partition; a record without a key goes to its partition number modulo the partition count.
//
// The placement depends only on the record and the partition count, never on timing, so a copy produced
// again after a failure lands where the first try went.
func Partitioner() kgo.Partitioner {
	return kgo.BasicConsistentPartitioner(func(string) func(*kgo.Record, int) int {
		return partitionFor
	})
}

// partitionFor chooses among n partitions; n is at least 1.
func partitionFor(r *kgo.Record, n int) int {
	p := int64(r.Partition)
	if p >= 0 && p < int64(n) {
		return int(p)
	}
	if r.Key != nil {
		return int(murmur2(r.Key)&0x7fffffff) % n
	}
	if p < 0 {
		p = -p // int64, so even the smallest int32 has a positive counterpart
	}
	return int(p % int64(n))
}

// murmur2 is the 32-bit MurmurHash2 with the seed Kafka's Java client uses for key partitioning, so a
// keyed copy lands where a Java producer would put the same key.
func murmur2(data []byte) uint32 {
	const (
		seed uint32 = 0x9747b28c
		m    uint32 = 0x5bd1e995
		r           = 24
	)
	h := seed ^ uint32(len(data))
	for len(data) >= 4 {
		k := uint32(data[0]) | uint32(data[1])<<8 | uint32(data[2])<<16 | uint32(data[3])<<24
		k *= m
		k ^= k >> r
		k *= m
		h *= m
		h ^= k
		data = data[4:]
	}
	switch len(data) {
	case 3:
		h ^= uint32(data[2]) << 16
		fallthrough
	case 2:
		h ^= uint32(data[1]) << 8
		fallthrough
	case 1:
		h ^= uint32(data[0])
		h *= m
	}
	h ^= h >> 13
	h *= m
	h ^= h >> 15
	return h
}
