package dlq

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// ErrTopicNotFound is returned by Scan when the dead-letter topic does not exist (nothing has been
// dead-lettered yet with SIDECAR_CREATE_TOPICS=false, or a wrong --topic).
var ErrTopicNotFound = errors.New("dead-letter topic not found")

// Scanned is one dead-letter record that passed a Filter: the record as stored and its decoded form.
type Scanned struct {
	Record *kgo.Record
	Entry  Entry
}

// Scan reads topic from its start to the end it had when Scan began and calls fn, in offset order within
// each partition, for every record f matches. It is read-only: it uses a direct partition consumer, joins
// no group and commits nothing, so listing never moves any consumer's position. Records produced after
// the scan began are not read, so a replay that sends records whose copies fail again cannot feed itself.
//
// kopts reach the cluster (connect.KafkaOpts); Scan builds its own clients from them and closes them.
// fn runs on Scan's goroutine; an error from it stops the scan and is returned as is. Scan returns
// ErrTopicNotFound (wrapped) when topic does not exist.
func Scan(ctx context.Context, kopts []kgo.Opt, topic string, f Filter, fn func(Scanned) error) error {
	bounds, err := snapshot(ctx, kopts, topic, f.scanLimits())
	if err != nil {
		return err
	}
	if len(bounds) == 0 {
		return nil
	}
	starts := make(map[int32]kgo.Offset, len(bounds))
	for p, b := range bounds {
		starts[p] = kgo.NewOffset().At(b.start)
	}
	// Control records are kept so that a transaction marker at the end of a partition still counts as
	// reaching the end; they are skipped below.
	opts := append(slices.Clip(kopts),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: starts}),
		kgo.KeepControlRecords(),
	)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return fmt.Errorf("creating the dead-letter reader: %w", err)
	}
	defer cl.Close()

	remaining := make(map[int32]int64, len(bounds))
	for p, b := range bounds {
		remaining[p] = b.end
	}
	for len(remaining) > 0 {
		fetches := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return fmt.Errorf("reading %s: %w", topic, ctx.Err())
		}
		var fnErr, fetchErr error
		fetches.EachPartition(func(fp kgo.FetchTopicPartition) {
			if fnErr != nil || fetchErr != nil {
				return
			}
			end, open := remaining[fp.Partition]
			if !open {
				return
			}
			if fp.Err != nil {
				var ke *kerr.Error
				if !errors.As(fp.Err, &ke) || !ke.Retriable {
					fetchErr = fmt.Errorf("reading %s partition %d: %w", topic, fp.Partition, fp.Err)
				}
				return
			}
			for _, rec := range fp.Records {
				if rec.Offset >= end {
					break
				}
				if rec.Offset == end-1 {
					delete(remaining, fp.Partition)
				}
				if rec.Attrs.IsControl() {
					continue
				}
				e := Decode(rec)
				if f.Match(e) {
					if fnErr = fn(Scanned{Record: rec, Entry: e}); fnErr != nil {
						return
					}
				}
			}
			// Retention may delete the rest of the range while it is read; nothing is left to wait for.
			if fp.LogStartOffset >= end || (len(fp.Records) > 0 && fp.Records[len(fp.Records)-1].Offset >= end-1) {
				delete(remaining, fp.Partition)
			}
		})
		if fnErr != nil {
			return fnErr
		}
		if fetchErr != nil {
			return fetchErr
		}
	}
	return nil
}

// bound is a partition's offset range to read: [start, end).
type bound struct{ start, end int64 }

// snapshot lists the offset range of every partition of topic, cut at limits (the highest offset a filter
// can match, per partition; nil means none), leaving out empty ranges.
func snapshot(ctx context.Context, kopts []kgo.Opt, topic string, limits map[int32]int64) (map[int32]bound, error) {
	cl, err := kgo.NewClient(kopts...)
	if err != nil {
		return nil, fmt.Errorf("creating the admin client: %w", err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		return nil, fmt.Errorf("listing end offsets of %s: %w", topic, err)
	}
	starts, err := adm.ListStartOffsets(ctx, topic)
	if err != nil {
		return nil, fmt.Errorf("listing start offsets of %s: %w", topic, err)
	}
	parts := ends[topic]
	if len(parts) == 0 {
		return nil, fmt.Errorf("reading %s: %w", topic, ErrTopicNotFound)
	}
	out := make(map[int32]bound, len(parts))
	for p, lo := range parts {
		if lo.Err != nil {
			if errors.Is(lo.Err, kerr.UnknownTopicOrPartition) {
				return nil, fmt.Errorf("reading %s: %w", topic, ErrTopicNotFound)
			}
			return nil, fmt.Errorf("listing end offset of %s partition %d: %w", topic, p, lo.Err)
		}
		so, ok := starts.Lookup(topic, p)
		if !ok || so.Err != nil {
			return nil, fmt.Errorf("listing start offset of %s partition %d: %w", topic, p, errors.Join(so.Err, errNoOffset))
		}
		b := bound{start: so.Offset, end: lo.Offset}
		if limits != nil {
			limit, named := limits[p]
			if !named {
				continue
			}
			b.end = min(b.end, limit+1)
		}
		if b.start < b.end {
			out[p] = b
		}
	}
	return out, nil
}

var errNoOffset = errors.New("no offset listed")
