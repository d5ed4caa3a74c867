// Package e2e holds the end-to-end proof suite of the assembled sidecar: every test runs the real program
// (in process through package sidecar, or the built binary) against a Kafka cluster (the in-process kfake
// broker, or the real three-node cluster when TEST_KAFKA_BROKERS is set), a real redis-server and a real HTTP
// app on 127.0.0.1 that records and scripts every request.
//
// The tests show the promises of the design notes end to end: offsets are committed only after a record is
// done, a lost consumer offset does not reach the app twice, crashes and restarts lose nothing, failures move
// through the retry tiers to the dead-letter topic with their provenance, and dependency outages pause
// delivery instead of burning attempts. BenchmarkPipeline measures the throughput of the whole path.
//
// The package has no non-test code beyond this file; see README.md for how to run it.
package e2e
