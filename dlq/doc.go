// Package dlq writes records the app could not take to the dead-letter topic, and reads them back.
//
// Producer.Send is the durable write both failure routes share (retry tiers and the dead-letter topic): it
// returns only after the broker acknowledged the copy from all in-sync replicas, retrying through broker
// trouble for as long as its context allows, because the source record's offset is committed as soon as
// Send returns nil — the copy is then the only place the record lives. ProducerOpts holds the client
// settings that make this hold (acks=all, the idempotent producer, unlimited retries inside the client),
// and Partitioner keeps a copy on the partition number of its source record.
//
// DeadLetter builds a dead-letter record from a failed one; Decode turns a dead-letter record back into an
// Entry, the form `kafka-sidecar dlq list` prints.
package dlq
