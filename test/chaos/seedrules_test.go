package chaos

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafka-sidecar/kafka-sidecar/test/kafkatest"
	"github.com/kafka-sidecar/kafka-sidecar/test/redistest"
	"github.com/kafka-sidecar/kafka-sidecar/topics"
)

// refusingApp answers every delivery with 400, so every record must be dead-lettered; until released it
// holds each request, so the test decides when the sidecar gets its answers.
type refusingApp struct {
	release chan struct{}

	mu      sync.Mutex
	refused map[string]int
	changed chan struct{} // closed and replaced on every refusal
}

func (a *refusingApp) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	select {
	case <-a.release:
	case <-r.Context().Done():
		return
	}
	a.mu.Lock()
	a.refused[r.Header.Get("Idempotency-Key")]++
	close(a.changed)
	a.changed = make(chan struct{})
	a.mu.Unlock()
	w.WriteHeader(http.StatusBadRequest)
}

// waitRefused waits until n distinct IDs have been refused.
func (a *refusingApp) waitRefused(ctx context.Context, t *testing.T, n int) {
	t.Helper()
	for {
		a.mu.Lock()
		got, changed := len(a.refused), a.changed
		a.mu.Unlock()
		if got >= n {
			return
		}
		select {
		case <-changed:
		case <-ctx.Done():
			t.Fatalf("the app refused %d of %d IDs: %v", got, n, ctx.Err())
		}
	}
}

// scrape sums the samples of a metric on the sidecar's /metrics whose labels contain label (all samples
// when label is empty).
func scrape(ctx context.Context, t *testing.T, admin, name, label string) float64 {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+admin+"/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("scraping %s: %v", admin, err)
	}
	defer resp.Body.Close()
	var sum float64
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		if label != "" && !strings.Contains(line, label) {
			continue
		}
		v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		if err != nil {
			t.Fatalf("parsing %q: %v", line, err)
		}
		sum += v
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("reading %s/metrics: %v", admin, err)
	}
	return sum
}

// TestSeedRulesRealCluster demonstrates on the real cluster the rule the sidecar's durability rests on: a
// dead-letter copy counts only once min.insync.replicas acknowledge it. With the source and dead-letter
// topics at replication factor 3 and min.insync.replicas=2, and an app that refuses every record, two of
// the three nodes go down while the sidecar holds every record: the copies cannot be written, so nothing
// is counted as dead-lettered and no offset is committed. When the nodes are back, every record lands in
// the dead-letter topic exactly once and the committed offsets reach the end.
func TestSeedRulesRealCluster(t *testing.T) {
	seeds, ok := kafkatest.Seeds()
	if !ok {
		t.Skipf("%s is not set; run test/kafka/cluster.sh start and set it to the output of cluster.sh seeds", kafkatest.EnvBrokers)
	}
	const records = 200
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	nodes, err := kafkatest.NewCluster()
	if err != nil {
		t.Fatal(err)
	}
	kc, err := openCluster(kafkatest.SplitSeeds(seeds), nodes.Script())
	if err != nil {
		t.Fatal(err)
	}
	defer kc.close()
	// Whatever fails below, the next test finds three running nodes.
	t.Cleanup(func() {
		for _, n := range []int{2, 3} {
			if err := nodes.StartNode(n); err != nil {
				t.Errorf("restoring node %d: %v", n, err)
			}
		}
	})

	tag := strconv.FormatInt(time.Now().UnixNano(), 36)
	topic, group := "seedrules-"+tag, "seedrules-group-"+tag
	dlqTopic := topics.DeadLetterTopic(topic, group, "")
	if err := kc.createTopic(ctx, topic, Partitions); err != nil {
		t.Fatal(err)
	}

	app := &refusingApp{release: make(chan struct{}), refused: map[string]int{}, changed: make(chan struct{})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: app, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()
	var releaseOnce sync.Once
	release := func() { releaseOnce.Do(func() { close(app.release) }) }
	defer release()

	redisSrv := redistest.Start(t, redistest.Options{})
	sc, err := newSidecar("sidecar-seedrules", sidecarBinary(t), t.TempDir(), []string{
		"SIDECAR_KAFKA_BROKERS=" + seeds,
		"SIDECAR_KAFKA_TOPICS=" + topic,
		"SIDECAR_KAFKA_GROUP=" + group,
		"SIDECAR_KAFKA_INSTANCE_ID=seedrules-1",
		"SIDECAR_APP_URL=http://" + ln.Addr().String() + "/",
		// Held requests must outlive the node stops, which take tens of seconds.
		"SIDECAR_APP_TIMEOUT=3m",
		"SIDECAR_ID_HEADER=" + IDHeader,
		"SIDECAR_REDIS_URL=" + redisSrv.URL(),
		"SIDECAR_RETRY_DELAYS=",
		// Every record in flight at once, so each one reaches the app and then waits on its dead-letter
		// copy; with fewer slots the rest would wait for a slot instead, which proves less.
		"SIDECAR_ORDERING=unordered",
		"SIDECAR_MAX_IN_FLIGHT=256",
		"SIDECAR_COMMIT_INTERVAL=200ms",
		"SIDECAR_LOG_FORMAT=json",
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := sc.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if sc.Running() {
			_ = sc.Kill()
		}
	}()

	ids := make([]string, records)
	for i := range ids {
		ids[i] = fmt.Sprintf("seed-%05d", i)
	}
	if err := produce(ctx, kc.seeds, topic, IDHeader, ids, 0); err != nil {
		t.Fatal(err)
	}
	// Every record fetched and held by the sidecar before the nodes go, so what follows needs no fetch.
	waitFor(ctx, t, "the sidecar to hold every record", func() (bool, string) {
		n := scrape(ctx, t, sc.admin, "kafka_sidecar_buffered_records", "")
		return n >= records, fmt.Sprintf("%v buffered", n)
	})
	// The sidecar commits each partition's start position once, before anything is done (it pins the group's
	// place, which matters with SIDECAR_KAFKA_START_OFFSET=latest). Let that settle first: from here on, a
	// commit could only mean a record counted as done.
	sourceEnds, err := kc.adm.ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	withRecords := 0
	sourceEnds.Each(func(o kadm.ListedOffset) {
		if o.Err == nil && o.Offset > 0 {
			withRecords++
		}
	})
	waitFor(ctx, t, "the start positions committed", func() (bool, string) {
		offs, err := kc.adm.FetchOffsets(ctx, group)
		if err != nil {
			return false, err.Error()
		}
		n := 0
		offs.Each(func(o kadm.OffsetResponse) {
			if o.Topic == topic && o.Err == nil && o.At == 0 {
				n++
			}
		})
		return n == withRecords, fmt.Sprintf("%d of %d partitions committed at 0", n, withRecords)
	})
	commitsBefore := scrape(ctx, t, sc.admin, "kafka_sidecar_commits_total", "")

	// Node 3 crashes; node 2 is shut down cleanly: one replica of three remains, below min.insync.replicas.
	if err := nodes.KillNode(3); err != nil {
		t.Fatal(err)
	}
	if err := nodes.StopNode(2); err != nil {
		t.Fatal(err)
	}
	t.Log("nodes 2 and 3 down")
	release()
	outageCtx, outageCancel := context.WithTimeout(ctx, 2*time.Minute)
	app.waitRefused(outageCtx, t, records)
	outageCancel()

	// The brokers refuse a dead-letter copy now: shown with a producer that gives up, where the sidecar's
	// own producer keeps retrying.
	probe, err := kgo.NewClient(kgo.SeedBrokers(kc.seeds...), kgo.DefaultProduceTopic(dlqTopic),
		kgo.RequiredAcks(kgo.AllISRAcks()), kgo.RecordDeliveryTimeout(15*time.Second), kgo.RecordRetries(2),
		kgo.ProduceRequestTimeout(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	perr := probe.ProduceSync(ctx, &kgo.Record{Value: []byte("probe")}).FirstErr()
	probe.Close()
	if perr == nil {
		t.Fatal("an acks=all produce to the dead-letter topic succeeded with 2 of 3 nodes down")
	}
	t.Logf("acks=all produce to %s during the outage: %v", dlqTopic, perr)
	if n := scrape(ctx, t, sc.admin, "kafka_sidecar_records_total", `outcome="dead_lettered"`); n != 0 {
		t.Errorf("the sidecar counts %v records dead-lettered while the dead-letter topic cannot take a write", n)
	}
	if n := scrape(ctx, t, sc.admin, "kafka_sidecar_commits_total", ""); n != commitsBefore {
		t.Errorf("the sidecar committed offsets during the outage (%v commits, %v before): nothing is done", n, commitsBefore)
	}

	for _, n := range []int{2, 3} {
		if err := nodes.StartNode(n); err != nil {
			t.Fatal(err)
		}
	}
	t.Log("nodes 2 and 3 back")
	dlq, err := newDLQReader(kc.seeds, dlqTopic)
	if err != nil {
		t.Fatal(err)
	}
	defer dlq.close()
	readCtx, stopReading := context.WithCancel(ctx)
	readDone := make(chan struct{})
	go func() { defer close(readDone); dlq.run(readCtx) }()
	defer func() { stopReading(); <-readDone }()

	waitFor(ctx, t, "every record dead-lettered and committed", func() (bool, string) {
		got, _ := dlq.snapshot()
		behind, err := kc.behind(ctx, group, []string{topic})
		if err != nil {
			return false, err.Error()
		}
		return len(got) == records && len(behind) == 0, fmt.Sprintf("%d IDs dead-lettered, behind: %v", len(got), behind)
	})
	if err := sc.Terminate(); err != nil {
		t.Fatal(err)
	}
	ends, err := kc.adm.ListEndOffsets(ctx, dlqTopic)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(ctx, t, "the dead-letter topic read to its end", func() (bool, string) {
		return dlq.caughtUp(ends, dlqTopic), "reading"
	})
	got, noID := dlq.snapshot()
	if noID > 0 {
		t.Errorf("%d dead-letter records without a sidecar-id header", noID)
	}
	for _, id := range ids {
		if got[id] != 1 {
			t.Errorf("%s is in the dead-letter topic %d times, want exactly once", id, got[id])
		}
	}
	if behind, err := kc.behind(ctx, group, []string{topic}); err != nil || len(behind) > 0 {
		t.Errorf("committed offsets after shutdown: behind %v, err %v", behind, err)
	}
	if u := sc.Unexpected(); len(u) > 0 {
		t.Errorf("the sidecar exited on its own: %v", u)
	}
}

// waitFor polls cond until it holds or ctx ends, failing with cond's last description.
func waitFor(ctx context.Context, t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		ok, state := cond()
		if ok {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("waiting for %s: %v (last: %s)", what, ctx.Err(), state)
		case <-tick.C:
		}
	}
}
