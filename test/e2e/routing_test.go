package e2e

import (
	"bytes"
	"context"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kafka-sidecar/kafka-sidecar/metrics"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// outageWindow is how long each simulated outage lasts. Production outages are longer (the issue speaks of
// 5 s); 2 s is several app back-off periods (SIDECAR_APP_BACKOFF_MAX=200ms), enough to show that attempts
// are not used while it lasts, and keeps the suite short.
const outageWindow = 2 * time.Second

// TestRetryableOnceDeliveredInPlace answers 500 once and then 200: the record is delivered on its second
// attempt in place and never reaches a retry topic. /metrics counts every record delivered.
func TestRetryableOnceDeliveredInPlace(t *testing.T) {
	const partitions, n = 2, 10
	s := newStack(t, partitions)
	recs := makeRecords(s.topic, partitions, n, "once")
	flaky := headerValue(recs[3], idHeader)
	s.app.setRespond(statusSeq(map[string][]int{flaky: {http.StatusInternalServerError, http.StatusOK}}))
	s.kafka.produce(t, recs...)

	sc := startSidecar(t, s.env())
	waitFor(t, 30*time.Second, func() bool { return sc.sc.Metrics().Totals().Delivered == n }, "%d records delivered", n)
	s.kafka.waitCommitted(t, s.group, s.topic, endsOf(recs), 15*time.Second)

	reqs := s.app.requestsFor(flaky)
	if len(reqs) != 2 || reqs[0].Attempt != 1 || reqs[1].Attempt != 2 || reqs[1].Status != http.StatusOK {
		t.Errorf("flaky record: %d requests %+v, want attempts 1 (500) and 2 (200)", len(reqs), attempts(reqs))
	}
	for tier := 1; tier <= 2; tier++ {
		if size := s.kafka.topicSize(t, s.retryTopic(tier)); size != 0 {
			t.Errorf("retry topic %d holds %d records, want 0", tier, size)
		}
	}
	if got := sc.sc.Metrics().Totals(); got.Retried != 0 || got.DeadLettered != 0 {
		t.Errorf("Totals() = %+v, want nothing retried or dead-lettered", got)
	}
	m := scrape(t, sc.admin)
	wantMetric(t, m, "kafka_sidecar_records_total", map[string]string{"topic": s.topic, "outcome": "delivered"}, n)
	wantMetric(t, m, "kafka_sidecar_deliveries_total", map[string]string{"result": "retryable"}, 1)
	if v, ok := metricValue(m, "kafka_sidecar_records_total", map[string]string{"topic": s.topic, "outcome": "retried"}); ok && v != 0 {
		t.Errorf("kafka_sidecar_records_total{outcome=retried} = %v, want 0", v)
	}
}

// TestAlwaysFailingWalksTiersToDLQ answers 500 forever: the record takes two attempts on the source topic and
// on each of the two retry tiers, each tier honouring its delay, and lands in the dead-letter topic with
// every contract header, its own key, value and headers, and sidecar-attempts = 6.
func TestAlwaysFailingWalksTiersToDLQ(t *testing.T) {
	s := newStack(t, 1)
	recs := makeRecords(s.topic, 1, 3, "walk")
	bad := recs[1]
	badID := headerValue(bad, idHeader)
	s.app.setRespond(statusSeq(map[string][]int{badID: {http.StatusInternalServerError}}))
	s.kafka.produce(t, recs...)
	started := time.Now()

	sc := startSidecar(t, s.env("SIDECAR_RETRY_DELAYS=1s,2s", "SIDECAR_RETRY_ATTEMPTS_IN_PLACE=2"))
	waitFor(t, 30*time.Second, func() bool { return sc.sc.Metrics().Totals().DeadLettered == 1 },
		"the failing record dead-lettered (have %+v)", lazyTotals{sc})
	s.kafka.waitCommitted(t, s.group, s.topic, endsOf(recs), 15*time.Second)

	reqs := s.app.requestsFor(badID)
	if len(reqs) != 6 {
		t.Fatalf("failing record reached the app %d times %v, want 6", len(reqs), attempts(reqs))
	}
	for i, r := range reqs {
		if r.Attempt != i+1 {
			t.Errorf("request %d carries Kafka-Attempt %d, want %d", i, r.Attempt, i+1)
		}
		// Retry deliveries still describe the record as first consumed.
		if r.Topic != s.topic || r.Partition != bad.Partition || r.Offset != bad.Offset {
			t.Errorf("request %d describes %s/%d/%d, want the source record %s/%d/%d", i, r.Topic, r.Partition, r.Offset, s.topic, bad.Partition, bad.Offset)
		}
	}
	for i, delay := range []time.Duration{time.Second, 2 * time.Second} {
		last, next := reqs[2*i+1], reqs[2*i+2]
		gap := next.At.Sub(last.At)
		limit := delay + delay/10 + 100*time.Millisecond
		t.Logf("tier %d: %v between the last attempt before it and its first attempt (delay %v)", i+1, gap.Round(time.Millisecond), delay)
		if gap < delay {
			t.Errorf("tier %d delivered %v after the previous attempt, earlier than its delay %v", i+1, gap, delay)
		}
		if gap > limit {
			t.Errorf("tier %d delivered %v after the previous attempt, later than %v (delay + 10%% + 100ms)", i+1, gap, limit)
		}
	}

	for tier, wantAttempts := range map[int]int{1: 2, 2: 4} {
		got := s.kafka.readTopic(t, s.retryTopic(tier))
		if len(got) != 1 {
			t.Errorf("retry topic %d holds %d records, want 1", tier, len(got))
			continue
		}
		checkCopy(t, got[0], bad, s, wantAttempts, started)
		if nb, err := strconv.ParseInt(headerValue(got[0], "sidecar-not-before"), 10, 64); err != nil || nb <= 0 {
			t.Errorf("retry tier %d copy: sidecar-not-before %q is not Unix ms", tier, headerValue(got[0], "sidecar-not-before"))
		}
	}
	dlq := s.kafka.readTopic(t, s.dlqTopic())
	if len(dlq) != 1 {
		t.Fatalf("dead-letter topic holds %d records, want 1", len(dlq))
	}
	checkCopy(t, dlq[0], bad, s, 6, started)
	if hasHeader(dlq[0], "sidecar-not-before") {
		t.Errorf("dead letter carries sidecar-not-before, which belongs to retry tiers only")
	}
	if dlq[0].Partition != bad.Partition {
		t.Errorf("dead letter in partition %d, want the source partition %d", dlq[0].Partition, bad.Partition)
	}

	m := scrape(t, sc.admin)
	wantMetric(t, m, "kafka_sidecar_records_total", map[string]string{"topic": s.topic, "outcome": "delivered"}, 2)
	wantMetric(t, m, "kafka_sidecar_records_total", map[string]string{"topic": s.topic, "outcome": "retried"}, 2)
	wantMetric(t, m, "kafka_sidecar_records_total", map[string]string{"topic": s.topic, "outcome": "dead_lettered"}, 1)
	wantMetric(t, m, "kafka_sidecar_retries_total", map[string]string{"tier": "1"}, 1)
	wantMetric(t, m, "kafka_sidecar_retries_total", map[string]string{"tier": "2"}, 1)
	wantMetric(t, m, "kafka_sidecar_dlq_records_total", map[string]string{"topic": s.dlqTopic()}, 1)
}

// TestPermanentStraightToDLQ answers 400: the record goes to the dead-letter topic after its one attempt,
// without visiting a retry tier.
func TestPermanentStraightToDLQ(t *testing.T) {
	s := newStack(t, 1)
	recs := makeRecords(s.topic, 1, 3, "perm")
	bad := recs[0]
	badID := headerValue(bad, idHeader)
	s.app.setRespond(statusSeq(map[string][]int{badID: {http.StatusBadRequest}}))
	s.kafka.produce(t, recs...)
	started := time.Now()

	sc := startSidecar(t, s.env())
	waitFor(t, 30*time.Second, func() bool {
		got := sc.sc.Metrics().Totals()
		return got.DeadLettered == 1 && got.Delivered == 2
	}, "one record dead-lettered and two delivered (have %+v)", lazyTotals{sc})
	s.kafka.waitCommitted(t, s.group, s.topic, endsOf(recs), 15*time.Second)

	if reqs := s.app.requestsFor(badID); len(reqs) != 1 {
		t.Errorf("the refused record reached the app %d times, want 1", len(reqs))
	}
	for tier := 1; tier <= 2; tier++ {
		if size := s.kafka.topicSize(t, s.retryTopic(tier)); size != 0 {
			t.Errorf("retry topic %d holds %d records, want 0", tier, size)
		}
	}
	dlq := s.kafka.readTopic(t, s.dlqTopic())
	if len(dlq) != 1 {
		t.Fatalf("dead-letter topic holds %d records, want 1", len(dlq))
	}
	checkCopyStatus(t, dlq[0], bad, s, 1, started, http.StatusBadRequest)
}

// TestAppOutageNoDeadLetters makes the app answer 503 for a while and then refuse connections for a while:
// no attempt is used and nothing is retried or dead-lettered; once the app is back, every record is delivered
// on its first attempt.
func TestAppOutageNoDeadLetters(t *testing.T) {
	const partitions, n = 2, 20
	s := newStack(t, partitions)
	recs := makeRecords(s.topic, partitions, n, "outage")
	s.app.setRespond(func(string, int) int { return http.StatusServiceUnavailable })
	s.kafka.produce(t, recs...)

	sc := startSidecar(t, s.env())
	nothingFinished := func() bool { return sc.sc.Metrics().Totals() == (metrics.Totals{}) }
	waitFor(t, 30*time.Second, func() bool { return s.app.total() >= 3 }, "three 503 answers")
	holdsFor(t, outageWindow, nothingFinished, "nothing finishes while the app answers 503 (have %+v)", lazyTotals{sc})

	// Going down while a request is under way would reset its connection, which the contract counts as a
	// failed attempt. So the app first asks for a pause (Retry-After: 2) and goes down only once no request
	// has been under way for a while: the sidecar is then waiting out the pause, and its next try is refused.
	s.app.setRetryAfter("2")
	marked := s.app.total()
	waitFor(t, 10*time.Second, func() bool { return s.app.total() > marked }, "a 503 with Retry-After")
	quiet := time.Now()
	waitFor(t, 10*time.Second, func() bool {
		if s.app.inFlightTotal() != 0 {
			quiet = time.Now()
		}
		return time.Since(quiet) >= 200*time.Millisecond
	}, "no request under way for 200ms after Retry-After")
	s.app.down()
	unavailable := func() float64 {
		v, _ := metricValue(scrape(t, sc.admin), "kafka_sidecar_deliveries_total", map[string]string{"result": "app_unavailable"})
		return v
	}
	atDown := unavailable()
	holdsFor(t, outageWindow, nothingFinished, "nothing finishes while the app refuses connections (have %+v)", lazyTotals{sc})
	waitFor(t, 10*time.Second, func() bool { return unavailable() >= atDown+3 },
		"three refused connections classified app_unavailable")
	holdsFor(t, 100*time.Millisecond, nothingFinished, "nothing finishes while the app refuses connections (have %+v)", lazyTotals{sc})

	s.app.setRespond(nil)
	s.app.up()
	waitFor(t, 30*time.Second, func() bool { return len(s.app.accepted()) == n }, "all %d records accepted after the outage", n)
	s.kafka.waitCommitted(t, s.group, s.topic, endsOf(recs), 15*time.Second)
	for _, r := range s.app.requests() {
		if r.Attempt != 1 {
			t.Errorf("record %s offered with Kafka-Attempt %d: an outage must not use attempts", r.ID, r.Attempt)
		}
	}
	if got := sc.sc.Metrics().Totals(); got.Delivered != n || got.Retried != 0 || got.DeadLettered != 0 {
		t.Errorf("Totals() = %+v, want %d delivered, 0 retried, 0 dead-lettered", got, n)
	}
	if size := s.kafka.topicSize(t, s.dlqTopic()); size != 0 {
		t.Errorf("dead-letter topic holds %d records, want 0", size)
	}
}

// TestRedisOutagePausesDelivery stops redis-server mid-run: the sidecar notices and delivers nothing while it
// is down (no delivery without dedup), then delivers everything once it is back; nothing is lost.
func TestRedisOutagePausesDelivery(t *testing.T) {
	const partitions, n = 2, 20
	s := newStack(t, partitions)
	first := makeRecords(s.topic, partitions, n, "before")
	s.kafka.produce(t, first...)
	sc := startSidecar(t, s.env())
	waitFor(t, 30*time.Second, func() bool { return sc.sc.Metrics().Totals().Delivered == n }, "the first %d records delivered", n)
	s.kafka.waitCommitted(t, s.group, s.topic, endsOf(first), 15*time.Second)

	s.redis.Stop()
	second := makeRecords(s.topic, partitions, n, "during")
	s.kafka.produce(t, second...)
	waitFor(t, 30*time.Second, func() bool {
		m := scrape(t, sc.admin)
		v, _ := metricValue(m, "kafka_sidecar_paused", map[string]string{"reason": "dedup_unavailable"})
		return v == 1
	}, `kafka_sidecar_paused{reason="dedup_unavailable"} 1`)
	if body, status, err := get(sc.admin, "/readyz"); err != nil || status != http.StatusServiceUnavailable || !strings.Contains(body, "dedup") {
		t.Errorf("/readyz while redis is down: status %d body %q (err %v), want 503 naming the dedup store", status, body, err)
	}
	snapshot := s.app.total()
	if snapshot != n {
		t.Errorf("the app received %d requests by the time the outage was noticed, want %d: records were delivered without dedup", snapshot, n)
	}
	holdsFor(t, outageWindow, func() bool { return s.app.total() == snapshot },
		"no request reaches the app while redis is down")

	s.redis.Start()
	all := append(append([]*kgo.Record{}, first...), second...)
	waitFor(t, 60*time.Second, func() bool { return len(s.app.accepted()) == 2*n }, "all %d records accepted after redis is back", 2*n)
	s.kafka.waitCommitted(t, s.group, s.topic, endsOf(all), 15*time.Second)
	if got := sc.sc.Metrics().Totals(); got.Retried != 0 || got.DeadLettered != 0 || got.Delivered != 2*n {
		t.Errorf("Totals() = %+v, want %d delivered and nothing retried or dead-lettered", got, 2*n)
	}
	for id, c := range s.app.accepted() {
		if c != 1 {
			t.Errorf("record %s accepted %d times, want once", id, c)
		}
	}
}

// TestDLQProduceFailureHoldsCommit makes the broker refuse produces to the dead-letter topic with
// NOT_ENOUGH_REPLICAS for a while: the committed offset stays below the refused record meanwhile, and once
// produces succeed the record lands in the dead-letter topic exactly once.
func TestDLQProduceFailureHoldsCommit(t *testing.T) {
	s := newStack(t, 1)
	s.kafka.needFake(t)
	recs := makeRecords(s.topic, 1, 6, "nerr")
	bad := recs[2]
	badID := headerValue(bad, idHeader)
	s.app.setRespond(statusSeq(map[string][]int{badID: {http.StatusUnprocessableEntity}}))
	// Held until the fault is in place: the sidecar creates the dead-letter topic, whose ID the fault needs.
	s.app.hold(badID)
	s.kafka.produce(t, recs...)
	sc := startSidecar(t, s.env("SIDECAR_ORDERING=unordered"))
	s.kafka.waitCommitted(t, s.group, s.topic, map[int32]int64{0: bad.Offset}, 15*time.Second)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	dlqName := s.dlqTopic()
	td, err := s.kafka.adm.ListTopics(ctx, dlqName)
	if err != nil || td[dlqName].Err != nil {
		t.Fatalf("looking up the dead-letter topic: %v %v", err, td[dlqName].Err)
	}
	dlqID := [16]byte(td[dlqName].ID)

	var failing atomic.Bool
	var refused atomic.Int64
	failing.Store(true)
	fake := s.kafka.fake
	fake.ControlKey(int16(kmsg.Produce), func(req kmsg.Request) (kmsg.Response, error, bool) {
		fake.KeepControl()
		preq, ok := req.(*kmsg.ProduceRequest)
		if !ok || !failing.Load() {
			return nil, nil, false
		}
		touches := false
		for _, pt := range preq.Topics {
			if pt.Topic == dlqName || (pt.Topic == "" && pt.TopicID == dlqID) {
				touches = true
			}
		}
		if !touches {
			return nil, nil, false
		}
		resp := preq.ResponseKind().(*kmsg.ProduceResponse)
		resp.Version = preq.Version
		for _, pt := range preq.Topics {
			rt := kmsg.NewProduceResponseTopic()
			rt.Topic, rt.TopicID = pt.Topic, pt.TopicID
			for _, pp := range pt.Partitions {
				rp := kmsg.NewProduceResponseTopicPartition()
				rp.Partition = pp.Partition
				rp.ErrorCode = kerr.NotEnoughReplicas.Code
				rp.BaseOffset = -1
				rt.Partitions = append(rt.Partitions, rp)
			}
			resp.Topics = append(resp.Topics, rt)
		}
		refused.Add(1)
		return resp, nil, true
	})

	s.app.releaseHeld()
	released := time.Now()
	waitFor(t, 30*time.Second, func() bool { return refused.Load() >= 3 }, "three dead-letter produces refused")
	t.Logf("%v: three dead-letter produces refused", time.Since(released).Round(time.Millisecond))
	holdsFor(t, 500*time.Millisecond, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		got, err := s.kafka.committed(ctx, s.group, s.topic)
		return err == nil && got[0] <= bad.Offset
	}, "the committed offset stays at or below the record whose dead letter is refused (offset %d)", bad.Offset)
	if size := s.kafka.topicSize(t, s.dlqTopic()); size != 0 {
		t.Fatalf("dead-letter topic holds %d records while produces are refused", size)
	}
	failing.Store(false)
	t.Logf("%v: broker refused %d dead-letter produce requests; accepting them from now on", time.Since(released).Round(time.Millisecond), refused.Load())

	s.kafka.waitCommitted(t, s.group, s.topic, endsOf(recs), 30*time.Second)
	t.Logf("%v: committed offset reached the end", time.Since(released).Round(time.Millisecond))
	waitFor(t, 15*time.Second, func() bool { return sc.sc.Metrics().Totals().DeadLettered == 1 }, "the record counted dead-lettered")
	dlq := s.kafka.readTopic(t, s.dlqTopic())
	if len(dlq) != 1 || headerValue(dlq[0], "sidecar-id") != badID {
		ids := make([]string, len(dlq))
		for i, r := range dlq {
			ids[i] = headerValue(r, "sidecar-id")
		}
		t.Fatalf("dead-letter topic holds %v, want exactly [%s]", ids, badID)
	}
	if reqs := s.app.requestsFor(badID); len(reqs) != 1 {
		t.Errorf("the refused record reached the app %d times, want 1", len(reqs))
	}
}

// TestPartitionModeRetryDoesNotBlock shows that in partition mode a record moved to a retry tier no longer
// holds up the records after it, while the partition still sees one request at a time.
func TestPartitionModeRetryDoesNotBlock(t *testing.T) {
	const n = 10
	s := newStack(t, 1)
	recs := makeRecords(s.topic, 1, n, "part")
	badID := headerValue(recs[0], idHeader)
	s.app.setRespond(statusSeq(map[string][]int{badID: {http.StatusInternalServerError}}))
	s.app.setDelay(5 * time.Millisecond)
	s.kafka.produce(t, recs...)

	sc := startSidecar(t, s.env("SIDECAR_ORDERING=partition", "SIDECAR_RETRY_ATTEMPTS_IN_PLACE=1", "SIDECAR_RETRY_DELAYS=30s"))
	waitFor(t, 20*time.Second, func() bool { return len(s.app.accepted()) == n-1 },
		"the %d records after the failing one delivered while it waits in retry tier 1", n-1)
	s.kafka.waitCommitted(t, s.group, s.topic, endsOf(recs), 15*time.Second)
	if reqs := s.app.requestsFor(badID); len(reqs) != 1 {
		t.Errorf("the failing record reached the app %d times, want 1 (its retry is 30s away)", len(reqs))
	}
	if size := s.kafka.topicSize(t, s.retryTopic(1)); size != 1 {
		t.Errorf("retry topic 1 holds %d records, want 1", size)
	}
	if got := sc.sc.Metrics().Totals(); got.Retried != 1 || got.Delivered != n-1 {
		t.Errorf("Totals() = %+v, want %d delivered and 1 retried", got, n-1)
	}
	if par := s.app.maxParallel(); par[0] != 1 {
		t.Errorf("partition mode had %d requests under way at once for partition 0, want 1", par[0])
	}
}

// checkCopy verifies a retry or dead-letter copy of src: provenance headers, and key, value and headers kept.
func checkCopy(t *testing.T, got, src *kgo.Record, s *stack, wantAttempts int, since time.Time) {
	t.Helper()
	checkCopyStatus(t, got, src, s, wantAttempts, since, http.StatusInternalServerError)
}

func checkCopyStatus(t *testing.T, got, src *kgo.Record, s *stack, wantAttempts int, since time.Time, status int) {
	t.Helper()
	want := map[string]string{
		"sidecar-id":                 headerValue(src, idHeader),
		"sidecar-original-topic":     s.topic,
		"sidecar-original-partition": strconv.Itoa(int(src.Partition)),
		"sidecar-original-offset":    strconv.FormatInt(src.Offset, 10),
		"sidecar-original-timestamp": strconv.FormatInt(src.Timestamp.UnixMilli(), 10),
		"sidecar-group":              s.group,
		"sidecar-attempts":           strconv.Itoa(wantAttempts),
		"sidecar-error-status":       strconv.Itoa(status),
	}
	for k, v := range want {
		if g := headerValue(got, k); g != v {
			t.Errorf("copy in %s: header %s = %q, want %q", got.Topic, k, g, v)
		}
	}
	if e := headerValue(got, "sidecar-error"); !strings.Contains(e, strconv.Itoa(status)) {
		t.Errorf("copy in %s: sidecar-error %q does not name the status %d", got.Topic, e, status)
	}
	failedAt, err := time.Parse(time.RFC3339, headerValue(got, "sidecar-failed-at"))
	if err != nil {
		t.Errorf("copy in %s: sidecar-failed-at %q is not RFC 3339: %v", got.Topic, headerValue(got, "sidecar-failed-at"), err)
	} else if failedAt.Before(since.Add(-time.Second)) || failedAt.After(time.Now().Add(time.Second)) {
		t.Errorf("copy in %s: sidecar-failed-at %v is outside the test run (from %v)", got.Topic, failedAt, since)
	}
	if !bytes.Equal(got.Key, src.Key) || !bytes.Equal(got.Value, src.Value) {
		t.Errorf("copy in %s: key/value %q/%q, want the original %q/%q", got.Topic, got.Key, got.Value, src.Key, src.Value)
	}
	var own []kgo.RecordHeader
	for _, h := range got.Headers {
		if !strings.HasPrefix(h.Key, "sidecar-") {
			own = append(own, h)
		}
	}
	if len(own) != len(src.Headers) {
		t.Errorf("copy in %s keeps headers %v, want the original %v", got.Topic, own, src.Headers)
		return
	}
	for i, h := range src.Headers {
		if own[i].Key != h.Key || !bytes.Equal(own[i].Value, h.Value) {
			t.Errorf("copy in %s: header %d is %s=%q, want the original %s=%q", got.Topic, i, own[i].Key, own[i].Value, h.Key, h.Value)
		}
	}
}

// wantMetric fails the test unless the sample of name with labels has value want.
func wantMetric(t *testing.T, text, name string, labels map[string]string, want float64) {
	t.Helper()
	v, ok := metricValue(text, name, labels)
	if !ok {
		t.Errorf("/metrics has no %s%v", name, labels)
		return
	}
	if v != want {
		t.Errorf("/metrics: %s%v = %v, want %v", name, labels, v, want)
	}
}

// attempts lists the Kafka-Attempt and status of requests, for failure messages.
func attempts(reqs []appRequest) []string {
	out := make([]string, len(reqs))
	for i, r := range reqs {
		out[i] = strconv.Itoa(r.Attempt) + ":" + strconv.Itoa(r.Status)
	}
	return out
}

// lazyTotals prints a sidecar's totals when a failure message is formatted.
type lazyTotals struct{ r *running }

func (l lazyTotals) String() string {
	got := l.r.sc.Metrics().Totals()
	return "delivered=" + strconv.FormatInt(got.Delivered, 10) + " duplicates=" + strconv.FormatInt(got.Duplicates, 10) +
		" retried=" + strconv.FormatInt(got.Retried, 10) + " dead_lettered=" + strconv.FormatInt(got.DeadLettered, 10)
}
