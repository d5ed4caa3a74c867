// Package topics names the retry and dead-letter topics that belong to a source topic and a consumer group,
// and provisions them on the cluster with the durability settings the sidecar's promise rests on.
package topics
