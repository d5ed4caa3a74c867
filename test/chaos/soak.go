package chaos

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kadm"
)

// Growth bounds of a soak, applied to the member that runs the whole soak and to Redis: the median of the last
// window of samples against the median of the first window after warm-up. A leak grows without end and crosses
// them in a long run; the noise of a healthy process (a collection cycle, a rebalance that moves partitions to
// it and back) stays within them.
const (
	// RSS may grow by 25 % plus 8 MiB.
	SoakRSSGrowth = 0.25
	SoakRSSSlack  = 8 << 20
	// Goroutines may grow by 20 % plus 20.
	SoakGoroutineGrowth = 0.20
	SoakGoroutineSlack  = 20
	// Open file descriptors may grow by 10.
	SoakFDSlack = 10
	// Redis memory may grow by 50 % plus 2 MiB: done marks live SIDECAR_DEDUP_TTL (SoakOptions.DedupTTL, shorter
	// than warm-up), so at a steady rate the number of keys levels off before the first window.
	SoakRedisGrowth = 0.50
	SoakRedisSlack  = 2 << 20
	// The source topic's lag at the end of production may be at most this many seconds of produce rate.
	SoakLagSeconds = 30
)

// SoakOptions shape a soak. Binary is required; every other zero value has a default.
type SoakOptions struct {
	// Binary is the built kafka-sidecar.
	Binary string
	// Brokers are the seeds of a real cluster; empty starts an in-process kfake cluster.
	Brokers []string
	// Duration is the whole soak, production and the final drain (default 30m).
	Duration time.Duration
	// Rate is the records produced per second (default 200).
	Rate int
	// Sidecars is how many sidecar processes share the group (default 2). The first runs the whole soak and is
	// the one whose growth is judged; the last is restarted every RestartEvery.
	Sidecars int
	// RestartEvery is how often the last member is restarted, by SIGTERM and SIGKILL in turn (default 3m).
	RestartEvery time.Duration
	// SampleEvery is how often resources are sampled (default 10s).
	SampleEvery time.Duration
	// Warmup is the time before the first window the growth is measured from (default 5m, at most a quarter
	// of Duration); Window is the length of the first and the last window (default 2m, at most Warmup).
	Warmup time.Duration
	Window time.Duration
	// DedupTTL is the sidecars' SIDECAR_DEDUP_TTL and SIDECAR_DEDUP_ID_TTL (default 90s, at most Warmup): longer
	// than the retry delays, short enough for Redis's key count to level off during warm-up.
	DedupTTL time.Duration
	// Seed decides the app's answers (default: the clock).
	Seed int64
	// Dir receives the logs and samples.csv; empty makes a new temporary directory, which is kept.
	Dir string
	// RedisServer is the redis-server binary; empty finds it on PATH.
	RedisServer string
	// Progress receives a line per step and per sample; nil discards them.
	Progress io.Writer
}

func (o *SoakOptions) defaults() {
	if o.Duration <= 0 {
		o.Duration = 30 * time.Minute
	}
	if o.Rate <= 0 {
		o.Rate = 200
	}
	if o.Sidecars <= 0 {
		o.Sidecars = 2
	}
	if o.RestartEvery <= 0 {
		o.RestartEvery = 3 * time.Minute
	}
	if o.SampleEvery <= 0 {
		o.SampleEvery = 10 * time.Second
	}
	if o.Warmup <= 0 {
		o.Warmup = 5 * time.Minute
	}
	o.Warmup = min(o.Warmup, o.Duration/4)
	if o.Window <= 0 {
		o.Window = 2 * time.Minute
	}
	o.Window = min(o.Window, o.Warmup)
	if o.DedupTTL <= 0 {
		o.DedupTTL = 90 * time.Second
	}
	o.DedupTTL = min(o.DedupTTL, o.Warmup)
	if o.Seed == 0 {
		o.Seed = time.Now().UnixNano()
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
}

// drainTime is the part of a soak kept for the last records to finish and the verdict.
func (o *SoakOptions) drainTime() time.Duration {
	return min(max(o.Duration/10, 30*time.Second), 2*time.Minute)
}

// Sample is one look at the soak.
type Sample struct {
	At time.Duration // since the start of production
	// Per sidecar (index as in the run), 0 for one not running at that moment.
	RSS        []int64
	Goroutines []int
	FDs        []int
	// RedisMemory is Redis's used_memory in bytes; Lag the records of the source topic not committed.
	RedisMemory int64
	Lag         int64
	// LagSeconds is the largest kafka_sidecar_consumer_lag_seconds of a source partition any sidecar reports.
	LagSeconds float64
}

// Level compares one figure at the start and at the end of a soak.
type Level struct {
	Name       string
	Warmup     float64 // median of the first window after warm-up
	End        float64 // median of the last window
	Bound      float64 // the end may be at most this
	Unit       string
	Exceeded   bool
	Unmeasured bool // no sample in a window: the soak was too short to judge
}

func (l Level) String() string {
	f := func(v float64) string {
		if l.Unit == "MiB" {
			return strconv.FormatFloat(v/(1<<20), 'f', 1, 64)
		}
		return strconv.FormatFloat(v, 'f', 0, 64)
	}
	verdict := "ok"
	switch {
	case l.Unmeasured:
		verdict = "not measured"
	case l.Exceeded:
		verdict = "EXCEEDED"
	}
	unit := ""
	if l.Unit != "" {
		unit = " " + l.Unit
	}
	return fmt.Sprintf("%s %s -> %s%s (bound %s, %s)", l.Name, f(l.Warmup), f(l.End), unit, f(l.Bound), verdict)
}

// SoakResult is what a soak observed. It passes when Err returns nil.
type SoakResult struct {
	Run      *Result // the delivery verdict: lost, duplicates, dead letters, offsets
	Samples  []Sample
	Levels   []Level
	Restarts int
	Produced int
	Elapsed  time.Duration
}

// Err returns nil for a passing soak, else one error naming every failure.
func (s *SoakResult) Err() error {
	var msgs []string
	if err := s.Run.Err(); err != nil {
		msgs = append(msgs, err.Error())
	}
	for _, l := range s.Levels {
		switch {
		case l.Exceeded:
			msgs = append(msgs, "growth beyond the bound: "+l.String())
		case l.Unmeasured:
			// A soak that cannot judge a figure must not pass as if it had.
			msgs = append(msgs, "no samples in a window (sample more often or soak longer): "+l.String())
		}
	}
	if len(msgs) == 0 {
		return nil
	}
	return errors.New("soak failed:\n  " + strings.Join(msgs, "\n  "))
}

// Summary is the soak's report, one figure per line, ending with the delivery line.
func (s *SoakResult) Summary() string {
	var b strings.Builder
	fmt.Fprintf(&b, "soak: %v, %d records produced, %d restarts of a member, %d samples\n",
		s.Elapsed.Round(time.Second), s.Produced, s.Restarts, len(s.Samples))
	for _, l := range s.Levels {
		fmt.Fprintf(&b, "  %s\n", l)
	}
	b.WriteString(s.Run.Line())
	return b.String()
}

// Soak runs the sidecar for a long time at a steady rate and watches its resources: the real binary as
// several processes in one group, a real redis-server, kfake (or the real cluster), an app answering with
// random latency and some failures (see App), and the last member restarted every RestartEvery. Every
// SampleEvery it records the RSS, goroutines and open file descriptors of each sidecar, Redis's memory and
// the source topic's lag, into samples.csv in Dir. It fails when anything is lost (the chaos verdict) or when a
// figure of the member that ran throughout, or Redis's memory, grows beyond its bound (see SoakRSSGrowth).
func Soak(ctx context.Context, opts SoakOptions) (*SoakResult, error) {
	opts.defaults()
	started := time.Now()
	window := opts.Duration - opts.drainTime()
	r := &run{
		opts: Options{
			Binary: opts.Binary, Brokers: opts.Brokers, Records: opts.Rate * int(window/time.Second),
			Sidecars: opts.Sidecars, Duration: opts.Duration + finalTimeout, Seed: opts.Seed, Dir: opts.Dir,
			RedisServer: opts.RedisServer, Progress: opts.Progress, FaultWindow: window,
			Env: []string{"SIDECAR_DEDUP_TTL=" + opts.DedupTTL.String(), "SIDECAR_DEDUP_ID_TTL=" + opts.DedupTTL.String(), "SIDECAR_LOG_LEVEL=info"},
		},
	}
	if err := r.opts.defaults(); err != nil {
		return nil, err
	}
	if r.opts.Dir == "" {
		dir, err := os.MkdirTemp("", "kafka-sidecar-soak-")
		if err != nil {
			return nil, fmt.Errorf("making the log directory: %w", err)
		}
		r.opts.Dir = dir
	}
	r.rng = rand.New(rand.NewPCG(uint64(r.opts.Seed), 0x5eed))
	r.res = &Result{Records: r.opts.Records, Seed: r.opts.Seed, Dir: r.opts.Dir}
	res := &SoakResult{Run: r.res, Produced: r.opts.Records}
	defer func() { res.Elapsed = time.Since(started); r.res.Elapsed = res.Elapsed }()

	runCtx, cancel := context.WithTimeout(ctx, r.opts.Duration)
	defer cancel()
	if err := r.setup(runCtx); err != nil {
		r.teardown()
		return nil, err
	}
	defer r.teardown()
	r.logf("soak: %d records/s for %v, %d sidecars, a restart every %v, samples every %v, warm-up %v",
		opts.Rate, window, opts.Sidecars, opts.RestartEvery, opts.SampleEvery, opts.Warmup)

	s := &soaker{run: r, opts: opts}
	s.drive(runCtx, window)
	res.Samples, res.Restarts = s.samples, s.restarts
	if s.restartErr != nil {
		r.res.Problems = append(r.res.Problems, s.restartErr.Error())
	}

	finalCtx, finalCancel := context.WithTimeout(context.WithoutCancel(ctx), finalTimeout)
	defer finalCancel()
	r.shutdown()
	r.verdict(finalCtx)
	res.Levels = levels(res.Samples, opts, window)
	if err := writeSamples(filepath.Join(r.opts.Dir, "samples.csv"), res.Samples); err != nil {
		r.res.Problems = append(r.res.Problems, err.Error())
	}
	return res, nil
}

// soaker is the state of one soak beyond the chaos run it builds on.
type soaker struct {
	run      *run
	opts     SoakOptions
	rdb      *redis.Client
	http     *http.Client
	samples  []Sample
	restarts int
	// restartErr is the restarter's failure, read once it has stopped.
	restartErr error
}

// drive produces for window while sampling and restarting, then waits for the work to complete.
func (s *soaker) drive(ctx context.Context, window time.Duration) {
	r := s.run
	s.rdb = redis.NewClient(&redis.Options{Addr: r.redis.Addr(), MaxRetries: -1, DialTimeout: time.Second, ReadTimeout: time.Second})
	defer func() { _ = s.rdb.Close() }()
	s.http = &http.Client{Timeout: 2 * time.Second}

	readCtx, stopReading := context.WithCancel(context.WithoutCancel(ctx))
	readerDone := make(chan struct{})
	go func() { defer close(readerDone); r.dlq.run(readCtx) }()
	var once sync.Once
	r.stopReader = func() { once.Do(func() { stopReading(); <-readerDone }) }

	start := time.Now()
	produced := make(chan error, 1)
	go func() { produced <- produce(ctx, r.kafka.seeds, r.topic, IDHeader, r.ids, window) }()
	var bg sync.WaitGroup
	restartCtx, stopRestarts := context.WithCancel(ctx)
	bg.Add(1)
	go func() { defer bg.Done(); s.restarter(restartCtx) }()
	sampleCtx, stopSampling := context.WithCancel(context.WithoutCancel(ctx))
	bg.Add(1)
	go func() { defer bg.Done(); s.sampler(sampleCtx, start) }()
	defer func() { stopRestarts(); stopSampling(); bg.Wait() }()

	select {
	case err := <-produced:
		if err != nil {
			r.res.Problems = append(r.res.Problems, err.Error())
			return
		}
		r.logf("all %d records produced", len(r.ids))
	case <-ctx.Done():
		r.res.Problems = append(r.res.Problems, "the soak's time ended before production did")
		return
	}
	// No restarts while the last records drain: the verdict is about the steady state, not the last fault.
	stopRestarts()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for !r.complete(ctx) {
		select {
		case <-ctx.Done():
			r.res.Problems = append(r.res.Problems, "not complete at the end of the soak: "+r.pending(context.WithoutCancel(ctx)))
			return
		case <-tick.C:
		}
	}
	r.logf("complete: %s", r.pending(ctx))
}

// restarter restarts the last member every RestartEvery, by SIGTERM and SIGKILL in turn.
func (s *soaker) restarter(ctx context.Context) {
	r := s.run
	sc := r.sidecars[len(r.sidecars)-1]
	for n := 0; ; n++ {
		if !r.sleep(ctx, s.opts.RestartEvery) {
			return
		}
		var err error
		if n%2 == 0 {
			r.logf("restart %d: SIGTERM %s", n+1, sc.name)
			err = sc.Terminate()
		} else {
			r.logf("restart %d: SIGKILL %s", n+1, sc.name)
			err = sc.Kill()
		}
		s.run.res.SidecarKills++
		if n%2 == 0 {
			s.run.res.SidecarTerms++
		}
		if err == nil {
			err = sc.Start(context.WithoutCancel(ctx))
		}
		if err != nil {
			s.restartErr = fmt.Errorf("restart %d: %w", n+1, err)
			return
		}
		s.restarts++
	}
}

// sampler takes a sample every SampleEvery until ctx ends.
func (s *soaker) sampler(ctx context.Context, start time.Time) {
	t := time.NewTicker(s.opts.SampleEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		sm := s.sample(ctx, time.Since(start))
		s.samples = append(s.samples, sm)
		var per []string
		for i := range sm.RSS {
			per = append(per, fmt.Sprintf("%s rss=%.1fMiB goroutines=%d fds=%d", s.run.sidecars[i].name,
				float64(sm.RSS[i])/(1<<20), sm.Goroutines[i], sm.FDs[i]))
		}
		s.run.logf("sample %v: %s; redis=%.1fMiB lag=%d lag_seconds=%.1f", sm.At.Round(time.Second),
			strings.Join(per, "; "), float64(sm.RedisMemory)/(1<<20), sm.Lag, sm.LagSeconds)
	}
}

func (s *soaker) sample(ctx context.Context, at time.Duration) Sample {
	sm := Sample{At: at}
	for _, sc := range s.run.sidecars {
		var rss int64
		var fds, goroutines int
		if pid := sc.PID(); pid > 0 {
			rss = procRSS(pid)
			fds = procFDs(pid)
			var lagSeconds float64
			goroutines, lagSeconds = s.scrape(ctx, sc.Admin())
			sm.LagSeconds = max(sm.LagSeconds, lagSeconds)
		}
		sm.RSS, sm.FDs, sm.Goroutines = append(sm.RSS, rss), append(sm.FDs, fds), append(sm.Goroutines, goroutines)
	}
	cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if info, err := s.rdb.InfoMap(cctx, "memory").Result(); err == nil {
		sm.RedisMemory, _ = strconv.ParseInt(info["Memory"]["used_memory"], 10, 64)
	}
	sm.Lag = s.lag(cctx)
	return sm
}

// scrape reads go_goroutines and the largest source-topic kafka_sidecar_consumer_lag_seconds from a sidecar.
func (s *soaker) scrape(ctx context.Context, admin string) (goroutines int, lagSeconds float64) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+admin+"/metrics", nil)
	if err != nil {
		return 0, 0
	}
	resp, err := s.http.Do(req)
	if err != nil {
		return 0, 0
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "go_goroutines "):
			v, _ := strconv.ParseFloat(strings.TrimPrefix(line, "go_goroutines "), 64)
			goroutines = int(v)
		case strings.HasPrefix(line, "kafka_sidecar_consumer_lag_seconds{") && strings.Contains(line, `topic="`+s.run.topic+`"`):
			f := strings.Fields(line)
			v, _ := strconv.ParseFloat(f[len(f)-1], 64)
			lagSeconds = max(lagSeconds, v)
		}
	}
	return goroutines, lagSeconds
}

// lag is the source topic's records between the group's committed offsets and the end; -1 when unknown.
func (s *soaker) lag(ctx context.Context) int64 {
	r := s.run
	ends, err := r.kafka.adm.ListEndOffsets(ctx, r.topic)
	if err != nil || ends.Error() != nil {
		return -1
	}
	committed, err := r.kafka.adm.FetchOffsets(ctx, r.group)
	if err != nil {
		return -1
	}
	var lag int64
	ends.Each(func(e kadm.ListedOffset) {
		at := int64(0)
		if o, ok := committed.Lookup(e.Topic, e.Partition); ok && o.Err == nil {
			at = o.At
		}
		lag += max(e.Offset-at, 0)
	})
	return lag
}

// levels judges the growth of the first member and of Redis between the first window after warm-up and the
// last window of production, and the source topic's lag at the end of production.
func levels(samples []Sample, o SoakOptions, production time.Duration) []Level {
	first := func(s Sample) bool { return s.At >= o.Warmup && s.At < o.Warmup+o.Window }
	last := func(s Sample) bool { return s.At >= production-o.Window && s.At <= production }
	// get returns a sample's figure and whether it was measured (a process not running has none).
	median := func(in func(Sample) bool, get func(Sample) (float64, bool)) (float64, bool) {
		var v []float64
		for _, s := range samples {
			if x, ok := get(s); ok && in(s) {
				v = append(v, x)
			}
		}
		if len(v) == 0 {
			return 0, false
		}
		slices.Sort(v)
		return v[len(v)/2], true
	}
	level := func(name, unit string, get func(Sample) (float64, bool), bound func(float64) float64) Level {
		w, ok1 := median(first, get)
		e, ok2 := median(last, get)
		l := Level{Name: name, Unit: unit, Warmup: w, End: e, Bound: bound(w), Unmeasured: !ok1 || !ok2}
		l.Exceeded = !l.Unmeasured && e > l.Bound
		return l
	}
	positive := func(v float64) (float64, bool) { return v, v > 0 }
	return []Level{
		level("sidecar-1 RSS", "MiB", func(s Sample) (float64, bool) { return positive(float64(s.RSS[0])) },
			func(w float64) float64 { return w*(1+SoakRSSGrowth) + SoakRSSSlack }),
		level("sidecar-1 goroutines", "", func(s Sample) (float64, bool) { return positive(float64(s.Goroutines[0])) },
			func(w float64) float64 { return w*(1+SoakGoroutineGrowth) + SoakGoroutineSlack }),
		level("sidecar-1 open fds", "", func(s Sample) (float64, bool) { return positive(float64(s.FDs[0])) },
			func(w float64) float64 { return w + SoakFDSlack }),
		level("redis used_memory", "MiB", func(s Sample) (float64, bool) { return positive(float64(s.RedisMemory)) },
			func(w float64) float64 { return w*(1+SoakRedisGrowth) + SoakRedisSlack }),
		level("source lag (records)", "", func(s Sample) (float64, bool) { return float64(s.Lag), s.Lag >= 0 },
			func(float64) float64 { return float64(o.Rate * SoakLagSeconds) }),
	}
}

// writeSamples writes the samples as CSV: seconds, then RSS, goroutines and fds per sidecar, Redis memory and
// lag.
func writeSamples(path string, samples []Sample) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("writing the samples: %w", err)
	}
	defer f.Close()
	w := bufio.NewWriter(f)
	if len(samples) > 0 {
		fmt.Fprint(w, "seconds")
		for i := range samples[0].RSS {
			fmt.Fprintf(w, ",rss_%d,goroutines_%d,fds_%d", i+1, i+1, i+1)
		}
		fmt.Fprintln(w, ",redis_used_memory,lag,lag_seconds")
	}
	for _, s := range samples {
		fmt.Fprintf(w, "%d", int(s.At.Seconds()))
		for i := range s.RSS {
			fmt.Fprintf(w, ",%d,%d,%d", s.RSS[i], s.Goroutines[i], s.FDs[i])
		}
		fmt.Fprintf(w, ",%d,%d,%.1f\n", s.RedisMemory, s.Lag, s.LagSeconds)
	}
	if err := w.Flush(); err != nil {
		return fmt.Errorf("writing the samples: %w", err)
	}
	return nil
}

// procRSS reads a process's resident set size from /proc (0 where there is no /proc).
func procRSS(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(rest)
			if len(f) > 0 {
				kb, _ := strconv.ParseInt(f[0], 10, 64)
				return kb << 10
			}
		}
	}
	return 0
}

// procFDs counts a process's open file descriptors from /proc (0 where there is no /proc).
func procFDs(pid int) int {
	entries, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return 0
	}
	return len(entries)
}
