package main

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// topic is the source topic of every run.
const topic = "orders"

// mode is one configuration of the sidecar under test.
type mode struct {
	name    string
	records int
	keys    int
	// latency is how long the app takes per record.
	latency time.Duration
	batch   bool
	env     []string
	// tail records are produced at tailRate per second after the backlog is done, for the latency figures.
	tail, tailRate int
	// avro writes the values in Confluent wire format against a registry the run starts, and has the sidecar
	// decode them (SIDECAR_DECODE=json).
	avro bool
}

// env is the configuration the child gets: only the variables the run names (and -env adds), so the caller's
// environment cannot change a figure.
func (m mode) childEnv(brokers []string, redisURL, appURL string) []string {
	env := []string{
		"SIDECAR_KAFKA_BROKERS=" + strings.Join(brokers, ","),
		"SIDECAR_KAFKA_TOPICS=" + topic,
		"SIDECAR_KAFKA_GROUP=bench",
		"SIDECAR_REDIS_URL=" + redisURL,
		"SIDECAR_APP_URL=" + appURL,
		"SIDECAR_ADMIN_ADDR=127.0.0.1:0",
		"SIDECAR_SHUTDOWN_TIMEOUT=10s",
		"SIDECAR_LOG_LEVEL=warn",
	}
	return append(env, m.env...)
}

// tailWriter keeps the last bytes written to it, for the error message when the child fails.
type tailWriter struct {
	mu  sync.Mutex
	buf []byte
	max int
}

func (w *tailWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	if len(w.buf) > w.max {
		w.buf = append(w.buf[:0], w.buf[len(w.buf)-w.max:]...)
	}
	return len(p), nil
}

func (w *tailWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return string(w.buf)
}

// runSidecar measures one mode: a fresh kfake with the backlog preloaded, a flushed Redis, a fresh app, and
// the binary as a child process.
func runSidecar(ctx context.Context, binary string, rs *redisServer, m mode, timeout time.Duration, prof profileSpec) (result, error) {
	res := result{Name: m.name, Records: m.records}
	deadline := time.Now().Add(timeout)
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()

	cluster, err := startKafka(topic, 12)
	if err != nil {
		return res, err
	}
	defer cluster.Close()
	var values valueFunc
	if m.avro {
		registry := startRegistry()
		defer registry.Close()
		values = avroValue
		m.env = append(m.env, "SIDECAR_DECODE=json", "SIDECAR_SCHEMA_REGISTRY_URL="+registry.URL())
	}
	if err := preload(ctx, cluster.ListenAddrs(), topic, m.records, m.keys, values); err != nil {
		return res, err
	}
	if err := rs.flush(ctx); err != nil {
		return res, err
	}
	a, err := startApp(m.latency, m.batch)
	if err != nil {
		return res, err
	}
	defer a.close()

	logs := &tailWriter{max: 16 << 10}
	cmd := exec.Command(binary)
	cmd.Env = m.childEnv(cluster.ListenAddrs(), rs.url(), a.url())
	if prof.enabled() {
		addr, err := freeLoopbackAddr()
		if err != nil {
			return res, err
		}
		prof.adminAddr = addr
		// os/exec keeps the last of duplicate variables, so these override the defaults above.
		cmd.Env = append(cmd.Env, "SIDECAR_ADMIN_ADDR="+addr, "SIDECAR_PPROF=true")
	}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		return res, fmt.Errorf("starting %s: %w", binary, err)
	}
	pid := cmd.Process.Pid
	exited := make(chan struct{})
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(exited) }()
	// Whatever happens below, the child this run started does not outlive it.
	defer func() {
		select {
		case <-exited:
		default:
			_ = cmd.Process.Kill()
			<-exited
		}
	}()
	fail := func(err error) (result, error) {
		return res, fmt.Errorf("%s: %w\nsidecar output:\n%s", m.name, err, logs.String())
	}

	select {
	case <-a.first:
	case <-exited:
		return fail(fmt.Errorf("sidecar exited at start: %w", waitErr))
	case <-ctx.Done():
		return fail(errors.New("no delivery reached the app before the deadline"))
	}
	before, err := rs.sample(ctx, pid)
	if err != nil {
		return fail(err)
	}
	start := time.Now()
	profiled := prof.start(ctx)
	a.open()
	if err := a.waitRecords(int64(m.records), deadline, exited); err != nil {
		return fail(err)
	}
	after, err := rs.sample(ctx, pid)
	if err != nil {
		return fail(err)
	}
	used := after.sub(before)
	perRecord := func(d time.Duration) *float64 {
		return ptr(float64(d) / float64(time.Microsecond) / float64(m.records))
	}
	elapsed := time.Unix(0, a.lastNanos.Load()).Sub(start)
	res.Seconds = elapsed.Seconds()
	res.RecordsPerSec = float64(m.records) / elapsed.Seconds()
	res.CPUMicrosPerRecord = perRecord(used.cpu.sidecar)
	res.RedisCPUMicrosPerRecord = perRecord(used.cpu.redis)
	// This includes the few commands of the second sample itself (a connection's set-up, INFO): nothing at
	// the precision shown.
	res.RedisCommandsPerRecord = ptr(float64(used.commands) / float64(m.records))
	res.RedisBytesPerRecord = ptr(float64(used.usedMemory) / float64(m.records))
	res.BusyPercent = ptr(used.cpu.busyPercent(time.Since(start)))

	if m.tail > 0 {
		a.sampling.Store(true)
		if err := produceTail(ctx, cluster.ListenAddrs(), topic, m.tail, m.tailRate, m.keys, m.records, values); err != nil {
			return fail(err)
		}
		if err := a.waitRecords(int64(m.records+m.tail), deadline, exited); err != nil {
			return fail(fmt.Errorf("latency tail: %w", err))
		}
		lat := a.latencies()
		res.P50Ms = ptr(millis(percentile(lat, 0.50)))
		res.P99Ms = ptr(millis(percentile(lat, 0.99)))
	}

	if err := <-profiled; err != nil {
		return fail(err)
	}
	rss, err := peakRSS(pid)
	if err != nil {
		return fail(err)
	}
	res.PeakRSSMiB = ptr(float64(rss) / (1 << 20))

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return fail(fmt.Errorf("sending SIGTERM: %w", err))
	}
	select {
	case <-exited:
	case <-time.After(30 * time.Second):
		return fail(errors.New("sidecar did not exit within 30s of SIGTERM"))
	}
	if waitErr != nil {
		return fail(fmt.Errorf("sidecar did not exit cleanly on SIGTERM: %w", waitErr))
	}
	return res, nil
}
