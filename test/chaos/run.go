package chaos

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/kafka-sidecar/kafka-sidecar/topics"
)

// Fixed shape of a run.
const (
	// Partitions of the source topic (and so of its retry and dead-letter topics).
	Partitions = 12
	// IDHeader is the record header that carries the message ID (SIDECAR_ID_HEADER).
	IDHeader = "chaos-id"
	// retryDelays are the retry tiers: short, so doomed records reach the dead-letter topic in seconds.
	retryDelays = "500ms,1s"
	// finalTimeout bounds the shutdown and final reading after the run's own bound has passed.
	finalTimeout = 2 * time.Minute
)

// Fault is one kind of disturbance the run causes.
type Fault string

// The faults of a run. Each round has one of each, in a random order; FaultBroker only on a real cluster with
// a cluster script.
const (
	FaultSidecarKill Fault = "sidecar-kill"  // SIGKILL one sidecar, start it again
	FaultSidecarTerm Fault = "sidecar-term"  // SIGTERM one sidecar (it must exit 0), start it again
	FaultRedis       Fault = "redis-restart" // SIGKILL redis-server, start it again on the same port, empty
	FaultBroker      Fault = "broker-kill"   // SIGKILL one Kafka node, start it again, wait for in-sync replicas
)

// Options shape a run. Binary is required; every other zero value has a default.
type Options struct {
	// Binary is the built kafka-sidecar.
	Binary string
	// Brokers are the seeds of a real cluster; empty starts an in-process kfake cluster.
	Brokers []string
	// KafkaScript is test/kafka/cluster.sh, used to kill and restart Kafka nodes (real cluster only).
	KafkaScript string
	// Records is how many records, each with its own message ID, are produced (default 50000).
	Records int
	// Sidecars is how many sidecar processes share the group (default 3).
	Sidecars int
	// Duration bounds the whole run (default 8m); passing it fails the run with what was still missing.
	Duration time.Duration
	// Seed decides the app's answers, the fault order and the fault targets (default: the clock).
	Seed int64
	// Rounds is how many times each fault happens (default 1, or 2 from 20000 records).
	Rounds int
	// FaultWindow is how long records keep arriving, and the faults happen within it (default: from Records,
	// 15s to 2m).
	FaultWindow time.Duration
	// Dir receives the logs of the sidecars and redis-server; empty makes a new temporary directory, which
	// is kept so a failure can be read.
	Dir string
	// RedisServer is the redis-server binary; empty finds it on PATH.
	RedisServer string
	// Progress receives one line per step and a status line every few seconds; nil discards them.
	Progress io.Writer
	// Env holds further SIDECAR_* settings for every sidecar; they override the run's own.
	Env []string
}

func (o *Options) defaults() error {
	if o.Binary == "" {
		return errors.New("no sidecar binary: build it with go build -o <path> ./cmd/kafka-sidecar")
	}
	if _, err := os.Stat(o.Binary); err != nil {
		return fmt.Errorf("checking the sidecar binary: %w", err)
	}
	if o.Records <= 0 {
		o.Records = 50000
	}
	if o.Sidecars <= 0 {
		o.Sidecars = 3
	}
	if o.Duration <= 0 {
		o.Duration = 8 * time.Minute
	}
	if o.Seed == 0 {
		o.Seed = time.Now().UnixNano()
	}
	if o.Rounds <= 0 {
		o.Rounds = 1
		if o.Records >= 20000 {
			o.Rounds = 2
		}
	}
	if o.FaultWindow <= 0 {
		o.FaultWindow = min(max(time.Duration(o.Records)*time.Second/400, 15*time.Second), 2*time.Minute)
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	if len(o.Brokers) > 0 && o.KafkaScript != "" {
		if _, err := os.Stat(o.KafkaScript); err != nil {
			return fmt.Errorf("checking the cluster script: %w", err)
		}
	}
	return nil
}

// Result is what a run observed. A run passes when Err returns nil.
type Result struct {
	Records int
	// SidecarKills counts sidecar processes stopped and started again, by SIGKILL or SIGTERM; SidecarTerms
	// is the SIGTERM part.
	SidecarKills  int
	SidecarTerms  int
	BrokerKills   int
	RedisRestarts int
	// Lost counts message IDs that got no 2xx and are not in the dead-letter topic.
	Lost int
	// Duplicates counts 2xx answers beyond the first per message ID.
	Duplicates int
	// DeadLettered counts distinct message IDs in the dead-letter topic; ExpectedDeadLetters is how many
	// the seed refuses for good (poison and doomed IDs).
	DeadLettered        int
	ExpectedDeadLetters int
	// DeadLetterCopies counts dead-letter records beyond the first per ID (a crash between the copy's ack
	// and the commit); reported, not failed.
	DeadLetterCopies int
	// UnexpectedDeadLetters are IDs the app would have accepted but that sit in the dead-letter topic;
	// MissingDeadLetters are poison or doomed IDs that are not there.
	UnexpectedDeadLetters []string
	MissingDeadLetters    []string
	// Behind lists partitions whose committed offset does not reach the end.
	Behind []string
	// Problems lists everything else that fails the run: a fault that misbehaved (a sidecar not exiting 0
	// on SIGTERM), a sidecar that died on its own, the time bound.
	Problems []string
	// App is what the app answered.
	App AppStats
	// Seed, Dir and Elapsed identify the run.
	Seed    int64
	Dir     string
	Elapsed time.Duration
}

// Line is the summary line a run ends with.
func (r *Result) Line() string {
	return fmt.Sprintf("records=%d sidecar_kills=%d broker_kills=%d redis_restarts=%d lost=%d duplicates=%d dead_lettered=%d",
		r.Records, r.SidecarKills, r.BrokerKills, r.RedisRestarts, r.Lost, r.Duplicates, r.DeadLettered)
}

// Err returns nil for a passing run, else one error naming every failure.
func (r *Result) Err() error {
	var msgs []string
	if r.Lost > 0 {
		msgs = append(msgs, fmt.Sprintf("%d message IDs lost", r.Lost))
	}
	if len(r.UnexpectedDeadLetters) > 0 {
		msgs = append(msgs, fmt.Sprintf("%d unexpected dead letters: %s", len(r.UnexpectedDeadLetters), sample(r.UnexpectedDeadLetters)))
	}
	if len(r.MissingDeadLetters) > 0 {
		msgs = append(msgs, fmt.Sprintf("%d dead letters missing: %s", len(r.MissingDeadLetters), sample(r.MissingDeadLetters)))
	}
	if len(r.Behind) > 0 {
		msgs = append(msgs, fmt.Sprintf("committed offsets short of the end on %d partitions: %s", len(r.Behind), sample(r.Behind)))
	}
	msgs = append(msgs, r.Problems...)
	if len(msgs) == 0 {
		return nil
	}
	return fmt.Errorf("chaos run failed (seed %d, logs in %s):\n  %s", r.Seed, r.Dir, strings.Join(msgs, "\n  "))
}

func sample(s []string) string {
	if len(s) <= 10 {
		return strings.Join(s, ", ")
	}
	return strings.Join(s[:10], ", ") + fmt.Sprintf(", … (%d more)", len(s)-10)
}

// run is the state of one run.
type run struct {
	opts     Options
	rng      *rand.Rand
	app      *App
	redis    *Redis
	kafka    *cluster
	sidecars []*Sidecar
	dlq      *dlqReader
	topic    string
	group    string
	dlqTopic string
	tracked  []string // source and retry topics, whose committed offsets must reach the end
	ids      []string
	res      *Result
	// stopReader ends the dead-letter reader and waits for it; set once it runs.
	stopReader func()
}

func (r *run) logf(format string, args ...any) {
	fmt.Fprintf(r.opts.Progress, "%s %s\n", time.Now().Format("15:04:05.000"), fmt.Sprintf(format, args...))
}

// Run performs one chaos run. The error is for a run that could not be set up; a run that went wrong
// returns a Result whose Err says how.
func Run(ctx context.Context, opts Options) (*Result, error) {
	if err := opts.defaults(); err != nil {
		return nil, err
	}
	started := time.Now()
	if opts.Dir == "" {
		dir, err := os.MkdirTemp("", "kafka-sidecar-chaos-")
		if err != nil {
			return nil, fmt.Errorf("making the log directory: %w", err)
		}
		opts.Dir = dir
	}
	r := &run{
		opts: opts,
		rng:  rand.New(rand.NewPCG(uint64(opts.Seed), 0x5eed)),
		res:  &Result{Records: opts.Records, Seed: opts.Seed, Dir: opts.Dir},
	}
	defer func() { r.res.Elapsed = time.Since(started) }()

	// Setup and teardown run on their own bounded contexts so a run that hits its bound still shuts its
	// processes down and reads what it needs for the verdict.
	runCtx, cancel := context.WithTimeout(ctx, opts.Duration)
	defer cancel()
	if err := r.setup(runCtx); err != nil {
		r.teardown()
		return nil, err
	}
	defer r.teardown()

	r.drive(runCtx)

	finalCtx, finalCancel := context.WithTimeout(context.WithoutCancel(ctx), finalTimeout)
	defer finalCancel()
	r.shutdown()
	r.verdict(finalCtx)
	return r.res, nil
}

func (r *run) setup(ctx context.Context) error {
	o := r.opts
	r.logf("seed %d, %d records, %d sidecars, fault window %v, logs in %s", o.Seed, o.Records, o.Sidecars, o.FaultWindow, o.Dir)
	var err error
	if r.app, err = StartApp(o.Seed); err != nil {
		return err
	}
	if r.redis, err = StartRedis(ctx, o.RedisServer, o.Dir); err != nil {
		return err
	}
	if r.kafka, err = openCluster(o.Brokers, o.KafkaScript); err != nil {
		return err
	}
	tag := fmt.Sprintf("%d-%d", uint64(o.Seed)%1_000_000, time.Now().UnixNano()%1_000_000)
	r.topic, r.group = "chaos-"+tag, "chaos-group-"+tag
	r.dlqTopic = topics.DeadLetterTopic(r.topic, r.group, "")
	r.tracked = []string{r.topic}
	for n := 1; n <= len(strings.Split(retryDelays, ",")); n++ {
		r.tracked = append(r.tracked, topics.RetryTopic(r.topic, r.group, n))
	}
	if err := r.kafka.createTopic(ctx, r.topic, Partitions); err != nil {
		return err
	}
	r.ids = make([]string, o.Records)
	for i := range r.ids {
		id := fmt.Sprintf("id-%07d", i)
		r.ids[i] = id
		if ClassOf(o.Seed, id) != Normal {
			r.res.ExpectedDeadLetters++
		}
	}
	r.logf("topic %s, group %s, %d dead letters expected", r.topic, r.group, r.res.ExpectedDeadLetters)

	for i := 1; i <= o.Sidecars; i++ {
		env := []string{
			"SIDECAR_KAFKA_BROKERS=" + strings.Join(r.kafka.seeds, ","),
			"SIDECAR_KAFKA_TOPICS=" + r.topic,
			"SIDECAR_KAFKA_GROUP=" + r.group,
			"SIDECAR_KAFKA_SESSION_TIMEOUT=6s",
			"SIDECAR_APP_URL=" + r.app.URL(),
			"SIDECAR_APP_TIMEOUT=5s",
			"SIDECAR_APP_BACKOFF_MAX=1s",
			"SIDECAR_ID_HEADER=" + IDHeader,
			"SIDECAR_REDIS_URL=" + r.redis.URL(),
			"SIDECAR_DEDUP_LEASE_MARGIN=2s",
			"SIDECAR_RETRY_ATTEMPTS_IN_PLACE=2",
			"SIDECAR_RETRY_DELAYS=" + retryDelays,
			"SIDECAR_RETRY_BACKOFF=20ms",
			"SIDECAR_RETRY_BACKOFF_MAX=100ms",
			"SIDECAR_COMMIT_INTERVAL=200ms",
			"SIDECAR_REVOKE_TIMEOUT=5s",
			"SIDECAR_SHUTDOWN_TIMEOUT=" + sidecarShutdownTimeout.String(),
			"SIDECAR_LOG_LEVEL=info",
			"SIDECAR_LOG_FORMAT=json",
		}
		env = append(env, o.Env...)
		// All but the last member are static, so both hand-over paths (a static member reclaiming its
		// partitions, a dynamic one being replaced through a rebalance) meet the faults.
		if i < o.Sidecars || o.Sidecars == 1 {
			env = append(env, fmt.Sprintf("SIDECAR_KAFKA_INSTANCE_ID=chaos-%d", i))
		}
		sc, err := newSidecar(fmt.Sprintf("sidecar-%d", i), o.Binary, o.Dir, env)
		if err != nil {
			return err
		}
		r.sidecars = append(r.sidecars, sc)
		if err := sc.Start(ctx); err != nil {
			return err
		}
		r.logf("%s ready on %s", sc.name, sc.admin)
	}
	// The first sidecar has provisioned the dead-letter topic by now.
	if r.dlq, err = newDLQReader(r.kafka.seeds, r.dlqTopic); err != nil {
		return err
	}
	return nil
}

// drive produces the records, causes the faults and waits until the work is complete or ctx ends.
func (r *run) drive(ctx context.Context) {
	readCtx, stopReading := context.WithCancel(context.WithoutCancel(ctx))
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		r.dlq.run(readCtx)
	}()
	var once sync.Once
	r.stopReader = func() { once.Do(func() { stopReading(); <-readerDone }) }

	produced := make(chan error, 1)
	go func() { produced <- produce(ctx, r.kafka.seeds, r.topic, IDHeader, r.ids, r.opts.FaultWindow) }()
	faultsDone := make(chan struct{})
	go func() {
		defer close(faultsDone)
		r.faults(ctx)
	}()

	var produceErr error
	produceDone := false
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	lastReport := time.Now()
	for {
		select {
		case produceErr = <-produced:
			produceDone = true
			if produceErr != nil {
				r.res.Problems = append(r.res.Problems, produceErr.Error())
			} else {
				r.logf("all %d records produced", len(r.ids))
			}
		case <-tick.C:
		case <-ctx.Done():
			<-faultsDone
			r.res.Problems = append(r.res.Problems, fmt.Sprintf("timed out after %v: %s", r.opts.Duration, r.pending(context.WithoutCancel(ctx))))
			return
		}
		if produceErr != nil {
			<-faultsDone
			return
		}
		faultsOver := false
		select {
		case <-faultsDone:
			faultsOver = true
		default:
		}
		if time.Since(lastReport) >= 5*time.Second {
			lastReport = time.Now()
			r.logf("status: %s", r.pending(ctx))
		}
		if produceDone && faultsOver && r.complete(ctx) {
			r.logf("complete: %s", r.pending(ctx))
			return
		}
	}
}

// complete reports whether every normal ID got a 2xx, every refused ID is in the dead-letter topic and the
// committed offsets reach the end of the source and retry topics.
func (r *run) complete(ctx context.Context) bool {
	delivered := r.app.Delivered()
	dead, _ := r.dlq.snapshot()
	for _, id := range r.ids {
		if ClassOf(r.opts.Seed, id) == Normal {
			if delivered[id] == 0 {
				return false
			}
		} else if dead[id] == 0 {
			return false
		}
	}
	behind, err := r.kafka.behind(ctx, r.group, r.tracked)
	return err == nil && len(behind) == 0
}

// pending describes how far the run is, for status lines and the time-out message.
func (r *run) pending(ctx context.Context) string {
	delivered := r.app.Delivered()
	dead, _ := r.dlq.snapshot()
	var undelivered, undead int
	for _, id := range r.ids {
		if ClassOf(r.opts.Seed, id) == Normal {
			if delivered[id] == 0 {
				undelivered++
			}
		} else if dead[id] == 0 {
			undead++
		}
	}
	bctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	behind, err := r.kafka.behind(bctx, r.group, r.tracked)
	offsets := fmt.Sprintf("%d partitions behind", len(behind))
	if err != nil {
		offsets = "offsets unknown: " + err.Error()
	} else if len(behind) > 0 {
		offsets += " (" + sample(behind) + ")"
	}
	return fmt.Sprintf("delivered %d, %d normal IDs without a 2xx, %d dead letters of %d missing, %s",
		len(delivered), undelivered, undead, r.res.ExpectedDeadLetters, offsets)
}
