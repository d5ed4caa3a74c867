package metrics

import (
	"strconv"
	"sync/atomic"
	"time"

	"github.com/kafka-sidecar/kafka-sidecar/consumer"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Record outcomes, the values of the outcome label of kafka_sidecar_records_total.
const (
	OutcomeDelivered    = "delivered"
	OutcomeDuplicate    = "duplicate"
	OutcomeRetried      = "retried"
	OutcomeDeadLettered = "dead_lettered"
)

// Pause reasons, the values of the reason label of kafka_sidecar_paused.
const (
	PauseAppUnavailable   = "app_unavailable"
	PauseAppUnhealthy     = "app_unhealthy"
	PauseDedupUnavailable = "dedup_unavailable"
)

// Metrics holds every kafka_sidecar_* metric. A nil *Metrics is valid and records nothing, so components can be
// used without a registry in tests.
type Metrics struct {
	// Registry holds the metrics; serve it with promhttp.HandlerFor.
	Registry *prometheus.Registry

	records        *prometheus.CounterVec
	deliveries     *prometheus.CounterVec
	duration       *prometheus.HistogramVec
	retriesPerTier *prometheus.CounterVec
	dlqProduced    *prometheus.CounterVec
	produceErrors  *prometheus.CounterVec
	dedupHits      prometheus.Counter
	dedupErrors    prometheus.Counter
	marksWritten   *prometheus.CounterVec
	marksPosition  prometheus.Counter
	marksID        prometheus.Counter
	commits        prometheus.Counter
	commitFailures prometheus.Counter
	paused         *prometheus.GaugeVec
	appUp          prometheus.Gauge
	doctor         *prometheus.GaugeVec
	buildInfo      *prometheus.GaugeVec
	stalled        prometheus.Gauge
	dedupDuration  *prometheus.HistogramVec

	totals [4]atomic.Int64
}

var outcomeIndex = map[string]int{OutcomeDelivered: 0, OutcomeDuplicate: 1, OutcomeRetried: 2, OutcomeDeadLettered: 3}

// Totals are the records finished since start, summed over topics.
type Totals struct {
	Delivered, Duplicates, Retried, DeadLettered int64
}

// Totals returns the records finished so far by outcome.
func (m *Metrics) Totals() Totals {
	if m == nil {
		return Totals{}
	}
	return Totals{
		Delivered: m.totals[0].Load(), Duplicates: m.totals[1].Load(),
		Retried: m.totals[2].Load(), DeadLettered: m.totals[3].Load(),
	}
}

// New registers every metric. stats, when set, is read at scrape time for the per-partition gauges (lag, age of
// the oldest undone record, records waiting in retry tiers), so the hot path pays nothing for them.
// isRetryTopic tells retry topics apart for kafka_sidecar_retry_waiting_records.
func New(stats func() []consumer.PartitionStats, inFlight func() int, isRetryTopic func(string) bool) *Metrics {
	reg := prometheus.NewRegistry()
	m := &Metrics{
		Registry: reg,
		records: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kafka_sidecar_records_total",
			Help: "Records finished, by source topic and outcome (delivered, duplicate, retried, dead_lettered).",
		}, []string{"topic", "outcome"}),
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kafka_sidecar_deliveries_total",
			Help: "HTTP deliveries to the app by classified result (success, retryable, permanent, app_unavailable).",
		}, []string{"result"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "kafka_sidecar_delivery_duration_seconds",
			Help:    "Time the app took to answer one delivery (one request; in batch mode, one batch).",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"result"}),
		retriesPerTier: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kafka_sidecar_retries_total",
			Help: "Records sent to a retry tier, by tier (1-based).",
		}, []string{"tier"}),
		dlqProduced: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kafka_sidecar_dlq_records_total",
			Help: "Records acknowledged by a dead-letter topic.",
		}, []string{"topic"}),
		produceErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kafka_sidecar_produce_failures_total",
			Help: "Failed produce attempts to retry and dead-letter topics (each is retried until acknowledged).",
		}, []string{"topic"}),
		dedupHits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kafka_sidecar_dedup_hits_total",
			Help: "Records skipped because their message ID was already done.",
		}),
		dedupErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kafka_sidecar_dedup_errors_total",
			Help: "Dedup store calls that failed (delivery pauses while the store is unavailable).",
		}),
		marksWritten: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kafka_sidecar_dedup_marks_written_total",
			Help: "Done marks written to the dedup store, by kind: position (every completed or parked record, one bit each) or id (completed records with a message ID of their own, one key each).",
		}, []string{"kind"}),
		commits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kafka_sidecar_commits_total",
			Help: "Offset commits the broker accepted.",
		}),
		commitFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kafka_sidecar_commit_failures_total",
			Help: "Offset commits that failed (retried at the next interval).",
		}),
		paused: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "kafka_sidecar_paused",
			Help: "1 while delivery is paused for the reason (app_unavailable, app_unhealthy, dedup_unavailable).",
		}, []string{"reason"}),
		appUp: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "kafka_sidecar_app_up",
			Help: "1 when the app answered its last probe or delivery, 0 otherwise.",
		}),
		doctor: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "kafka_sidecar_doctor_check",
			Help: "Durability audit result at start: 1 for the check's current status (PASS, WARN, FAIL).",
		}, []string{"check", "status"}),
		buildInfo: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "kafka_sidecar_build_info",
			Help: "Always 1; the labels name the sidecar's version and the Go version it was built with.",
		}, []string{"version", "goversion"}),
		dedupDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "kafka_sidecar_dedup_store_duration_seconds",
			Help:    "Round trips to the Redis dedup store, by operation (pipeline, or the command's name).",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"op"}),
		stalled: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "kafka_sidecar_stalled",
			Help: "1 while records are in flight, delivery is not paused, and none has finished for SIDECAR_STALL_TIMEOUT (/healthz fails).",
		}),
	}
	for _, r := range []string{PauseAppUnavailable, PauseAppUnhealthy, PauseDedupUnavailable} {
		m.paused.WithLabelValues(r).Set(0)
	}
	m.marksPosition = m.marksWritten.WithLabelValues("position")
	m.marksID = m.marksWritten.WithLabelValues("id")
	reg.MustRegister(m.records, m.deliveries, m.duration, m.retriesPerTier, m.dlqProduced, m.produceErrors,
		m.dedupHits, m.dedupErrors, m.marksWritten, m.commits, m.commitFailures, m.paused, m.appUp, m.doctor,
		m.buildInfo, m.stalled, m.dedupDuration,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if inFlight != nil {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "kafka_sidecar_in_flight",
			Help: "Records being processed now.",
		}, func() float64 { return float64(inFlight()) }))
	}
	if stats != nil {
		reg.MustRegister(&partitionCollector{stats: stats, isRetry: isRetryTopic, now: time.Now})
	}
	return m
}

// Record counts a finished record.
func (m *Metrics) Record(topic, outcome string) {
	if m == nil {
		return
	}
	m.records.WithLabelValues(topic, outcome).Inc()
	if i, ok := outcomeIndex[outcome]; ok {
		m.totals[i].Add(1)
	}
}

// Records counts n finished records of one topic and outcome.
func (m *Metrics) Records(topic, outcome string, n int) {
	if m == nil || n <= 0 {
		return
	}
	m.records.WithLabelValues(topic, outcome).Add(float64(n))
	if i, ok := outcomeIndex[outcome]; ok {
		m.totals[i].Add(int64(n))
	}
}

// Deliveries observes one answer from the app that classified n records alike: a batch request.
func (m *Metrics) Deliveries(result string, took time.Duration, n int) {
	if m == nil || n <= 0 {
		return
	}
	m.deliveries.WithLabelValues(result).Add(float64(n))
	m.duration.WithLabelValues(result).Observe(took.Seconds())
}

// Delivery observes one answer from the app.
func (m *Metrics) Delivery(result string, took time.Duration) {
	if m == nil {
		return
	}
	m.deliveries.WithLabelValues(result).Inc()
	m.duration.WithLabelValues(result).Observe(took.Seconds())
}

// Retried counts a record moved to retry tier (1-based).
func (m *Metrics) Retried(tier int) {
	if m == nil {
		return
	}
	m.retriesPerTier.WithLabelValues(strconv.Itoa(tier)).Inc()
}

// DeadLettered counts a record acknowledged by the dead-letter topic.
func (m *Metrics) DeadLettered(dlqTopic string) {
	if m == nil {
		return
	}
	m.dlqProduced.WithLabelValues(dlqTopic).Inc()
}

// ProduceFailed counts a failed produce attempt to topic.
func (m *Metrics) ProduceFailed(topic string) {
	if m == nil {
		return
	}
	m.produceErrors.WithLabelValues(topic).Inc()
}

// DedupHit counts a record skipped as already done.
func (m *Metrics) DedupHit() {
	if m == nil {
		return
	}
	m.dedupHits.Inc()
}

// MarksWritten counts the done marks a dedup store call wrote (it implements dedup.MarkObserver).
func (m *Metrics) MarksWritten(positions, ids int) {
	if m == nil {
		return
	}
	if positions > 0 {
		m.marksPosition.Add(float64(positions))
	}
	if ids > 0 {
		m.marksID.Add(float64(ids))
	}
}

// DedupError counts a failed dedup store call.
func (m *Metrics) DedupError() {
	if m == nil {
		return
	}
	m.dedupErrors.Inc()
}

// Commit counts a commit attempt.
func (m *Metrics) Commit(partitions int, err error) {
	if m == nil {
		return
	}
	if err != nil {
		m.commitFailures.Inc()
	}
	if partitions > 0 {
		m.commits.Inc()
	}
}

// Paused sets whether delivery is paused for reason.
func (m *Metrics) Paused(reason string, paused bool) {
	if m == nil {
		return
	}
	v := 0.0
	if paused {
		v = 1
	}
	m.paused.WithLabelValues(reason).Set(v)
}

// AppUp sets whether the app answered.
func (m *Metrics) AppUp(up bool) {
	if m == nil {
		return
	}
	v := 0.0
	if up {
		v = 1
	}
	m.appUp.Set(v)
}

// BuildInfo publishes kafka_sidecar_build_info for version and goVersion.
func (m *Metrics) BuildInfo(version, goVersion string) {
	if m == nil {
		return
	}
	m.buildInfo.Reset()
	m.buildInfo.WithLabelValues(version, goVersion).Set(1)
}

// DedupStoreCall observes one round trip to the dedup store.
func (m *Metrics) DedupStoreCall(op string, took time.Duration) {
	if m == nil {
		return
	}
	m.dedupDuration.WithLabelValues(op).Observe(took.Seconds())
}

// Stalled sets whether the sidecar is stalled.
func (m *Metrics) Stalled(stalled bool) {
	if m == nil {
		return
	}
	v := 0.0
	if stalled {
		v = 1
	}
	m.stalled.Set(v)
}

// DoctorCheck publishes one audit result; the other statuses of the check are set to 0.
func (m *Metrics) DoctorCheck(check, status string) {
	if m == nil {
		return
	}
	for _, s := range []string{"PASS", "WARN", "FAIL"} {
		v := 0.0
		if s == status {
			v = 1
		}
		m.doctor.WithLabelValues(check, s).Set(v)
	}
}

// partitionCollector turns consumer stats into per-partition gauges at scrape time.
type partitionCollector struct {
	stats   func() []consumer.PartitionStats
	isRetry func(string) bool
	now     func() time.Time
}

var (
	lagDesc = prometheus.NewDesc("kafka_sidecar_consumer_lag",
		"Records between the commit position and the partition's end.", []string{"topic", "partition"}, nil)
	lagSecondsDesc = prometheus.NewDesc("kafka_sidecar_consumer_lag_seconds",
		"Age of the oldest record not done on the partition (0 when caught up).", []string{"topic", "partition"}, nil)
	bufferedDesc = prometheus.NewDesc("kafka_sidecar_buffered_records",
		"Records fetched and not done.", []string{"topic", "partition"}, nil)
	pausedPartDesc = prometheus.NewDesc("kafka_sidecar_paused_partitions",
		"Partitions whose fetching is paused while a retry record waits for its time.", nil, nil)
	retryWaitingDesc = prometheus.NewDesc("kafka_sidecar_retry_waiting_records",
		"Records in a retry topic fetched and waiting (for their not-before time or their turn).", []string{"topic"}, nil)
)

func (c *partitionCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- lagDesc
	ch <- lagSecondsDesc
	ch <- bufferedDesc
	ch <- pausedPartDesc
	ch <- retryWaitingDesc
}

func (c *partitionCollector) Collect(ch chan<- prometheus.Metric) {
	now := c.now()
	paused := 0
	waiting := map[string]int{}
	for _, s := range c.stats() {
		p := strconv.Itoa(int(s.Partition))
		lag := int64(0)
		pos := s.Position
		if pos < 0 {
			pos = s.Committed
		}
		if s.HighWatermark >= 0 && pos >= 0 && s.HighWatermark > pos {
			lag = s.HighWatermark - pos
		}
		ch <- prometheus.MustNewConstMetric(lagDesc, prometheus.GaugeValue, float64(lag), s.Topic, p)
		age := 0.0
		if !s.OldestUndone.IsZero() {
			age = max(now.Sub(s.OldestUndone).Seconds(), 0)
		}
		ch <- prometheus.MustNewConstMetric(lagSecondsDesc, prometheus.GaugeValue, age, s.Topic, p)
		ch <- prometheus.MustNewConstMetric(bufferedDesc, prometheus.GaugeValue, float64(s.Buffered), s.Topic, p)
		if s.WaitingDue > 0 {
			paused++
		}
		if c.isRetry != nil && c.isRetry(s.Topic) {
			waiting[s.Topic] += s.Buffered
		}
	}
	ch <- prometheus.MustNewConstMetric(pausedPartDesc, prometheus.GaugeValue, float64(paused))
	for t, n := range waiting {
		ch <- prometheus.MustNewConstMetric(retryWaitingDesc, prometheus.GaugeValue, float64(n), t)
	}
}
