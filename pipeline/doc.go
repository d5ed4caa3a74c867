// Package pipeline is the record path between the consumer and the app: it claims a message ID in the dedup
// store, hands the record to the app, and routes the answer — done on success, retried in place, parked in a
// retry tier or the dead-letter topic on failure, paused (without using an attempt) while the app or the
// store is unavailable. Process returns nil only for a record that is done, which is what lets the consumer
// commit its offset.
package pipeline
