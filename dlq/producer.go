package dlq

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/kafka-sidecar/kafka-sidecar/envelope"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"
)

// ProducerOpts are the client settings a durable copy needs; add them to the options of the *kgo.Client
// given to NewProducer:
//   - acks from all in-sync replicas, so an acknowledged copy survives the loss of the leader;
//   - the idempotent producer (kgo's default, which these options leave on), so a retried write whose ack
//     was lost is stored once;
//   - unlimited retries inside the client, so an ambiguous write is only ever retried within one idempotent
//     session (a record the client gave up on and Send produced again could be stored twice);
//   - Partitioner, to keep a copy on its source partition number;
//   - a bounded produce request timeout and a short linger: copies are produced one at a time by a caller
//     that waits for the ack.
func ProducerOpts() []kgo.Opt {
	return []kgo.Opt{
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.RecordPartitioner(Partitioner()),
		kgo.RecordRetries(math.MaxInt),
		kgo.ProduceRequestTimeout(30 * time.Second),
		kgo.ProducerLinger(5 * time.Millisecond),
		// A refused produce (NOT_ENOUGH_REPLICAS, a moved leader) waits for fresh metadata before its retry; the
		// 5 s default would hold every parked record that long after the cluster recovered.
		kgo.MetadataMinAge(time.Second),
	}
}

// Producer writes retry and dead-letter copies and waits until they are durable. It is safe for
// concurrent use.
type Producer struct {
	cl         *kgo.Client
	log        *zap.Logger
	backoff    time.Duration
	backoffMax time.Duration
}

// Option tunes a Producer.
type Option func(*Producer)

// WithRetryBackoff sets the pause after Send's first failed produce, doubled after each further failure up
// to maxBackoff; the defaults are 100ms and 5s. Non-positive values keep the defaults.
func WithRetryBackoff(first, maxBackoff time.Duration) Option {
	return func(p *Producer) {
		if first > 0 {
			p.backoff = first
		}
		if maxBackoff > 0 {
			p.backoffMax = maxBackoff
		}
	}
}

// NewProducer wraps cl, a client built with ProducerOpts (its owner closes it), and logs produce failures
// to log (nil discards them).
func NewProducer(cl *kgo.Client, log *zap.Logger, opts ...Option) *Producer {
	if log == nil {
		log = zap.NewNop()
	}
	p := &Producer{cl: cl, log: log, backoff: 100 * time.Millisecond, backoffMax: 5 * time.Second}
	for _, opt := range opts {
		opt(p)
	}
	p.backoffMax = max(p.backoffMax, p.backoff)
	return p
}

// Send produces rec and returns nil once the broker has acknowledged it (with ProducerOpts: from all
// in-sync replicas); rec then carries the partition and offset it was stored at. When the client fails the
// record (a topic that does not exist yet, an authorization error, a client retry limit the caller set),
// Send logs the failure at warn level and produces it again after a backoff that doubles up to its cap. It
// never gives up and never drops the record; it returns an error only when ctx ends first, and then the
// record may or may not have been stored: the caller must treat it as not done.
//
// rec must not be in use elsewhere while Send runs. Send is safe for concurrent use with distinct records.
func (p *Producer) Send(ctx context.Context, rec *kgo.Record) error {
	backoff := p.backoff
	for attempt := 1; ; attempt++ {
		err := p.cl.ProduceSync(ctx, rec).FirstErr()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("producing to %s after %d attempts: %w (last error: %w)", rec.Topic, attempt, ctx.Err(), err)
		}
		p.log.Warn("producing a copy failed, retrying",
			append(provenanceFields(rec),
				zap.String("topic", rec.Topic),
				zap.Int("attempt", attempt),
				zap.Duration("retry_in", backoff),
				zap.Error(err))...)
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("producing to %s after %d attempts: %w (last error: %w)", rec.Topic, attempt, ctx.Err(), err)
		case <-t.C:
		}
		backoff = min(2*backoff, p.backoffMax)
	}
}

// provenanceFields locates the source record of a copy for the log, never its key or value.
func provenanceFields(rec *kgo.Record) []zap.Field {
	prov, _ := envelope.Parse(rec.Headers) // best effort: the fields that parse are enough for a log line
	return []zap.Field{
		zap.String("original_topic", prov.OriginalTopic),
		zap.Int32("original_partition", prov.OriginalPartition),
		zap.Int64("original_offset", prov.OriginalOffset),
	}
}
