package parallel

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kafka-sidecar/kafka-sidecar/config"
	"github.com/kafka-sidecar/kafka-sidecar/sidecar"
	"github.com/kafka-sidecar/kafka-sidecar/test/kafkatest"
	"github.com/kafka-sidecar/kafka-sidecar/test/redistest"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
)

// topicSeq makes topic and group names unique within the test binary, so suites can share a real cluster.
var topicSeq atomic.Int64

// env is one test's world: a Kafka (kfake, or the real cluster when TEST_KAFKA_BROKERS is set), a real
// redis-server, and a topic of its own.
type env struct {
	tb      testing.TB
	brokers []string
	topic   string
	group   string
	redis   *redistest.Server
	real    bool
}

// newEnv starts the dependencies and creates a topic with partitions partitions.
func newEnv(tb testing.TB, partitions int) *env {
	tb.Helper()
	n := topicSeq.Add(1)
	name := topicSafe(tb.Name())
	e := &env{
		tb:    tb,
		topic: fmt.Sprintf("par-%s-%d-%d", name, time.Now().UnixNano()%1e6, n),
		group: fmt.Sprintf("g-%s-%d", name, n),
	}
	e.redis = redistest.Start(tb, redistest.Options{})
	if seeds, ok := kafkatest.Seeds(); ok {
		e.real = true
		e.brokers = kafkatest.SplitSeeds(seeds)
		e.createTopic(partitions)
		return e
	}
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(int32(partitions), e.topic))
	if err != nil {
		tb.Fatalf("starting kfake: %v", err)
	}
	tb.Cleanup(cluster.Close)
	e.brokers = cluster.ListenAddrs()
	return e
}

// topicSafe keeps the letters and digits of a test name, lower-cased and short, so the topic and the retry
// topics derived from it stay valid names.
func topicSafe(name string) string {
	var b strings.Builder
	for _, c := range strings.ToLower(name) {
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
			b.WriteRune(c)
		case b.Len() > 0 && !strings.HasSuffix(b.String(), "-"):
			b.WriteByte('-')
		}
	}
	s := strings.TrimSuffix(b.String(), "-")
	if len(s) > 60 {
		s = s[len(s)-60:]
	}
	return s
}

func (e *env) createTopic(partitions int) {
	e.tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	adm := kadm.NewClient(e.client())
	defer adm.Close()
	resp, err := adm.CreateTopic(ctx, int32(partitions), 3, map[string]*string{"min.insync.replicas": strPtr("2")}, e.topic)
	if err != nil || resp.Err != nil {
		e.tb.Fatalf("creating topic %s: %v %v", e.topic, err, resp.Err)
	}
}

func strPtr(s string) *string { return &s }

// client returns a Kafka client for producing and admin calls, closed when the test ends.
func (e *env) client(opts ...kgo.Opt) *kgo.Client {
	e.tb.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(e.brokers...), kgo.MetadataMinAge(100 * time.Millisecond)}, opts...)...)
	if err != nil {
		e.tb.Fatalf("creating kafka client: %v", err)
	}
	e.tb.Cleanup(cl.Close)
	return cl
}

// produce writes recs to the test's topic (records without a topic get it) and waits for the acks.
func (e *env) produce(recs []*kgo.Record) {
	e.tb.Helper()
	cl := e.client(kgo.DefaultProduceTopic(e.topic), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const chunk = 5000
	for i := 0; i < len(recs); i += chunk {
		if err := cl.ProduceSync(ctx, recs[i:min(i+chunk, len(recs))]...).FirstErr(); err != nil {
			e.tb.Fatalf("producing records: %v", err)
		}
	}
}

// config builds a sidecar configuration for the test's topic, group, Redis and app; extra KEY=value pairs
// override the defaults chosen here.
func (e *env) config(appURL string, extra ...string) *config.Config {
	e.tb.Helper()
	vars := []string{
		"SIDECAR_KAFKA_BROKERS=" + strings.Join(e.brokers, ","),
		"SIDECAR_KAFKA_TOPICS=" + e.topic,
		"SIDECAR_KAFKA_GROUP=" + e.group,
		"SIDECAR_REDIS_URL=" + e.redis.URL(),
		"SIDECAR_APP_URL=" + appURL,
		"SIDECAR_ADMIN_ADDR=127.0.0.1:0",
		"SIDECAR_COMMIT_INTERVAL=100ms",
		"SIDECAR_RETRY_DELAYS=200ms",
		"SIDECAR_RETRY_BACKOFF=5ms",
		"SIDECAR_RETRY_BACKOFF_MAX=20ms",
		"SIDECAR_APP_BACKOFF_MAX=200ms",
		"SIDECAR_SHUTDOWN_TIMEOUT=10s",
		"SIDECAR_REVOKE_TIMEOUT=10s",
		"SIDECAR_KAFKA_SESSION_TIMEOUT=10s",
	}
	cfg, err := config.LoadFrom(append(vars, extra...))
	if err != nil {
		e.tb.Fatalf("loading config: %v", err)
	}
	return cfg
}

// running is one in-process sidecar.
type running struct {
	sc     *sidecar.Sidecar
	cancel context.CancelFunc
	errc   chan error
	done   bool
}

// start builds and runs a sidecar; the test's cleanup stops it if the test did not.
func start(tb testing.TB, cfg *config.Config, log *zap.Logger) *running {
	tb.Helper()
	if log == nil {
		log = zaptest.NewLogger(tb, zaptest.Level(zap.ErrorLevel))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	sc, err := sidecar.New(ctx, cfg, log)
	if err != nil {
		tb.Fatalf("sidecar.New: %v", err)
	}
	runCtx, stop := context.WithCancel(context.Background())
	r := &running{sc: sc, cancel: stop, errc: make(chan error, 1)}
	go func() { r.errc <- sc.Run(runCtx) }()
	tb.Cleanup(func() {
		if !r.done {
			if err := r.stop(); err != nil {
				tb.Errorf("stopping sidecar: %v", err)
			}
		}
	})
	return r
}

// stop cancels the sidecar and waits (bounded) for Run to return.
func (r *running) stop() error {
	r.done = true
	r.cancel()
	select {
	case err := <-r.errc:
		return err
	case <-time.After(60 * time.Second):
		return errors.New("sidecar did not stop within 60s")
	}
}

// waitFor polls cond until it holds or timeout passes, then fails with what() describing the state.
func waitFor(tb testing.TB, timeout time.Duration, cond func() bool, what func() string) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("not reached within %s: %s", timeout, what())
		}
		<-t.C
	}
}

// serveApp serves h on a free 127.0.0.1 port until the test ends and returns its base URL.
func serveApp(tb testing.TB, h http.Handler) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("listening for the app: %v", err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	tb.Cleanup(func() { _ = srv.Close() })
	return "http://" + ln.Addr().String() + "/"
}

// delivery is what the app saw of one request in single-record mode.
type delivery struct {
	id        string
	key       string
	partition int32
	offset    int64
	attempt   int
}

// parseDelivery reads the sidecar's headers from r and drains the body.
func parseDelivery(r *http.Request) (delivery, error) {
	_, _ = io.Copy(io.Discard, r.Body)
	p, err := strconv.ParseInt(r.Header.Get("Kafka-Partition"), 10, 32)
	if err != nil {
		return delivery{}, fmt.Errorf("parsing Kafka-Partition: %w", err)
	}
	o, err := strconv.ParseInt(r.Header.Get("Kafka-Offset"), 10, 64)
	if err != nil {
		return delivery{}, fmt.Errorf("parsing Kafka-Offset: %w", err)
	}
	a, err := strconv.Atoi(r.Header.Get("Kafka-Attempt"))
	if err != nil {
		return delivery{}, fmt.Errorf("parsing Kafka-Attempt: %w", err)
	}
	return delivery{
		id: r.Header.Get("Idempotency-Key"), key: r.Header.Get("Kafka-Key"),
		partition: int32(p), offset: o, attempt: a,
	}, nil
}

// committed returns the group's committed offsets summed over the test topic's partitions.
func (e *env) committed(group string) (map[int32]int64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	adm := kadm.NewClient(e.client())
	resp, err := adm.FetchOffsets(ctx, group)
	if err != nil {
		return nil, fmt.Errorf("fetching offsets: %w", err)
	}
	out := map[int32]int64{}
	for p, o := range resp[e.topic] {
		if o.Err != nil {
			return nil, fmt.Errorf("fetching offset of partition %d: %w", p, o.Err)
		}
		out[p] = o.At
	}
	return out, nil
}
