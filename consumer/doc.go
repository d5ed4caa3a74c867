// Package consumer is the sidecar's consumer group member. It fetches records with franz-go, keeps them in
// per-partition lanes, lets a scheduler start them under the ordering mode (partition, key or unordered) and
// the in-flight cap, holds retry records until their not-before time (pausing that partition's fetches), and
// commits for each partition the highest offset below which every record is done — periodically, before a
// revoke completes, and on shutdown. Fetching pauses when the buffer of undone records is full, so memory
// stays bounded however large the backlog. Records go to a BatchProcessor in batches of records the
// ordering mode allows in flight together (a batch of one where the mode or the cap allows no more), and come
// back through its Report, one at a time or many at once.
package consumer
