// Package pipeline is the record path between the consumer and the app: it claims a message ID in the dedup
// store, hands the record to the app, and routes the answer — done on success, retried in place, parked in a
// retry tier or the dead-letter topic on failure, paused (without using an attempt) while the app or the
// store is unavailable. Process returns nil only for a record that is done, which is what lets the consumer
// commit its offset.
//
// The sidecar drives it through ProcessBatch. A batch of records is claimed in one round trip to the store.
// In batch delivery mode the claimed records then go to the app in one request and their done marks to the
// store in one round trip; in single mode each goes in a request of its own, at most MaxDeliveries at once,
// and is reported done once its mark is written. Whatever a batch cannot finish at once (another member's
// lease, a failed delivery, a store outage) finishes record by record through the same code as Process.
package pipeline
