package e2e

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// keyPrefix is the dedup keys' prefix for the stack's group (SIDECAR_DEDUP_KEY_PREFIX's default).
func (s *stack) keyPrefix() string { return "kafka-sidecar:" + s.group + ":" }

// idKeys counts the ID keys (leases and ID marks) the stack's group holds in Redis.
func (s *stack) idKeys(tb testing.TB) int {
	tb.Helper()
	keys, err := s.redisClient(tb).Keys(context.Background(), s.keyPrefix()+"i:*").Result()
	if err != nil {
		tb.Fatalf("KEYS: %v", err)
	}
	return len(keys)
}

func (s *stack) redisClient(tb testing.TB) *redis.Client {
	tb.Helper()
	if s.rc == nil {
		s.rc = s.redis.Client(tb)
	}
	return s.rc
}

// resetOffsets commits offset 0 for every partition of topic for the stack's group, which must be empty.
func (s *stack) resetOffsets(tb testing.TB, topic string, partitions int32) {
	tb.Helper()
	reset := kadm.Offsets{}
	want := map[int32]int64{}
	for p := range partitions {
		reset.AddOffset(topic, p, 0, -1)
		want[p] = 0
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	resp, err := s.kafka.adm.CommitOffsets(ctx, s.group, reset)
	if err == nil {
		err = resp.Error()
	}
	if err != nil {
		tb.Fatalf("resetting the group's offsets of %s to 0: %v", topic, err)
	}
	s.kafka.waitCommitted(tb, s.group, topic, want, 5*time.Second)
}

// TestOffsetResetAfterIDMarksExpired: records with message IDs of their own are delivered, the ID marks expire
// (SIDECAR_DEDUP_ID_TTL=2s), and the group's offsets are reset to the start. The position marks still know
// every record: the app receives nothing again.
func TestOffsetResetAfterIDMarksExpired(t *testing.T) {
	const partitions, n = 3, 60
	s := newStack(t, partitions)
	recs := makeRecords(s.topic, partitions, n, "expiring")
	s.kafka.produce(t, recs...)
	env := s.env("SIDECAR_DEDUP_ID_TTL=2s")

	first := startSidecar(t, env)
	waitFor(t, 30*time.Second, func() bool { return first.sc.Metrics().Totals().Delivered == n },
		"%d records delivered", n)
	s.kafka.waitCommitted(t, s.group, s.topic, endsOf(recs), 15*time.Second)
	first.stop(t)
	if got := s.app.total(); got != n {
		t.Fatalf("app received %d requests on the first run, want %d", got, n)
	}
	if got := s.idKeys(t); got != n {
		t.Fatalf("%d ID keys after the first run, want %d ID marks", got, n)
	}
	// Redis expires the ID marks 2s after they were written; wait until every one has gone.
	waitFor(t, 15*time.Second, func() bool { return s.idKeys(t) == 0 }, "the ID marks to expire")

	s.resetOffsets(t, s.topic, partitions)
	second := startSidecar(t, env)
	waitFor(t, 30*time.Second, func() bool { return second.sc.Metrics().Totals().Duplicates == n },
		"all %d redelivered records suppressed as duplicates (have %+v)", n, second.sc.Metrics().Totals())
	s.kafka.waitCommitted(t, s.group, s.topic, endsOf(recs), 15*time.Second)
	if got := s.app.total() - n; got != 0 {
		t.Errorf("the app received %d deliveries after the offset reset, want 0", got)
	}
}

// TestSameIDAtAnotherOffset: a message produced again at another offset (a producer's retry) within the ID
// window is suppressed; produced again after the window it is delivered again, as documented.
func TestSameIDAtAnotherOffset(t *testing.T) {
	s := newStack(t, 1)
	r := startSidecar(t, s.env("SIDECAR_DEDUP_ID_TTL=2s"))
	send := func(value string) {
		s.kafka.produce(t, &kgo.Record{Topic: s.topic, Value: []byte(value),
			Headers: []kgo.RecordHeader{{Key: idHeader, Value: []byte("order-7")}}})
	}
	send(`{"try":1}`)
	waitFor(t, 30*time.Second, func() bool { return r.sc.Metrics().Totals().Delivered == 1 }, "the first copy delivered")
	send(`{"try":2}`)
	waitFor(t, 30*time.Second, func() bool { return r.sc.Metrics().Totals().Duplicates == 1 },
		"the second copy suppressed within the ID window (have %+v)", r.sc.Metrics().Totals())
	if got := len(s.app.requestsFor("order-7")); got != 1 {
		t.Fatalf("app received order-7 %d times within the ID window, want 1", got)
	}
	waitFor(t, 15*time.Second, func() bool { return s.idKeys(t) == 0 }, "the ID mark to expire")
	send(`{"try":3}`)
	waitFor(t, 30*time.Second, func() bool { return r.sc.Metrics().Totals().Delivered == 2 },
		"the third copy delivered after the ID window (have %+v)", r.sc.Metrics().Totals())
	if got := len(s.app.requestsFor("order-7")); got != 2 {
		t.Fatalf("app received order-7 %d times, want 2 (once within the window, once after)", got)
	}
}

// TestPreviousReleaseMarksAfterUpgrade: the previous release kept one key per message ID,
// <prefix><id> = "D". A group upgraded in place, its offsets reset, finds those marks: nothing is delivered
// again, records with IDs of their own or not.
func TestPreviousReleaseMarksAfterUpgrade(t *testing.T) {
	const partitions, n = 2, 40
	s := newStack(t, partitions)
	recs := makeRecords(s.topic, partitions, n, "old")
	for i := n / 2; i < n; i++ {
		recs[i].Headers = recs[i].Headers[1:] // no ID of their own: their ID is topic/partition/offset
	}
	s.kafka.produce(t, recs...)
	ctx := context.Background()
	rc := s.redisClient(t)
	for i, rec := range recs {
		id := "old-" + strconv.Itoa(i)
		if i >= n/2 {
			id = rec.Topic + "/" + strconv.Itoa(int(rec.Partition)) + "/" + strconv.FormatInt(rec.Offset, 10)
		}
		if err := rc.Set(ctx, s.keyPrefix()+id, "D", time.Hour).Err(); err != nil {
			t.Fatal(err)
		}
	}
	r := startSidecar(t, s.env())
	waitFor(t, 30*time.Second, func() bool { return r.sc.Metrics().Totals().Duplicates == n },
		"all %d records suppressed by the previous release's marks (have %+v)", n, r.sc.Metrics().Totals())
	s.kafka.waitCommitted(t, s.group, s.topic, endsOf(recs), 15*time.Second)
	if got := s.app.total(); got != 0 {
		t.Errorf("the app received %d deliveries after the upgrade, want 0", got)
	}
}

// TestRecreatedTopicDeliversEverything: a topic is deleted and created again under the same name, and new
// records land at the same offsets as the old ones. The old topic's position marks belong to its topic ID, so
// every new record is delivered, none suppressed.
func TestRecreatedTopicDeliversEverything(t *testing.T) {
	const partitions, n = 2, 20
	s := newStack(t, partitions)
	plain := func(prefix string) []*kgo.Record {
		recs := makeRecords(s.topic, partitions, n, prefix)
		for _, r := range recs {
			r.Headers = r.Headers[1:] // no ID header: only the position identifies the record
		}
		return recs
	}
	first := plain("before")
	s.kafka.produce(t, first...)
	r := startSidecar(t, s.env())
	waitFor(t, 30*time.Second, func() bool { return r.sc.Metrics().Totals().Delivered == n }, "%d records delivered", n)
	s.kafka.waitCommitted(t, s.group, s.topic, endsOf(first), 15*time.Second)
	r.stop(t)

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	before, err := s.kafka.adm.ListTopics(ctx, s.topic)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.kafka.adm.DeleteTopics(ctx, s.topic); err != nil {
		t.Fatalf("deleting %s: %v", s.topic, err)
	}
	waitFor(t, 60*time.Second, func() bool {
		td, err := s.kafka.adm.ListTopics(ctx, s.topic)
		return err == nil && !td.Has(s.topic)
	}, "topic %s to be deleted", s.topic)
	s.kafka.createTopic(t, s.topic, partitions)
	after, err := s.kafka.adm.ListTopics(ctx, s.topic)
	if err != nil {
		t.Fatal(err)
	}
	if before[s.topic].ID == after[s.topic].ID {
		t.Fatalf("the re-created topic kept its topic ID %v", after[s.topic].ID)
	}
	second := plain("after")
	// A fresh producer: the test's client would keep the deleted topic's ID for a while.
	fresh, err := kgo.NewClient(kgo.SeedBrokers(s.kafka.seeds...), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerLinger(0))
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Close()
	if err := fresh.ProduceSync(ctx, second...).FirstErr(); err != nil {
		t.Fatalf("producing to the re-created topic: %v", err)
	}
	for i := range second {
		if second[i].Offset != first[i].Offset || second[i].Partition != first[i].Partition {
			t.Fatalf("record %d landed at %d/%d, want the old position %d/%d", i, second[i].Partition,
				second[i].Offset, first[i].Partition, first[i].Offset)
		}
	}
	s.resetOffsets(t, s.topic, partitions)
	r = startSidecar(t, s.env())
	waitFor(t, 30*time.Second, func() bool { return r.sc.Metrics().Totals().Delivered == n },
		"all %d records of the re-created topic delivered (have %+v)", n, r.sc.Metrics().Totals())
	s.kafka.waitCommitted(t, s.group, s.topic, endsOf(second), 15*time.Second)
	if got := r.sc.Metrics().Totals().Duplicates; got != 0 {
		t.Errorf("%d records of the re-created topic suppressed, want 0", got)
	}
	if got := s.app.total(); got != 2*n {
		t.Errorf("the app received %d requests in all, want %d (every record of both topics once)", got, 2*n)
	}
}
