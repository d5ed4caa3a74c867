// Package metrics defines every kafka_sidecar_* Prometheus metric in one place. Counters are bumped on the
// record path; per-partition gauges (lag in records and seconds, buffered records, retry backlog) are computed
// from consumer stats at scrape time so they cost nothing between scrapes.
package metrics
