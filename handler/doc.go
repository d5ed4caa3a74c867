// Package handler is the delivery seam: the types a record is handed to the app with (Delivery), the
// classified answer (Result, Outcome), the Deliverer every delivery goes through, and Middleware that wraps it
// with cross-cutting concerns such as pausing, metrics, tracing, CloudEvents and decoding.
//
// The types belong to no transport. Package httpapp is the HTTP deliverer (one POST per record, or one per
// batch) and the app's readiness probe; another transport would be another Deliverer beside it, and every
// middleware would wrap it unchanged.
package handler
