package e2e

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kafka-sidecar/kafka-sidecar/test/kafkatest"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// idHeader is the record header that carries the message ID in every test (SIDECAR_ID_HEADER).
const idHeader = "message-id"

// kafkaEnv is the cluster one test runs against: an in-process kfake broker of its own, or the shared real
// cluster named by TEST_KAFKA_BROKERS. On the real cluster every topic and group name is unique per test, so
// tests never see each other's records.
type kafkaEnv struct {
	seeds []string
	// fake is the in-process broker, nil on the real cluster; fault injection needs it.
	fake *kfake.Cluster
	cl   *kgo.Client
	adm  *kadm.Client
}

// brokers returns the seed brokers a test runs against and, when they belong to an in-process kfake broker
// started for this test, that broker (nil on the real cluster).
func brokers(tb testing.TB) ([]string, *kfake.Cluster) {
	tb.Helper()
	if seeds, ok := kafkatest.Seeds(); ok {
		return kafkatest.SplitSeeds(seeds), nil
	}
	// KIP-848 groups get the session the classic ones have in these tests (SIDECAR_KAFKA_SESSION_TIMEOUT=6s),
	// so that a killed member's partitions move within seconds with either protocol.
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.BrokerConfigs(map[string]string{
		"group.consumer.session.timeout.ms":    "6000",
		"group.consumer.heartbeat.interval.ms": "1000",
	}))
	if err != nil {
		tb.Fatalf("starting kfake: %v", err)
	}
	tb.Cleanup(c.Close)
	return c.ListenAddrs(), c
}

// newKafka connects a producer and an admin client to the test's cluster.
func newKafka(tb testing.TB) *kafkaEnv {
	tb.Helper()
	seeds, fake := brokers(tb)
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(seeds...),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.MetadataMinAge(100*time.Millisecond),
		kgo.ProducerLinger(0),
	)
	if err != nil {
		tb.Fatalf("creating the test kafka client: %v", err)
	}
	tb.Cleanup(cl.Close)
	return &kafkaEnv{seeds: seeds, fake: fake, cl: cl, adm: kadm.NewClient(cl)}
}

// needFake skips a test that injects faults into the broker when it runs against the real cluster.
func (k *kafkaEnv) needFake(tb testing.TB) {
	tb.Helper()
	if k.fake == nil {
		tb.Skip("this test injects broker faults, which only the in-process kfake broker allows")
	}
}

// createTopic creates a topic with the given partitions (replication factor 3 on the real cluster).
func (k *kafkaEnv) createTopic(tb testing.TB, topic string, partitions int32) {
	tb.Helper()
	rf := int16(1)
	if k.fake == nil {
		rf = 3
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// A real node restarting refuses the request for a moment (too few brokers for the replication factor,
	// or a dial error); keep trying within the bound. An earlier try that timed out may have created it.
	var lastErr error
	waitFor(tb, 60*time.Second, func() bool {
		resp, err := k.adm.CreateTopic(ctx, partitions, rf, nil, topic)
		if err == nil {
			err = resp.Err
		}
		lastErr = err
		return err == nil || errors.Is(err, kerr.TopicAlreadyExists)
	}, "creating topic %s (last error: %v)", topic, lazyErr{&lastErr})
	// Metadata reaches every broker a moment after the controller answers; produce only once it has.
	waitFor(tb, 30*time.Second, func() bool {
		td, err := k.adm.ListTopics(ctx, topic)
		if err != nil {
			return false
		}
		d, ok := td[topic]
		return ok && d.Err == nil && len(d.Partitions) == int(partitions)
	}, "topic %s to show up in metadata with %d partitions", topic, partitions)
}

// lazyErr prints the error it points at when a failure message is formatted.
type lazyErr struct{ err *error }

func (l lazyErr) String() string {
	if *l.err == nil {
		return "none"
	}
	return (*l.err).Error()
}

var nameSeq atomic.Int64

var unsafeName = regexp.MustCompile(`[^a-zA-Z0-9-]+`)

// uniqueName builds a topic or group name from the test's name, unique within and across runs.
func uniqueName(tb testing.TB, what string) string {
	base := strings.ToLower(unsafeName.ReplaceAllString(tb.Name(), "-"))
	if len(base) > 60 {
		base = base[len(base)-60:]
	}
	return fmt.Sprintf("%s-%s-%d-%d", strings.Trim(base, "-"), what, time.Now().UnixNano()%1e9, nameSeq.Add(1))
}

// makeRecords builds n records spread round-robin over the partitions. Record i has the message ID
// prefix-i, the key key-i, a JSON value, and two headers of its own that every copy must keep.
func makeRecords(topic string, partitions int32, n int, prefix string) []*kgo.Record {
	recs := make([]*kgo.Record, n)
	for i := range n {
		recs[i] = &kgo.Record{
			Topic:     topic,
			Partition: int32(i) % partitions,
			Key:       []byte("key-" + strconv.Itoa(i)),
			Value:     []byte(`{"n":` + strconv.Itoa(i) + `}`),
			Headers: []kgo.RecordHeader{
				{Key: idHeader, Value: []byte(prefix + "-" + strconv.Itoa(i))},
				{Key: "origin", Value: []byte("e2e")},
			},
		}
	}
	return recs
}

// produce writes recs synchronously; on return each record carries its partition and offset.
func (k *kafkaEnv) produce(tb testing.TB, recs ...*kgo.Record) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := k.cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		tb.Fatalf("producing %d records: %v", len(recs), err)
	}
}

// endOffsets returns the high watermark of every partition of topic.
func (k *kafkaEnv) endOffsets(tb testing.TB, topic string) map[int32]int64 {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	lo, err := k.adm.ListEndOffsets(ctx, topic)
	if err == nil {
		err = lo.Error()
	}
	if err != nil {
		tb.Fatalf("listing end offsets of %s: %v", topic, err)
	}
	out := map[int32]int64{}
	lo.Each(func(o kadm.ListedOffset) { out[o.Partition] = o.Offset })
	return out
}

// topicSize is the number of records in topic (the sum of its high watermarks; the topics here are never
// transactional or compacted).
func (k *kafkaEnv) topicSize(tb testing.TB, topic string) int64 {
	tb.Helper()
	var n int64
	for _, o := range k.endOffsets(tb, topic) {
		n += o
	}
	return n
}

// committed returns the group's committed offset of every partition of topic that has one.
func (k *kafkaEnv) committed(ctx context.Context, group, topic string) (map[int32]int64, error) {
	resp, err := k.adm.FetchOffsets(ctx, group)
	if err != nil {
		return nil, fmt.Errorf("fetching offsets of group %s: %w", group, err)
	}
	if err := resp.Error(); err != nil {
		return nil, fmt.Errorf("fetching offsets of group %s: %w", group, err)
	}
	out := map[int32]int64{}
	for p, r := range resp[topic] {
		out[p] = r.At
	}
	return out, nil
}

// waitCommitted waits until the group's committed offsets of topic equal want in every partition.
func (k *kafkaEnv) waitCommitted(tb testing.TB, group, topic string, want map[int32]int64, timeout time.Duration) {
	tb.Helper()
	var last map[int32]int64
	waitFor(tb, timeout, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		got, err := k.committed(ctx, group, topic)
		if err != nil {
			return false
		}
		last = got
		for p, o := range want {
			if got[p] != o {
				return false
			}
		}
		return true
	}, "committed offsets of %s to reach %v (last seen %v)", topic, want, &last)
}

// readTopic reads every record of topic from the start to its current end.
func (k *kafkaEnv) readTopic(tb testing.TB, topic string) []*kgo.Record {
	tb.Helper()
	ends := k.endOffsets(tb, topic)
	var want int64
	for _, o := range ends {
		want += o
	}
	if want == 0 {
		return nil
	}
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(k.seeds...),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.MetadataMinAge(100*time.Millisecond),
	)
	if err != nil {
		tb.Fatalf("creating a reader of %s: %v", topic, err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out []*kgo.Record
	for int64(len(out)) < want {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			tb.Fatalf("reading %s: got %d of %d records within 30s", topic, len(out), want)
		}
		fs.EachError(func(t string, p int32, err error) {
			tb.Logf("reading %s: partition %d: %v", t, p, err)
		})
		out = append(out, fs.Records()...)
	}
	return out
}

// recordIDs maps message ID to record for the produced records.
func recordIDs(recs []*kgo.Record) map[string]*kgo.Record {
	out := make(map[string]*kgo.Record, len(recs))
	for _, r := range recs {
		out[headerValue(r, idHeader)] = r
	}
	return out
}

// headerValue returns the last value of header key on r, or "".
func headerValue(r *kgo.Record, key string) string {
	for i := len(r.Headers) - 1; i >= 0; i-- {
		if r.Headers[i].Key == key {
			return string(r.Headers[i].Value)
		}
	}
	return ""
}

// hasHeader reports whether r has header key.
func hasHeader(r *kgo.Record, key string) bool {
	for _, h := range r.Headers {
		if h.Key == key {
			return true
		}
	}
	return false
}

// endsOf returns, for each partition, the offset after the last of recs (what a caught-up commit reads).
func endsOf(recs []*kgo.Record) map[int32]int64 {
	out := map[int32]int64{}
	for _, r := range recs {
		if r.Offset+1 > out[r.Partition] {
			out[r.Partition] = r.Offset + 1
		}
	}
	return out
}
