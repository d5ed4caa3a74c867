package sidecar

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/kafka-sidecar/kafka-sidecar/cloudevents"
	"github.com/kafka-sidecar/kafka-sidecar/config"
	"github.com/kafka-sidecar/kafka-sidecar/connect"
	"github.com/kafka-sidecar/kafka-sidecar/consumer"
	"github.com/kafka-sidecar/kafka-sidecar/decode"
	"github.com/kafka-sidecar/kafka-sidecar/dedup"
	"github.com/kafka-sidecar/kafka-sidecar/dlq"
	"github.com/kafka-sidecar/kafka-sidecar/doctor"
	"github.com/kafka-sidecar/kafka-sidecar/handler"
	"github.com/kafka-sidecar/kafka-sidecar/handler/httpapp"
	"github.com/kafka-sidecar/kafka-sidecar/metrics"
	"github.com/kafka-sidecar/kafka-sidecar/pipeline"
	"github.com/kafka-sidecar/kafka-sidecar/retry"
	"github.com/kafka-sidecar/kafka-sidecar/topics"
	"github.com/kafka-sidecar/kafka-sidecar/tracing"
	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"
	"go.uber.org/zap"
)

// ErrAuth marks errors caused by rejected credentials (Kafka or Redis): retrying cannot fix them.
var ErrAuth = errors.New("authentication failed")

// Sidecar is the assembled program: consumer, pipeline, dedup store, producer and admin server.
type Sidecar struct {
	cfg *config.Config
	// traces is the OpenTelemetry provider, nil when OTEL_TRACES_EXPORTER does not ask for traces.
	traces   *tracing.Provider
	log      *zap.Logger
	metrics  *metrics.Metrics
	cons     *consumer.Consumer
	pipe     *pipeline.Pipeline
	gate     *pipeline.Gate
	store    dedup.Store
	coal     *dedup.Coalescer
	redis    redis.UniversalClient
	producer *kgo.Client
	admin    *kadm.Client
	http     *httpapp.Deliverer
	// decoder presents records in Confluent wire format as JSON (SIDECAR_DECODE=json); nil when off.
	decoder *decode.Decoder
	// registry is the schema registry client, nil without SIDECAR_SCHEMA_REGISTRY_URL.
	registry *sr.Client
	// probe checks the app's health URL (a TCP connect without one); appProbe always checks the app URL.
	probe    *httpapp.Probe
	appProbe *httpapp.Probe
	stopping chan struct{}
	stopOnce sync.Once
	// events writes the lifecycle lines; checks holds the background checks' results for the probes.
	events *events
	checks checks
	// stopRedisLogs ends the routing of go-redis's lines into this sidecar's log, once its client is closed.
	stopRedisLogs func()

	addrMu     sync.Mutex
	adminAddr  string
	adminReady chan struct{}
}

// New connects to Kafka and the dedup store, provisions retry and dead-letter topics, runs the durability
// audit, and builds every component. Nothing is consumed until Run.
func New(ctx context.Context, cfg *config.Config, log *zap.Logger) (_ *Sidecar, err error) {
	s := &Sidecar{cfg: cfg, log: log, stopping: make(chan struct{}), adminReady: make(chan struct{}), events: newEvents(log)}
	defer func() {
		if err != nil {
			s.close()
		}
	}()
	log.Info("starting kafka-sidecar", zap.String("version", Version), zap.String("go", runtime.Version()),
		zap.Any("config", effectiveConfig(cfg)))
	kopts, err := connect.KafkaOpts(cfg)
	if err != nil {
		return nil, err
	}
	kopts = append(kopts, kgo.WithLogger(connect.KafkaLogger(rateLimited(log))))
	adminClient, err := kgo.NewClient(kopts...)
	if err != nil {
		return nil, fmt.Errorf("creating kafka admin client: %w", err)
	}
	s.admin = kadm.NewClient(adminClient)

	if err := s.checkKafka(ctx); err != nil {
		return nil, err
	}
	plans := topics.PlanFor(cfg.KafkaTopics, cfg.KafkaGroup, len(cfg.RetryDelays), cfg.DLQTopic)
	prov, err := topics.Provision(ctx, s.admin, plans, cfg.CreateTopics, topics.WithRetryDelays(cfg.RetryDelays))
	if err != nil {
		if connect.IsAuthError(err) {
			return nil, fmt.Errorf("%w: kafka: %w", ErrAuth, err)
		}
		return nil, fmt.Errorf("provisioning retry and dead-letter topics: %w", err)
	}
	for _, t := range prov.Created {
		log.Info("created topic", zap.String("topic", t.Topic), zap.String("role", string(t.Role)),
			zap.Int32("partitions", t.Partitions), zap.Int16("replication_factor", t.ReplicationFactor))
	}
	for _, w := range prov.Warnings {
		log.Warn("topic provisioning", zap.String("warning", w))
	}

	if s.store, err = s.openStore(ctx); err != nil {
		return nil, err
	}

	pkOpts := append(append([]kgo.Opt{}, kopts...), dlq.ProducerOpts()...)
	if s.producer, err = kgo.NewClient(pkOpts...); err != nil {
		return nil, fmt.Errorf("creating kafka producer: %w", err)
	}

	appTLS, err := appTLSConfig(cfg)
	if err != nil {
		return nil, err
	}
	s.http, err = httpapp.New(httpapp.Options{
		URL:              cfg.AppURL,
		Timeout:          cfg.AppTimeout,
		MaxResponseBytes: cfg.AppMaxResponseBytes,
		AuthTokenFile:    cfg.AppAuthTokenFile,
		TLS:              appTLS,
		MaxConns:         cfg.MaxInFlight,
		Batch:            cfg.Delivery == config.DeliveryBatch,
	})
	if err != nil {
		return nil, fmt.Errorf("building the app client: %w", err)
	}
	if err := s.buildProbes(s.http); err != nil {
		return nil, err
	}

	retryTopics := map[string]pipeline.Tier{}
	consumeTopics := append([]string{}, cfg.KafkaTopics...)
	for _, p := range plans {
		for i, t := range p.Retry {
			retryTopics[t] = pipeline.Tier{Source: p.Source, Tier: i + 1}
			consumeTopics = append(consumeTopics, t)
		}
	}
	var cons *consumer.Consumer
	s.metrics = metrics.New(
		func() []consumer.PartitionStats { return cons.Stats() },
		func() int { return cons.InFlight() },
		func(t string) bool { _, ok := retryTopics[t]; return ok },
	)
	s.metrics.BuildInfo(Version, runtime.Version())
	s.coal = dedup.NewCoalescer(s.store, 256, dedup.ObserveMarks(s.metrics))
	if s.redis != nil {
		s.redis.AddHook(redisTimer{s.metrics})
	}
	s.gate = pipeline.NewGate(func(reason string, paused bool) {
		s.metrics.Paused(reason, paused)
		s.events.paused(reason, paused)
	})
	s.checks.stallWatch.timeout = cfg.StallTimeout

	if s.traces, err = tracing.Setup(ctx); err != nil {
		return nil, err
	}
	middleware, err := s.middleware()
	if err != nil {
		return nil, err
	}
	// In batch mode SIDECAR_MAX_IN_FLIGHT counts records, which the consumer bounds, and a batch is one request.
	batchDelivery := cfg.Delivery == config.DeliveryBatch
	maxDeliveries := cfg.MaxInFlight
	if batchDelivery {
		maxDeliveries = 0
	}
	sender := dlq.NewProducer(s.producer, rateLimited(log.Named("producer")))
	s.pipe = pipeline.New(s.coal, s.http, sender, s.gate, pipeline.Options{
		Group:    cfg.KafkaGroup,
		IDHeader: cfg.IDHeader,
		Policy: retry.Policy{
			AttemptsInPlace: cfg.RetryAttemptsPlace,
			Delays:          cfg.RetryDelays,
			Backoff:         cfg.RetryBackoff,
			BackoffMax:      cfg.RetryBackoffMax,
		},
		RetryTopics:     retryTopics,
		RetryTopic:      func(src string, tier int) string { return topics.RetryTopic(src, cfg.KafkaGroup, tier) },
		DeadLetterTopic: func(src string) string { return topics.DeadLetterTopic(src, cfg.KafkaGroup, cfg.DLQTopic) },
		BatchDelivery:   batchDelivery,
		MaxDeliveries:   maxDeliveries,
		Middleware:      middleware,
		MaxRecordBytes:  cfg.MaxRecordBytes,
		AppBackoffMax:   cfg.AppBackoffMax,
		IsAuthError:     dedup.IsAuthError,
		Fatal:           func(err error) { cons.Fail(fmt.Errorf("%w: %w", ErrAuth, err)) },
		Logger:          rateLimited(log.Named("pipeline")),
		Metrics:         s.metrics,
		MessageID:       messageID(cfg),
		Tracer:          s.tracer(),
	})

	ordering, _ := consumer.ParseOrdering(cfg.Ordering)
	// In batch mode SIDECAR_MAX_IN_FLIGHT counts records and a batch is one request. In single mode it bounds
	// the requests under way (the pipeline's delivery slots); the consumer hands out twice as many records in
	// batches, so that the next records are claimed, in bulk, while the current ones are delivered.
	inFlight, batchMax, batchWait := cfg.MaxInFlight, cfg.BatchMaxRecords, cfg.BatchMaxWait
	if !batchDelivery {
		inFlight, batchMax, batchWait = 2*cfg.MaxInFlight, max(1, cfg.MaxInFlight/2), 0
	}
	cons, err = consumer.New(s.pipe, consumer.Options{
		ClientOpts:         kopts,
		Topics:             consumeTopics,
		Group:              cfg.KafkaGroup,
		InstanceID:         cfg.KafkaInstanceID,
		SessionTimeout:     cfg.KafkaSessionTimeout,
		ServerAssigned:     cfg.KafkaGroupProtocol == config.GroupProtocolConsumer,
		StartAtEnd:         cfg.KafkaStartOffset == "latest",
		Ordering:           ordering,
		MaxInFlight:        inFlight,
		BatchMaxRecords:    batchMax,
		BatchMaxWait:       batchWait,
		MaxBufferedRecords: cfg.MaxBufferedRecords,
		MaxBufferedBytes:   cfg.MaxBufferedBytes,
		CommitInterval:     cfg.CommitInterval,
		RevokeTimeout:      cfg.RevokeTimeout,
		ShutdownTimeout:    cfg.ShutdownTimeout,
		NotBefore:          s.pipe.NotBefore,
		Fatal:              connect.IsAuthError,
		Logger:             rateLimited(log.Named("consumer")),
		OnCommit:           s.metrics.Commit,
		Released: func(ctx context.Context, partitions map[string][]int32) {
			if err := s.coal.ReleasePartitions(ctx, partitions); err != nil {
				log.Warn("dedup partition leases not released; they expire by themselves", zap.Error(err))
			}
		},
	})
	if err != nil {
		return nil, err
	}
	s.cons = cons

	report := s.auditAfterProvisioning(ctx, kopts)
	for _, c := range report.Checks {
		s.metrics.DoctorCheck(c.ID, string(c.Status))
		if c.Status != doctor.Pass {
			log.Warn("durability check", zap.String("check", c.ID), zap.String("status", string(c.Status)),
				zap.String("observed", c.Observed), zap.String("fix", c.Fix))
		}
	}
	if cfg.DoctorStrict && report.Failed() {
		return nil, errors.New("durability audit failed and SIDECAR_DOCTOR_STRICT=true: run `kafka-sidecar doctor` for the fixes")
	}
	return s, nil
}

// middleware builds the delivery middleware the configuration asks for, outermost first.
func (s *Sidecar) middleware() ([]handler.Middleware, error) {
	var mws []handler.Middleware
	if s.cfg.SchemaRegistryURL != "" {
		cl, err := connect.SchemaRegistry(s.cfg)
		if err != nil {
			return nil, err
		}
		s.registry = cl
	}
	if s.cfg.Decode == config.DecodeJSON {
		s.decoder = decode.New(decode.NewRegistry(s.registry, decode.RegistryOptions{}), decode.Options{Keys: s.cfg.DecodeKeys})
		mws = append(mws, s.decoder.Middleware)
	}
	// Events are presented after decoding, so a decoded value's content type is the event's.
	ceMode, _ := cloudevents.ParseMode(s.cfg.CloudEvents) // validated with the configuration
	mws = append(mws, cloudevents.Middleware(cloudevents.Options{Mode: ceMode, Type: s.cfg.CloudEventsType}))
	if s.traces != nil {
		// Innermost, so that an attempt's span is the request itself.
		mws = append(mws, s.traces.Middleware(s.cfg.Delivery == config.DeliveryBatch))
	}
	return mws, nil
}

// tracer is the pipeline's Tracer: nil, so that nothing is traced at all, unless traces are exported.
func (s *Sidecar) tracer() pipeline.Tracer {
	if s.traces == nil {
		return nil
	}
	return s.traces.Tracer(s.cfg.KafkaGroup)
}

// messageID returns how a record without the SIDECAR_ID_HEADER header gets a message ID of its own: a
// CloudEvent's source and id, unless SIDECAR_CLOUDEVENTS is off.
func messageID(cfg *config.Config) func(*kgo.Record) (string, bool) {
	if cfg.CloudEvents == config.CloudEventsOff {
		return nil
	}
	return func(r *kgo.Record) (string, bool) { return cloudevents.MessageID(r.Headers, r.Value) }
}

// checkKafka fails fast, within 30 s, when the brokers reject the credentials.
func (s *Sidecar) checkKafka(ctx context.Context) error {
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	_, err := s.admin.ListBrokers(cctx)
	switch {
	case err == nil:
		return nil
	case connect.IsAuthError(err):
		return fmt.Errorf("%w: kafka rejected the credentials: %w", ErrAuth, err)
	case ctx.Err() != nil:
		return ctx.Err()
	default:
		// Unreachable brokers are an outage, not a configuration error: start anyway and let kgo retry.
		s.log.Warn("kafka brokers not reachable yet; continuing and retrying", zap.Error(err))
		return nil
	}
}

func (s *Sidecar) openStore(ctx context.Context) (dedup.Store, error) {
	owner := s.cfg.KafkaInstanceID
	if owner == "" {
		host, _ := os.Hostname()
		owner = fmt.Sprintf("%s-%d-%d", host, os.Getpid(), time.Now().UnixNano())
	}
	lease := s.cfg.AppTimeout + s.cfg.DedupLeaseMargin
	prefix := dedup.KeyPrefix(s.cfg.DedupKeyPrefix, s.cfg.KafkaGroup)
	switch s.cfg.Dedup {
	case config.DedupOff:
		s.log.Warn("SIDECAR_DEDUP=off: redelivered records reach the app again")
		return dedup.Off(), nil
	case config.DedupMemory:
		s.log.Warn("SIDECAR_DEDUP=memory: duplicates are suppressed only within this process")
		return dedup.NewMemory(dedup.MemoryOptions{Owner: owner, Lease: lease, TTL: s.cfg.DedupTTL,
			IDTTL: s.cfg.DedupIDTTL, MaxBytes: s.cfg.DedupMemoryBytes}), nil
	}
	rc, err := connect.Redis(s.cfg)
	if err != nil {
		return nil, err
	}
	s.stopRedisLogs = connect.RouteRedisLogs(rateLimited(s.log), s.cfg)
	s.redis = rc
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := rc.Ping(pctx).Err(); err != nil {
		if dedup.IsAuthError(err) {
			return nil, fmt.Errorf("%w: redis rejected the credentials: %s", ErrAuth, connect.RedactURL(err.Error()))
		}
		// An outage at start is waited out like any other: delivery stays paused until Redis answers.
		s.log.Warn("redis not reachable yet; delivery waits for it", zap.String("error", connect.RedactSecrets(s.cfg, err.Error())))
	}
	return dedup.NewRedis(rc, dedup.RedisOptions{KeyPrefix: prefix, Owner: owner, Lease: lease, TTL: s.cfg.DedupTTL,
		IDTTL: s.cfg.DedupIDTTL}), nil
}

// Doctor runs the durability audit with the sidecar's own clients.
func (s *Sidecar) Doctor(ctx context.Context) doctor.Report {
	dctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	deps := doctor.Deps{Config: s.cfg, Admin: s.admin, AppProbe: s.appProbe.Check}
	if s.redis != nil {
		deps.Redis = dedup.NewRedisInspector(s.redis)
	}
	if s.registry != nil {
		deps.Registry = s.registry
	}
	if s.cfg.AppHealthURL != "" {
		deps.HealthProbe = s.probe.Check
	}
	return doctor.Run(dctx, deps)
}

// Metrics returns the sidecar's metrics.
func (s *Sidecar) Metrics() *metrics.Metrics { return s.metrics }

// Run consumes until ctx ends, serving the admin endpoints meanwhile, then drains and commits.
func (s *Sidecar) Run(ctx context.Context) error {
	defer s.close()
	adminSrv, err := s.startAdmin()
	if err != nil {
		return err
	}
	hctx, stopHealth := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); s.monitor(hctx) }()
	runErr := s.cons.Run(ctx)
	s.stopOnce.Do(func() { close(s.stopping) })
	stopHealth()
	wg.Wait()
	sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	for _, srv := range adminSrv {
		_ = srv.Shutdown(sctx)
	}
	if runErr != nil && connect.IsAuthError(runErr) && !errors.Is(runErr, ErrAuth) {
		runErr = fmt.Errorf("%w: kafka: %w", ErrAuth, runErr)
	}
	return runErr
}

func (s *Sidecar) close() {
	if s.pipe != nil {
		s.pipe.Close()
	}
	if s.coal != nil {
		s.coal.Close()
	}
	if s.store != nil {
		_ = s.store.Close()
	}
	if s.stopRedisLogs != nil {
		s.stopRedisLogs()
	}
	if s.producer != nil {
		s.producer.Close()
	}
	if s.admin != nil {
		s.admin.Close()
	}
	if s.http != nil {
		s.http.CloseIdleConnections()
	}
	if s.traces != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.traces.Shutdown(ctx); err != nil {
			s.log.Warn("traces not all exported", zap.Error(err))
		}
	}
}

// appTLSConfig builds the TLS settings for an https app URL from SIDECAR_APP_TLS_*.
func appTLSConfig(cfg *config.Config) (*tls.Config, error) {
	if cfg.AppTLSCAFile == "" && cfg.AppTLSCertFile == "" {
		return nil, nil
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if cfg.AppTLSCAFile != "" {
		pem, err := os.ReadFile(cfg.AppTLSCAFile)
		if err != nil {
			return nil, fmt.Errorf("reading SIDECAR_APP_TLS_CA_FILE: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, errors.New("parsing SIDECAR_APP_TLS_CA_FILE: no PEM certificate found")
		}
		tc.RootCAs = pool
	}
	if cfg.AppTLSCertFile != "" {
		cert, err := tls.LoadX509KeyPair(cfg.AppTLSCertFile, cfg.AppTLSKeyFile)
		if err != nil {
			return nil, fmt.Errorf("loading SIDECAR_APP_TLS_CERT_FILE and SIDECAR_APP_TLS_KEY_FILE: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

func listen(addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listening on %s: %w", addr, err)
	}
	return ln, nil
}

// Audit runs the durability audit alone, for `kafka-sidecar doctor`: it connects with the sidecar's settings but
// creates no topic and consumes nothing.
func Audit(ctx context.Context, cfg *config.Config, log *zap.Logger) (doctor.Report, error) {
	s := &Sidecar{cfg: cfg, log: log}
	defer s.close()
	kopts, err := connect.KafkaOpts(cfg)
	if err != nil {
		return doctor.Report{}, err
	}
	cl, err := kgo.NewClient(kopts...)
	if err != nil {
		return doctor.Report{}, fmt.Errorf("creating kafka admin client: %w", err)
	}
	s.admin = kadm.NewClient(cl)
	if cfg.Dedup == config.DedupRedis {
		if s.redis, err = connect.Redis(cfg); err != nil {
			return doctor.Report{}, err
		}
		defer func() { _ = s.redis.Close() }()
	}
	if cfg.SchemaRegistryURL != "" {
		if s.registry, err = connect.SchemaRegistry(cfg); err != nil {
			return doctor.Report{}, err
		}
	}
	h, err := httpapp.New(httpapp.Options{URL: cfg.AppURL, Timeout: cfg.AppTimeout})
	if err != nil {
		return doctor.Report{}, fmt.Errorf("building the app client: %w", err)
	}
	if err := s.buildProbes(h); err != nil {
		return doctor.Report{}, err
	}
	return s.Doctor(ctx), nil
}

func (s *Sidecar) buildProbes(h *httpapp.Deliverer) error {
	var err error
	if s.probe, err = httpapp.NewProbe(s.cfg.AppURL, s.cfg.AppHealthURL, h.Client()); err != nil {
		return fmt.Errorf("building the app probe: %w", err)
	}
	if s.appProbe, err = httpapp.NewProbe(s.cfg.AppURL, "", h.Client()); err != nil {
		return fmt.Errorf("building the app probe: %w", err)
	}
	return nil
}

// auditAfterProvisioning runs the audit with a fresh admin client: the one that just created the retry and
// dead-letter topics may answer metadata from its cache, where they do not exist yet.
func (s *Sidecar) auditAfterProvisioning(ctx context.Context, kopts []kgo.Opt) doctor.Report {
	cl, err := kgo.NewClient(kopts...)
	if err != nil {
		return s.Doctor(ctx)
	}
	fresh := &Sidecar{cfg: s.cfg, log: s.log, admin: kadm.NewClient(cl), redis: s.redis, probe: s.probe, appProbe: s.appProbe, registry: s.registry}
	defer fresh.admin.Close()
	return fresh.Doctor(ctx)
}

// effectiveConfig is the configuration in force for the start line: secrets redacted, and the credentials of
// every URL (the Redis URL included) replaced, keeping the hosts an operator needs to see.
func effectiveConfig(cfg *config.Config) map[string]string {
	eff := cfg.Effective()
	for k, v := range eff {
		if strings.HasSuffix(k, "_URL") && v != "" {
			eff[k] = connect.RedactURL(v)
		}
	}
	if u := cfg.RedisURL.Reveal(); u != "" {
		eff["SIDECAR_REDIS_URL"] = connect.RedactURL(u)
	}
	return eff
}
