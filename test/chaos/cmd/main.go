// Command cmd runs the chaos no-loss proof against the built sidecar binary: on an in-process kfake cluster
// by default, or on the real cluster with -brokers and -kafka-script. Its last line is the summary
// `records=N sidecar_kills=K broker_kills=B redis_restarts=R lost=L duplicates=D dead_lettered=X`; it exits 1
// when anything was lost, the dead-letter set is wrong, the offsets fall short or a fault misbehaved, and 2
// on bad flags or a run that could not be set up.
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
	fs := flag.NewFlagSet("chaos", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		opts    chaos.Options
		brokers string
		quiet   bool
	)
	fs.StringVar(&opts.Binary, "binary", "", "the built kafka-sidecar (required)")
	fs.StringVar(&brokers, "brokers", "", "seed brokers of a real cluster, comma-separated; empty starts an in-process kfake cluster")
	fs.StringVar(&opts.KafkaScript, "kafka-script", "", "test/kafka/cluster.sh, to kill and restart Kafka nodes (with -brokers only)")
	fs.IntVar(&opts.Records, "records", 50000, "records to produce, each with its own message ID")
	fs.IntVar(&opts.Sidecars, "sidecars", 3, "sidecar processes in the group")
	fs.DurationVar(&opts.Duration, "duration", 8*time.Minute, "bound of the whole run")
	fs.Int64Var(&opts.Seed, "seed", 0, "seed of the app's answers and the faults (0: from the clock)")
	fs.IntVar(&opts.Rounds, "rounds", 0, "how many times each fault happens (0: 1, or 2 from 20000 records)")
	fs.DurationVar(&opts.FaultWindow, "fault-window", 0, "how long records keep arriving while faults happen (0: from -records)")
	fs.StringVar(&opts.Dir, "logs", "", "directory for the sidecar and redis-server logs (empty: a new temporary one)")
	fs.BoolVar(&quiet, "quiet", false, "print only the summary")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "unexpected arguments: %v\n", fs.Args())
		return 2
	}
	opts.Brokers = kafkatest.SplitSeeds(brokers)
	if opts.KafkaScript != "" && len(opts.Brokers) == 0 {
		fmt.Fprintln(stderr, "-kafka-script needs -brokers: the in-process cluster has no nodes to kill")
		return 2
	}
	if opts.Duration > 10*time.Minute {
		fmt.Fprintln(stderr, "-duration is at most 10m")
		return 2
	}
	if !quiet {
		opts.Progress = stderr
	}
	res, err := chaos.Run(ctx, opts)
	if err != nil {
		fmt.Fprintln(stderr, "chaos:", err)
		return 2
	}
	fmt.Fprintf(stdout, "seed=%d elapsed=%s sidecar_terms=%d dead_letter_copies=%d expected_dead_letters=%d app_requests=%d app_5xx=%d app_4xx=%d\n",
		res.Seed, res.Elapsed.Round(time.Second), res.SidecarTerms, res.DeadLetterCopies, res.ExpectedDeadLetters,
		res.App.Requests, res.App.Status5xx, res.App.Status4xx)
	failed := res.Err()
	if failed != nil {
		fmt.Fprintln(stderr, failed)
	}
	fmt.Fprintln(stdout, res.Line())
	if failed != nil {
		return 1
	}
	return 0
}
