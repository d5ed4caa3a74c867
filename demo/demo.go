package demo

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/kafka-sidecar/kafka-sidecar/config"
	"github.com/kafka-sidecar/kafka-sidecar/sidecar"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"
)

// Options shape a demo run.
type Options struct {
	// Records is how many distinct records are produced; Duplicates of them are produced a second time with
	// the same message ID, to show dedup at work.
	Records    int
	Duplicates int
	Partitions int
	// KeepRunning keeps the pipeline up after the backlog is done (until interrupted).
	KeepRunning bool
	// Timeout bounds the whole run.
	Timeout time.Duration
	// Progress is how often the live line is redrawn.
	Progress time.Duration
}

// Summary is what a demo run did.
type Summary struct {
	Produced     int
	Delivered    int64
	Duplicates   int64
	Retried      int64
	DeadLettered int64
	AppRequests  int64
	Elapsed      time.Duration
}

// Main parses the demo's flags and runs it, printing progress to stdout. It returns the process exit code.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	opts := Options{}
	fs.IntVar(&opts.Records, "records", 2000, "distinct records to produce")
	fs.IntVar(&opts.Duplicates, "duplicates", 200, "records produced a second time with the same message ID")
	fs.IntVar(&opts.Partitions, "partitions", 12, "partitions of the demo topic")
	fs.BoolVar(&opts.KeepRunning, "keep-running", false, "keep the pipeline running after the backlog is done")
	fs.DurationVar(&opts.Timeout, "timeout", 2*time.Minute, "give up after this long")
	fs.DurationVar(&opts.Progress, "progress", 250*time.Millisecond, "how often the progress line is redrawn")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if opts.Records < 1 || opts.Duplicates < 0 || opts.Duplicates > opts.Records || opts.Partitions < 1 {
		fmt.Fprintln(stderr, "demo: need --records ≥ 1, 0 ≤ --duplicates ≤ --records, --partitions ≥ 1")
		return 2
	}
	sum, err := Run(ctx, opts, stdout)
	if err != nil {
		fmt.Fprintln(stderr, "demo:", err)
		return 1
	}
	printSummary(stdout, sum)
	return 0
}

// sampleApp is the demo's app: it refuses some records for good, fails some once, and is briefly unavailable.
type sampleApp struct {
	requests atomic.Int64
	mu       sync.Mutex
	seen     map[string]int
}

func (a *sampleApp) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a.requests.Add(1)
	body, _ := io.ReadAll(r.Body)
	id := r.Header.Get("Idempotency-Key")
	a.mu.Lock()
	a.seen[id]++
	n := a.seen[id]
	a.mu.Unlock()
	switch {
	case strings.Contains(string(body), `"poison":true`):
		w.WriteHeader(http.StatusUnprocessableEntity)
		_, _ = io.WriteString(w, "order cannot be parsed")
	case strings.Contains(string(body), `"flaky":true`) && n <= 4:
		// Fails past the in-place attempts once, so the record visits retry tier 1 and then succeeds.
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = io.WriteString(w, "downstream timeout")
	case strings.Contains(string(body), `"busy":true`) && n == 1:
		w.Header().Set("Retry-After", "0")
		w.WriteHeader(http.StatusServiceUnavailable)
	default:
		w.WriteHeader(http.StatusOK)
	}
}

// Run starts an in-process Kafka, an in-process Redis and the sample app, produces the records, and runs the
// real sidecar against them until every record is done.
func Run(ctx context.Context, opts Options, out io.Writer) (Summary, error) {
	ctx, cancel := context.WithTimeout(ctx, opts.Timeout)
	defer cancel()
	const topic = "orders"
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(int32(opts.Partitions), topic))
	if err != nil {
		return Summary{}, fmt.Errorf("starting the in-process kafka: %w", err)
	}
	defer cluster.Close()
	redisSrv := miniredis.NewMiniRedis()
	if err := redisSrv.StartAddr("127.0.0.1:0"); err != nil {
		return Summary{}, fmt.Errorf("starting the in-process redis: %w", err)
	}
	defer redisSrv.Close()
	app := &sampleApp{seen: map[string]int{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return Summary{}, fmt.Errorf("starting the sample app: %w", err)
	}
	appSrv := &http.Server{Handler: app, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = appSrv.Serve(ln) }()
	defer appSrv.Close()

	produced, err := produce(ctx, cluster.ListenAddrs(), topic, opts)
	if err != nil {
		return Summary{}, err
	}
	fmt.Fprintf(out, "produced %d records (%d of them twice with the same message ID) to %q on an in-process Kafka\n",
		produced, opts.Duplicates, topic)

	cfg, err := config.LoadFrom([]string{
		"SIDECAR_KAFKA_BROKERS=" + strings.Join(cluster.ListenAddrs(), ","),
		"SIDECAR_KAFKA_TOPICS=" + topic,
		"SIDECAR_KAFKA_GROUP=demo",
		"SIDECAR_REDIS_URL=redis://" + redisSrv.Addr(),
		"SIDECAR_APP_URL=http://" + ln.Addr().String() + "/{topic}",
		"SIDECAR_ID_HEADER=message-id",
		"SIDECAR_RETRY_DELAYS=1s,2s",
		"SIDECAR_RETRY_BACKOFF=20ms",
		"SIDECAR_RETRY_BACKOFF_MAX=50ms",
		"SIDECAR_APP_BACKOFF_MAX=200ms",
		"SIDECAR_ADMIN_ADDR=127.0.0.1:0",
		"SIDECAR_SHUTDOWN_TIMEOUT=5s",
		"SIDECAR_COMMIT_INTERVAL=200ms",
	})
	if err != nil {
		return Summary{}, err
	}
	log := zap.NewNop()
	start := time.Now()
	sc, err := sidecar.New(ctx, cfg, log)
	if err != nil {
		return Summary{}, err
	}
	runCtx, stopRun := context.WithCancel(ctx)
	defer stopRun()
	runErr := make(chan error, 1)
	go func() { runErr <- sc.Run(runCtx) }()
	if addr := sc.AdminAddr(ctx); addr != "" {
		fmt.Fprintf(out, "sidecar running: metrics at http://%s/metrics, app at http://%s\n", addr, ln.Addr())
	}

	ticker := time.NewTicker(opts.Progress)
	defer ticker.Stop()
	want := int64(produced)
	for {
		t := sc.Metrics().Totals()
		finished := t.Delivered + t.Duplicates + t.DeadLettered
		fmt.Fprintf(out, "\r%s delivered=%d duplicates=%d retried=%d dead_lettered=%d app_requests=%d   ",
			bar(finished, want), t.Delivered, t.Duplicates, t.Retried, t.DeadLettered, app.requests.Load())
		if finished >= want && !opts.KeepRunning {
			break
		}
		select {
		case <-ctx.Done():
			fmt.Fprintln(out)
			stopRun()
			if err := <-runErr; err != nil {
				return Summary{}, fmt.Errorf("sidecar stopped: %w", err)
			}
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return Summary{}, fmt.Errorf("backlog not done within %s", opts.Timeout)
			}
			return summarize(sc, produced, app, start), nil
		case err := <-runErr:
			fmt.Fprintln(out)
			return Summary{}, fmt.Errorf("sidecar stopped: %w", err)
		case <-ticker.C:
		}
	}
	fmt.Fprintln(out)
	stopRun()
	if err := <-runErr; err != nil {
		return Summary{}, err
	}
	return summarize(sc, produced, app, start), nil
}

func summarize(sc *sidecar.Sidecar, produced int, app *sampleApp, start time.Time) Summary {
	t := sc.Metrics().Totals()
	return Summary{
		Produced: produced, Delivered: t.Delivered, Duplicates: t.Duplicates, Retried: t.Retried,
		DeadLettered: t.DeadLettered, AppRequests: app.requests.Load(), Elapsed: time.Since(start),
	}
}

// produce writes the demo records: JSON orders, a few poison ones, some flaky ones, some that meet a busy app,
// and duplicates that carry an earlier record's message ID.
func produce(ctx context.Context, seeds []string, topic string, opts Options) (int, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.DefaultProduceTopic(topic))
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	var recs []*kgo.Record
	for i := range opts.Records {
		value := fmt.Sprintf(`{"order":%d,"amount":%d`, i, 10+i%90)
		switch {
		case i%97 == 13:
			value += `,"poison":true`
		case i%41 == 7:
			value += `,"flaky":true`
		case i%53 == 5:
			value += `,"busy":true`
		}
		value += "}"
		recs = append(recs, demoRecord(i, value))
	}
	for i := range opts.Duplicates {
		n := (i * 7) % opts.Records
		recs = append(recs, demoRecord(n, string(recs[n].Value)))
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		return 0, fmt.Errorf("producing demo records: %w", err)
	}
	return len(recs), nil
}

func demoRecord(i int, value string) *kgo.Record {
	return &kgo.Record{
		Key:   []byte("customer-" + strconv.Itoa(i%50)),
		Value: []byte(value),
		Headers: []kgo.RecordHeader{
			{Key: "message-id", Value: []byte("order-" + strconv.Itoa(i))},
			{Key: "content-type", Value: []byte("application/json")},
		},
	}
}

func bar(done, total int64) string {
	const width = 24
	if total <= 0 {
		total = 1
	}
	n := int(min(done, total) * width / total)
	return "[" + strings.Repeat("#", n) + strings.Repeat(".", width-n) + "] " +
		strconv.FormatInt(min(done, total)*100/total, 10) + "%"
}

func printSummary(w io.Writer, s Summary) {
	fmt.Fprintf(w, `
summary (%s)
  records produced        %d
  delivered to the app    %d
  duplicates suppressed   %d   (same message ID seen again: not delivered twice)
  sent to a retry tier    %d   (failed every in-place attempt, delivered later from the retry topic)
  dead-lettered           %d   (refused by the app: parked in orders.demo.dlq with the reason)
  app requests            %d   (includes failed attempts and 503 answers, which use no attempt)
`, s.Elapsed.Round(time.Millisecond), s.Produced, s.Delivered, s.Duplicates, s.Retried, s.DeadLettered, s.AppRequests)
}
