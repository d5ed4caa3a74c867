package demo

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/kafka-sidecar/kafka-sidecar/config"
	"github.com/kafka-sidecar/kafka-sidecar/sidecar"
	"github.com/kafka-sidecar/kafka-sidecar/topics"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
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
	// Progress is how often the live line is redrawn on a terminal.
	Progress time.Duration
	// Terminal redraws one progress line in place; otherwise (a log, a CI job) a plain line is written every
	// second.
	Terminal bool
}

// plainEvery is how often a progress line is written when the output is not a terminal.
const plainEvery = time.Second

// Summary is what a demo run did.
type Summary struct {
	Produced int
	// IDs is the distinct message IDs; Again of them were produced a second time, AgainRefused of those being
	// IDs the app refuses.
	IDs, Again, AgainRefused int
	// RefusedIDs is the distinct message IDs the app refused for good.
	RefusedIDs   int
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
	opts.Terminal = isTerminal(stdout)
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
	refused  map[string]bool
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
		a.mu.Lock()
		a.refused[id] = true
		a.mu.Unlock()
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
	app := &sampleApp{seen: map[string]int{}, refused: map[string]bool{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return Summary{}, fmt.Errorf("starting the sample app: %w", err)
	}
	appSrv := &http.Server{Handler: app, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = appSrv.Serve(ln) }()
	defer appSrv.Close()

	plan, err := produce(ctx, cluster.ListenAddrs(), topic, opts)
	if err != nil {
		return Summary{}, err
	}
	produced := plan.Produced
	fmt.Fprintf(out, "produced %d records (%d message IDs, %d of them twice) to %q on an in-process Kafka\n",
		produced, plan.IDs, plan.Again, topic)

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

	interval := opts.Progress
	if !opts.Terminal || interval <= 0 {
		interval = plainEvery
	}
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	want := int64(produced)
	delays := retryDelays(topic, cfg)
	for {
		t := sc.Metrics().Totals()
		finished := t.Delivered + t.Duplicates + t.DeadLettered
		line := fmt.Sprintf("%s delivered=%d duplicates=%d retried=%d dead_lettered=%d app_requests=%d",
			bar(finished, want), t.Delivered, t.Duplicates, t.Retried, t.DeadLettered, app.requests.Load())
		if finished < want {
			if note := waitingFor(sc.Metrics().Registry, delays); note != "" {
				line += " | " + note
			}
		}
		if opts.Terminal {
			// Clear to the end of the line: the previous line may have been longer.
			fmt.Fprintf(out, "\r%s\x1b[K", line)
		} else {
			fmt.Fprintln(out, line)
		}
		if finished >= want && !opts.KeepRunning {
			break
		}
		select {
		case <-ctx.Done():
			endLine(out, opts.Terminal)
			stopRun()
			if err := <-runErr; err != nil {
				return Summary{}, fmt.Errorf("sidecar stopped: %w", err)
			}
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return Summary{}, fmt.Errorf("backlog not done within %s", opts.Timeout)
			}
			return summarize(sc, plan, app, start), nil
		case err := <-runErr:
			endLine(out, opts.Terminal)
			return Summary{}, fmt.Errorf("sidecar stopped: %w", err)
		case <-ticker.C:
		}
	}
	endLine(out, opts.Terminal)
	stopRun()
	if err := <-runErr; err != nil {
		return Summary{}, err
	}
	return summarize(sc, plan, app, start), nil
}

// endLine ends the redrawn progress line on a terminal; plain lines already end.
func endLine(out io.Writer, terminal bool) {
	if terminal {
		fmt.Fprintln(out)
	}
}

// isTerminal reports whether w is a terminal (a character device), where a progress line may be redrawn.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// retryDelays maps each retry topic of source to its delay.
func retryDelays(source string, cfg *config.Config) map[string]time.Duration {
	out := map[string]time.Duration{}
	for i, d := range cfg.RetryDelays {
		out[topics.RetryTopic(source, cfg.KafkaGroup, i+1)] = d
	}
	return out
}

// waitingFor says what the unfinished records wait for, from the sidecar's metrics: records fetched from a
// retry topic and held until their delay has passed, and delivery paused (the app answered "unavailable").
// It is empty when nothing waits: the records are simply being delivered.
func waitingFor(g prometheus.Gatherer, delays map[string]time.Duration) string {
	families, err := g.Gather()
	if err != nil {
		return ""
	}
	var parts []string
	for _, mf := range families {
		switch mf.GetName() {
		case "kafka_sidecar_retry_waiting_records":
			for _, m := range mf.GetMetric() {
				n := int(m.GetGauge().GetValue())
				if n == 0 {
					continue
				}
				topic := labelValue(m, "topic")
				what := fmt.Sprintf("%d in %s", n, topic)
				if d, ok := delays[topic]; ok {
					what += fmt.Sprintf(" (its %s retry delay)", d)
				}
				parts = append(parts, what)
			}
		case "kafka_sidecar_paused":
			for _, m := range mf.GetMetric() {
				if m.GetGauge().GetValue() == 1 {
					parts = append(parts, "delivery paused: "+labelValue(m, "reason"))
				}
			}
		}
	}
	if len(parts) == 0 {
		return ""
	}
	sort.Strings(parts)
	return "waiting: " + strings.Join(parts, ", ")
}

func labelValue(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

func summarize(sc *sidecar.Sidecar, plan producePlan, app *sampleApp, start time.Time) Summary {
	t := sc.Metrics().Totals()
	app.mu.Lock()
	refused := len(app.refused)
	app.mu.Unlock()
	return Summary{
		RefusedIDs: refused,
		Produced:   plan.Produced, IDs: plan.IDs, Again: plan.Again, AgainRefused: plan.AgainRefused,
		Delivered: t.Delivered, Duplicates: t.Duplicates, Retried: t.Retried,
		DeadLettered: t.DeadLettered, AppRequests: app.requests.Load(), Elapsed: time.Since(start),
	}
}

// producePlan is what produce wrote.
type producePlan struct {
	Produced, IDs, Again, AgainRefused int
}

// produce writes the demo records: JSON orders, a few poison ones, some flaky ones, some that meet a busy app,
// and duplicates that carry an earlier record's message ID.
func produce(ctx context.Context, seeds []string, topic string, opts Options) (producePlan, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.DefaultProduceTopic(topic))
	if err != nil {
		return producePlan{}, err
	}
	defer cl.Close()
	var recs []*kgo.Record
	for i := range opts.Records {
		value := fmt.Sprintf(`{"order":%d,"amount":%d`, i, 10+i%90)
		switch {
		case poison(i):
			value += `,"poison":true`
		case i%41 == 7:
			value += `,"flaky":true`
		case i%53 == 5:
			value += `,"busy":true`
		}
		value += "}"
		recs = append(recs, demoRecord(i, value))
	}
	plan := producePlan{IDs: opts.Records}
	again := map[int]bool{}
	for i := range opts.Duplicates {
		n := (i * 7) % opts.Records
		if again[n] {
			continue // a third copy would make the summary's arithmetic harder to follow, not the demo better
		}
		again[n] = true
		plan.Again++
		if poison(n) {
			plan.AgainRefused++
		}
		recs = append(recs, demoRecord(n, string(recs[n].Value)))
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		return producePlan{}, fmt.Errorf("producing demo records: %w", err)
	}
	plan.Produced = len(recs)
	return plan, nil
}

// poison reports whether demo record i is one the app refuses for good.
func poison(i int) bool { return i%97 == 13 }

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
	// Second copies of refused IDs that met the app again were dead-lettered again, not suppressed.
	deadAgain := max(s.DeadLettered-int64(s.RefusedIDs), 0)
	againDelivered := int64(s.Again - s.AgainRefused)
	dead := fmt.Sprintf("%d message IDs the app refused, parked in orders.demo.dlq with the reason", s.RefusedIDs)
	if deadAgain > 0 {
		dead += fmt.Sprintf(",\n%34s%d of them twice: their second copy met the app again", "", deadAgain)
	}
	fmt.Fprintf(w, `
summary (%s)
  records produced       %6d   %d message IDs, %d of them produced twice
  delivered to the app   %6d   once per message ID the app accepted
  dead-lettered          %6d   %s
  duplicates suppressed  %6d   a message ID seen again: %d already delivered, %d already dead-lettered
                         ------
                         %6d   %s
  sent to a retry tier   %6d   failed every in-place attempt, delivered later from the retry topic
  app requests           %6d   includes failed attempts and 503 answers, which use no attempt
`, s.Elapsed.Round(time.Millisecond), s.Produced, s.IDs, s.Again, s.Delivered, s.DeadLettered, dead, s.Duplicates,
		min(s.Duplicates, againDelivered), max(s.Duplicates-againDelivered, 0),
		s.Delivered+s.DeadLettered+s.Duplicates, reconcile(s), s.Retried, s.AppRequests)
}

// reconcile says whether the outcomes add up to the records produced, and to one per message ID.
func reconcile(s Summary) string {
	total := s.Delivered + s.DeadLettered + s.Duplicates
	switch {
	case total != int64(s.Produced):
		return fmt.Sprintf("does NOT add up to the %d records produced", s.Produced)
	case s.Delivered+int64(s.RefusedIDs) != int64(s.IDs):
		return fmt.Sprintf("= records produced, but %d message IDs delivered or refused of %d", s.Delivered+int64(s.RefusedIDs), s.IDs)
	}
	return "= records produced; each message ID delivered or refused once"
}
