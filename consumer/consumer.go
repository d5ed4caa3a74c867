package consumer

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"go.uber.org/zap"
)

// Job is one record handed to a BatchProcessor, with the context of its partition's lane: it ends when the
// partition is revoked (after the revoke timeout) or lost, or when the sidecar gives up draining.
type Job struct {
	Ctx context.Context
	Rec *kgo.Record
	// TopicID is the identity of the record's topic from the fetch response; zero when the broker sent none.
	TopicID [16]byte
}

// Report tells the consumer how jobs of a batch ended; idx are indexes into the batch's jobs. nil means the
// records are done — delivered, parked durably in a retry or dead-letter topic, or skipped as already done —
// and only then may their offsets be committed. An error means the processor stopped without finishing,
// normally because a job's context ended (its partition was revoked or the sidecar is stopping): the record
// stays undone and is delivered again by whoever consumes the partition next. Should its partition still be
// this member's, the record is offered again after a pause: a record is never skipped.
type Report func(err error, idx ...int)

// BatchProcessor finishes records, many at a time where it can (one request to the app, one round trip to
// the dedup store for a batch).
//
// ProcessBatch is called from several goroutines at once, with batches the ordering mode allows in flight
// together. It must call report exactly once for every job, for one job or many per call, from any goroutine,
// also after it returned: a job that needs more time than its batch (a retry with backoff, say) may finish on
// a goroutine of its own. The consumer takes the next batch once ProcessBatch returns; the jobs still out keep
// their places under the in-flight cap.
type BatchProcessor interface {
	ProcessBatch(jobs []Job, report Report)
}

// Options configures a Consumer.
type Options struct {
	// ClientOpts are the connection options (seeds, TLS, SASL) shared with the sidecar's other clients.
	ClientOpts []kgo.Opt
	// Topics are every topic to consume: the source topics and this group's retry topics.
	Topics []string
	// Group is the consumer group id.
	Group string
	// InstanceID enables static membership when set.
	InstanceID string
	// SessionTimeout is the group session timeout (classic protocol; with ServerAssigned the brokers'
	// group.consumer.session.timeout.ms rules).
	SessionTimeout time.Duration
	// ServerAssigned joins with KIP-848's consumer group protocol: the group coordinator assigns partitions
	// and moves them one member at a time, with no group-wide stop. It needs Kafka 4.0 or later; on older
	// brokers the client falls back to the classic protocol.
	ServerAssigned bool
	// StartAtEnd starts partitions without a committed offset at the end instead of the start.
	StartAtEnd bool
	// Ordering decides which records of a partition may be in flight together.
	Ordering Ordering
	// MaxInFlight bounds the records being processed at once.
	MaxInFlight int
	// BatchMaxRecords bounds the records of one batch (1 when not positive); a batch waits up to BatchMaxWait
	// to fill.
	BatchMaxRecords int
	BatchMaxWait    time.Duration
	// MaxBufferedRecords and MaxBufferedBytes bound the records fetched and not done; polling waits above them.
	MaxBufferedRecords int
	MaxBufferedBytes   int64
	// CommitInterval is how often done positions are committed.
	CommitInterval time.Duration
	// RevokeTimeout bounds how long in-flight records of a revoked partition may finish before they are cancelled.
	RevokeTimeout time.Duration
	// ShutdownTimeout bounds the drain when Run's context ends.
	ShutdownTimeout time.Duration
	// NotBefore returns the time before which a record must not start (zero: now). Used for retry topics.
	NotBefore func(*kgo.Record) time.Time
	// Fatal classifies errors that must stop the consumer (e.g. rejected credentials) instead of being retried.
	Fatal func(error) bool
	// Logger receives the consumer's logs.
	Logger *zap.Logger
	// OnCommit, when set, is told of every commit attempt: the partitions committed and the error, if any.
	OnCommit func(committed int, err error)
	// Released, when set, is called with partitions this member gives up (revoked, lost, or all of them at
	// shutdown) once none of their records is in flight any more, so the dedup store can drop the leases it
	// holds on them and the next owner goes on at once.
	Released func(ctx context.Context, partitions map[string][]int32)
}

// Consumer is a group member that hands every fetched record to a BatchProcessor under the ordering mode and
// commits only positions below which every record is done.
type Consumer struct {
	opts  Options
	proc  BatchProcessor
	log   *zap.Logger
	cl    *kgo.Client
	sched *scheduler

	// workCtx scopes processing; it outlives Run's context so in-flight records can drain.
	workCtx    context.Context
	workCancel context.CancelFunc

	commitMu sync.Mutex
	joined   atomic.Bool

	// pending counts jobs handed to the BatchProcessor and not yet reported.
	pending sync.WaitGroup

	failMu     sync.Mutex
	failErr    error
	cancelPoll context.CancelFunc
}

// ErrFatal wraps an error that stopped the consumer for good (see Options.Fatal).
var ErrFatal = errors.New("fatal consumer error")

// New builds a Consumer; it connects lazily when Run starts.
func New(proc BatchProcessor, opts Options) (*Consumer, error) {
	if len(opts.Topics) == 0 || opts.Group == "" {
		return nil, errors.New("consumer needs topics and a group")
	}
	if opts.MaxInFlight <= 0 {
		opts.MaxInFlight = 1
	}
	if opts.MaxBufferedRecords <= 0 {
		opts.MaxBufferedRecords = 5000
	}
	if opts.MaxBufferedBytes <= 0 {
		opts.MaxBufferedBytes = 8 << 20
	}
	if opts.CommitInterval <= 0 {
		opts.CommitInterval = time.Second
	}
	if opts.BatchMaxRecords <= 0 {
		opts.BatchMaxRecords = 1
	}
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	c := &Consumer{
		opts:  opts,
		proc:  proc,
		log:   opts.Logger,
		sched: newScheduler(opts.Ordering, opts.MaxBufferedRecords, opts.MaxBufferedBytes, opts.NotBefore),
	}
	c.sched.maxInFlight = opts.MaxInFlight
	c.workCtx, c.workCancel = context.WithCancel(context.Background())

	start := kgo.NewOffset().AtStart()
	if opts.StartAtEnd {
		start = kgo.NewOffset().AtEnd()
	}
	// franz-go holds a fetched response apart from our buffer and decompresses all of it on arrival: the fetch
	// limits count compressed bytes, and well-compressed records grow tenfold. Small fetches keep memory
	// bounded by the buffer caps; throughput does not need more than a megabyte per round trip.
	fetchMax := int32(min(max(opts.MaxBufferedBytes/16, 256<<10), 1<<20))
	kopts := append([]kgo.Opt{}, opts.ClientOpts...)
	kopts = append(kopts,
		kgo.ConsumerGroup(opts.Group),
		kgo.ConsumeTopics(opts.Topics...),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
		kgo.ConsumeResetOffset(start),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.FetchMaxBytes(fetchMax),
		kgo.FetchMaxPartitionBytes(max(fetchMax/4, 64<<10)),
		kgo.OnPartitionsAssigned(c.onAssigned),
		kgo.OnPartitionsRevoked(c.onRevoked),
		kgo.OnPartitionsLost(c.onLost),
	)
	if opts.ServerAssigned {
		// The coordinator's own sticky assignor ("uniform") does the work: franz-go takes the sticky
		// balancer as the request for it, and any other balancer as a reason to stay classic.
		kopts = append(kopts, kgo.ServerSideBalancer(), kgo.Balancers(kgo.StickyBalancer()))
	} else {
		kopts = append(kopts, kgo.Balancers(kgo.CooperativeStickyBalancer()))
	}
	if opts.SessionTimeout > 0 {
		kopts = append(kopts, kgo.SessionTimeout(opts.SessionTimeout))
	}
	if opts.InstanceID != "" {
		kopts = append(kopts, kgo.InstanceID(opts.InstanceID))
	}
	cl, err := kgo.NewClient(kopts...)
	if err != nil {
		return nil, fmt.Errorf("creating kafka consumer: %w", err)
	}
	c.cl = cl
	return c, nil
}

// Joined reports whether the consumer currently has an assignment from the group.
func (c *Consumer) Joined() bool { return c.joined.Load() }

// Stats snapshots every assigned partition.
func (c *Consumer) Stats() []PartitionStats { return c.sched.stats() }

// InFlight returns the records being processed now.
func (c *Consumer) InFlight() int {
	c.sched.mu.Lock()
	defer c.sched.mu.Unlock()
	return c.sched.inFlight
}

// Fail stops Run with err wrapped in ErrFatal, for errors found outside the consumer (e.g. rejected Redis
// credentials) that retrying cannot fix.
func (c *Consumer) Fail(err error) {
	c.failMu.Lock()
	defer c.failMu.Unlock()
	if c.failErr == nil {
		c.failErr = err
	}
	if c.cancelPoll != nil {
		c.cancelPoll()
	}
}

func (c *Consumer) failure() error {
	c.failMu.Lock()
	defer c.failMu.Unlock()
	return c.failErr
}

// Run consumes until ctx ends or a fatal error occurs. On the way out it stops fetching, lets in-flight records
// finish within the shutdown timeout (cancelling the rest, whose processors release their leases), commits what
// is done, and leaves the group. It returns nil after a clean shutdown.
func (c *Consumer) Run(ctx context.Context) error {
	var workers sync.WaitGroup
	// Enough workers to keep the in-flight cap busy with full batches.
	for range (c.opts.MaxInFlight + c.opts.BatchMaxRecords - 1) / c.opts.BatchMaxRecords {
		workers.Add(1)
		go func() {
			defer workers.Done()
			c.work()
		}()
	}
	var loops sync.WaitGroup
	loopCtx, stopLoops := context.WithCancel(context.Background())
	loops.Add(2)
	go func() { defer loops.Done(); c.commitLoop(loopCtx) }()
	go func() { defer loops.Done(); c.pauseLoop(loopCtx) }()

	pollCtx, cancelPoll := context.WithCancel(ctx)
	c.failMu.Lock()
	c.cancelPoll = cancelPoll
	if c.failErr != nil {
		cancelPoll()
	}
	c.failMu.Unlock()
	runErr := c.poll(pollCtx)
	cancelPoll()
	if err := c.failure(); err != nil && runErr == nil {
		runErr = fmt.Errorf("%w: %w", ErrFatal, err)
	}

	// Drain: no new records start; in-flight ones get the shutdown timeout.
	c.sched.stop()
	drained := make(chan struct{})
	go func() { workers.Wait(); c.pending.Wait(); close(drained) }()
	timeout := c.opts.ShutdownTimeout
	if runErr != nil {
		timeout = min(timeout, 5*time.Second)
	}
	select {
	case <-drained:
	case <-time.After(timeout):
		c.log.Warn("shutdown timeout reached: cancelling in-flight deliveries", zap.Int("in_flight", c.InFlight()))
		c.workCancel()
		<-drained
	}
	stopLoops()
	loops.Wait()

	commitCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	if err := c.commit(commitCtx, nil); err != nil {
		c.log.Error("final commit failed; the next owner re-reads from the last commit", zap.Error(err))
	}
	cancel()
	c.released(c.sched.owned())
	c.workCancel()
	c.cl.CloseAllowingRebalance()
	c.joined.Store(false)
	return runErr
}

func (c *Consumer) poll(ctx context.Context) error {
	for {
		n, ok := c.sched.waitForSpace(ctx)
		if !ok {
			return nil
		}
		fetches := c.cl.PollRecords(ctx, n)
		if fetches.IsClientClosed() {
			return nil
		}
		var fatal error
		fetches.EachError(func(topic string, partition int32, err error) {
			if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
				return
			}
			if c.opts.Fatal != nil && c.opts.Fatal(err) {
				fatal = err
				return
			}
			c.log.Warn("fetch error; retrying", zap.String("topic", topic), zap.Int32("partition", partition), zap.Error(err))
		})
		fetches.EachTopic(func(t kgo.FetchTopic) {
			for _, p := range t.Partitions {
				if len(p.Records) > 0 || p.HighWatermark >= 0 {
					c.sched.add(t.Topic, t.TopicID, p.Partition, p.Records, p.HighWatermark)
				}
			}
		})
		c.cl.AllowRebalance()
		if fatal != nil {
			return fmt.Errorf("%w: %w", ErrFatal, fatal)
		}
		if ctx.Err() != nil {
			return nil
		}
	}
}

// retryLater offers again, after a pause, a record whose processor gave up while its partition lives on: a
// record is never skipped.
func (c *Consumer) retryLater(it *item, err error) {
	c.log.Error("processing failed; will retry the record",
		zap.String("topic", it.rec.Topic), zap.Int32("partition", it.rec.Partition),
		zap.Int64("offset", it.rec.Offset), zap.Error(err))
	c.sched.retryLater(it, time.Second)
}

// work hands batches to the BatchProcessor until the scheduler stops.
func (c *Consumer) work() {
	for {
		items, ok := c.sched.nextBatch(context.Background(), c.opts.BatchMaxRecords, c.opts.BatchMaxWait)
		if !ok {
			return
		}
		jobs := make([]Job, len(items))
		for i, it := range items {
			jobs[i] = Job{Ctx: it.lane.ctx, Rec: it.rec, TopicID: it.topicID}
		}
		c.pending.Add(len(items))
		c.proc.ProcessBatch(jobs, c.reporter(items))
	}
}

// reporter returns the Report for a batch of items: it finishes them as the processor reports, and ignores
// (with an error log) a second report of the same job, which would otherwise corrupt the offset tracking.
func (c *Consumer) reporter(items []*item) Report {
	var mu sync.Mutex
	reported := make([]bool, len(items))
	return func(err error, idx ...int) {
		mu.Lock()
		fresh := make([]*item, 0, len(idx))
		for _, i := range idx {
			if i < 0 || i >= len(items) || reported[i] {
				c.log.Error("batch processor reported a job twice or out of range; ignored", zap.Int("job", i))
				continue
			}
			reported[i] = true
			fresh = append(fresh, items[i])
		}
		mu.Unlock()
		switch {
		case err == nil:
			c.sched.finishMany(fresh, true)
		default:
			var undone []*item
			for _, it := range fresh {
				if it.lane.ctx.Err() != nil {
					undone = append(undone, it)
				} else {
					c.retryLater(it, err)
				}
			}
			c.sched.finishMany(undone, false)
		}
		c.pending.Add(-len(fresh))
	}
}

func (c *Consumer) commitLoop(ctx context.Context) {
	t := time.NewTicker(c.opts.CommitInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			cctx, cancel := context.WithTimeout(ctx, max(c.opts.CommitInterval*5, 5*time.Second))
			if err := c.commit(cctx, nil); err != nil && ctx.Err() == nil {
				c.log.Warn("commit failed; retrying at the next interval", zap.Error(err))
			}
			cancel()
		}
	}
}

// commit sends the done positions of lanes (every live lane when nil) and records what the broker accepted.
func (c *Consumer) commit(ctx context.Context, lanes []*lane) error {
	c.commitMu.Lock()
	defer c.commitMu.Unlock()
	offsets := c.sched.positions(lanes)
	if len(offsets) == 0 {
		return nil
	}
	var (
		rerr      error
		committed = map[string]map[int32]kgo.EpochOffset{}
		n         int
	)
	c.cl.CommitOffsetsSync(ctx, offsets, func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
		if err != nil {
			rerr = err
			return
		}
		for _, t := range resp.Topics {
			for _, p := range t.Partitions {
				if perr := kerr.ErrorForCode(p.ErrorCode); perr != nil {
					rerr = fmt.Errorf("committing %s/%d: %w", t.Topic, p.Partition, perr)
					continue
				}
				if eo, ok := offsets[t.Topic][p.Partition]; ok {
					if committed[t.Topic] == nil {
						committed[t.Topic] = map[int32]kgo.EpochOffset{}
					}
					committed[t.Topic][p.Partition] = eo
					n++
				}
			}
		}
	})
	c.sched.markCommitted(committed, lanes)
	if c.opts.OnCommit != nil {
		c.opts.OnCommit(n, rerr)
	}
	return rerr
}

// pauseLoop keeps the client's paused partitions equal to the scheduler's wish.
func (c *Consumer) pauseLoop(ctx context.Context) {
	applied := map[topicPartition]bool{}
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.sched.pauseChanged:
		}
		want := c.sched.pausedPartitions()
		pause, resume := map[string][]int32{}, map[string][]int32{}
		for tp := range want {
			if !applied[tp] {
				pause[tp.topic] = append(pause[tp.topic], tp.partition)
				applied[tp] = true
			}
		}
		for tp := range applied {
			if !want[tp] {
				resume[tp.topic] = append(resume[tp.topic], tp.partition)
				delete(applied, tp)
			}
		}
		if len(pause) > 0 {
			c.cl.PauseFetchPartitions(pause)
		}
		if len(resume) > 0 {
			c.cl.ResumeFetchPartitions(resume)
		}
	}
}

func (c *Consumer) onAssigned(_ context.Context, cl *kgo.Client, assigned map[string][]int32) {
	c.sched.assign(c.workCtx, assigned)
	if !c.joined.Swap(true) {
		member, generation := cl.GroupMetadata()
		c.log.Info("joined the consumer group", zap.String("group", c.opts.Group),
			zap.String("member_id", member), zap.Int32("generation", generation))
	}
	c.log.Info("partitions assigned", zap.Any("partitions", assigned), zap.Int("count", countPartitions(assigned)))
}

func countPartitions(m map[string][]int32) int {
	n := 0
	for _, ps := range m {
		n += len(ps)
	}
	return n
}

// onRevoked lets in-flight records of the revoked partitions finish (or cancels them at the revoke timeout,
// which releases their leases), then commits their done positions before returning, so the next owner starts
// exactly after the last done record.
func (c *Consumer) onRevoked(_ context.Context, _ *kgo.Client, revoked map[string][]int32) {
	lanes := c.sched.revoke(revoked)
	c.waitDrained(lanes, c.opts.RevokeTimeout)
	cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.commit(cctx, lanes); err != nil {
		c.log.Warn("commit on revoke failed; the next owner re-reads from the last commit", zap.Error(err))
	}
	c.released(revoked)
	c.sched.remove(lanes)
	c.log.Info("partitions revoked", zap.Any("partitions", revoked), zap.Int("count", countPartitions(revoked)))
}

// onLost drops partitions the group already gave to someone else: nothing may be committed for them.
func (c *Consumer) onLost(_ context.Context, _ *kgo.Client, lost map[string][]int32) {
	lanes := c.sched.revoke(lost)
	for _, l := range lanes {
		l.cancel()
	}
	c.waitDrained(lanes, 5*time.Second)
	c.released(lost)
	c.sched.remove(lanes)
	// The member is out of the group until it joins again (and says so then).
	c.joined.Store(false)
	c.log.Warn("partitions lost", zap.Any("partitions", lost), zap.Int("count", countPartitions(lost)))
}

// released tells Options.Released, if set, that this member gave up partitions, within a bounded time.
func (c *Consumer) released(partitions map[string][]int32) {
	if c.opts.Released == nil || len(partitions) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c.opts.Released(ctx, partitions)
}

// waitDrained waits until lanes have nothing in flight, cancelling them all once timeout passes; cancelled
// processors release their leases and return promptly.
func (c *Consumer) waitDrained(lanes []*lane, timeout time.Duration) {
	deadline := time.After(timeout)
	for _, l := range lanes {
		c.sched.mu.Lock()
		ch := l.drained
		c.sched.mu.Unlock()
		if ch == nil {
			continue
		}
		select {
		case <-ch:
		case <-deadline:
			c.log.Warn("revoke timeout reached: cancelling in-flight deliveries",
				zap.String("topic", l.tp.topic), zap.Int32("partition", l.tp.partition))
			for _, l := range lanes {
				l.cancel()
			}
			<-ch
		}
	}
}
