package dlq

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/kafka-sidecar/kafka-sidecar/envelope"
	"github.com/twmb/franz-go/pkg/kgo"
)

// DefaultMarkTTL is how long replay marks live unless told otherwise: longer than any sensible retention of a
// dead-letter topic, so a record is not replayed twice while it can still be read.
const DefaultMarkTTL = 90 * 24 * time.Hour

// ReplayRecord builds the record that sends dead letter dl back to its original topic: the same key, value
// and own headers, provenance headers naming the message as first consumed (ID, original position and
// timestamp, attempts so far, group) without the failure, and envelope.HeaderReplayedFrom and envelope.HeaderReplayCount
// (count is this replay's number, 1 for the first). The record asks for the original partition number;
// Partitioner keeps it there when the topic has that partition.
func ReplayRecord(dl *kgo.Record, p envelope.Provenance, count int) (*kgo.Record, error) {
	if p.OriginalTopic == "" {
		return nil, errors.New("building the replay: the record names no original topic (" + envelope.HeaderOriginalTopic + ")")
	}
	p.NotBefore, p.FailedAt, p.Error, p.ErrorStatus = time.Time{}, time.Time{}, "", 0
	rec := envelope.Copy(dl, p, p.OriginalTopic)
	rec.Headers = append(rec.Headers,
		kgo.RecordHeader{Key: envelope.HeaderReplayedFrom, Value: []byte(positionKey(dl))},
		kgo.RecordHeader{Key: envelope.HeaderReplayCount, Value: []byte(strconv.Itoa(count))},
	)
	return rec, nil
}

// positionKey names a dead-letter record as <topic>/<partition>/<offset>, in marks and replay headers.
func positionKey(rec *kgo.Record) string {
	return rec.Topic + "/" + strconv.FormatInt(int64(rec.Partition), 10) + "/" + strconv.FormatInt(rec.Offset, 10)
}

// Marks remembers replays: which dead-letter records were sent back (so running the same replay again sends
// nothing), and how often each message ID was replayed (the loop guard, which must survive the message
// failing again: its new dead-letter copy does not carry the replay headers, since copies keep only the
// record's own headers). Implementations are safe for concurrent use.
type Marks interface {
	// Replayed reports whether the dead-letter record at pos (topic/partition/offset) was replayed.
	Replayed(ctx context.Context, pos string) (bool, error)
	// Count returns how often message id was replayed.
	Count(ctx context.Context, id string) (int, error)
	// Mark records that pos was replayed as message id. It is called only after the broker acknowledged
	// the replay; marking a pos that is already marked changes nothing (the count is not raised twice).
	Mark(ctx context.Context, pos, id string) error
}

// Sender produces a record and returns nil once the broker acknowledged it; *Producer is one.
type Sender interface {
	Send(ctx context.Context, rec *kgo.Record) error
}

// Action is what Replay did with one dead-letter record.
type Action string

// Actions of a ReplayResult.
const (
	// Sent: the record went back to its original topic and the broker acknowledged it.
	Sent Action = "sent"
	// WouldSend: a dry run would have sent it.
	WouldSend Action = "would-send"
	// AlreadyReplayed: this dead-letter record was replayed before; nothing was sent.
	AlreadyReplayed Action = "already-replayed"
	// Refused: the loop guard or a damaged record stopped it; Reason says which.
	Refused Action = "refused"
)

// ReplayResult reports one dead-letter record's fate.
type ReplayResult struct {
	Entry  Entry
	Action Action
	// Count is the replay's number when sent (or in a dry run, would be), else the replays so far.
	Count int
	// Reason explains a refusal.
	Reason string
}

// ReplayOptions configure a Replayer.
type ReplayOptions struct {
	// Sender writes the replays; it must wait for acks from all in-sync replicas (a Producer on a client
	// with ProducerOpts). Unused in a dry run.
	Sender Sender
	// Marks remembers replays; nil means none are kept: the same replay run twice sends twice, and the
	// loop guard sees only the replay count header of the record itself.
	Marks Marks
	// MaxReplays is how often one message may be replayed; a record replayed that often is refused.
	// Values below 1 mean 1.
	MaxReplays int
	// Rate caps records sent per second (a token bucket with a burst of one); ≤ 0 means no cap.
	Rate float64
	// DryRun decides and reports but sends and marks nothing.
	DryRun bool
}

// Replayer sends dead-letter records back to their original topic, each at most once per dead-letter
// position and at most MaxReplays times per message. It is meant for one goroutine.
type Replayer struct {
	opts   ReplayOptions
	bucket *tokenBucket
}

// NewReplayer checks opts and returns a Replayer.
func NewReplayer(opts ReplayOptions) (*Replayer, error) {
	if opts.Sender == nil && !opts.DryRun {
		return nil, errors.New("creating the replayer: no sender")
	}
	opts.MaxReplays = max(opts.MaxReplays, 1)
	r := &Replayer{opts: opts}
	if opts.Rate > 0 && !opts.DryRun {
		r.bucket = newTokenBucket(opts.Rate, time.Now)
	}
	return r, nil
}

// Replay decides what to do with s and does it. An error means Redis or Kafka failed (or ctx ended): the
// record may have been sent but not marked, which a later run sends again — dedup then suppresses it by
// its message ID if it was delivered.
func (r *Replayer) Replay(ctx context.Context, s Scanned) (ReplayResult, error) {
	res := ReplayResult{Entry: s.Entry}
	prov, _ := envelope.Parse(s.Record.Headers) // Entry.DecodeError already reports what did not parse
	if prov.OriginalTopic == "" || prov.ID == "" {
		res.Action, res.Reason = Refused, "no original topic or message ID in its headers"
		return res, nil
	}
	pos := positionKey(s.Record)
	count := envelope.ReplayCount(s.Record.Headers)
	if r.opts.Marks != nil {
		done, err := r.opts.Marks.Replayed(ctx, pos)
		if err != nil {
			return res, err
		}
		if done {
			res.Action = AlreadyReplayed
			res.Count, err = r.opts.Marks.Count(ctx, prov.ID)
			return res, err
		}
		n, err := r.opts.Marks.Count(ctx, prov.ID)
		if err != nil {
			return res, err
		}
		count = max(count, n)
	}
	if count >= r.opts.MaxReplays {
		res.Action, res.Count = Refused, count
		res.Reason = fmt.Sprintf("replayed %d times already (--max-replays %d): it keeps failing", count, r.opts.MaxReplays)
		return res, nil
	}
	res.Count = count + 1
	rec, err := ReplayRecord(s.Record, prov, res.Count)
	if err != nil {
		res.Action, res.Reason = Refused, err.Error()
		return res, nil
	}
	if r.opts.DryRun {
		res.Action = WouldSend
		return res, nil
	}
	if r.bucket != nil {
		if err := r.bucket.wait(ctx); err != nil {
			return res, fmt.Errorf("waiting for the replay rate: %w", err)
		}
	}
	if err := r.opts.Sender.Send(ctx, rec); err != nil {
		return res, fmt.Errorf("replaying %s to %s: %w", pos, rec.Topic, err)
	}
	if r.opts.Marks != nil {
		if err := r.opts.Marks.Mark(ctx, pos, prov.ID); err != nil {
			return res, fmt.Errorf("replay of %s sent but not marked (a rerun sends it again): %w", pos, err)
		}
	}
	res.Action = Sent
	return res, nil
}

// tokenBucket paces replays: one token per 1/rate seconds, holding at most one, so a burst never exceeds
// a single record however long the replay was idle.
type tokenBucket struct {
	interval time.Duration
	next     time.Time
	now      func() time.Time
}

func newTokenBucket(rate float64, now func() time.Time) *tokenBucket {
	interval := time.Duration(float64(time.Second) / rate)
	return &tokenBucket{interval: max(interval, time.Nanosecond), now: now}
}

// reserve takes the next token and returns how long to wait for it.
func (b *tokenBucket) reserve() time.Duration {
	now := b.now()
	if b.next.Before(now) {
		b.next = now
	}
	wait := b.next.Sub(now)
	b.next = b.next.Add(b.interval)
	return wait
}

func (b *tokenBucket) wait(ctx context.Context) error {
	d := b.reserve()
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
