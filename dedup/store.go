package dedup

import (
	"context"
	"errors"
)

// Status is what Claim found for one message ID.
type Status uint8

const (
	// Claimed means the caller now holds the lease on the ID: it must deliver the message and then call
	// Complete, or Release when the message was not processed.
	Claimed Status = iota
	// Done means the ID carries a done mark: the message was processed before and must be skipped.
	Done
	// Busy means another owner holds a live lease on the ID: the caller must not deliver it now and should
	// claim again later (the lease ends with Complete, Release or expiry).
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

// ErrUnavailable wraps every error caused by the store being unreachable (network, timeout, server loading).
// Callers pause on it and try again; it is never a reason to skip or drop a record.
var ErrUnavailable = errors.New("dedup store unavailable")

// Ops is one round of work for a Store, done in this order: the done marks of Complete are written, the
// leases of Release are dropped, then the IDs of Claim are claimed. Each part has the semantics of the Store
// method of the same name.
type Ops struct {
	Complete []string
	Release  []string
	Claim    []string
}

// empty reports whether ops holds no work.
func (o Ops) empty() bool { return len(o.Complete)+len(o.Release)+len(o.Claim) == 0 }

// Store records, per message ID, a lease while a sidecar delivers the message and a done mark afterwards.
//
// Every method works on a batch of IDs so that an implementation can serve many records in one round trip;
// results come back in the order of ids. The owner of the leases, the lease duration and the done-mark TTL are
// fixed when the store is built. All methods are safe for concurrent use.
type Store interface {
	// Claim takes a lease on each ID that has neither a done mark nor another owner's live lease. A lease this
	// owner already holds (a restart with the same static instance ID) is taken again and extended.
	//
	// An ID repeated within one batch is looked up once: its first occurrence gets the store's answer and every
	// later occurrence gets what a second claimant would get right after it, Busy when the first was Claimed
	// (so the message is never delivered twice at once) and the first's status otherwise. An empty batch
	// returns an empty result without a round trip.
	Claim(ctx context.Context, ids []string) ([]Status, error)
	// Complete writes the done mark for each ID, replacing any lease; the mark lives for the store's TTL.
	Complete(ctx context.Context, ids []string) error
	// Release deletes this owner's lease on each ID, atomically compare-and-delete: a done mark or another
	// owner's lease is left untouched.
	Release(ctx context.Context, ids []string) error
	// Apply does the work of several calls in one round trip (see Ops) and returns the claim statuses in the
	// order of ops.Claim. It serves callers that gather work from many records, such as Coalescer; like a batch
	// of one kind, it is not atomic as a whole: on an error some of the work may have been done.
	Apply(ctx context.Context, ops Ops) ([]Status, error)
	// Ping reports whether the store answers.
	Ping(ctx context.Context) error
	// Close releases the store's connections.
	Close() error
}
