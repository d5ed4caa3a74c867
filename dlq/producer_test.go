package dlq

import (
	"context"
	"errors"
	"math"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kafka-sidecar/kafka-sidecar/envelope"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// wait bounds every wait in these tests: long enough for a loaded machine, short enough to fail clearly.
const wait = 15 * time.Second

func newCluster(t *testing.T, opts ...kfake.Opt) *kfake.Cluster {
	t.Helper()
	c, err := kfake.NewCluster(append([]kfake.Opt{kfake.NumBrokers(1)}, opts...)...)
	if err != nil {
		t.Fatalf("starting fake cluster: %v", err)
	}
	t.Cleanup(c.Close)
	return c
}

// newClient builds a producing client the way the sidecar does (ProducerOpts), with short internal
// backoffs so the tests run fast; extra options go last and win.
func newClient(t *testing.T, c *kfake.Cluster, extra ...kgo.Opt) *kgo.Client {
	t.Helper()
	opts := []kgo.Opt{
		kgo.SeedBrokers(c.ListenAddrs()...),
		kgo.MetadataMinAge(10 * time.Millisecond),
		kgo.RetryBackoffFn(func(int) time.Duration { return 10 * time.Millisecond }),
	}
	opts = append(append(opts, ProducerOpts()...), extra...)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		t.Fatalf("creating client: %v", err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// loggedFailures returns a logger and a channel that receives every warning it logs, so a test can wait
// for Send's own retry instead of sleeping.
func loggedFailures() (*zap.Logger, *observer.ObservedLogs, <-chan zapcore.Entry) {
	core, logs := observer.New(zap.WarnLevel)
	ch := make(chan zapcore.Entry, 64)
	log := zap.New(core, zap.Hooks(func(e zapcore.Entry) error {
		select {
		case ch <- e:
		default:
		}
		return nil
	}))
	return log, logs, ch
}

func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	t.Cleanup(cancel)
	return ctx
}

// stored reads back every record on topic, proving what the broker kept: the count comes from the end
// offsets, so a duplicate would show as a second record.
func stored(t *testing.T, c *kfake.Cluster, topic string) []*kgo.Record {
	t.Helper()
	ctx := testContext(t)
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(c.ListenAddrs()...),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(50*time.Millisecond),
	)
	if err != nil {
		t.Fatalf("creating consumer: %v", err)
	}
	defer cl.Close()
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatalf("listing end offsets of %s: %v", topic, err)
	}
	total := int64(0)
	ends.Each(func(o kadm.ListedOffset) { total += o.Offset })
	var recs []*kgo.Record
	for int64(len(recs)) < total {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %d of %d records from %s before the deadline", len(recs), total, topic)
		}
		fs.EachError(func(_ string, _ int32, err error) { t.Fatalf("fetching %s: %v", topic, err) })
		recs = append(recs, fs.Records()...)
	}
	return recs
}

// failProduce answers every produce request with code while failing is set, and signals each answer on
// hits (without blocking the cluster).
func failProduce(c *kfake.Cluster, code int16, failing *atomic.Bool, hits chan<- struct{}) {
	c.ControlKey(int16(kmsg.Produce), func(req kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		if !failing.Load() {
			return nil, nil, false
		}
		preq := req.(*kmsg.ProduceRequest)
		resp := preq.ResponseKind().(*kmsg.ProduceResponse)
		for _, rt := range preq.Topics {
			st := kmsg.NewProduceResponseTopic()
			st.Topic, st.TopicID = rt.Topic, rt.TopicID
			for _, rp := range rt.Partitions {
				sp := kmsg.NewProduceResponseTopicPartition()
				sp.Partition = rp.Partition
				sp.ErrorCode = code
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		select {
		case hits <- struct{}{}:
		default:
		}
		return resp, nil, true
	})
}

// deadLetter is a typical copy: key, value, a header of the record's own and provenance.
func deadLetter(topic string, sourcePartition int32, key []byte) *kgo.Record {
	src := &kgo.Record{
		Topic: "orders", Partition: sourcePartition, Offset: 41, Key: key, Value: []byte("payload"),
		Headers: []kgo.RecordHeader{{Key: "traceparent", Value: []byte("00-1-2-01")}},
	}
	return envelope.DeadLetter(src, envelope.Provenance{
		ID: "orders/3/41", OriginalTopic: "orders", OriginalPartition: sourcePartition, OriginalOffset: 41,
		Group: "billing", Attempts: 3, Error: "http 500: boom", ErrorStatus: 500,
	}, topic)
}

func awaitHits(t *testing.T, hits <-chan struct{}, n int) {
	t.Helper()
	timeout := time.NewTimer(wait)
	defer timeout.Stop()
	for i := range n {
		select {
		case <-hits:
		case <-timeout.C:
			t.Fatalf("saw %d failed produce requests of %d within %v", i, n, wait)
		}
	}
}

func awaitResult(t *testing.T, done <-chan error) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(wait):
		t.Fatalf("Send did not return within %v", wait)
		return nil
	}
}

func TestSendPlacesCopy(t *testing.T) {
	c := newCluster(t, kfake.SeedTopics(8, "wide"), kfake.SeedTopics(3, "narrow"))
	p := NewProducer(newClient(t, c), zap.NewNop())
	tests := []struct {
		name      string
		topic     string
		partition int32
		key       []byte
		want      int32
	}{
		{"same partition number", "wide", 5, []byte("k"), 5},
		{"partition zero", "wide", 0, nil, 0},
		{"fewer partitions: by key hash", "narrow", 5, []byte("foobar"), 1357151166 % 3},
		{"fewer partitions, no key: modulo", "narrow", 5, nil, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := deadLetter(tt.topic, tt.partition, tt.key)
			if err := p.Send(testContext(t), rec); err != nil {
				t.Fatalf("Send: %v", err)
			}
			if rec.Partition != tt.want || rec.Offset < 0 {
				t.Fatalf("acked at %d/%d, want partition %d", rec.Partition, rec.Offset, tt.want)
			}
		})
	}
	// Every acknowledged copy is on the broker where the ack said, with its headers.
	for _, topic := range []string{"wide", "narrow"} {
		for _, r := range stored(t, c, topic) {
			e := Decode(r)
			if e.ID != "orders/3/41" || e.Status != "500" || e.DecodeError != "" {
				t.Errorf("stored record on %s/%d decodes to %+v", topic, r.Partition, e)
			}
		}
	}
}

func TestSendRetriesThroughNotEnoughReplicas(t *testing.T) {
	tests := []struct {
		name  string
		extra []kgo.Opt
		// sendLogs is whether Send's own loop must have logged: with the client's retries unlimited
		// (ProducerOpts) the client rides out the errors inside one idempotent session; with a retry limit
		// the client gives up and Send produces again.
		sendLogs bool
	}{
		{"client retries", nil, false},
		{"client gives up, Send retries", []kgo.Opt{kgo.RecordRetries(1)}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newCluster(t, kfake.SeedTopics(4, "orders.billing.dlq"))
			var failing atomic.Bool
			failing.Store(true)
			hits := make(chan struct{}, 64)
			failProduce(c, kerr.NotEnoughReplicas.Code, &failing, hits)
			log, logs, _ := loggedFailures()
			p := NewProducer(newClient(t, c, tt.extra...), log, WithRetryBackoff(time.Millisecond, 5*time.Millisecond))

			rec := deadLetter("orders.billing.dlq", 2, []byte("k"))
			done := make(chan error, 1)
			go func() { done <- p.Send(testContext(t), rec) }()

			awaitHits(t, hits, 4)
			select {
			case err := <-done:
				t.Fatalf("Send returned %v while every produce fails", err)
			default:
			}
			failing.Store(false)
			if err := awaitResult(t, done); err != nil {
				t.Fatalf("Send after recovery: %v", err)
			}

			recs := stored(t, c, "orders.billing.dlq")
			if len(recs) != 1 || recs[0].Partition != 2 || string(recs[0].Key) != "k" {
				t.Fatalf("stored %d records (want exactly 1 on partition 2): %v", len(recs), recs)
			}
			retried := logs.FilterMessage("producing a copy failed, retrying")
			if tt.sendLogs && retried.Len() == 0 {
				t.Fatal("Send retried without logging the failure")
			}
			if !tt.sendLogs && retried.Len() != 0 {
				t.Fatalf("Send logged %d failures; the client should have retried internally", retried.Len())
			}
			for _, e := range retried.All() {
				f := e.ContextMap()
				if f["topic"] != "orders.billing.dlq" || f["original_topic"] != "orders" || f["original_offset"] != int64(41) || f["error"] == nil {
					t.Fatalf("failure log lacks topic, provenance or error: %v", f)
				}
			}
		})
	}
}

func TestSendStoresOnceWhenAcksAreLost(t *testing.T) {
	// NOT_ENOUGH_REPLICAS_AFTER_APPEND: the broker wrote the batch but could not confirm it. The client
	// retries the same batch; the idempotent producer lets the broker recognise it, so it is stored once.
	c := newCluster(t, kfake.SeedTopics(4, "orders.billing.dlq"))
	faults := c.Fault(kfake.Fault{
		Keys:  []kmsg.Key{kmsg.Produce},
		Topic: "orders.billing.dlq",
		Err:   kerr.NotEnoughReplicasAfterAppend,
		Count: 3,
	})
	p := NewProducer(newClient(t, c), zap.NewNop())
	rec := deadLetter("orders.billing.dlq", 1, []byte("k"))
	if err := p.Send(testContext(t), rec); err != nil {
		t.Fatalf("Send: %v", err)
	}
	if n := faults.Hits(); n != 3 {
		t.Fatalf("%d produce requests were answered with the fault, want 3", n)
	}
	if recs := stored(t, c, "orders.billing.dlq"); len(recs) != 1 {
		t.Fatalf("stored %d records after lost acks, want exactly 1", len(recs))
	}
}

func TestSendWaitsForMissingTopic(t *testing.T) {
	// The dead-letter topic does not exist yet (it is being created): the client fails the record after
	// its unknown-topic retries, and Send keeps producing, logging each failure, until the topic is there.
	c := newCluster(t)
	log, _, warned := loggedFailures()
	p := NewProducer(newClient(t, c), log, WithRetryBackoff(time.Millisecond, 20*time.Millisecond))

	rec := deadLetter("late.dlq", 0, nil)
	done := make(chan error, 1)
	go func() { done <- p.Send(testContext(t), rec) }()

	select {
	case e := <-warned:
		if e.Message != "producing a copy failed, retrying" {
			t.Fatalf("unexpected warning %q", e.Message)
		}
	case err := <-done:
		t.Fatalf("Send returned %v before the topic exists", err)
	case <-time.After(wait):
		t.Fatalf("no failure logged within %v", wait)
	}

	adm := kadm.NewClient(newClient(t, c))
	if _, err := adm.CreateTopic(testContext(t), 1, 1, nil, "late.dlq"); err != nil {
		t.Fatalf("creating late.dlq: %v", err)
	}
	if err := awaitResult(t, done); err != nil {
		t.Fatalf("Send once the topic exists: %v", err)
	}
	if recs := stored(t, c, "late.dlq"); len(recs) != 1 {
		t.Fatalf("stored %d records, want 1", len(recs))
	}
}

func TestSendStopsWhenContextEnds(t *testing.T) {
	c := newCluster(t, kfake.SeedTopics(1, "orders.billing.dlq"))
	var failing atomic.Bool
	failing.Store(true)
	hits := make(chan struct{}, 64)
	failProduce(c, kerr.NotEnoughReplicas.Code, &failing, hits)
	p := NewProducer(newClient(t, c), zap.NewNop())

	ctx, cancel := context.WithCancel(testContext(t))
	done := make(chan error, 1)
	go func() { done <- p.Send(ctx, deadLetter("orders.billing.dlq", 0, nil)) }()
	awaitHits(t, hits, 2)
	cancel()
	err := awaitResult(t, done)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Send after cancel = %v, want an error wrapping context.Canceled", err)
	}
	if recs := stored(t, c, "orders.billing.dlq"); len(recs) != 0 {
		t.Fatalf("stored %d records although every produce failed", len(recs))
	}
}

func TestProducerOpts(t *testing.T) {
	c := newCluster(t)
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(c.ListenAddrs()...)}, ProducerOpts()...)...)
	if err != nil {
		t.Fatalf("ProducerOpts do not build a client: %v", err)
	}
	defer cl.Close()
	tests := []struct {
		name string
		opt  any
		want any
	}{
		{"acks from all in-sync replicas", kgo.RequiredAcks, kgo.AllISRAcks()},
		{"idempotent producer stays on", kgo.DisableIdempotentWrite, false},
		{"unlimited client retries", kgo.RecordRetries, int64(math.MaxInt)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := cl.OptValue(tt.opt); got != tt.want {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestNewProducerDefaults(t *testing.T) {
	tests := []struct {
		name             string
		opts             []Option
		wantFirst, wantM time.Duration
	}{
		{"defaults", nil, 100 * time.Millisecond, 5 * time.Second},
		{"custom", []Option{WithRetryBackoff(time.Second, time.Minute)}, time.Second, time.Minute},
		{"non-positive keeps defaults", []Option{WithRetryBackoff(0, -1)}, 100 * time.Millisecond, 5 * time.Second},
		{"cap below first is raised", []Option{WithRetryBackoff(10*time.Second, time.Second)}, 10 * time.Second, 10 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := NewProducer(nil, nil, tt.opts...)
			if p.backoff != tt.wantFirst || p.backoffMax != tt.wantM || p.log == nil {
				t.Fatalf("backoff %v..%v (logger %v), want %v..%v", p.backoff, p.backoffMax, p.log, tt.wantFirst, tt.wantM)
			}
		})
	}
}
