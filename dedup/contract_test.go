package dedup_test

import (
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/kafka-sidecar/kafka-sidecar/dedup"
	"github.com/kafka-sidecar/kafka-sidecar/dedup/storetest"
	"github.com/kafka-sidecar/kafka-sidecar/test/redistest"
)

func TestMemoryContract(t *testing.T) {
	storetest.Run(t, memoryFactory())
}

func TestMiniredisContract(t *testing.T) {
	storetest.Run(t, miniredisFactory())
}

func TestRedisContract(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t, redistest.Options{})
	storetest.Run(t, realRedisFactory(srv))
}

func TestRedisContractMutualTLSWithPassword(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t, redistest.Options{TLS: true, TLSAuthClients: true, Password: "contract-secret"})
	storetest.Run(t, realRedisFactory(srv))
}

func TestRedisClusterContract(t *testing.T) {
	t.Parallel()
	cluster := redistest.StartCluster(t, 3)
	storetest.Run(t, func(t *testing.T, owner string) dedup.Store {
		s := dedup.NewRedis(redis.NewClusterClient(cluster.ClusterOptions()), dedup.RedisOptions{
			KeyPrefix: "kafka-sidecar:test:", Owner: owner, Lease: storetest.Lease, TTL: storetest.TTL, IDTTL: storetest.IDTTL,
		})
		t.Cleanup(func() { _ = s.Close() })
		return s
	})
}
