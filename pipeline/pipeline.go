package pipeline

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"time"

	"github.com/kafka-sidecar/kafka-sidecar/consumer"
	"github.com/kafka-sidecar/kafka-sidecar/dedup"
	"github.com/kafka-sidecar/kafka-sidecar/envelope"
	"github.com/kafka-sidecar/kafka-sidecar/handler"
	"github.com/kafka-sidecar/kafka-sidecar/metrics"
	"github.com/kafka-sidecar/kafka-sidecar/retry"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"
)

// Deduper is the pipeline's view of the dedup store. dedup.Coalescer implements it: it gathers the calls made
// for many records at once into shared round trips, so the engine makes a call per set of records.
type Deduper interface {
	ClaimMany(ctx context.Context, marks []dedup.Mark) ([]dedup.Status, error)
	CompleteMany(ctx context.Context, marks []dedup.Mark) error
	// Park marks a record whose copy a retry or dead-letter topic acknowledged (its position only: the copy
	// carries the ID) and drops its lease.
	Park(ctx context.Context, m dedup.Mark) error
	Release(ctx context.Context, m dedup.Mark) error
	// CompleteManyThen writes done marks and calls then with the outcome, quickly, from the goroutine that
	// made the store call.
	CompleteManyThen(marks []dedup.Mark, then func(error))
}

// Sender writes a copy to a retry or dead-letter topic and returns nil only after the broker acknowledged it
// (acks from all in-sync replicas). It retries on its own until ctx ends.
type Sender interface {
	Send(ctx context.Context, rec *kgo.Record) error
}

// Tier locates a retry topic: the source topic it serves and its 1-based tier.
type Tier struct {
	Source string
	Tier   int
}

// Options configures a Pipeline.
type Options struct {
	// Group is the consumer group, written into provenance headers.
	Group string
	// IDHeader names the record header holding the message ID; empty means topic/partition/offset.
	IDHeader string
	// MessageID, when set, finds the message ID of a record that has none in IDHeader (a CloudEvent's source
	// and id, say); ok false means the record has none of its own and its ID is its position.
	MessageID func(rec *kgo.Record) (id string, ok bool)
	// Policy is the retry policy.
	Policy retry.Policy
	// RetryTopics maps every retry topic this group consumes to its source and tier.
	RetryTopics map[string]Tier
	// RetryTopic names tier n of a source topic; DeadLetterTopic names a source topic's dead-letter topic.
	RetryTopic      func(source string, tier int) string
	DeadLetterTopic func(source string) string
	// BatchDelivery hands the records of a batch to the deliverer in one call per source topic (the HTTP
	// deliverer then sends one request for them); otherwise each record gets a call, and a request, of its
	// own.
	BatchDelivery bool
	// MaxDeliveries bounds the records between their delivery and their done mark (0: no bound beyond the
	// consumer's in-flight cap), and so the requests under way at once in per-record mode and what a crash can
	// make the app see twice.
	MaxDeliveries int
	// MaxRecordBytes sends larger records to the dead-letter topic without delivering them (0: no limit).
	MaxRecordBytes int64
	// AppBackoffMax caps the pause while the app is unavailable; DedupBackoffMax the one while the store is.
	AppBackoffMax   time.Duration
	DedupBackoffMax time.Duration
	// IsAuthError classifies dedup store errors that retrying cannot fix; Fatal is called with them.
	IsAuthError func(error) bool
	Fatal       func(error)
	Logger      *zap.Logger
	Metrics     *metrics.Metrics
	// Tracer is told of the record's steps; nil traces nothing.
	Tracer Tracer
	// Middleware wraps the deliverer, the first outermost, inside the engine's own pausing and metrics
	// middleware: every delivery, single or batch, goes through it.
	Middleware []handler.Middleware
}

// Pipeline finishes records: claim the message ID, deliver to the app, and route the answer — complete on
// success, retry in place, park in a retry tier or the dead-letter topic — so that a record is reported done
// only when it is. It implements consumer.BatchProcessor.
type Pipeline struct {
	opts Options
	// deliverer is the app's deliverer wrapped in the middleware chain.
	deliverer handler.Deliverer
	dedup     Deduper
	send      Sender
	gate      *Gate
	tracer    Tracer
	log       *zap.Logger
	m         *metrics.Metrics

	appBackoff   backoff
	dedupBackoff backoff
	now          func() time.Time
	rnd          func() float64

	// local holds the message IDs being processed in this sidecar. The channel, closed when the ID leaves, is
	// made only once a second record with the ID waits for it: the common case costs no allocation.
	localMu sync.Mutex
	local   map[string]chan struct{}

	// slots holds a token per record between its delivery and its done mark when MaxDeliveries bounds them;
	// nil otherwise.
	slots chan struct{}
	// runner runs the sets of records that go on their own.
	runner *runner
}

// New builds a Pipeline that hands records to deliverer through the middleware of opts.
func New(d Deduper, deliverer handler.Deliverer, s Sender, gate *Gate, opts Options) *Pipeline {
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	if opts.AppBackoffMax <= 0 {
		opts.AppBackoffMax = 10 * time.Second
	}
	if opts.DedupBackoffMax <= 0 {
		opts.DedupBackoffMax = 5 * time.Second
	}
	p := &Pipeline{
		opts: opts, dedup: d, send: s, gate: gate,
		tracer:       opts.Tracer,
		log:          opts.Logger,
		m:            opts.Metrics,
		runner:       newRunner(max(2*opts.MaxDeliveries, 64)),
		appBackoff:   backoff{first: 100 * time.Millisecond, max: opts.AppBackoffMax},
		dedupBackoff: backoff{first: 100 * time.Millisecond, max: opts.DedupBackoffMax},
		now:          time.Now,
		rnd:          rand.Float64,
		local:        map[string]chan struct{}{},
	}
	if p.tracer == nil {
		p.tracer = nopTracer{}
	}
	mws := append([]handler.Middleware{p.pausing, p.measuring}, opts.Middleware...)
	p.deliverer = handler.Chain(deliverer, mws...)
	if opts.MaxDeliveries > 0 {
		p.slots = make(chan struct{}, opts.MaxDeliveries)
	}
	return p
}

// message is a record with what the pipeline knows of its history.
type message struct {
	rec  *kgo.Record
	id   string
	prov envelope.Provenance
	// source is the topic the record was first consumed from; tier 0 is that topic itself.
	source string
	tier   int
	// provenanced is true when rec carries sidecar-* headers of its own (a retry copy or a replayed dead
	// letter): those are the sidecar's bookkeeping and are not forwarded to the app.
	provenanced bool
	// ownID is true when the ID is the record's own (IDHeader, or Options.MessageID), not its position.
	ownID bool
	// mark names the record for the dedup store.
	mark dedup.Mark
}

// NotBefore returns the time a retry record may be offered again; zero for source records. A malformed
// header counts as "now": the record is delivered rather than stuck.
func (p *Pipeline) NotBefore(rec *kgo.Record) time.Time {
	if _, ok := p.opts.RetryTopics[rec.Topic]; !ok {
		return time.Time{}
	}
	return envelope.NotBefore(rec.Headers)
}

// decode works out the message ID and provenance of rec.
func (p *Pipeline) decode(rec *kgo.Record, topicID [16]byte) message {
	m := message{rec: rec, source: rec.Topic}
	if t, ok := p.opts.RetryTopics[rec.Topic]; ok {
		m.source, m.tier = t.Source, t.Tier
		prov, err := envelope.Parse(rec.Headers)
		if err != nil {
			// A damaged header must not strand the record: keep what parsed, fill the rest from the record.
			p.log.Warn("malformed provenance header on a retry record; using what parsed",
				zap.String("topic", rec.Topic), zap.Int32("partition", rec.Partition),
				zap.Int64("offset", rec.Offset), zap.Error(err))
		}
		m.prov = prov
		m.provenanced = true
	} else if envelope.IsReplay(rec.Headers) {
		// A replayed dead letter keeps its message ID and original position, so dedup knows it.
		m.prov, _ = envelope.Parse(rec.Headers)
		m.provenanced = true
	}
	if m.prov.OriginalTopic == "" {
		m.prov.OriginalTopic = m.source
		m.prov.OriginalPartition = rec.Partition
		m.prov.OriginalOffset = rec.Offset
	}
	if m.prov.OriginalTimestamp.IsZero() {
		m.prov.OriginalTimestamp = rec.Timestamp
	}
	m.prov.Group = p.opts.Group
	m.id = m.prov.ID
	if m.id == "" && p.opts.IDHeader != "" {
		for i := len(rec.Headers) - 1; i >= 0; i-- {
			if rec.Headers[i].Key == p.opts.IDHeader && len(rec.Headers[i].Value) > 0 {
				m.id = string(rec.Headers[i].Value)
				break
			}
		}
	}
	if m.id == "" && p.opts.MessageID != nil {
		if id, ok := p.opts.MessageID(rec); ok {
			m.id = id
		}
	}
	position := m.prov.OriginalTopic + "/" + strconv.FormatInt(int64(m.prov.OriginalPartition), 10) + "/" +
		strconv.FormatInt(m.prov.OriginalOffset, 10)
	if m.id == "" {
		m.id = position
	}
	// A copy carries the ID it was given at first, so what it is (its own or its position) is told by its form.
	m.ownID = m.id != position
	m.prov.ID = m.id
	// A copy or a replayed dead letter is claimed and marked by its ID too, even one that is the original's
	// position: that ID names another record, so only an ID mark recognises the message in a second copy.
	m.mark = dedup.Mark{TopicID: topicID, Topic: rec.Topic, Partition: rec.Partition, Epoch: rec.LeaderEpoch,
		Offset: rec.Offset, ID: m.id, OwnID: m.ownID || m.provenanced}
	return m
}

func (p *Pipeline) fields(m *message) []zap.Field {
	return []zap.Field{
		zap.String("topic", m.rec.Topic), zap.Int32("partition", m.rec.Partition),
		zap.Int64("offset", m.rec.Offset), zap.String("id", m.id),
	}
}

// ProcessBatch implements consumer.BatchProcessor: it starts every job's record on its path. The records go
// through each step together where they can (one store round trip claims all of them; in batch delivery mode
// one request per source topic carries them to the app; their done marks share round trips), and part ways
// where their paths do (a retry after a backoff, a park, another member's lease), each going on alone.
func (p *Pipeline) ProcessBatch(jobs []consumer.Job, report consumer.Report) {
	recs := make([]record, len(jobs))
	set := make([]*record, 0, len(jobs))
	for i, j := range jobs {
		r := &recs[i]
		r.job, r.idx, r.report = j, i, report
		r.m = p.decode(j.Rec, j.TopicID)
		r.traced, r.endSpan = p.tracer.Consume(j.Ctx, j.Rec, r.m.id)
		if r.m.tier > 0 {
			if nb := p.NotBefore(j.Rec); !nb.IsZero() {
				p.tracer.Wait(r.traced, nb)()
			}
		}
		if err := j.Ctx.Err(); err != nil {
			p.finish([]*record{r}, err)
			continue
		}
		r.d = r.m.delivery()
		r.d.Context = r.traced
		set = append(set, r)
	}
	p.run(set)
}

// Process finishes one record and returns once it is done (nil) or stopped undone (normally ctx's error, when
// the partition was revoked or the sidecar is stopping), as consumer.Report describes.
func (p *Pipeline) Process(ctx context.Context, rec *kgo.Record) error {
	done := make(chan error, 1)
	p.ProcessBatch([]consumer.Job{{Ctx: ctx, Rec: rec}}, func(err error, _ ...int) { done <- err })
	return <-done
}

// duplicate counts a record skipped because its ID is done.
func (p *Pipeline) duplicate(m *message) {
	p.m.DedupHit()
	p.m.Record(m.source, metrics.OutcomeDuplicate)
	p.log.Debug("duplicate suppressed", p.fields(m)...)
}

// oversize tells whether rec exceeds SIDECAR_MAX_RECORD_BYTES, and why.
func (p *Pipeline) oversize(rec *kgo.Record) (string, bool) {
	limit := p.opts.MaxRecordBytes
	if limit <= 0 {
		return "", false
	}
	size := recordBytes(rec)
	if size <= limit {
		return "", false
	}
	return fmt.Sprintf("record of %d bytes exceeds SIDECAR_MAX_RECORD_BYTES (%d)", size, limit), true
}

// storeFailed pauses delivery after a dedup store error: nothing is delivered without dedup.
func (p *Pipeline) storeFailed(err error, m *message) {
	p.m.DedupError()
	if p.opts.IsAuthError != nil && p.opts.IsAuthError(err) && p.opts.Fatal != nil {
		p.opts.Fatal(fmt.Errorf("dedup store authentication failed: %w", err))
	}
	d := p.dedupBackoff.next(p.now())
	p.gate.PauseFor(metrics.PauseDedupUnavailable, d)
	p.log.Warn("dedup store unavailable; pausing delivery", append(p.fields(m), zap.Duration("pause", d), zap.Error(err))...)
}

// closedStore reports whether err says the store was closed: the sidecar is stopping, waiting cannot help.
func (p *Pipeline) closedStore(err error) bool { return errors.Is(err, dedup.ErrClosed) }

// delivery is the request the app gets for m (its Attempt set before each send).
func (m *message) delivery() handler.Delivery {
	d := handler.Delivery{
		ID:        m.id,
		Topic:     m.prov.OriginalTopic,
		Partition: m.prov.OriginalPartition,
		Offset:    m.prov.OriginalOffset,
		Timestamp: m.prov.OriginalTimestamp,
		Key:       m.rec.Key,
		Value:     m.rec.Value,
		Headers:   m.rec.Headers,
		Attempt:   m.prov.Attempts + 1,
	}
	if m.provenanced {
		d.Headers = envelope.Strip(m.rec.Headers)
	}
	return d
}

// release drops the lease so another attempt (here or on another member) can claim the ID at once. It uses
// its own short deadline: it also runs when the record's context has ended.
func (p *Pipeline) release(r *record) {
	if !r.claimed {
		return
	}
	r.claimed = false
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := p.dedup.Release(ctx, r.m.mark); err != nil && !errors.Is(err, context.Canceled) {
		p.m.DedupError()
		p.log.Warn("lease not released; it expires by itself", append(p.fields(&r.m), zap.Error(err))...)
	}
}

// enterLocal serialises records with the same message ID inside this sidecar (the store's lease names the
// sidecar, so it cannot tell two of its own workers apart): it waits while another record holds id. The
// caller calls leaveLocal(id) when done.
func (p *Pipeline) enterLocal(ctx context.Context, id string) error {
	for {
		p.localMu.Lock()
		gone, busy := p.local[id]
		if !busy {
			p.local[id] = nil
			p.localMu.Unlock()
			return nil
		}
		if gone == nil {
			gone = make(chan struct{})
			p.local[id] = gone
		}
		p.localMu.Unlock()
		select {
		case <-gone:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// tryEnterLocal is enterLocal without waiting: it reports false when another record holds id.
func (p *Pipeline) tryEnterLocal(id string) bool {
	p.localMu.Lock()
	defer p.localMu.Unlock()
	if _, busy := p.local[id]; busy {
		return false
	}
	p.local[id] = nil
	return true
}

// leaveLocal lets the next record with id in.
func (p *Pipeline) leaveLocal(id string) {
	p.localMu.Lock()
	gone := p.local[id]
	delete(p.local, id)
	p.localMu.Unlock()
	if gone != nil {
		close(gone)
	}
}

// Close waits for the records of batches that finish on their own and ends the goroutines kept for them. The
// consumer has reported every record by the time its Run returns, so a sidecar calls Close after that.
func (p *Pipeline) Close() { p.runner.Close() }

// Gate returns the gate that pauses delivery, for readiness reporting.
func (p *Pipeline) Gate() *Gate { return p.gate }

func recordBytes(r *kgo.Record) int64 {
	n := len(r.Key) + len(r.Value)
	for _, h := range r.Headers {
		n += len(h.Key) + len(h.Value)
	}
	return int64(n)
}

func sleep(ctx context.Context, d time.Duration) error {
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
