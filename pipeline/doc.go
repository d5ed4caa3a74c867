// Package pipeline is the record path between the consumer and the app: one engine that claims a message ID
// in the dedup store, hands the record to the app, and routes the answer — done on success, retried in place,
// parked in a retry tier or the dead-letter topic on failure, offered again (without using an attempt) while
// the app or the store is unavailable. A record is reported done to the consumer only when it is, which is
// what lets the consumer commit its offset.
//
// Every record is a small state machine: enter (its ID, locally) → claim → deliver → park or complete. The
// engine moves a set of records through a step together wherever their paths agree — one store round trip
// claims the whole set, one deliverer call carries it, their done marks share round trips — and lets records
// go on alone where their paths part (a retry after a backoff, a park, another member's lease, a job whose
// context ended). The delivery modes are two policies of the same engine: per-record mode hands each record
// to the deliverer in a call of its own, under MaxDeliveries; batch mode hands over the records of a source
// topic in one call.
//
// Every delivery goes through one chain of handler.Middleware around the deliverer: the engine's own pausing
// (the Gate: nothing starts while the app, its health URL or the store is unavailable; an "unavailable" answer
// closes it) and metrics, then the middleware of Options (tracing, CloudEvents, decoding). In per-record mode a
// record holds one of MaxDeliveries slots from its delivery to its done mark, which bounds both the requests
// under way and what a crash can make the app see twice. A Tracer, when given, is told of the steps a trace shows.
package pipeline
