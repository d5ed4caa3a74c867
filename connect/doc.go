// Package connect is the one place that turns a config.Config into clients: franz-go options for Kafka (seed
// brokers, TLS, SASL) and a go-redis client for the dedup store (single node, Sentinel or Cluster, with TLS).
//
// The run command, doctor and the dlq tools all build their connections here, so a setting means the same thing
// everywhere and every error names the variable to change. No error returned from this package contains a
// password: URLs are redacted with RedactURL and every error is scrubbed of the configured secrets before it
// is returned.
//
// IsAuthError tells rejected credentials apart from outages. The sidecar retries outages for as long as they
// last, but a broker that refuses the credentials will refuse them forever, so the caller stops with a clear
// "authentication failed" instead.
package connect
