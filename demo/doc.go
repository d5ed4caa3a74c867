// Package demo runs the whole sidecar on embedded parts — an in-process Kafka (kfake), an in-process Redis
// (miniredis) and a sample app that refuses, fails and stalls some records — so a new user sees delivery,
// retries, dead letters and duplicate suppression with nothing installed but Go.
package demo
