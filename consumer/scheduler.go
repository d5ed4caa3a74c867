package consumer

import (
	"container/heap"
	"context"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Ordering decides which records of a partition may be in flight together.
type Ordering uint8

const (
	// ByPartition delivers one record at a time per partition, in offset order.
	ByPartition Ordering = iota
	// ByKey allows one record in flight per key; records with the same key are delivered in offset order.
	// Records without a key are not ordered.
	ByKey
	// Unordered delivers records of a partition concurrently, with no order at all.
	Unordered
)

// ParseOrdering maps the SIDECAR_ORDERING words to an Ordering.
func ParseOrdering(s string) (Ordering, bool) {
	switch s {
	case "partition":
		return ByPartition, true
	case "key":
		return ByKey, true
	case "unordered":
		return Unordered, true
	}
	return 0, false
}

type topicPartition struct {
	topic     string
	partition int32
}

// item is one fetched record on its way through the scheduler.
type item struct {
	// rec points at record, a copy detached from the fetch (see detach).
	rec    *kgo.Record
	record kgo.Record
	// topicID is the identity of the record's topic from its fetch (zero when unknown).
	topicID [16]byte
	lane    *lane
	entry   *trackedOffset
	// orderKey groups records that must not be in flight together; empty with hasKey false means "alone".
	orderKey string
	hasKey   bool
	due      time.Time
	size     int64
	heapIdx  int
}

// lane is the scheduler's state for one assigned partition.
type lane struct {
	tp      topicPartition
	ctx     context.Context
	cancel  context.CancelFunc
	tracker *offsetTracker
	// keyed holds, per order key, the records not done yet in offset order; the first may be in flight.
	keyed    map[string][]*item
	buffered int
	bytes    int64
	inFlight int
	// inFlightBytes is the size of the records in flight, so a revoke can drop the rest from the buffer.
	inFlightBytes int64
	// waitingDue counts records held back until their not-before time.
	waitingDue int
	revoked    bool
	// highWatermark is the partition's end offset as last seen in a fetch, for lag.
	highWatermark int64
	// committed is the last position a commit acknowledged.
	committed int64
	// drained is closed when the last in-flight record of a revoked lane leaves.
	drained chan struct{}
}

// scheduler holds the records fetched and not done, decides which may start, and tracks offsets.
// All state sits behind one mutex; the hot path per record is a few map and slice operations.
type scheduler struct {
	mu        sync.Mutex
	ready     readyQueue
	timers    dueHeap
	timer     *time.Timer
	lanes     map[topicPartition]*lane
	ordering  Ordering
	notBefore func(*kgo.Record) time.Time
	now       func() time.Time

	maxRecords int
	maxBytes   int64
	// maxInFlight caps the records in flight (0: no cap).
	maxInFlight int
	buffered    int
	bytes       int64
	inFlight    int
	stopped     bool
	// idle counts workers waiting in next, so a wake-up signals as many as have work and no more: a
	// broadcast to hundreds of idle workers for one record would cost more than delivering it.
	idle int

	// work wakes workers when an item becomes ready; space wakes the poll loop when the buffer drains.
	work  *sync.Cond
	space *sync.Cond
	// pauseChanged is signalled when the set of partitions that should not be fetched changes.
	pauseChanged chan struct{}
}

func newScheduler(ordering Ordering, maxRecords int, maxBytes int64, notBefore func(*kgo.Record) time.Time) *scheduler {
	s := &scheduler{
		lanes:        map[topicPartition]*lane{},
		ordering:     ordering,
		notBefore:    notBefore,
		now:          time.Now,
		maxRecords:   maxRecords,
		maxBytes:     maxBytes,
		pauseChanged: make(chan struct{}, 1),
	}
	s.work = sync.NewCond(&s.mu)
	s.space = sync.NewCond(&s.mu)
	return s
}

// assign creates lanes for newly assigned partitions. parent scopes their contexts.
func (s *scheduler) assign(parent context.Context, assigned map[string][]int32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for topic, parts := range assigned {
		for _, p := range parts {
			tp := topicPartition{topic, p}
			if _, ok := s.lanes[tp]; ok {
				continue
			}
			ctx, cancel := context.WithCancel(parent)
			s.lanes[tp] = &lane{
				tp: tp, ctx: ctx, cancel: cancel,
				tracker:       newOffsetTracker(),
				keyed:         map[string][]*item{},
				highWatermark: -1,
				committed:     -1,
			}
		}
	}
}

// owned returns the partitions this member holds lanes for.
func (s *scheduler) owned() map[string][]int32 {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string][]int32)
	for tp := range s.lanes {
		out[tp.topic] = append(out[tp.topic], tp.partition)
	}
	return out
}

// add queues fetched records of one partition. Records of a partition this member does not own (any more) are
// dropped: the owner delivers them.
func (s *scheduler) add(topic string, topicID [16]byte, partition int32, recs []*kgo.Record, highWatermark int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	l, ok := s.lanes[topicPartition{topic, partition}]
	if !ok || l.revoked {
		return
	}
	if highWatermark >= 0 {
		l.highWatermark = highWatermark
	}
	now := s.now()
	woke := 0
	for _, r := range recs {
		it := &item{lane: l, topicID: topicID, size: recordSize(r), heapIdx: -1}
		detach(&it.record, r)
		it.rec = &it.record
		r = it.rec
		it.entry = l.tracker.add(r.Offset, r.LeaderEpoch, r.Timestamp)
		switch s.ordering {
		case ByPartition:
			it.hasKey = true
		case ByKey:
			if len(r.Key) > 0 {
				it.orderKey, it.hasKey = string(r.Key), true
			}
		}
		if s.notBefore != nil {
			it.due = s.notBefore(r)
		}
		l.buffered++
		l.bytes += it.size
		s.buffered++
		s.bytes += it.size
		if it.hasKey {
			q := l.keyed[it.orderKey]
			l.keyed[it.orderKey] = append(q, it)
			if len(q) > 0 {
				continue // waits for the records of its key before it
			}
		}
		woke += s.release(it, now)
	}
	s.signalWork(woke)
}

// release makes it startable: ready now, or at its due time. It returns 1 when it became ready.
func (s *scheduler) release(it *item, now time.Time) int {
	if !it.due.IsZero() && it.due.After(now) {
		it.lane.waitingDue++
		heap.Push(&s.timers, it)
		s.armTimer(now)
		s.notePause()
		return 0
	}
	s.ready.push(it)
	return 1
}

func (s *scheduler) signalWork(n int) {
	for range min(n, s.idle) {
		s.work.Signal()
	}
}

// armTimer sets the timer for the earliest due record. Caller holds mu.
func (s *scheduler) armTimer(now time.Time) {
	if len(s.timers) == 0 {
		return
	}
	d := s.timers[0].due.Sub(now)
	if s.timer == nil {
		s.timer = time.AfterFunc(d, s.fireTimers)
		return
	}
	s.timer.Reset(d)
}

// fireTimers moves every record whose due time has come to the ready queue.
func (s *scheduler) fireTimers() {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	woke := 0
	for len(s.timers) > 0 && !s.timers[0].due.After(now) {
		it := heap.Pop(&s.timers).(*item)
		it.lane.waitingDue--
		if it.lane.revoked {
			continue
		}
		s.ready.push(it)
		woke++
	}
	if woke > 0 {
		s.notePause()
	}
	s.armTimer(now)
	s.signalWork(woke)
}

// takeOne pops the next ready item of a live lane and counts it as in flight. Caller holds mu.
func (s *scheduler) takeOne() (*item, bool) {
	for {
		it, ok := s.ready.pop()
		if !ok {
			return nil, false
		}
		if it.lane.revoked {
			continue
		}
		it.lane.inFlight++
		it.lane.inFlightBytes += it.size
		s.inFlight++
		return it, true
	}
}

// nextBatch blocks until records may start and the in-flight cap leaves room, then returns up to max of them,
// counted as in flight; ok is false when the scheduler stopped or ctx ended. While fewer than max are ready
// (and the cap leaves room for more), it waits up to linger from the first ready record for the batch to fill.
// Ready records stay in the queue while it waits, so another worker may take them first.
func (s *scheduler) nextBatch(ctx context.Context, max int, linger time.Duration) ([]*item, bool) {
	if ctx.Done() != nil {
		stop := context.AfterFunc(ctx, func() {
			s.mu.Lock()
			s.work.Broadcast()
			s.mu.Unlock()
		})
		defer stop()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var deadline time.Time
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		if s.stopped || ctx.Err() != nil {
			return nil, false
		}
		room := max
		if s.maxInFlight > 0 {
			room = min(room, s.maxInFlight-s.inFlight)
		}
		if ready := s.ready.len(); room > 0 && ready > 0 {
			lingered := !deadline.IsZero() && !time.Now().Before(deadline)
			if ready >= room || linger <= 0 || lingered {
				batch := make([]*item, 0, min(room, ready))
				for len(batch) < room {
					it, ok := s.takeOne()
					if !ok {
						break
					}
					batch = append(batch, it)
				}
				if len(batch) > 0 {
					return batch, true
				}
				continue // every ready record belonged to a revoked lane
			}
			if deadline.IsZero() {
				deadline = time.Now().Add(linger)
				timer = time.AfterFunc(linger, func() {
					s.mu.Lock()
					s.work.Broadcast()
					s.mu.Unlock()
				})
			}
		}
		s.idle++
		s.work.Wait()
		s.idle--
	}
}

// finishMany ends the time in flight of items. done marks their offsets done; otherwise the records stay undone
// (their lanes are being revoked or the sidecar is stopping) and will be delivered by whoever consumes the
// partition next. One lock serves all of them.
func (s *scheduler) finishMany(items []*item, done bool) {
	if len(items) == 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now, woke := s.now(), 0
	for _, it := range items {
		woke += s.finishLocked(it, done, now)
	}
	s.signalWork(woke)
	s.space.Broadcast()
}

// finishLocked ends its time in flight and returns how many items became ready: the next of its key, and
// under an in-flight cap one more for the room it left. Caller holds mu and signals the workers.
func (s *scheduler) finishLocked(it *item, done bool, now time.Time) int {
	l := it.lane
	s.leaveFlight(it)
	s.unbuffer(it)
	if done {
		l.tracker.markDone(it.entry)
	}
	woke := 0
	if s.maxInFlight > 0 && s.ready.len() > 0 {
		woke++
	}
	if it.hasKey && !l.revoked {
		q := l.keyed[it.orderKey]
		q[0] = nil
		q = q[1:]
		if len(q) == 0 {
			delete(l.keyed, it.orderKey)
		} else {
			l.keyed[it.orderKey] = q
			woke += s.release(q[0], now)
		}
	}
	return woke
}

// leaveFlight takes it out of the in-flight counts and wakes a revoke waiting for its lane to drain.
// Caller holds mu.
func (s *scheduler) leaveFlight(it *item) {
	l := it.lane
	l.inFlight--
	l.inFlightBytes -= it.size
	s.inFlight--
	if l.inFlight == 0 && l.drained != nil {
		close(l.drained)
		l.drained = nil
	}
}

// unbuffer takes it out of the buffer counts. Caller holds mu.
func (s *scheduler) unbuffer(it *item) {
	l := it.lane
	l.buffered--
	l.bytes -= it.size
	s.buffered--
	s.bytes -= it.size
}

// retryLater puts an in-flight item back at the head of its key so it is offered again after d. It is used when
// a processor failed without finishing while its lane lives on.
func (s *scheduler) retryLater(it *item, d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.leaveFlight(it)
	if it.lane.revoked {
		s.unbuffer(it)
		s.space.Broadcast()
		return
	}
	now := s.now()
	it.due = now.Add(d)
	s.signalWork(s.release(it, now))
}

// waitForSpace blocks the poll loop while the buffer is full (or nearly: see refill). It returns how many records
// may be polled.
func (s *scheduler) waitForSpace(ctx context.Context) (int, bool) {
	stop := context.AfterFunc(ctx, func() {
		s.mu.Lock()
		s.space.Broadcast()
		s.mu.Unlock()
	})
	defer stop()
	// Poll again only once a worthwhile chunk is free: a poll per finished record would cost a client round
	// trip and a rebalance hand-off each, for one record.
	refill := max(1, min(s.maxRecords/4, 2048))
	s.mu.Lock()
	defer s.mu.Unlock()
	for !s.stopped && ctx.Err() == nil && (s.buffered > s.maxRecords-refill || s.bytes >= s.maxBytes) {
		s.space.Wait()
	}
	if s.stopped || ctx.Err() != nil {
		return 0, false
	}
	return s.maxRecords - s.buffered, true
}

// revoke stops dispatching records of the given partitions and returns their lanes. Records not yet started
// are dropped from the buffer; in-flight ones run on until the caller cancels the lane.
func (s *scheduler) revoke(parts map[string][]int32) []*lane {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*lane
	for topic, ps := range parts {
		for _, p := range ps {
			l, ok := s.lanes[topicPartition{topic, p}]
			if !ok || l.revoked {
				continue
			}
			l.revoked = true
			// Buffered records not in flight leave the buffer now; in-flight ones leave in finish.
			s.buffered -= l.buffered - l.inFlight
			s.bytes -= l.bytes - l.inFlightBytes
			l.buffered, l.bytes = l.inFlight, l.inFlightBytes
			l.keyed = nil
			if l.inFlight > 0 {
				l.drained = make(chan struct{})
			}
			out = append(out, l)
		}
	}
	s.notePause()
	s.space.Broadcast()
	return out
}

// remove forgets revoked lanes once their final commit is done.
func (s *scheduler) remove(lanes []*lane) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, l := range lanes {
		if s.lanes[l.tp] == l {
			delete(s.lanes, l.tp)
		}
		l.cancel()
	}
}

// stop wakes every waiter and makes next return false: the sidecar is shutting down.
func (s *scheduler) stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopped = true
	if s.timer != nil {
		s.timer.Stop()
	}
	s.work.Broadcast()
	s.space.Broadcast()
}

// notePause tells the fetch controller that the paused set may have changed. Caller holds mu.
func (s *scheduler) notePause() {
	select {
	case s.pauseChanged <- struct{}{}:
	default:
	}
}

// pausedPartitions lists partitions whose fetching should pause: a record there waits for its not-before time
// (records behind it in a retry topic are due later still).
func (s *scheduler) pausedPartitions() map[topicPartition]bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[topicPartition]bool{}
	for tp, l := range s.lanes {
		if !l.revoked && l.waitingDue > 0 {
			out[tp] = true
		}
	}
	return out
}

// positions returns the commit position of every live lane whose position moved past its last commit.
func (s *scheduler) positions(onlyLanes []*lane) map[string]map[int32]kgo.EpochOffset {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]map[int32]kgo.EpochOffset{}
	add := func(l *lane) {
		off, epoch, ok := l.tracker.position()
		if !ok || off <= l.committed {
			return
		}
		if out[l.tp.topic] == nil {
			out[l.tp.topic] = map[int32]kgo.EpochOffset{}
		}
		out[l.tp.topic][l.tp.partition] = kgo.EpochOffset{Epoch: epoch, Offset: off}
	}
	if onlyLanes != nil {
		for _, l := range onlyLanes {
			add(l)
		}
		return out
	}
	for _, l := range s.lanes {
		if !l.revoked {
			add(l)
		}
	}
	return out
}

// markCommitted records acknowledged commit positions so they are not sent again.
func (s *scheduler) markCommitted(offsets map[string]map[int32]kgo.EpochOffset, lanes []*lane) {
	s.mu.Lock()
	defer s.mu.Unlock()
	set := func(l *lane) {
		if eo, ok := offsets[l.tp.topic][l.tp.partition]; ok && eo.Offset > l.committed {
			l.committed = eo.Offset
		}
	}
	if lanes != nil {
		for _, l := range lanes {
			set(l)
		}
		return
	}
	for _, l := range s.lanes {
		set(l)
	}
}

// PartitionStats is a snapshot of one assigned partition, for metrics and readiness.
type PartitionStats struct {
	Topic     string
	Partition int32
	// Committed is the last committed position (-1 before the first commit).
	Committed int64
	// Position is the commit position: every record below it is done (-1 before the first record).
	Position int64
	// HighWatermark is the partition's end offset from the last fetch (-1 before the first fetch).
	HighWatermark int64
	// Buffered counts records fetched and not done; InFlight those being processed now.
	Buffered, InFlight int
	// WaitingDue counts retry records held until their not-before time.
	WaitingDue int
	// OldestUndone is the timestamp of the lowest record not done (zero when none).
	OldestUndone time.Time
}

// stats snapshots every live lane.
func (s *scheduler) stats() []PartitionStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]PartitionStats, 0, len(s.lanes))
	for _, l := range s.lanes {
		if l.revoked {
			continue
		}
		pos, _, _ := l.tracker.position()
		ps := PartitionStats{
			Topic: l.tp.topic, Partition: l.tp.partition,
			Committed: l.committed, Position: pos, HighWatermark: l.highWatermark,
			Buffered: l.buffered, InFlight: l.inFlight, WaitingDue: l.waitingDue,
		}
		ps.OldestUndone = l.tracker.oldestUndone()
		out = append(out, ps)
	}
	return out
}

func recordSize(r *kgo.Record) int64 {
	n := len(r.Key) + len(r.Value) + 64
	for _, h := range r.Headers {
		n += len(h.Key) + len(h.Value)
	}
	return int64(n)
}

// readyQueue is a FIFO of startable items, a slice with a moving head.
type readyQueue struct {
	items []*item
	head  int
}

func (q *readyQueue) push(it *item) { q.items = append(q.items, it) }

// len counts the queued items, including any of revoked lanes that pop will skip.
func (q *readyQueue) len() int { return len(q.items) - q.head }

func (q *readyQueue) pop() (*item, bool) {
	if q.head == len(q.items) {
		if q.head > 0 {
			q.items = q.items[:0]
			q.head = 0
		}
		return nil, false
	}
	it := q.items[q.head]
	q.items[q.head] = nil
	q.head++
	if q.head > 1024 && q.head*2 > len(q.items) {
		n := copy(q.items, q.items[q.head:])
		clear(q.items[n:])
		q.items = q.items[:n]
		q.head = 0
	}
	return it, true
}

// dueHeap orders held items by due time.
type dueHeap []*item

func (h dueHeap) Len() int           { return len(h) }
func (h dueHeap) Less(i, j int) bool { return h[i].due.Before(h[j].due) }
func (h dueHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].heapIdx = i
	h[j].heapIdx = j
}
func (h *dueHeap) Push(x any) {
	it := x.(*item)
	it.heapIdx = len(*h)
	*h = append(*h, it)
}
func (h *dueHeap) Pop() any {
	old := *h
	n := len(old)
	it := old[n-1]
	old[n-1] = nil
	it.heapIdx = -1
	*h = old[:n-1]
	return it
}

// detach copies r into dst with its key, value and header values in one buffer of their own. franz-go decodes
// a whole batch into one slab of records over one decompressed buffer, so holding a fetched record keeps its
// entire batch alive; a few slow records would pin megabytes. The copy costs one small allocation per record
// and makes memory follow the buffer caps.
func detach(dst, r *kgo.Record) {
	*dst = *r
	dst.Context = nil
	n := len(r.Key) + len(r.Value)
	for _, h := range r.Headers {
		n += len(h.Value)
	}
	buf := make([]byte, 0, n)
	if r.Key != nil {
		buf = append(buf, r.Key...)
		dst.Key = buf[:len(r.Key):len(r.Key)]
	}
	if r.Value != nil {
		start := len(buf)
		buf = append(buf, r.Value...)
		dst.Value = buf[start:len(buf):len(buf)]
	}
	if len(r.Headers) > 0 {
		dst.Headers = make([]kgo.RecordHeader, len(r.Headers))
		for i, h := range r.Headers {
			dst.Headers[i].Key = h.Key
			if h.Value != nil {
				start := len(buf)
				buf = append(buf, h.Value...)
				dst.Headers[i].Value = buf[start:len(buf):len(buf)]
			}
		}
	}
}
