// Command soak runs the sidecar for a long time at a steady rate and fails on lost records or on growth of its
// memory, goroutines, file descriptors or Redis's memory beyond stated bounds (see chaos.Soak). `make soak
// DURATION=30m` runs it on kfake; -brokers names a real cluster instead. It prints a line per sample and ends
// with the figures at warm-up and at the end and the delivery line
// `records=N sidecar_kills=K broker_kills=0 redis_restarts=0 lost=L duplicates=D dead_lettered=X`; it exits 1
// when the soak failed and 2 on bad flags or a soak that could not be set up.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/kafka-sidecar/kafka-sidecar/test/chaos"
	"github.com/kafka-sidecar/kafka-sidecar/test/kafkatest"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("soak", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		opts    chaos.SoakOptions
		brokers string
	)
	fs.StringVar(&opts.Binary, "binary", "", "the built kafka-sidecar (required)")
	fs.StringVar(&brokers, "brokers", "", "seed brokers of a real cluster, comma-separated; empty starts an in-process kfake cluster")
	fs.DurationVar(&opts.Duration, "duration", 30*time.Minute, "the whole soak, production and the final drain")
	fs.IntVar(&opts.Rate, "rate", 200, "records produced per second")
	fs.IntVar(&opts.Sidecars, "sidecars", 2, "sidecar processes in the group; the last is restarted, the first judged")
	fs.DurationVar(&opts.RestartEvery, "restart-every", 3*time.Minute, "how often the last member is restarted (SIGTERM and SIGKILL in turn)")
	fs.DurationVar(&opts.SampleEvery, "sample-every", 10*time.Second, "how often resources are sampled")
	fs.DurationVar(&opts.Warmup, "warmup", 5*time.Minute, "time before growth is measured (at most a quarter of -duration)")
	fs.DurationVar(&opts.Window, "window", 2*time.Minute, "length of the first and the last window whose medians are compared")
	fs.DurationVar(&opts.DedupTTL, "dedup-ttl", 90*time.Second, "the sidecars' SIDECAR_DEDUP_TTL and SIDECAR_DEDUP_ID_TTL, so Redis's keys level off (at most -warmup)")
	fs.Int64Var(&opts.Seed, "seed", 0, "seed of the app's answers (0: from the clock)")
	fs.StringVar(&opts.Dir, "logs", "", "directory for the logs and samples.csv (empty: a new temporary one)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "unexpected arguments: %v\n", fs.Args())
		return 2
	}
	if opts.Duration < time.Minute {
		fmt.Fprintln(stderr, "-duration is at least 1m")
		return 2
	}
	opts.Brokers = kafkatest.SplitSeeds(brokers)
	opts.Progress = stderr
	res, err := chaos.Soak(ctx, opts)
	if err != nil {
		fmt.Fprintln(stderr, "soak:", err)
		return 2
	}
	fmt.Fprintln(stdout, res.Summary())
	if err := res.Err(); err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	return 0
}
