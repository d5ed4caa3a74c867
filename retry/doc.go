// Package retry decides what happens to a record after a failed delivery.
//
// A record is attempted a few times where it is (in place, with a short exponential backoff), then moves to
// the next retry tier — a retry topic whose records wait a fixed delay before they are offered again — and
// past the last tier to the dead-letter topic. Policy makes that decision; it is pure, so the engine can
// unit-test its routing and operators can reason about it from the configuration alone. The headers that
// carry a record's history with it are package envelope's.
package retry
