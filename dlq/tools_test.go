package dlq_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap/zaptest"

	"github.com/kafka-sidecar/kafka-sidecar/config"
	"github.com/kafka-sidecar/kafka-sidecar/connect"
	"github.com/kafka-sidecar/kafka-sidecar/dedup"
	"github.com/kafka-sidecar/kafka-sidecar/dlq"
	"github.com/kafka-sidecar/kafka-sidecar/envelope"
	"github.com/kafka-sidecar/kafka-sidecar/sidecar"
	"github.com/kafka-sidecar/kafka-sidecar/test/redistest"
	"github.com/kafka-sidecar/kafka-sidecar/topics"
)

// bound caps every wait in these tests.
const bound = 30 * time.Second

func fakeCluster(t *testing.T, opts ...kfake.Opt) *kfake.Cluster {
	t.Helper()
	c, err := kfake.NewCluster(append([]kfake.Opt{kfake.NumBrokers(1)}, opts...)...)
	if err != nil {
		t.Fatalf("starting fake cluster: %v", err)
	}
	t.Cleanup(c.Close)
	return c
}

func producer(t *testing.T, c *kfake.Cluster) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(c.ListenAddrs()...),
		kgo.MetadataMinAge(10 * time.Millisecond)}, dlq.ProducerOpts()...)...)
	if err != nil {
		t.Fatalf("creating producer: %v", err)
	}
	t.Cleanup(cl.Close)
	return cl
}

func scanAll(t *testing.T, ctx context.Context, kopts []kgo.Opt, topic string, f dlq.Filter) []dlq.Scanned {
	t.Helper()
	var out []dlq.Scanned
	if err := dlq.Scan(ctx, kopts, topic, f, func(s dlq.Scanned) error { out = append(out, s); return nil }); err != nil {
		t.Fatalf("scanning %s: %v", topic, err)
	}
	slices.SortFunc(out, func(a, b dlq.Scanned) int {
		return strings.Compare(pos(a.Entry).String(), pos(b.Entry).String())
	})
	return out
}

func pos(e dlq.Entry) dlq.Position {
	return dlq.Position{Partition: e.DLQPartition, Offset: e.DLQOffset}
}

// TestScanFilters writes a known set of dead letters and checks that each filter selects exactly the
// expected ones, and that every Entry survives a JSON round trip with the contract's field names.
func TestScanFilters(t *testing.T) {
	const topic = "orders.g.dlq"
	c := fakeCluster(t, kfake.SeedTopics(2, topic))
	cl := producer(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	base := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	type spec struct {
		name, src, key, reason string
		status, part           int
		failed                 time.Time
	}
	specs := []spec{
		{name: "a", src: "orders", key: "k-a", reason: "http 422: bad order", status: 422, part: 0, failed: base},
		{name: "b", src: "orders", key: "k-b", reason: "http 503: database unavailable", status: 503, part: 0, failed: base.Add(time.Hour)},
		{name: "c", src: "payments", key: "k-c", reason: "timeout after 30s", part: 1, failed: base.Add(2 * time.Hour)},
		{name: "d", src: "payments", key: "\x00bin", reason: "http 500: boom", status: 500, part: 1, failed: base.Add(3 * time.Hour)},
	}
	where := map[string]dlq.Position{}
	for i, s := range specs {
		src := &kgo.Record{Topic: s.src, Partition: int32(s.part), Offset: int64(100 + i), Key: []byte(s.key), Value: []byte(s.name)}
		rec := envelope.DeadLetter(src, envelope.Provenance{ID: s.name, OriginalTopic: s.src, OriginalPartition: int32(s.part),
			OriginalOffset: int64(100 + i), Group: "g", Attempts: i + 1, Error: s.reason, ErrorStatus: s.status, FailedAt: s.failed}, topic)
		if err := cl.ProduceSync(ctx, rec).FirstErr(); err != nil {
			t.Fatalf("producing dead letter %s: %v", s.name, err)
		}
		where[s.name] = dlq.Position{Partition: rec.Partition, Offset: rec.Offset}
	}
	kopts := []kgo.Opt{kgo.SeedBrokers(c.ListenAddrs()...)}

	tests := []struct {
		name string
		f    dlq.Filter
		want []string
	}{
		{"all", dlq.Filter{}, []string{"a", "b", "c", "d"}},
		{"since", dlq.Filter{Since: base.Add(90 * time.Minute)}, []string{"c", "d"}},
		{"until", dlq.Filter{Until: base.Add(90 * time.Minute)}, []string{"a", "b"}},
		{"since and until", dlq.Filter{Since: base.Add(30 * time.Minute), Until: base.Add(150 * time.Minute)}, []string{"b", "c"}},
		{"original topic", dlq.Filter{OriginalTopic: "payments"}, []string{"c", "d"}},
		{"status exact", dlq.Filter{Status: "503"}, []string{"b"}},
		{"status class", dlq.Filter{Status: "5xx"}, []string{"b", "d"}},
		{"status none", dlq.Filter{Status: "none"}, []string{"c"}},
		{"error substring", dlq.Filter{Error: "database"}, []string{"b"}},
		{"key", dlq.Filter{Key: "k-c"}, []string{"c"}},
		{"binary key as base64", dlq.Filter{Key: "AGJpbg=="}, []string{"d"}},
		{"offsets", dlq.Filter{Offsets: []dlq.Position{where["a"], where["d"]}}, []string{"a", "d"}},
		{"offsets on no record", dlq.Filter{Offsets: []dlq.Position{{Partition: 0, Offset: 999}}}, nil},
		{"combined", dlq.Filter{OriginalTopic: "orders", Status: "4xx"}, []string{"a"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for _, s := range scanAll(t, ctx, kopts, topic, tt.f) {
				got = append(got, string(s.Record.Value))
				line, err := json.Marshal(s.Entry)
				if err != nil {
					t.Fatalf("encoding %v: %v", s.Entry, err)
				}
				var back map[string]any
				if err := json.Unmarshal(line, &back); err != nil {
					t.Fatalf("JSON line %s does not parse: %v", line, err)
				}
				for _, k := range []string{"dlq_partition", "dlq_offset", "id", "original_topic", "original_partition",
					"original_offset", "attempts", "status", "error", "failed_at", "key"} {
					if _, ok := back[k]; !ok {
						t.Fatalf("JSON line %s lacks %q", line, k)
					}
				}
				if back["id"] != string(s.Record.Value) {
					t.Fatalf("JSON id = %v, want %s", back["id"], s.Record.Value)
				}
			}
			slices.Sort(got)
			if !slices.Equal(got, tt.want) {
				t.Fatalf("selected %v, want %v", got, tt.want)
			}
		})
	}
	t.Run("missing topic", func(t *testing.T) {
		err := dlq.Scan(ctx, kopts, "no.such.dlq", dlq.Filter{}, func(dlq.Scanned) error { return nil })
		if err == nil || !strings.Contains(err.Error(), dlq.ErrTopicNotFound.Error()) {
			t.Fatalf("Scan of a missing topic = %v, want ErrTopicNotFound", err)
		}
	})
}

// app is the test's app: it refuses records (422) while broken or when their key is poison, and counts
// what it accepted per Idempotency-Key.
type app struct {
	mu       sync.Mutex
	broken   bool
	accepted map[string]int
	seen     map[string]int
}

func (a *app) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a.mu.Lock()
	defer a.mu.Unlock()
	id := r.Header.Get("Idempotency-Key")
	a.seen[id]++
	if a.broken || r.Header.Get("Kafka-Key") == "poison" {
		w.WriteHeader(http.StatusUnprocessableEntity)
		fmt.Fprint(w, "cannot take it")
		return
	}
	a.accepted[id]++
}

func (a *app) fix() {
	a.mu.Lock()
	a.broken = false
	a.mu.Unlock()
}

func (a *app) snapshot() (accepted, seen map[string]int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return maps(a.accepted), maps(a.seen)
}

func maps(m map[string]int) map[string]int {
	out := make(map[string]int, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// rig is a running sidecar with its cluster, Redis and app.
type rig struct {
	cluster *kfake.Cluster
	cfg     *config.Config
	sc      *sidecar.Sidecar
	app     *app
	kopts   []kgo.Opt
	marks   *dedup.ReplayMarks
	send    *dlq.Producer
	dlq     string
}

func startRig(t *testing.T, broken bool) *rig {
	t.Helper()
	c := fakeCluster(t, kfake.SeedTopics(2, "orders"))
	rs := redistest.Start(t, redistest.Options{})
	a := &app{broken: broken, accepted: map[string]int{}, seen: map[string]int{}}
	srv := httptest.NewServer(a)
	t.Cleanup(srv.Close)
	cfg, err := config.LoadFrom([]string{
		"SIDECAR_KAFKA_BROKERS=" + strings.Join(c.ListenAddrs(), ","),
		"SIDECAR_KAFKA_TOPICS=orders", "SIDECAR_KAFKA_GROUP=g1",
		"SIDECAR_REDIS_URL=" + rs.URL(),
		"SIDECAR_APP_URL=" + srv.URL + "/",
		"SIDECAR_ADMIN_ADDR=127.0.0.1:0", "SIDECAR_COMMIT_INTERVAL=100ms",
		"SIDECAR_RETRY_DELAYS=", "SIDECAR_LOG_LEVEL=warn",
	})
	if err != nil {
		t.Fatalf("loading config: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	sc, err := sidecar.New(ctx, cfg, zaptest.NewLogger(t))
	if err != nil {
		t.Fatalf("starting the sidecar: %v", err)
	}
	runCtx, stop := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- sc.Run(runCtx) }()
	t.Cleanup(func() {
		stop()
		select {
		case err := <-errc:
			if err != nil {
				t.Errorf("sidecar Run: %v", err)
			}
		case <-time.After(bound):
			t.Errorf("sidecar did not stop within %v", bound)
		}
	})
	kopts, err := connect.KafkaOpts(cfg)
	if err != nil {
		t.Fatalf("kafka options: %v", err)
	}
	rc, err := connect.Redis(cfg)
	if err != nil {
		t.Fatalf("redis client: %v", err)
	}
	t.Cleanup(func() { _ = rc.Close() })
	marks, err := dedup.NewReplayMarks(rc, dedup.KeyPrefix(cfg.DedupKeyPrefix, cfg.KafkaGroup), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return &rig{
		cluster: c, cfg: cfg, sc: sc, app: a, kopts: kopts,
		marks: marks,
		send:  dlq.NewProducer(producer(t, c), zaptest.NewLogger(t)),
		dlq:   topics.DeadLetterTopic("orders", "g1", ""),
	}
}

func (r *rig) produce(t *testing.T, keys ...string) {
	t.Helper()
	cl := producer(t, r.cluster)
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	for _, k := range keys {
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "orders", Key: []byte(k), Value: []byte("value of " + k)}).FirstErr(); err != nil {
			t.Fatalf("producing %s: %v", k, err)
		}
	}
}

// waitFor polls cond until it holds or the bound passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(bound)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", bound, what)
		}
		<-tick.C
	}
}

// replay runs one replay over the rig's dead-letter topic and counts the actions.
func (r *rig) replay(t *testing.T, f dlq.Filter, opts dlq.ReplayOptions) map[dlq.Action][]dlq.ReplayResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	if opts.Sender == nil {
		opts.Sender = r.send
	}
	rp, err := dlq.NewReplayer(opts)
	if err != nil {
		t.Fatalf("NewReplayer: %v", err)
	}
	out := map[dlq.Action][]dlq.ReplayResult{}
	err = dlq.Scan(ctx, r.kopts, r.dlq, f, func(s dlq.Scanned) error {
		res, err := rp.Replay(ctx, s)
		out[res.Action] = append(out[res.Action], res)
		return err
	})
	if err != nil {
		t.Fatalf("replaying: %v", err)
	}
	return out
}

// sourceEnd returns the summed end offsets of the source topic: how many records it holds.
func (r *rig) sourceEnd(t *testing.T) int64 {
	t.Helper()
	cl, err := kgo.NewClient(r.kopts...)
	if err != nil {
		t.Fatalf("admin client: %v", err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, "orders")
	if err != nil {
		t.Fatalf("listing end offsets: %v", err)
	}
	var n int64
	ends.Each(func(o kadm.ListedOffset) { n += o.Offset })
	return n
}

func counts(m map[dlq.Action][]dlq.ReplayResult) string {
	return fmt.Sprintf("sent %d, would send %d, already replayed %d, refused %d",
		len(m[dlq.Sent]), len(m[dlq.WouldSend]), len(m[dlq.AlreadyReplayed]), len(m[dlq.Refused]))
}

// TestReplaySubset: records dead-lettered while the app was broken; after the fix, a dry run sends nothing,
// a replay of two chosen records delivers each of them once under its original message ID, the others stay,
// a second run sends nothing, and a replay without marks of a delivered record is suppressed by dedup.
func TestReplaySubset(t *testing.T) {
	r := startRig(t, true)
	keys := []string{"k0", "k1", "k2", "k3", "k4"}
	r.produce(t, keys...)
	waitFor(t, "5 records dead-lettered", func() bool { return r.sc.Metrics().Totals().DeadLettered == 5 })
	r.app.fix()

	ctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	all := scanAll(t, ctx, r.kopts, r.dlq, dlq.Filter{})
	if len(all) != 5 {
		t.Fatalf("dead-letter topic holds %d records, want 5", len(all))
	}
	chosen := map[string]string{} // message ID -> key
	var offsets []dlq.Position
	for _, s := range all {
		if s.Entry.Key == "k1" || s.Entry.Key == "k3" {
			chosen[s.Entry.ID] = s.Entry.Key
			offsets = append(offsets, pos(s.Entry))
		}
	}
	subset := dlq.Filter{Offsets: offsets}
	before := r.sourceEnd(t)

	dry := r.replay(t, subset, dlq.ReplayOptions{Marks: r.marks, DryRun: true})
	if len(dry[dlq.WouldSend]) != 2 || len(dry) != 1 {
		t.Fatalf("dry run: %s; want would send 2 and nothing else", counts(dry))
	}
	if got := r.sourceEnd(t); got != before {
		t.Fatalf("dry run wrote %d records to the source topic", got-before)
	}

	first := r.replay(t, subset, dlq.ReplayOptions{Marks: r.marks, Rate: 50})
	if len(first[dlq.Sent]) != 2 || len(first) != 1 {
		t.Fatalf("replay: %s; want sent 2 and nothing else", counts(first))
	}
	waitFor(t, "the 2 replays delivered", func() bool { return r.sc.Metrics().Totals().Delivered == 2 })
	accepted, _ := r.app.snapshot()
	for id, key := range chosen {
		if accepted[id] != 1 {
			t.Errorf("record %s (id %s) accepted %d times, want once under its original ID", key, id, accepted[id])
		}
	}
	if len(accepted) != 2 {
		t.Fatalf("app accepted %v, want exactly the 2 chosen IDs %v", accepted, chosen)
	}

	again := r.replay(t, subset, dlq.ReplayOptions{Marks: r.marks})
	if len(again[dlq.AlreadyReplayed]) != 2 || len(again) != 1 {
		t.Fatalf("second replay: %s; want already replayed 2 and nothing sent", counts(again))
	}
	if got := r.sourceEnd(t); got != before+2 {
		t.Fatalf("source topic grew by %d records, want 2 (the second run must send nothing)", got-before)
	}

	// The rest are still there to replay: the unchosen three are neither marked nor delivered.
	rest := r.replay(t, dlq.Filter{}, dlq.ReplayOptions{Marks: r.marks, DryRun: true})
	if len(rest[dlq.WouldSend]) != 3 || len(rest[dlq.AlreadyReplayed]) != 2 {
		t.Fatalf("dry run over everything: %s; want would send 3, already replayed 2", counts(rest))
	}

	// Without marks the same record is sent again, but it carries its message ID, so dedup suppresses it.
	one := dlq.Filter{Offsets: offsets[:1]}
	forced := r.replay(t, one, dlq.ReplayOptions{MaxReplays: 5})
	if len(forced[dlq.Sent]) != 1 {
		t.Fatalf("replay without marks: %s; want sent 1", counts(forced))
	}
	waitFor(t, "the forced replay suppressed as a duplicate", func() bool { return r.sc.Metrics().Totals().Duplicates == 1 })
	accepted, _ = r.app.snapshot()
	for id := range chosen {
		if accepted[id] != 1 {
			t.Fatalf("after a duplicate replay, %s accepted %d times, want 1", id, accepted[id])
		}
	}
}

// TestReplayLoopGuard: a record that keeps failing is replayed once, fails again, and is then refused, so it
// cannot cycle between the source topic and the dead-letter topic.
func TestReplayLoopGuard(t *testing.T) {
	r := startRig(t, false)
	r.produce(t, "poison")
	waitFor(t, "the poison record dead-lettered", func() bool { return r.sc.Metrics().Totals().DeadLettered == 1 })

	first := r.replay(t, dlq.Filter{}, dlq.ReplayOptions{Marks: r.marks})
	if len(first[dlq.Sent]) != 1 {
		t.Fatalf("first replay: %s; want sent 1", counts(first))
	}
	waitFor(t, "the replay dead-lettered again", func() bool { return r.sc.Metrics().Totals().DeadLettered == 2 })

	ctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	all := scanAll(t, ctx, r.kopts, r.dlq, dlq.Filter{})
	if len(all) != 2 || all[0].Entry.ID != all[1].Entry.ID {
		t.Fatalf("dead letters %v: want 2 copies of one message ID", all)
	}
	end := r.sourceEnd(t)
	second := r.replay(t, dlq.Filter{}, dlq.ReplayOptions{Marks: r.marks})
	if len(second[dlq.AlreadyReplayed]) != 1 || len(second[dlq.Refused]) != 1 || len(second[dlq.Sent]) != 0 {
		t.Fatalf("second replay: %s; want already replayed 1, refused 1", counts(second))
	}
	if reason := second[dlq.Refused][0].Reason; !strings.Contains(reason, "max-replays") {
		t.Fatalf("refusal reason %q does not name the limit", reason)
	}
	// A higher limit allows exactly one more round, then the guard holds again.
	third := r.replay(t, dlq.Filter{}, dlq.ReplayOptions{Marks: r.marks, MaxReplays: 2})
	if len(third[dlq.Sent]) != 1 {
		t.Fatalf("replay with --max-replays 2: %s; want sent 1", counts(third))
	}
	waitFor(t, "the second replay dead-lettered again", func() bool { return r.sc.Metrics().Totals().DeadLettered == 3 })
	fourth := r.replay(t, dlq.Filter{}, dlq.ReplayOptions{Marks: r.marks, MaxReplays: 2})
	if len(fourth[dlq.Sent]) != 0 || len(fourth[dlq.Refused]) != 1 {
		t.Fatalf("replay after the limit: %s; want refused 1 and nothing sent", counts(fourth))
	}
	if got := r.sourceEnd(t); got != end+1 {
		t.Fatalf("source topic grew by %d, want 1 (only the --max-replays 2 round)", got-end)
	}
	_, seen := r.app.snapshot()
	if seen[all[0].Entry.ID] != 3 {
		t.Fatalf("app saw the poison record %d times, want 3 (first delivery and two replays)", seen[all[0].Entry.ID])
	}
}
