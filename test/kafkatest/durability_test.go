package kafkatest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

const (
	durabilityPartitions = 3
	recordsBefore        = 300
	recordsAfter         = 30
)

// TestRealClusterAcksAll shows on the real cluster what the sidecar's "produce durably" rule rests on:
// with replication factor 3 and min.insync.replicas=2, an acks=all write is refused while two of the three
// nodes are down (one crashed, one stopped), is accepted again once they are back, and every record
// acknowledged before the outage is still at its offset afterwards.
//
// Two nodes down is also two of three controllers down, so the quorum is gone during the outage: the
// refusal may come as NOT_ENOUGH_REPLICAS from the surviving leader, or as a time-out when no leader can
// take the write; both are refusals, and an acknowledgement would be the failure.
func TestRealClusterAcksAll(t *testing.T) {
	seeds, ok := Seeds()
	if !ok {
		t.Skipf("%s is not set; run test/kafka/cluster.sh start and set it to the output of cluster.sh seeds", EnvBrokers)
	}
	brokers := SplitSeeds(seeds)
	c := newTestCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()

	admClient := newClient(t, brokers)
	t.Cleanup(admClient.Close) // registered first, so it runs after restore, which needs the client
	adm := kadm.NewClient(admClient)
	topic := fmt.Sprintf("kafkatest-acks-all-%d", time.Now().UnixNano())
	createTopic(ctx, t, adm, topic)
	// Whatever fails below, the next test finds three running nodes and no leftover topic.
	t.Cleanup(func() { restore(t, c, adm, topic) })
	waitInSync(ctx, t, adm, topic)

	producer := newClient(t, brokers, kgo.DefaultProduceTopic(topic), kgo.RequiredAcks(kgo.AllISRAcks()))
	defer producer.Close()
	acked := produce(ctx, t, producer, "before", recordsBefore)

	// Node 3 crashes; node 2 is shut down cleanly.
	down := time.Now()
	if err := c.KillNode(3); err != nil {
		t.Fatal(err)
	}
	t.Logf("node 3 killed in %s", time.Since(down).Round(time.Millisecond))
	down = time.Now()
	if err := c.StopNode(2); err != nil {
		t.Fatal(err)
	}
	t.Logf("node 2 stopped in %s", time.Since(down).Round(time.Millisecond))

	if details, err := adm.ListTopics(ctx, topic); err == nil {
		state, _ := inSync(details[topic])
		t.Logf("metadata during the outage: %s", state)
	}
	expectRefused(ctx, t, brokers, topic)

	up := time.Now()
	for _, n := range []int{2, 3} {
		if err := c.StartNode(n); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("nodes 2 and 3 listening again in %s", time.Since(up).Round(time.Millisecond))
	maps.Copy(acked, produce(ctx, t, producer, "after", recordsAfter))
	t.Logf("acks=all accepted again %s after the restart began", time.Since(up).Round(time.Millisecond))

	waitInSync(ctx, t, adm, topic)
	t.Logf("all replicas back in sync %s after the restart began", time.Since(up).Round(time.Millisecond))
	readBack(ctx, t, brokers, topic, acked)
}

// position is where a record sits in the topic.
type position struct {
	partition int32
	offset    int64
}

func (p position) String() string { return fmt.Sprintf("%d@%d", p.partition, p.offset) }

func newClient(t *testing.T, brokers []string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	base := []kgo.Opt{
		kgo.SeedBrokers(brokers...),
		// Leaders move while nodes come and go; the default 5 s between metadata refreshes would make the
		// clients sit out each move.
		kgo.MetadataMinAge(250 * time.Millisecond),
	}
	cl, err := kgo.NewClient(append(base, opts...)...)
	if err != nil {
		t.Fatalf("creating kafka client: %v", err)
	}
	return cl
}

func createTopic(ctx context.Context, t *testing.T, adm *kadm.Client, topic string) {
	t.Helper()
	minISR := "2"
	resp, err := adm.CreateTopic(ctx, durabilityPartitions, Nodes, map[string]*string{"min.insync.replicas": &minISR}, topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		t.Fatalf("creating topic %s: %v", topic, err)
	}
	cfgs, err := adm.DescribeTopicConfigs(ctx, topic)
	if err != nil {
		t.Fatalf("describing configs of %s: %v", topic, err)
	}
	rc, err := cfgs.On(topic, nil)
	if err == nil {
		err = rc.Err
	}
	if err != nil {
		t.Fatalf("describing configs of %s: %v", topic, err)
	}
	for _, cfg := range rc.Configs {
		if cfg.Key == "min.insync.replicas" {
			if cfg.Value == nil || *cfg.Value != minISR {
				t.Fatalf("topic %s has min.insync.replicas=%v, want %s", topic, cfg.MaybeValue(), minISR)
			}
			return
		}
	}
	t.Fatalf("topic %s: min.insync.replicas missing from its described configs", topic)
}

// waitInSync waits until every partition of topic has a leader and all Nodes replicas in its ISR.
func waitInSync(ctx context.Context, t *testing.T, adm *kadm.Client, topic string) {
	t.Helper()
	const limit = 2 * time.Minute
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	var last string
	for {
		details, err := adm.ListTopics(ctx, topic)
		if err != nil {
			last = err.Error()
		} else if state, ok := inSync(details[topic]); ok {
			return
		} else {
			last = state
		}
		select {
		case <-ctx.Done():
			t.Fatalf("topic %s: replicas not all in sync within %s; last seen: %s", topic, limit, last)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// inSync describes td's partitions and reports whether each has a leader and a full ISR.
func inSync(td kadm.TopicDetail) (string, bool) {
	if td.Err != nil {
		return td.Err.Error(), false
	}
	ok := len(td.Partitions) == durabilityPartitions
	var b strings.Builder
	for _, p := range td.Partitions.Sorted() {
		fmt.Fprintf(&b, "[p%d leader=%d isr=%v err=%v] ", p.Partition, p.Leader, p.ISR, p.Err)
		if p.Err != nil || p.Leader < 0 || len(p.ISR) != Nodes {
			ok = false
		}
	}
	return b.String(), ok
}

// produce writes n records with values "<label>-<i>" and returns where each was acknowledged.
func produce(ctx context.Context, t *testing.T, cl *kgo.Client, label string, n int) map[position]string {
	t.Helper()
	const limit = 2 * time.Minute
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	recs := make([]*kgo.Record, n)
	for i := range recs {
		recs[i] = &kgo.Record{Key: fmt.Appendf(nil, "key-%d", i), Value: fmt.Appendf(nil, "%s-%04d", label, i)}
	}
	acked := make(map[position]string, n)
	for _, r := range cl.ProduceSync(ctx, recs...) {
		if r.Err != nil {
			t.Fatalf("producing %q with acks=all (bounded by %s): %v", r.Record.Value, limit, r.Err)
		}
		acked[position{r.Record.Partition, r.Record.Offset}] = string(r.Record.Value)
	}
	return acked
}

// expectRefused produces one acks=all record to each partition and fails the test for any that is
// acknowledged, or refused for a reason other than missing replicas or a time-out.
func expectRefused(ctx context.Context, t *testing.T, brokers []string, topic string) {
	t.Helper()
	// Not idempotent: an idempotent producer may not give up on a batch it has sent without an answer, and
	// with the quorum gone there may be no answer; the broker's acks=all check is the same either way.
	// A few retries, then the broker's own error reaches the promise (once the retries are used up, kgo
	// fails the batch with the error of the last response); with no answer at all, the delivery timeout.
	cl := newClient(t, brokers,
		kgo.DefaultProduceTopic(topic),
		kgo.DisableIdempotentWrite(),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.RecordRetries(3),
		kgo.ProduceRequestTimeout(3*time.Second),
		kgo.RecordDeliveryTimeout(15*time.Second),
	)
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()

	recs := make([]*kgo.Record, durabilityPartitions)
	for p := range recs {
		recs[p] = &kgo.Record{Partition: int32(p), Value: fmt.Appendf(nil, "outage-%d", p)}
	}
	start := time.Now()
	for _, r := range cl.ProduceSync(ctx, recs...) {
		switch err := r.Err; {
		case err == nil:
			t.Errorf("partition %d acknowledged an acks=all record at offset %d with 2 of 3 nodes down",
				r.Record.Partition, r.Record.Offset)
		case errors.Is(err, kerr.NotEnoughReplicas), errors.Is(err, kerr.NotEnoughReplicasAfterAppend),
			errors.Is(err, kerr.RequestTimedOut), errors.Is(err, kgo.ErrRecordTimeout),
			errors.Is(err, context.DeadlineExceeded):
			t.Logf("partition %d refused after %s: %v", r.Record.Partition, time.Since(start).Round(time.Millisecond), err)
		default:
			t.Errorf("partition %d: want NOT_ENOUGH_REPLICAS or a time-out, got %v", r.Record.Partition, err)
		}
	}
}

// readBack consumes topic from the start until every record in want has been seen at its position, and
// fails the test naming the records that are missing or changed.
func readBack(ctx context.Context, t *testing.T, brokers []string, topic string, want map[position]string) {
	t.Helper()
	cl := newClient(t, brokers,
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(500*time.Millisecond),
	)
	defer cl.Close()
	const limit = time.Minute
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()

	got := make(map[position]string, len(want))
	matched := 0
	for matched < len(want) && ctx.Err() == nil {
		fetches := cl.PollFetches(ctx)
		fetches.EachError(func(topic string, p int32, err error) {
			if ctx.Err() == nil {
				t.Logf("fetching %s/%d (retried): %v", topic, p, err)
			}
		})
		fetches.EachRecord(func(r *kgo.Record) {
			pos := position{r.Partition, r.Offset}
			if _, seen := got[pos]; seen {
				return
			}
			got[pos] = string(r.Value)
			if v, ok := want[pos]; ok && v == string(r.Value) {
				matched++
			}
		})
	}
	var lost []string
	for _, pos := range slices.SortedFunc(maps.Keys(want), func(a, b position) int {
		if a.partition != b.partition {
			return int(a.partition - b.partition)
		}
		return int(a.offset - b.offset)
	}) {
		if v, ok := got[pos]; !ok || v != want[pos] {
			lost = append(lost, fmt.Sprintf("%s want %q got %q", pos, want[pos], v))
		}
	}
	if len(lost) > 0 {
		t.Fatalf("%d of %d acknowledged records missing or changed after %s of reading, first: %s",
			len(lost), len(want), limit, strings.Join(lost[:min(len(lost), 5)], "; "))
	}
	t.Logf("all %d acknowledged records read back at their offsets (%d records in the topic seen)", len(want), len(got))
}

// restore starts any node a failed test left down and deletes the test's topic.
func restore(t *testing.T, c *Cluster, adm *kadm.Client, topic string) {
	for n := 1; n <= Nodes; n++ {
		if err := c.StartNode(n); err != nil {
			t.Errorf("restoring the cluster: %v", err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	resp, err := adm.DeleteTopic(ctx, topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		t.Errorf("deleting topic %s: %v", topic, err)
	}
}
