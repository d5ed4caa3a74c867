// Package chaos is the no-loss proof of the sidecar: it runs the real binary as several processes in one
// consumer group, feeds them tens of thousands of records with unique message IDs, and while they work it
// crashes and restarts sidecars, shuts one down gracefully, restarts redis-server and, on a real cluster,
// kills a Kafka node. An app in the harness process answers with random latency, random 500s and a fixed set
// of records it refuses, all decided from one seed, so the dead letters the run must end with are known
// before it starts.
//
// A run passes when every message ID either reached the app with a 2xx or sits in the dead-letter topic,
// the dead-letter topic holds exactly the IDs the app refused for good, and the group's committed offsets
// reach the end of every source and retry partition. Duplicates (2xx deliveries beyond the first per ID) are
// counted and reported, not failed: crashes and a Redis that loses its marks make some unavoidable.
//
// [Run] is the harness; test/chaos/cmd is its command line and chaos_test.go runs a short version in the
// normal test run and the full one when TEST_KAFKA_BROKERS names the real cluster. [Soak] reuses the same parts
// for a long run at a steady rate with a member restarted every few minutes, sampling the resources of each
// sidecar and of Redis and failing on their growth as well as on loss; test/soak is its command line.
package chaos
