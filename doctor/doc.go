// Package doctor is the durability audit behind `kafka-sidecar doctor`: it reads the cluster, the topics, the
// consumer group, Redis and the app, and reports for each setting the sidecar's no-loss promise rests on
// whether it holds (PASS), is risky (WARN) or breaks the promise (FAIL), with why it matters and the exact
// command that fixes it.
//
// Run never panics and never hangs past its context: an unreachable Kafka or Redis becomes a FAIL check, and
// a describe the broker refuses (ACLs) becomes a WARN "not permitted to describe". Check IDs are stable strings
// (topic.min_insync:<topic>, redis.eviction, ...) that scripts may match on; the human table and the JSON
// document are written by Report.WriteTable and Report.WriteJSON.
package doctor
