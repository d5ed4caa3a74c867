// Command bench measures the sidecar binary against the limits of the machine it runs on.
//
// It starts an in-process Kafka (kfake), a real redis-server on a free 127.0.0.1 port and a local app with a
// configurable latency, preloads records (200 bytes, 12 partitions), runs the real binary as a child process
// for each mode, and prints one markdown table: records/s, CPU µs per record (utime+stime of the child from
// /proc), peak RSS (VmHWM) and delivery latency p50/p99 (app arrival minus record timestamp, measured on a
// paced tail produced after the backlog is done, so the figure is the pipeline's latency and not the age of the
// backlog), and beside them redis-server's CPU and commands per record and how busy the run's processes kept
// the machine's cores. In the same run it measures two baselines and prints the ratios against them:
//
//   - bare HTTP: a Go client posting the same bodies to the same app with the same concurrency, the ceiling a
//     sidecar can approach;
//   - naive: one POST, one Redis SET NX and one synchronous offset commit per record, one record at a time,
//     what a hand-written consumer loop does.
//
// The run single-avro repeats the per-record run with values in Avro wire format against an in-memory schema
// registry and SIDECAR_DECODE=json, for the CPU that decoding adds per record.
//
// Usage:
//
//	go build -o bin/kafka-sidecar ./cmd/kafka-sidecar
//	go run ./bench -binary bin/kafka-sidecar [-records 100000] [-json results.json]
//
// Every run is bounded in records and time (-run-timeout); the whole tool stops at -timeout. The CPU of the
// in-process Kafka, the app and the load generators is in the bench process, not in the sidecar's figures,
// but they share the machine's cores with it.
package main
