// Package dedup remembers which records are done and which are being delivered, so a record the app has
// accepted is not handed to it again and no two sidecars deliver one message at once.
//
// # Marks, leases, and what each costs
//
// The store works on Marks: a record's log position (topic ID, partition, leader epoch of its batch, offset) and
// its message ID, with OwnID telling whether that ID is the message's own (an ID header, a CloudEvent's source
// and id, the original a retry copy or replayed dead letter carries) or just "topic/partition/offset". Three
// kinds of state, each sized by what it must cover:
//
//   - Position marks: one bit per done record, in bitmaps of ChunkOffsets offsets per key (per partition and
//     leader epoch), living SIDECAR_DEDUP_TTL (at least the retention; up to 1/64 longer, since a key's expiry
//     is extended only now and then, see PositionMarkSlack). They answer every redelivery of the
//     same record: a crash before the commit, a rebalance, committed offsets lost or reset. A re-created topic
//     has a new topic ID and a record written at a reused offset after an unclean leader election a newer
//     epoch, so neither is mistaken for a done record. On Redis a full chunk costs 1 KiB for 8,136 records
//     plus about 160 bytes for the key, about 0.15 bytes per record (TestRedisMemoryPerRecord measures it).
//   - ID marks: one key per completed record with an ID of its own, living SIDECAR_DEDUP_ID_TTL: the same
//     message at another offset (a producer's retry, an upstream duplicate, a dead letter replayed after the
//     app took it). About 180 bytes per record on Redis; records without an ID of their own write none.
//   - Leases: only while records are in flight. A record with an ID of its own is leased by its ID (the
//     message may sit at several offsets, even in several partitions); any other record by its partition: one
//     key per partition a member is consuming, taken by the member's first claim on the partition, extended by
//     its claims (at most every quarter of a lease, so at least three quarters of a lease are always left while
//     the member claims), given up with ReleasePartitions once the partition is revoked and its records have
//     ended (or expiring, after a crash). Their cost does not grow with the
//     windows or with the record rate.
//
// Why a partition lease is enough for records without an ID of their own: such a record is one message at one
// position, so two deliveries of it at once need two members consuming its partition at once (a rebalance
// while the old owner still delivers, a zombie member). The consumer group gives a partition to one member at
// a time, and the old owner keeps the partition's lease until its in-flight records of that partition have
// ended; a new owner's claims get Busy until then (invariant 5). Per-record leases would cost a key written and
// deleted for every record; the partition lease costs one key per partition, written once per round of claims.
// The price is paid after a crash of a member without a static instance ID: the next owner waits up to one
// lease for the partition's records, not only for those that were in flight.
//
// # Operations
//
// A Store does rounds of work (Ops): Complete (delivered: position mark, and ID mark for an own ID), Park (the
// copy sits acknowledged in a retry or dead-letter topic: position mark only, so the copy, which carries the
// ID, stays deliverable), Release (not done: the ID lease is dropped) and Claim (Claimed, Done or Busy). One
// round is one round trip to Redis. Three implementations are provided:
//
//   - Redis (NewRedis): the shared store for a group of sidecars, on a standalone, Sentinel or Cluster
//     deployment; see Redis for its keys, its script and how it reads the previous release's marks after an
//     upgrade.
//   - Memory (NewMemory): the same semantics inside one process, for a single replica and for tests, bounded
//     in size: when full it fails like an unreachable store (ErrUnavailable, delivery pauses) and never answers
//     "not seen" for a record it had to forget.
//   - Off: no duplicate suppression at all; every claim succeeds.
//
// A Coalescer sits in front of a Store on the hot path: it takes calls for one record or a few from many
// goroutines, of all kinds, and groups the concurrent ones into one Apply, so throughput scales with
// concurrency without delaying a lone call. It counts the marks written for the
// kafka_sidecar_dedup_marks_written_total metric (ObserveMarks).
//
// Errors: a store that cannot be reached returns errors matching ErrUnavailable (pause and try again; never a
// reason to drop or skip a record); rejected credentials or certificates match ErrAuth (stop: retrying does not
// help); a caller's cancelled context is returned as the context's error. Package storetest holds the contract
// test suite every Store must pass.
package dedup
