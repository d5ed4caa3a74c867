// Package security proves the sidecar's secure connections and secret hygiene end to end: the real binary
// against kfake with SASL SCRAM-SHA-512 over TLS, a real redis-server with a password over TLS, and an app
// behind a rotating bearer token; planted secrets must never appear in a log line or in /metrics.
package security
