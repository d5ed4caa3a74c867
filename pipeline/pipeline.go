package pipeline

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"time"

	"github.com/kafka-sidecar/kafka-sidecar/dedup"
	"github.com/kafka-sidecar/kafka-sidecar/dlq"
	"github.com/kafka-sidecar/kafka-sidecar/handler"
	"github.com/kafka-sidecar/kafka-sidecar/metrics"
	"github.com/kafka-sidecar/kafka-sidecar/retry"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"
)

// Deduper is the pipeline's view of the dedup store: per-record calls, which dedup.Coalescer gathers into
// round trips shared by many records, and calls for a batch of records at once.
type Deduper interface {
	Claim(ctx context.Context, id string) (dedup.Status, error)
	Complete(ctx context.Context, id string) error
	Release(ctx context.Context, id string) error
	ClaimMany(ctx context.Context, ids []string) ([]dedup.Status, error)
	CompleteMany(ctx context.Context, ids []string) error
	// CompleteThen writes a done mark and calls then with the outcome, quickly, from the goroutine that made
	// the store call.
	CompleteThen(id string, then func(error))
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
	// Policy is the retry policy.
	Policy retry.Policy
	// RetryTopics maps every retry topic this group consumes to its source and tier.
	RetryTopics map[string]Tier
	// RetryTopic names tier n of a source topic; DeadLetterTopic names a source topic's dead-letter topic.
	RetryTopic      func(source string, tier int) string
	DeadLetterTopic func(source string) string
	// Batch, when set, is the deliverer ProcessBatch sends whole batches to (the Deliverer given to New then
	// serves the records a batch leaves to finish alone, such as retries). Without it, ProcessBatch claims a
	// batch in one round trip and delivers its records one by one, concurrently.
	Batch handler.Deliverer
	// MaxDeliveries bounds the deliveries to the app under way at once (0: no bound beyond the callers').
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
	// Middleware wraps the deliverer, the first outermost: every delivery, single or batch, goes through it.
	Middleware []handler.Middleware
}

// Pipeline finishes records: claim the message ID, deliver to the app, and route the answer — complete on
// success, retry in place, park in a retry tier or the dead-letter topic — so that Process returns nil only
// for a record that is done. It implements consumer.BatchProcessor.
type Pipeline struct {
	opts    Options
	dedup   Deduper
	deliver handler.Deliverer
	send    Sender
	gate    *Gate
	log     *zap.Logger
	m       *metrics.Metrics

	appBackoff   backoff
	dedupBackoff backoff
	now          func() time.Time
	rnd          func() float64

	// local holds the message IDs being processed in this sidecar. The channel, closed when the ID leaves, is
	// made only once a second record with the ID waits for it: the common case costs no allocation.
	localMu sync.Mutex
	local   map[string]chan struct{}

	// slots holds a token per delivery under way when MaxDeliveries bounds them; nil otherwise.
	slots chan struct{}
	// runner runs the records of batches that finish on their own.
	runner *runner
}

// New builds a Pipeline.
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
	var slots chan struct{}
	if opts.MaxDeliveries > 0 {
		slots = make(chan struct{}, opts.MaxDeliveries)
	}
	return &Pipeline{
		opts: opts, dedup: d, deliver: deliverer, send: s, gate: gate,
		log: opts.Logger, m: opts.Metrics,
		slots:        slots,
		runner:       newRunner(max(2*opts.MaxDeliveries, 64)),
		appBackoff:   backoff{first: 100 * time.Millisecond, max: opts.AppBackoffMax},
		dedupBackoff: backoff{first: 100 * time.Millisecond, max: opts.DedupBackoffMax},
		now:          time.Now,
		rnd:          rand.Float64,
		local:        map[string]chan struct{}{},
	}
}

// message is a record with what the pipeline knows of its history.
type message struct {
	rec  *kgo.Record
	id   string
	prov retry.Provenance
	// source is the topic the record was first consumed from; tier 0 is that topic itself.
	source string
	tier   int
	// provenanced is true when rec carries sidecar-* headers of its own (a retry copy or a replayed dead
	// letter): those are the sidecar's bookkeeping and are not forwarded to the app.
	provenanced bool
	// finished, when set, lets a delivered record end without its goroutine waiting for the done mark:
	// deliverLoop then returns errFinishing and finished is called once the mark is written.
	finished func()
}

// errFinishing tells the caller of deliverLoop that the record was delivered and finishes on its own: its
// message's finished is called once its done mark is written.
var errFinishing = errors.New("delivered; finishing once the done mark is written")

// NotBefore returns the time a retry record may be offered again; zero for source records. A malformed
// header counts as "now": the record is delivered rather than stuck.
func (p *Pipeline) NotBefore(rec *kgo.Record) time.Time {
	if _, ok := p.opts.RetryTopics[rec.Topic]; !ok {
		return time.Time{}
	}
	for i := len(rec.Headers) - 1; i >= 0; i-- {
		if rec.Headers[i].Key == retry.HeaderNotBefore {
			ms, err := strconv.ParseInt(string(rec.Headers[i].Value), 10, 64)
			if err != nil || ms <= 0 {
				return time.Time{}
			}
			return time.UnixMilli(ms)
		}
	}
	return time.Time{}
}

// decode works out the message ID and provenance of rec.
func (p *Pipeline) decode(rec *kgo.Record) message {
	m := message{rec: rec, source: rec.Topic}
	if t, ok := p.opts.RetryTopics[rec.Topic]; ok {
		m.source, m.tier = t.Source, t.Tier
		prov, err := retry.Parse(rec.Headers)
		if err != nil {
			// A damaged header must not strand the record: keep what parsed, fill the rest from the record.
			p.log.Warn("malformed provenance header on a retry record; using what parsed",
				zap.String("topic", rec.Topic), zap.Int32("partition", rec.Partition),
				zap.Int64("offset", rec.Offset), zap.Error(err))
		}
		m.prov = prov
		m.provenanced = true
	} else if dlq.IsReplay(rec.Headers) {
		// A replayed dead letter keeps its message ID and original position, so dedup knows it.
		m.prov, _ = retry.Parse(rec.Headers)
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
	if m.id == "" {
		m.id = m.prov.OriginalTopic + "/" + strconv.FormatInt(int64(m.prov.OriginalPartition), 10) + "/" +
			strconv.FormatInt(m.prov.OriginalOffset, 10)
	}
	m.prov.ID = m.id
	return m
}

func (p *Pipeline) fields(m *message) []zap.Field {
	return []zap.Field{
		zap.String("topic", m.rec.Topic), zap.Int32("partition", m.rec.Partition),
		zap.Int64("offset", m.rec.Offset), zap.String("id", m.id),
	}
}

// Process finishes one record on the calling goroutine. It returns nil only when the record is done; an error
// (normally ctx's, when the partition was revoked or the sidecar is stopping) means the record stays undone,
// as consumer.Report describes.
func (p *Pipeline) Process(ctx context.Context, rec *kgo.Record) error {
	m := p.decode(rec)
	if err := p.enterLocal(ctx, m.id); err != nil {
		return err
	}
	defer p.leaveLocal(m.id)
	return p.claimAndDeliver(ctx, &m)
}

// claimAndDeliver finishes a record whose ID this goroutine holds locally: claim, then deliver.
func (p *Pipeline) claimAndDeliver(ctx context.Context, m *message) error {
	status, err := p.claim(ctx, m)
	if err != nil {
		return err
	}
	if status == dedup.Done {
		p.duplicate(m)
		return nil
	}
	return p.deliverClaimed(ctx, m, nil)
}

// duplicate counts a record skipped because its ID is done.
func (p *Pipeline) duplicate(m *message) {
	p.m.DedupHit()
	p.m.Record(m.source, metrics.OutcomeDuplicate)
	p.log.Debug("duplicate suppressed", p.fields(m)...)
}

// deliverClaimed finishes a record whose lease this sidecar holds; every path ends in Complete, Release or a
// parked copy. first, when set, is the answer to a delivery already made (by a batch).
func (p *Pipeline) deliverClaimed(ctx context.Context, m *message, first *handler.Result) error {
	if reason, over := p.oversize(m.rec); over {
		return p.park(ctx, m, retry.Decision{Action: retry.DeadLetter, Tier: m.tier}, handler.Result{Outcome: handler.Permanent, Reason: reason})
	}
	return p.deliverLoop(ctx, m, first)
}

// takeSlot waits for room under MaxDeliveries; giveSlot gives it back.
func (p *Pipeline) takeSlot(ctx context.Context) error {
	if p.slots == nil {
		return nil
	}
	select {
	case p.slots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (p *Pipeline) giveSlot() {
	if p.slots != nil {
		<-p.slots
	}
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

// claim takes the lease on m's ID, waiting out store outages and other owners' leases.
func (p *Pipeline) claim(ctx context.Context, m *message) (dedup.Status, error) {
	busyWait := 50 * time.Millisecond
	for {
		if err := p.gate.Wait(ctx); err != nil {
			return 0, err
		}
		st, err := p.dedup.Claim(ctx, m.id)
		if err != nil {
			if ctx.Err() != nil {
				return 0, ctx.Err()
			}
			p.storeFailed(err, m)
			continue
		}
		p.dedupBackoff.reset()
		if st != dedup.Busy {
			return st, nil
		}
		// Another sidecar delivers this ID now (a rebalance moved it): wait for its Complete, Release or expiry.
		p.log.Debug("message ID leased by another member; waiting", p.fields(m)...)
		if err := sleep(ctx, busyWait); err != nil {
			return 0, err
		}
		busyWait = min(busyWait*2, 2*time.Second)
	}
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
		d.Headers = retry.Strip(m.rec.Headers)
	}
	return d
}

// deliverLoop delivers m until it is done. first, when set, is the answer to the first attempt, already made
// (and counted in the metrics) by a batch.
func (p *Pipeline) deliverLoop(ctx context.Context, m *message, first *handler.Result) error {
	attemptsOnTier := 0
	d := m.delivery()
	for {
		var res handler.Result
		if first != nil {
			res, first = *first, nil
		} else {
			if err := p.gate.Wait(ctx); err != nil {
				p.release(m)
				return err
			}
			d.Attempt = m.prov.Attempts + 1
			if err := p.takeSlot(ctx); err != nil {
				p.release(m)
				return err
			}
			res = deliverOne(ctx, p.deliver, &d)
			p.giveSlot()
			if ctx.Err() != nil {
				p.release(m)
				return ctx.Err()
			}
			p.m.Delivery(res.Outcome.String(), res.Elapsed)
		}
		switch res.Outcome {
		case handler.Success:
			p.appBackoff.reset()
			p.m.AppUp(true)
			if m.finished != nil {
				p.completeThen(ctx, m)
				return errFinishing
			}
			p.complete(ctx, m)
			p.m.Record(m.source, metrics.OutcomeDelivered)
			return nil
		case handler.AppUnavailable:
			p.m.AppUp(false)
			pause := p.appBackoff.next(p.now())
			if res.RetryAfter > 0 {
				pause = res.RetryAfter
			}
			p.gate.PauseFor(metrics.PauseAppUnavailable, pause)
			p.log.Warn("app unavailable; pausing delivery (no attempt used)",
				append(p.fields(m), zap.String("reason", res.Reason), zap.Duration("pause", pause))...)
			continue
		}
		p.m.AppUp(true)
		m.prov.Attempts++
		attemptsOnTier++
		dec := p.opts.Policy.Next(m.tier, attemptsOnTier, res.Outcome == handler.Permanent)
		if dec.Action == retry.InPlace {
			wait := p.opts.Policy.BackoffFor(attemptsOnTier, p.rnd())
			p.log.Info("delivery failed; retrying in place",
				append(p.fields(m), zap.Int("attempt", m.prov.Attempts), zap.String("reason", res.Reason), zap.Duration("backoff", wait))...)
			if err := sleep(ctx, wait); err != nil {
				p.release(m)
				return err
			}
			continue
		}
		return p.park(ctx, m, dec, res)
	}
}

// park copies m to the retry tier or dead-letter topic dec names, waits for the broker's ack, and releases the
// lease so the copy can be delivered later (by whichever member consumes it).
func (p *Pipeline) park(ctx context.Context, m *message, dec retry.Decision, res handler.Result) error {
	prov := m.prov
	prov.Error = res.Reason
	prov.ErrorStatus = res.Status
	prov.FailedAt = p.now()
	if prov.Attempts == 0 {
		prov.Attempts = 1 // a record refused before delivery still used its one chance
	}
	var topic string
	outcome := metrics.OutcomeDeadLettered
	if dec.Action == retry.ToTier {
		topic = p.opts.RetryTopic(m.source, dec.Tier)
		prov.NotBefore = p.now().Add(dec.Delay)
		outcome = metrics.OutcomeRetried
	} else {
		topic = p.opts.DeadLetterTopic(m.source)
		prov.NotBefore = time.Time{}
	}
	copyRec := retry.Copy(m.rec, prov, topic)
	if err := p.send.Send(ctx, copyRec); err != nil {
		p.release(m)
		return fmt.Errorf("parking %s in %s: %w", m.id, topic, err)
	}
	p.release(m)
	p.m.Record(m.source, outcome)
	if dec.Action == retry.ToTier {
		p.m.Retried(dec.Tier)
	} else {
		p.m.DeadLettered(topic)
	}
	p.log.Info("record parked", append(p.fields(m), zap.String("to", topic), zap.Int("attempts", prov.Attempts),
		zap.String("reason", res.Reason))...)
	return nil
}

// complete writes the done mark. The record was delivered, so it is done whatever happens here; the mark is
// what keeps a redelivery (after an offset loss) from reaching the app, so store outages are waited out while
// the record's context lives.
func (p *Pipeline) complete(ctx context.Context, m *message) {
	for {
		err := p.dedup.Complete(ctx, m.id)
		if err == nil {
			p.dedupBackoff.reset()
			return
		}
		if ctx.Err() != nil || errors.Is(err, dedup.ErrClosed) {
			p.log.Warn("done mark not written before shutdown; a redelivery of this ID would not be suppressed",
				append(p.fields(m), zap.Error(err))...)
			return
		}
		p.storeFailed(err, m)
		if p.gate.Wait(ctx) != nil {
			return
		}
	}
}

// completeThen is complete for a delivered record whose goroutine does not wait: m.finished is called, with
// the record counted as delivered, once the done mark is written, or once complete has waited out a store
// outage on a goroutine of its own (the callback runs on the one making the store calls, which must not
// block).
func (p *Pipeline) completeThen(ctx context.Context, m *message) {
	rec, id, source, finished := m.rec, m.id, m.source, m.finished
	p.dedup.CompleteThen(id, func(err error) {
		if err != nil {
			go func() {
				p.complete(ctx, &message{rec: rec, id: id, source: source})
				p.m.Record(source, metrics.OutcomeDelivered)
				finished()
			}()
			return
		}
		p.dedupBackoff.reset()
		p.m.Record(source, metrics.OutcomeDelivered)
		finished()
	})
}

// release drops the lease so another attempt (here or on another member) can claim the ID at once. It uses
// its own short deadline: it also runs when the record's context has ended.
func (p *Pipeline) release(m *message) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := p.dedup.Release(ctx, m.id); err != nil && !errors.Is(err, context.Canceled) {
		p.m.DedupError()
		p.log.Warn("lease not released; it expires by itself", append(p.fields(m), zap.Error(err))...)
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

// deliverOne hands one record to d.
func deliverOne(ctx context.Context, d handler.Deliverer, one *handler.Delivery) handler.Result {
	var res [1]handler.Result
	d.Deliver(ctx, []*handler.Delivery{one}, res[:])
	return res[0]
}

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
