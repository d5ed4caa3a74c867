package dedup

import (
	"context"
	"errors"
	"strconv"
)

// Status is what a claim found for one record.
type Status uint8

const (
	// Claimed means the caller now holds the lease that covers the record: it must deliver it and then
	// complete, park or release it.
	Claimed Status = iota
	// Done means the record is done: its position is marked, or (for a record with an ID of its own) its
	// message ID is. It must be skipped.
	Done
	// Busy means another owner holds a live lease that covers the record: the caller must not deliver it now
	// and should claim again later (the lease ends with completion, release or expiry).
	Busy
)

// String names the status for logs.
func (s Status) String() string {
	switch s {
	case Claimed:
		return "claimed"
	case Done:
		return "done"
	case Busy:
		return "busy"
	}
	return "unknown"
}

// ErrUnavailable wraps every error caused by the store being unreachable (network, timeout, server loading) or,
// for the memory store, full. Callers pause on it and try again; it is never a reason to skip or drop a record.
var ErrUnavailable = errors.New("dedup store unavailable")

// Mark names one record for the store: its log position, which a position mark records once it is done, and
// its message ID.
type Mark struct {
	// TopicID is the topic's identity from fetch or metadata responses; zero when the broker did not send one.
	// It keeps a topic deleted and re-created under the same name from inheriting the old topic's marks.
	TopicID [16]byte
	// Topic is the topic's name: part of the position when TopicID is zero, and named in logs.
	Topic     string
	Partition int32
	// Epoch is the leader epoch of the record's batch (kgo.Record.LeaderEpoch; -1 when unknown). A record
	// redelivered keeps it; another record written at a reused offset after an unclean leader election has a
	// newer one, so its position is a different one.
	Epoch  int32
	Offset int64
	// ID is the message ID; always set. A record with no ID of its own uses "topic/partition/offset" of the
	// record as first consumed.
	ID string
	// OwnID says the ID names the message wherever it sits, not this record's position: an ID header, a
	// CloudEvent's source and id, or the original position a retry copy or a replayed dead letter carries. Such
	// a record is claimed by a lease on its ID and, once delivered, gets an ID mark besides its position mark,
	// so the same message at another offset is recognised. Other records are claimed by their partition's
	// lease and get a position mark only.
	OwnID bool
}

// PositionString returns "topic/partition/epoch/offset", for logs.
func (m Mark) PositionString() string {
	return m.Topic + "/" + strconv.FormatInt(int64(m.Partition), 10) + "/" + strconv.FormatInt(int64(m.Epoch), 10) +
		"/" + strconv.FormatInt(m.Offset, 10)
}

// Ops is one round of work for a Store, done in this order: Complete and Park write their marks and drop their
// leases, Release drops leases, then Claim claims.
type Ops struct {
	// Complete: the record was delivered. Its position is marked, and its ID too when OwnID; its ID lease is
	// replaced by the mark. A Complete without a lease (or over another owner's) is allowed: the record is done,
	// whoever finished it.
	Complete []Mark
	// Park: the record's copy is acknowledged by a retry or dead-letter topic. Its position is marked, so the
	// record itself is never delivered again; its ID is not, because the copy carries the ID and must stay
	// deliverable. This owner's ID lease is dropped.
	Park []Mark
	// Release: the record is not done (its delivery was cancelled or failed to park). This owner's ID lease on
	// it is dropped (compare-and-delete: a mark or another owner's lease survives). A partition lease stays: it
	// covers the partition's other records in flight, and is given up with ReleasePartitions.
	Release []Mark
	// Claim: may the caller deliver the record? Done when its position is marked, when (OwnID) its ID mark
	// exists, or when a mark of the previous release's format covers its ID. Otherwise Busy when another owner
	// holds the lease that covers it: the ID's lease for an OwnID record, the partition's for the others (or a
	// previous release's lease on its ID). Otherwise the caller takes that lease (a lease it already holds is
	// taken again and extended: a restarted member with the same static instance ID goes on at once) and gets
	// Claimed.
	//
	// A record repeated within one round (same position, or same ID for OwnID records) is looked up once: its
	// first occurrence gets the store's answer and every later occurrence what a second claimant would get right
	// after it: Busy when the first was Claimed, the first's status otherwise.
	Claim []Mark
}

// empty reports whether ops holds no work.
func (o Ops) empty() bool { return len(o.Complete)+len(o.Park)+len(o.Release)+len(o.Claim) == 0 }

// Store keeps leases on records in flight and marks on records done (see the package documentation for what
// each costs). All methods are safe for concurrent use. The owner of the leases, the lease duration and the
// marks' lifetimes are fixed when the store is built.
type Store interface {
	// Apply does one round of work (see Ops) and returns the claim statuses in the order of ops.Claim. It is
	// one round trip to a Redis server; it is not atomic as a whole: on an error some of the work may have been
	// done, and the caller repeats what it needs (every operation may be repeated safely).
	Apply(ctx context.Context, ops Ops) ([]Status, error)
	// ReleasePartitions gives up this owner's leases on the given partitions (topic name to partition numbers,
	// as a group client reports revoked partitions), so the next owner claims their records at once instead of
	// waiting for the leases to expire. Call it once the records of those partitions this member had in flight
	// have all ended; a later claim on such a partition takes its lease again.
	ReleasePartitions(ctx context.Context, partitions map[string][]int32) error
	// Ping reports whether the store answers.
	Ping(ctx context.Context) error
	// Close releases the store's connections.
	Close() error
}
