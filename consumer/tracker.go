package consumer

import "time"

// offsetTracker follows the records of one partition from fetch to done and yields the commit position: the
// offset of the lowest record that is not done, or one past the last record when every record is done.
//
// Records are added in offset order (Kafka fetches are ordered) and finish in any order. Entries live in a
// slice used as a queue; the done prefix is popped as it forms, so each record costs O(1) amortised.
// It is not safe for concurrent use: the scheduler's mutex guards it.
type offsetTracker struct {
	queue []*trackedOffset
	head  int
	// next is the commit position; -1 until the first record arrives.
	next int64
	// epoch is the leader epoch of the last record below next, sent with a commit for fencing.
	epoch int32
}

// trackedOffset is one record's place in the tracker.
type trackedOffset struct {
	ts     time.Time
	offset int64
	epoch  int32
	done   bool
}

func newOffsetTracker() *offsetTracker {
	return &offsetTracker{next: -1, epoch: -1}
}

// add appends a record. offset must be greater than every offset added before.
func (t *offsetTracker) add(offset int64, epoch int32, ts time.Time) *trackedOffset {
	e := &trackedOffset{offset: offset, epoch: epoch, ts: ts}
	if t.head == len(t.queue) {
		// Everything before is done; the position stays where it is until this record is done too.
		t.next = offset
	}
	t.queue = append(t.queue, e)
	return e
}

// markDone marks e done and advances the commit position past the done prefix.
func (t *offsetTracker) markDone(e *trackedOffset) {
	e.done = true
	for t.head < len(t.queue) && t.queue[t.head].done {
		d := t.queue[t.head]
		t.queue[t.head] = nil
		t.head++
		t.next = d.offset + 1
		t.epoch = d.epoch
	}
	if t.head < len(t.queue) {
		t.next = t.queue[t.head].offset
	}
	// Compact once the popped prefix dominates, keeping the amortised cost constant.
	if t.head > 64 && t.head*2 > len(t.queue) {
		n := copy(t.queue, t.queue[t.head:])
		clear(t.queue[n:])
		t.queue = t.queue[:n]
		t.head = 0
	}
}

// position returns the commit position and the epoch to send with it; ok is false before any record.
func (t *offsetTracker) position() (offset int64, epoch int32, ok bool) {
	return t.next, t.epoch, t.next >= 0
}

// pending counts records added and not yet done (in flight or waiting).
func (t *offsetTracker) pending() int {
	n := 0
	for _, e := range t.queue[t.head:] {
		if !e.done {
			n++
		}
	}
	return n
}

// oldestUndone returns the timestamp of the lowest record not done, zero when every record is done.
func (t *offsetTracker) oldestUndone() time.Time {
	if t.head < len(t.queue) {
		return t.queue[t.head].ts
	}
	return time.Time{}
}
