// Package dlq writes records the app could not take to the dead-letter topic, and reads them back.
//
// Producer.Send is the durable write both failure routes share (retry tiers and the dead-letter topic): it
// returns only after the broker acknowledged the copy from all in-sync replicas, retrying through broker
// trouble for as long as its context allows, because the source record's offset is committed as soon as
// Send returns nil — the copy is then the only place the record lives. ProducerOpts holds the client
// settings that make this hold (acks=all, the idempotent producer, unlimited retries inside the client),
// and Partitioner keeps a copy on the partition number of its source record.
//
// DeadLetter builds a dead-letter record from a failed one; Decode turns a dead-letter record back into an
// Entry, the form `kafka-sidecar dlq list` prints.
//
// # Inspecting and replaying dead letters
//
// Scan reads a dead-letter topic with a direct partition consumer, from its start to the end it had when
// the scan began, and hands every record a Filter matches to a callback. It joins no group and commits
// nothing, so it never moves anyone's position. `kafka-sidecar dlq list` prints what Scan finds.
//
// Replayer sends chosen dead letters back to the topic they were first consumed from (`kafka-sidecar dlq
// replay`). A replay keeps the key, value and the record's own headers, and carries provenance headers:
// sidecar-id and sidecar-original-* name the message as first consumed, sidecar-replayed-from names the
// dead-letter record and sidecar-replay-count numbers the replay. The pipeline reads the provenance of a
// source record that carries sidecar-replayed-from (IsReplay), so the replay keeps its message ID: if the
// app already accepted the message, dedup suppresses the replay, and the app's Idempotency-Key stays the
// same. Other consumer groups of the source topic see the replay too; sidecars of those groups suppress it
// as well when they derive message IDs the same way (the same SIDECAR_ID_HEADER, or none); plain consumers
// of the topic see a new record, recognisable by its sidecar-replayed-from header.
//
// Three guards make replay safe to repeat:
//   - A replay is produced with acks from all in-sync replicas, and only then marked in Redis:
//     <SIDECAR_DEDUP_KEY_PREFIX>:<group>:replay:<dlq topic>/<partition>/<offset> (SET NX, long TTL).
//     A marked dead-letter record is not sent again, so running the same replay twice sends nothing.
//   - The loop guard counts replays per message ID (<prefix>:<group>:replays:<id>, raised together with
//     the mark). A message replayed MaxReplays times (default 1) is refused and reported, so a record
//     that keeps failing — and is dead-lettered again under the same ID — cannot cycle forever. The count
//     lives in Redis because a copy keeps only the record's own headers: the new dead letter does not
//     carry sidecar-replay-count, which only guards replays run without marks.
//   - A dry run decides and reports the same way but sends and marks nothing.
//
// Marks live in Redis, so replay requires SIDECAR_DEDUP=redis unless --no-replay-marks is given: with
// the memory or off store there is no shared place for them, and without marks a rerun sends again.
//
// The workflow:
//
//	kafka-sidecar dlq list --since 24h --status 5xx          # what failed, and why
//	kafka-sidecar dlq list --error "database" --output json  # the same as JSON lines, for scripts
//	# fix the app, then check the selection
//	kafka-sidecar dlq replay --since 24h --status 5xx --dry-run
//	kafka-sidecar dlq replay --since 24h --status 5xx --rate 50
//	kafka-sidecar dlq replay --offsets 0:17,3:5              # or name positions on the dead-letter topic
//
// Filters (Filter; the same flags for list and replay): --since and --until (RFC 3339, or a duration back
// from now, ParseTime), --original-topic, --status (422, a class such as 5xx, or none), --error
// (substring), --key (as list prints it), --offsets P:O,... (ParseOffsets).
package dlq
