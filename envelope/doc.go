// Package envelope is the sidecar's bookkeeping that travels with a record copy: the provenance headers of
// retry and dead-letter copies (sidecar-id, sidecar-original-*, sidecar-attempts, sidecar-not-before,
// sidecar-error, ...) and the headers of a replayed dead letter (sidecar-replayed-from, sidecar-replay-count).
// They are defined, written and parsed here and nowhere else.
//
// A copy keeps the source record's key, value and headers and adds provenance headers. Copy and DeadLetter
// write them, Parse reads them back (NotBefore reads only the not-before time, for the consumer's hot path)
// and Strip removes them, so the app sees the record's own headers on every tier and the message keeps one
// identity across tiers. The header names are part of the user-facing contract and must not change.
package envelope
