package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// options are the command-line flags.
type options struct {
	binary        string
	records       int
	batchRecords  int
	slowKey       int
	slowPartition int
	naiveRecords  int
	concurrency   int
	keys          int
	runTimeout    time.Duration
	timeout       time.Duration
	jsonPath      string
	only          string
	strict        bool
	// profileDir, when set, receives a CPU profile of the child for each sidecar run.
	profileDir     string
	profileSeconds int
	// childEnv are extra variables for every sidecar run, after the run's own.
	childEnv []string
}

// Run names, also the values -only accepts.
const (
	runBareName      = "bare"
	runNaiveName     = "naive"
	runSingleName    = "single"
	runAvroName      = "single-avro"
	runBatchName     = "batch"
	runSlowPartition = "slow-partition"
	runSlowKey       = "slow-key"
)

var allRuns = []string{runBareName, runNaiveName, runSingleName, runAvroName, runBatchName, runSlowPartition, runSlowKey}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.binary, "binary", "", "the kafka-sidecar binary to measure (required)")
	fs.IntVar(&o.records, "records", 100000, "backlog of the per-record run (and the bare HTTP run)")
	fs.IntVar(&o.batchRecords, "batch-records", 300000, "backlog of the batch run")
	fs.IntVar(&o.slowKey, "slow-key-records", 40000, "backlog of the key-ordered run against the 20 ms app")
	fs.IntVar(&o.slowPartition, "slow-partition-records", 3000, "backlog of the partition-ordered run against the 20 ms app")
	fs.IntVar(&o.naiveRecords, "naive-records", 20000, "backlog of the naive loop")
	fs.IntVar(&o.concurrency, "concurrency", 64, "SIDECAR_MAX_IN_FLIGHT of the per-record run and the bare HTTP client's concurrency")
	fs.IntVar(&o.keys, "keys", 1000, "distinct record keys")
	fs.DurationVar(&o.runTimeout, "run-timeout", 3*time.Minute, "bound of one run")
	fs.DurationVar(&o.timeout, "timeout", 20*time.Minute, "bound of the whole tool")
	fs.StringVar(&o.jsonPath, "json", "", "also write the results as JSON to this file")
	fs.StringVar(&o.only, "only", "", "comma-separated runs to do (default all): "+strings.Join(allRuns, ","))
	fs.BoolVar(&o.strict, "strict", false, "exit 1 when a target is missed")
	fs.StringVar(&o.profileDir, "cpuprofile-dir", "", "write a CPU profile of the sidecar for each sidecar run into this directory (the profile adds a little CPU of its own)")
	fs.IntVar(&o.profileSeconds, "cpuprofile-seconds", 3, "length of each CPU profile, from the first delivery")
	fs.Func("env", "NAME=VALUE for every sidecar run, after the run's own settings (repeatable; e.g. GOGC=200 to try a setting)",
		func(v string) error {
			if name, _, ok := strings.Cut(v, "="); !ok || name == "" {
				return fmt.Errorf("%q is not NAME=VALUE", v)
			}
			o.childEnv = append(o.childEnv, v)
			return nil
		})
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	var bad []string
	if o.binary == "" {
		bad = append(bad, "-binary is required")
	}
	for name, v := range map[string]int{"-records": o.records, "-batch-records": o.batchRecords,
		"-slow-key-records": o.slowKey, "-slow-partition-records": o.slowPartition, "-naive-records": o.naiveRecords,
		"-concurrency": o.concurrency, "-keys": o.keys} {
		if v < 1 || v > 10_000_000 {
			bad = append(bad, name+" must be between 1 and 10000000")
		}
	}
	if o.profileSeconds < 1 || o.profileSeconds > 600 {
		bad = append(bad, "-cpuprofile-seconds must be between 1 and 600")
	}
	if o.runTimeout <= 0 || o.timeout <= 0 {
		bad = append(bad, "-run-timeout and -timeout must be positive")
	}
	for _, r := range o.runs() {
		if !slices.Contains(allRuns, r) {
			bad = append(bad, "-only: unknown run "+strconv.Quote(r))
		}
	}
	if len(bad) > 0 {
		slices.Sort(bad)
		return o, errors.New(strings.Join(bad, "; "))
	}
	return o, nil
}

func (o options) runs() []string {
	if o.only == "" {
		return allRuns
	}
	return strings.Split(o.only, ",")
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	o, err := parseFlags(args, stderr)
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(stderr, "bench:", err)
		}
		return 2
	}
	if _, err := os.Stat(o.binary); err != nil {
		fmt.Fprintln(stderr, "bench: checking -binary:", err)
		return 2
	}
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()

	rs, err := startRedis(ctx)
	if err != nil {
		fmt.Fprintln(stderr, "bench:", err)
		return 1
	}
	defer rs.stop()

	rep := report{Started: time.Now().UTC(), CPUs: runtime.NumCPU(), Go: runtime.Version()}
	byName := map[string]result{}
	slow := 20 * time.Millisecond
	for _, name := range o.runs() {
		if ctx.Err() != nil {
			rep.Errors = append(rep.Errors, name+": not run: "+ctx.Err().Error())
			continue
		}
		fmt.Fprintf(stderr, "bench: running %s\n", name)
		var res result
		prof := profileSpec{dir: o.profileDir, seconds: o.profileSeconds, run: name}
		withEnv := func(m mode) mode { m.env = append(m.env, o.childEnv...); return m }
		switch name {
		case runBareName:
			res, err = runBare(ctx, o.records, o.concurrency, o.runTimeout)
		case runNaiveName:
			res, err = runNaive(ctx, rs, o.naiveRecords, o.keys, o.runTimeout)
		case runSingleName:
			res, err = runSidecar(ctx, o.binary, rs, withEnv(mode{
				name: "sidecar, per record, key order", records: o.records, keys: o.keys, tail: 1000, tailRate: 1000,
				env: []string{"SIDECAR_ORDERING=key", "SIDECAR_MAX_IN_FLIGHT=" + strconv.Itoa(o.concurrency)},
			}), o.runTimeout, prof)
			res.Note = fmt.Sprintf("instant app, redis dedup, max in-flight %d", o.concurrency)
		case runAvroName:
			res, err = runSidecar(ctx, o.binary, rs, withEnv(mode{
				name: "sidecar, per record, Avro decoded", records: o.records, keys: o.keys, tail: 1000, tailRate: 1000,
				env: []string{"SIDECAR_ORDERING=key", "SIDECAR_MAX_IN_FLIGHT=" + strconv.Itoa(o.concurrency)}, avro: true,
			}), o.runTimeout, prof)
			res.Note = fmt.Sprintf("as per record, values in Avro wire format, SIDECAR_DECODE=json, max in-flight %d", o.concurrency)
		case runBatchName:
			res, err = runSidecar(ctx, o.binary, rs, withEnv(mode{
				name: "sidecar, batch of 100", records: o.batchRecords, keys: o.keys, batch: true, tail: 1000, tailRate: 1000,
				env: []string{"SIDECAR_DELIVERY=batch", "SIDECAR_BATCH_MAX_RECORDS=100", "SIDECAR_MAX_IN_FLIGHT=1000",
					"SIDECAR_ORDERING=key"},
			}), o.runTimeout, prof)
			res.Note = "instant app, redis dedup, max in-flight 1000"
		case runSlowPartition, runSlowKey:
			ordering, n := "partition", o.slowPartition
			if name == runSlowKey {
				ordering, n = "key", o.slowKey
			}
			res, err = runSidecar(ctx, o.binary, rs, withEnv(mode{
				name: "sidecar, app 20 ms, " + ordering + " order", records: n, keys: o.keys, latency: slow,
				tail: 200, tailRate: 100,
				env: []string{"SIDECAR_ORDERING=" + ordering, "SIDECAR_MAX_IN_FLIGHT=512"},
			}), o.runTimeout, prof)
			res.Note = fmt.Sprintf("%d keys, max in-flight 512", o.keys)
		}
		if err != nil {
			fmt.Fprintf(stderr, "bench: %s: %v\n", name, err)
			rep.Errors = append(rep.Errors, name+": "+firstLine(err.Error()))
			continue
		}
		byName[name] = res
		rep.Results = append(rep.Results, res)
	}
	rep.Checks = checks(byName, o.records)

	if err := writeMarkdown(stdout, rep); err != nil {
		fmt.Fprintln(stderr, "bench: writing the table:", err)
		return 1
	}
	if o.jsonPath != "" {
		if err := writeJSONFile(o.jsonPath, rep); err != nil {
			fmt.Fprintln(stderr, "bench:", err)
			return 1
		}
	}
	if len(rep.Errors) > 0 {
		return 1
	}
	if o.strict {
		for _, c := range rep.Checks {
			if !c.Pass {
				return 1
			}
		}
	}
	return 0
}

// checks turns the results into the targets; a target whose runs are missing is left out.
func checks(r map[string]result, backlog int) []check {
	var out []check
	single, okSingle := r[runSingleName]
	if bare, ok := r[runBareName]; ok && okSingle {
		out = append(out, newCheck("per record ÷ bare HTTP", single.RecordsPerSec/bare.RecordsPerSec, "×", 0.70, false))
	}
	if naive, ok := r[runNaiveName]; ok && okSingle {
		out = append(out, newCheck("per record ÷ naive", single.RecordsPerSec/naive.RecordsPerSec, "×", 5, false))
	}
	if okSingle && single.CPUMicrosPerRecord != nil {
		out = append(out, newCheck("CPU per record, per-record mode", *single.CPUMicrosPerRecord, " µs", 20, true))
	}
	if okSingle && single.PeakRSSMiB != nil {
		out = append(out, newCheck(fmt.Sprintf("peak RSS, %d-record backlog", backlog), *single.PeakRSSMiB, " MiB", 64, true))
	}
	if avro, ok := r[runAvroName]; ok && okSingle && avro.CPUMicrosPerRecord != nil && single.CPUMicrosPerRecord != nil {
		out = append(out, newCheck("CPU per record, Avro decoded ÷ not", *avro.CPUMicrosPerRecord / *single.CPUMicrosPerRecord, "×", 1.5, true))
	}
	if batch, ok := r[runBatchName]; ok && okSingle {
		out = append(out, newCheck("batch ÷ per record", batch.RecordsPerSec/single.RecordsPerSec, "×", 8, false))
	}
	sk, ok1 := r[runSlowKey]
	sp, ok2 := r[runSlowPartition]
	if ok1 && ok2 {
		out = append(out, newCheck("key ÷ partition order, app 20 ms", sk.RecordsPerSec/sp.RecordsPerSec, "×", 20, false))
	}
	return out
}

func writeJSONFile(path string, rep report) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("creating %s: %w", path, err)
	}
	if err := writeJSON(f, rep); err != nil {
		_ = f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}
