// Package parallel proves the sidecar's concurrency promises end to end, against kfake (or the real cluster
// when TEST_KAFKA_BROKERS is set), a real redis-server and a real HTTP app: per-key order under random app
// latencies, no loss and no concurrent double delivery while members join and leave, bounded buffering under
// backpressure, and per-record routing in batch mode. Its benchmarks run the in-process sidecar on a backlog
// for profiling the hot path.
package parallel
