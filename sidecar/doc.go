// Package sidecar assembles the running program from its parts: Kafka clients, the dedup store, the app
// deliverer, the pipeline and the consumer, the admin server and the start-up audit. cmd/kafka-sidecar only
// parses the command line and calls it; the demo and the end-to-end tests run the very same assembly.
package sidecar
