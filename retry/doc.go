// Package retry decides what happens to a record after a failed delivery and carries the record's history
// with it when it moves.
//
// A record is attempted a few times where it is (in place, with a short exponential backoff), then moves to
// the next retry tier — a retry topic whose records wait a fixed delay before they are offered again — and
// past the last tier to the dead-letter topic. Policy makes that decision; it is pure, so the consumer can
// unit-test its routing and operators can reason about it from the configuration alone.
//
// A copy on a retry or dead-letter topic keeps the source record's key, value and headers and adds
// provenance headers (sidecar-id, sidecar-original-topic, ...). Copy writes them, Parse reads them back and
// Strip removes them, so the app sees the record's own headers on every tier and the message keeps one
// identity across tiers. The header names are part of the user-facing contract and must not change.
package retry
