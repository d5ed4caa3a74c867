package sidecar

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"
	"github.com/twmb/franz-go/pkg/sr/srfake"

	"github.com/kafka-sidecar/kafka-sidecar/envelope"
)

// seenRequest is what the app received.
type seenRequest struct {
	header http.Header
	body   []byte
}

// recordingApp answers 200 and keeps every request.
type recordingApp struct {
	mu   sync.Mutex
	seen []seenRequest
}

func (a *recordingApp) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	a.mu.Lock()
	a.seen = append(a.seen, seenRequest{header: r.Header.Clone(), body: body})
	a.mu.Unlock()
	w.WriteHeader(http.StatusOK)
}

// requests returns what the app received, in offset order (records without a key are not ordered).
func (a *recordingApp) requests() []seenRequest {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := append([]seenRequest{}, a.seen...)
	sort.SliceStable(out, func(i, j int) bool {
		oi, _ := strconv.Atoi(out[i].header.Get("Kafka-Offset"))
		oj, _ := strconv.Atoi(out[j].header.Get("Kafka-Offset"))
		return oi < oj
	})
	return out
}

// wireValue is payload in Confluent wire format for schema id.
func wireValue(id byte, payload ...byte) []byte { return append([]byte{0, 0, 0, 0, id}, payload...) }

// TestDecodeThroughTheSidecar runs the assembled sidecar with SIDECAR_DECODE=json against kfake and an
// in-memory registry: the app gets JSON with the schema headers, an unknown schema ID goes to the dead-letter
// topic with its original bytes and a reason naming the ID, and a registry outage pauses delivery (readiness
// says why) until the registry answers, with nothing dead-lettered meanwhile.
func TestDecodeThroughTheSidecar(t *testing.T) {
	// One partition: the records are told apart by offset.
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "orders"))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	registry := srfake.New()
	defer registry.Close()
	const record = `{"type":"record","name":"R","fields":[{"name":"n","type":"long"}]}`
	registry.SeedSchema("orders-value", 1, 1, sr.Schema{Schema: record})
	var down atomic.Bool
	registry.Intercept(func(w http.ResponseWriter, _ *http.Request) bool {
		if down.Load() {
			http.Error(w, "maintenance", http.StatusServiceUnavailable)
			return true
		}
		return false
	})
	app := &recordingApp{}
	appAddr := serveApp(t, app)

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	sc, stop := startSidecar(t, ctx, baseEnv(cluster, "", appAddr,
		"SIDECAR_KAFKA_GROUP=decode", "SIDECAR_DEDUP=memory", "SIDECAR_RETRY_DELAYS=", "SIDECAR_APP_BACKOFF_MAX=200ms",
		"SIDECAR_COMMIT_INTERVAL=50ms", "SIDECAR_SHUTDOWN_TIMEOUT=2s",
		"SIDECAR_DECODE=json", "SIDECAR_SCHEMA_REGISTRY_URL="+registry.URL()))
	addr := sc.AdminAddr(ctx)

	cl, err := kgo.NewClient(kgo.SeedBrokers(cluster.ListenAddrs()...), kgo.DefaultProduceTopic("orders"))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	send := func(values ...[]byte) {
		t.Helper()
		var recs []*kgo.Record
		for _, v := range values {
			recs = append(recs, &kgo.Record{Value: v})
		}
		if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	unknown := wireValue(77, 0x02)
	send(wireValue(1, 0x54), unknown, []byte("plain"))
	waitFor(t, 20*time.Second, "2 deliveries", func() bool { return len(app.requests()) == 2 })
	got := app.requests()
	if string(got[0].body) != `{"n":42}` || got[0].header.Get("Content-Type") != "application/json" ||
		got[0].header.Get("Kafka-Schema-Id") != "1" || got[0].header.Get("Kafka-Schema-Subject") != "orders-value" {
		t.Fatalf("decoded record: body %s headers %v", got[0].body, got[0].header)
	}
	if string(got[1].body) != "plain" || got[1].header.Get("Kafka-Schema-Id") != "" {
		t.Fatalf("plain record: body %s headers %v", got[1].body, got[1].header)
	}
	dead := readDeadLetters(t, ctx, cluster.ListenAddrs(), "orders.decode.dlq", 1)
	if !bytes.Equal(dead[0].Value, unknown) {
		t.Fatalf("dead letter value %x, want the original bytes %x", dead[0].Value, unknown)
	}
	if reason := headerValue(dead[0], envelope.HeaderError); !strings.Contains(reason, "schema id 77") {
		t.Fatalf("dead letter reason %q does not name schema id 77", reason)
	}

	// The registry goes down; a record of a schema not fetched yet waits, readiness names the registry.
	registry.SeedSchema("orders-value", 2, 2, sr.Schema{Schema: `"string"`})
	down.Store(true)
	send(wireValue(2, 0x04, 'o', 'k'))
	waitFor(t, 20*time.Second, "/readyz naming the schema registry", func() bool {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		var body readiness
		_ = json.NewDecoder(resp.Body).Decode(&body)
		return resp.StatusCode == http.StatusServiceUnavailable && strings.Contains(strings.Join(body.Reasons, ";"), "schema registry unavailable")
	})
	if n := len(app.requests()); n != 2 {
		t.Fatalf("%d deliveries while the registry is down, want 2", n)
	}
	down.Store(false)
	waitFor(t, 20*time.Second, "the waiting record delivered once the registry answers", func() bool { return len(app.requests()) == 3 })
	if last := app.requests()[2]; string(last.body) != `"ok"` || last.header.Get("Kafka-Schema-Id") != "2" {
		t.Fatalf("after the outage: body %s headers %v", last.body, last.header)
	}
	readDeadLetters(t, ctx, cluster.ListenAddrs(), "orders.decode.dlq", 1) // still only the unknown ID
	stop()
}

// readDeadLetters reads topic from the start and fails unless it holds exactly want records.
func readDeadLetters(t *testing.T, ctx context.Context, seeds []string, topic string, want int) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var recs []*kgo.Record
	deadline := time.Now().Add(10 * time.Second)
	for len(recs) < want && time.Now().Before(deadline) {
		fctx, cancel := context.WithTimeout(ctx, time.Second)
		fetches := cl.PollFetches(fctx)
		cancel()
		recs = append(recs, fetches.Records()...)
	}
	// A last short poll catches records beyond the expected count.
	fctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	recs = append(recs, cl.PollFetches(fctx).Records()...)
	cancel()
	if len(recs) != want {
		t.Fatalf("%s holds %d records, want %d", topic, len(recs), want)
	}
	return recs
}

func headerValue(r *kgo.Record, name string) string {
	for _, h := range r.Headers {
		if h.Key == name {
			return string(h.Value)
		}
	}
	return ""
}
