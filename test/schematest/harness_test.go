package schematest

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap/zaptest"

	"github.com/kafka-sidecar/kafka-sidecar/config"
	"github.com/kafka-sidecar/kafka-sidecar/sidecar"
)

// fixture is one record serialize.py wrote: the bytes Python's serializer produced and the JSON of what
// Python's deserializer gives back for them.
type fixture struct {
	Format      string          `json:"format"`
	Topic       string          `json:"topic"`
	Key         []byte          `json:"key"`
	Value       []byte          `json:"value"`
	Expected    json.RawMessage `json:"expected"`
	ExpectedKey json.RawMessage `json:"expected_key"`
}

// serialize runs testdata/serialize.py against the registry and reads the records it wrote.
func serialize(t *testing.T, py, registry string) []fixture {
	t.Helper()
	out := filepath.Join(t.TempDir(), "records.jsonl")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, py, "testdata/serialize.py", registry, out)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("serialize.py: %v\n%s", err, b)
	}
	raw, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var fs []fixture
	for _, line := range bytes.Split(bytes.TrimSpace(raw), []byte("\n")) {
		var f fixture
		if err := json.Unmarshal(line, &f); err != nil {
			t.Fatalf("reading %s: %v", line, err)
		}
		fs = append(fs, f)
	}
	return fs
}

// delivered is one record as the app received it, in either delivery mode.
type delivered struct {
	topic   string
	offset  int64
	key     string
	hasKey  bool
	value   []byte
	headers http.Header // of the request; per record only in single mode
}

// app records what it receives, one record per request or batches, and answers 200.
type app struct {
	mu   sync.Mutex
	recs []delivered
}

func (a *app) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	var got []delivered
	if r.Header.Get("Kafka-Batch-Size") != "" {
		var batch struct {
			Records []struct {
				Topic  string          `json:"topic"`
				Offset int64           `json:"offset"`
				Key    *string         `json:"key"`
				Value  json.RawMessage `json:"value"`
			} `json:"records"`
		}
		if err := json.Unmarshal(body, &batch); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		for _, rec := range batch.Records {
			d := delivered{topic: rec.Topic, offset: rec.Offset, value: rec.Value, headers: r.Header.Clone()}
			if rec.Key != nil {
				d.key, d.hasKey = *rec.Key, true
			}
			got = append(got, d)
		}
	} else {
		off, _ := strconv.ParseInt(r.Header.Get("Kafka-Offset"), 10, 64)
		_, hasKey := r.Header["Kafka-Key"]
		got = append(got, delivered{topic: r.Header.Get("Kafka-Topic"), offset: off, key: r.Header.Get("Kafka-Key"),
			hasKey: hasKey, value: body, headers: r.Header.Clone()})
	}
	a.mu.Lock()
	a.recs = append(a.recs, got...)
	a.mu.Unlock()
	w.WriteHeader(http.StatusOK)
}

func (a *app) received() []delivered {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]delivered{}, a.recs...)
}

// serveApp starts the app on a free port and returns its URL.
func serveApp(t *testing.T, h http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return "http://" + ln.Addr().String() + "/"
}

// startSidecar runs the assembled sidecar from env until the test ends; its Run must end cleanly.
func startSidecar(t *testing.T, env []string) *sidecar.Sidecar {
	t.Helper()
	cfg, err := config.LoadFrom(env)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	sc, err := sidecar.New(ctx, cfg, zaptest.NewLogger(t))
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- sc.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-errc:
			if err != nil {
				t.Errorf("sidecar Run: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("the sidecar did not stop within 30s")
		}
	})
	return sc
}

// produce writes the records and returns them with their offsets, in the order they completed.
func produce(t *testing.T, seeds []string, recs ...*kgo.Record) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	res := cl.ProduceSync(ctx, recs...)
	if err := res.FirstErr(); err != nil {
		t.Fatal(err)
	}
	out := make([]*kgo.Record, len(res))
	for i, r := range res {
		out[i] = r.Record
	}
	return out
}

// waitFor polls cond until it holds, failing the test after timeout.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// readTopic reads topic from the start and fails unless it holds exactly want records.
func readTopic(t *testing.T, seeds []string, topic string, want int) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var recs []*kgo.Record
	deadline := time.Now().Add(15 * time.Second)
	for len(recs) < want && time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		recs = append(recs, cl.PollFetches(ctx).Records()...)
		cancel()
	}
	// One more short poll catches records beyond those expected.
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	recs = append(recs, cl.PollFetches(ctx).Records()...)
	cancel()
	if len(recs) != want {
		t.Fatalf("%s holds %d records, want %d", topic, len(recs), want)
	}
	return recs
}
