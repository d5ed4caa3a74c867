package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/kafka-sidecar/kafka-sidecar/config"
	"github.com/kafka-sidecar/kafka-sidecar/connect"
	"github.com/kafka-sidecar/kafka-sidecar/dedup"
	"github.com/kafka-sidecar/kafka-sidecar/dlq"
	"github.com/kafka-sidecar/kafka-sidecar/topics"
)

const dlqUsage = `Usage:
  kafka-sidecar dlq list   [filters] [--topic T] [--output table|json]
  kafka-sidecar dlq replay [filters] [--topic T] [--dry-run] [--max-replays N] [--rate N]
                           [--no-replay-marks] [--mark-ttl D] [--send-timeout D]

Both read the dead-letter topic of every configured source topic (SIDECAR_DLQ_TOPIC, else
<topic>.<group>.dlq), or only --topic, from its start to the end it has when the command starts.
They join no consumer group and commit nothing. Configuration comes from the same SIDECAR_*
variables as the sidecar (kafka-sidecar --help).

Filters (every one given must match):
  --since T            failed at or after T: RFC 3339 (2025-03-01T12:00:00Z) or a duration back from now (2h)
  --until T            failed before T (same forms)
  --original-topic S   first consumed from topic S
  --status S           app status of the last failure: 422, a class like 5xx, or none (timeouts)
  --error S            failure reason contains S
  --key S              record key, as list prints it (base64 for keys that are not printable ASCII)
  --offsets P:O,...    only these positions on the dead-letter topic

list prints one line per record (offset, failed-at, original topic/partition/offset, attempts,
status, error, key); --output json prints one JSON object per line with dlq_topic, dlq_partition,
dlq_offset, id, original_topic, original_partition, original_offset, attempts, status, error,
failed_at and key.

replay sends each chosen record back to its original topic and partition: the same key, value and
headers, its message ID in sidecar-id (so the sidecar dedups it: a message the app already accepted
is not delivered again), and sidecar-replayed-from / sidecar-replay-count. Each send waits for
the acknowledgement of all in-sync replicas; then a mark in Redis
(<SIDECAR_DEDUP_KEY_PREFIX>:<group>:replay:<dlq topic>/<partition>/<offset>) records it, so running
the same replay again sends nothing. A message replayed --max-replays times (default 1) is refused
and reported, so a record that keeps failing cannot cycle forever. Replay needs SIDECAR_DEDUP=redis
for its marks; --no-replay-marks replays without them (a rerun sends again, and only the replay
count header guards against loops).
  --dry-run            print what would be sent; send and mark nothing
  --max-replays N      replays allowed per message (default 1)
  --rate N             records per second at most (default: no limit)
  --no-replay-marks    keep no marks in Redis
  --mark-ttl D         how long marks live (default 2160h)
  --send-timeout D     give up on one record when the broker does not acknowledge it within D (default 1m)

Workflow: fix the app; list what failed (dlq list --since 24h --status 5xx); check the
selection with dlq replay --dry-run and the same filters; run dlq replay; watch
kafka_sidecar_records_total. Records that fail again are dead-lettered again and refused by the
next replay.

Exit codes: 0 done (refused records are reported, not failures), 1 fatal error, 2 bad flags or
configuration.
`

// dlqFlags holds the flags of both dlq subcommands.
type dlqFlags struct {
	topic                               string
	since, until, offsets               string
	originalTopic, status, errText, key string
	output                              string
	dryRun, noMarks                     bool
	maxReplays                          int
	rate                                float64
	markTTL, sendTimeout                time.Duration
}

func runDLQ(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, dlqUsage)
		return exitConfig
	}
	sub := args[0]
	switch sub {
	case "-h", "--help", "help":
		fmt.Fprint(stdout, dlqUsage)
		return exitOK
	case "list", "replay":
	default:
		fmt.Fprintf(stderr, "dlq: unknown subcommand %q\n\n%s", sub, dlqUsage)
		return exitConfig
	}
	fs := flag.NewFlagSet("dlq "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {}
	var fl dlqFlags
	fs.StringVar(&fl.topic, "topic", "", "dead-letter topic to read")
	fs.StringVar(&fl.since, "since", "", "failed at or after: RFC 3339 or a duration back from now")
	fs.StringVar(&fl.until, "until", "", "failed before: RFC 3339 or a duration back from now")
	fs.StringVar(&fl.originalTopic, "original-topic", "", "topic the record was first consumed from")
	fs.StringVar(&fl.status, "status", "", "app status of the last failure: 422, 5xx or none")
	fs.StringVar(&fl.errText, "error", "", "substring of the failure reason")
	fs.StringVar(&fl.key, "key", "", "record key as list prints it")
	fs.StringVar(&fl.offsets, "offsets", "", "positions on the dead-letter topic: P:O,...")
	if sub == "list" {
		fs.StringVar(&fl.output, "output", "table", "table or json")
	} else {
		fs.BoolVar(&fl.dryRun, "dry-run", false, "print what would be sent; send nothing")
		fs.IntVar(&fl.maxReplays, "max-replays", 1, "replays allowed per message")
		fs.Float64Var(&fl.rate, "rate", 0, "records per second at most (0: no limit)")
		fs.BoolVar(&fl.noMarks, "no-replay-marks", false, "keep no replay marks in Redis")
		fs.DurationVar(&fl.markTTL, "mark-ttl", dlq.DefaultMarkTTL, "how long replay marks live")
		fs.DurationVar(&fl.sendTimeout, "send-timeout", time.Minute, "per-record acknowledgement deadline")
	}
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, dlqUsage)
			return exitOK
		}
		fmt.Fprintln(stderr, "see kafka-sidecar dlq --help")
		return exitConfig
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "dlq %s: unexpected arguments %q\n", sub, fs.Args())
		return exitConfig
	}
	filter, err := fl.filter(time.Now())
	if err != nil {
		fmt.Fprintf(stderr, "dlq %s: %v\n", sub, err)
		return exitConfig
	}
	if err := fl.check(sub); err != nil {
		fmt.Fprintf(stderr, "dlq %s: %v\n", sub, err)
		return exitConfig
	}

	cfg, log, code := loadConfig(stderr)
	if cfg == nil {
		return code
	}
	defer func() { _ = log.Sync() }()
	if sub == "replay" && cfg.Dedup != config.DedupRedis && !fl.noMarks {
		fmt.Fprintf(stderr, "dlq replay: SIDECAR_DEDUP=%s: replay marks live in Redis; pass --no-replay-marks to replay without them (a rerun then sends again)\n", cfg.Dedup)
		return exitConfig
	}
	kopts, err := connect.KafkaOpts(cfg)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return exitConfig
	}
	names := dlqTopics(cfg, fl.topic)
	if sub == "list" {
		return dlqList(ctx, kopts, names, fl.topic != "", filter, fl.output, stdout, stderr, log)
	}
	return dlqReplay(ctx, cfg, kopts, names, fl.topic != "", filter, fl, stdout, stderr, log)
}

// filter builds the record filter from the flags.
func (fl *dlqFlags) filter(now time.Time) (dlq.Filter, error) {
	f := dlq.Filter{OriginalTopic: fl.originalTopic, Status: fl.status, Error: fl.errText, Key: fl.key}
	var err error
	if fl.since != "" {
		if f.Since, err = dlq.ParseTime(fl.since, now); err != nil {
			return f, fmt.Errorf("--since: %w", err)
		}
	}
	if fl.until != "" {
		if f.Until, err = dlq.ParseTime(fl.until, now); err != nil {
			return f, fmt.Errorf("--until: %w", err)
		}
	}
	if fl.offsets != "" {
		if f.Offsets, err = dlq.ParseOffsets(fl.offsets); err != nil {
			return f, fmt.Errorf("--offsets: %w", err)
		}
	}
	if err := dlq.ValidateStatus(fl.status); err != nil {
		return f, fmt.Errorf("--status: %w", err)
	}
	if !f.Since.IsZero() && !f.Until.IsZero() && !f.Since.Before(f.Until) {
		return f, errors.New("--since must be before --until")
	}
	return f, nil
}

// check validates the flags that are not filters.
func (fl *dlqFlags) check(sub string) error {
	if sub == "list" {
		if fl.output != "table" && fl.output != "json" {
			return fmt.Errorf("--output: %q is not table or json", fl.output)
		}
		return nil
	}
	switch {
	case fl.maxReplays < 1:
		return fmt.Errorf("--max-replays: %d is below 1", fl.maxReplays)
	case fl.rate < 0:
		return fmt.Errorf("--rate: %v is negative", fl.rate)
	case fl.markTTL <= 0:
		return fmt.Errorf("--mark-ttl: %v is not positive", fl.markTTL)
	case fl.sendTimeout <= 0:
		return fmt.Errorf("--send-timeout: %v is not positive", fl.sendTimeout)
	}
	return nil
}

// dlqTopics returns the dead-letter topics to read: explicit, or one per source topic (once each, since an
// override names one topic for all of them).
func dlqTopics(cfg *config.Config, explicit string) []string {
	if explicit != "" {
		return []string{explicit}
	}
	var names []string
	for _, src := range cfg.KafkaTopics {
		if t := topics.DeadLetterTopic(src, cfg.KafkaGroup, cfg.DLQTopic); !slices.Contains(names, t) {
			names = append(names, t)
		}
	}
	return names
}

// scanAll scans every topic; a missing topic that was derived (not named with --topic) is only noted,
// since nothing may have been dead-lettered from that source yet.
func scanAll(ctx context.Context, kopts []kgo.Opt, names []string, explicit bool, f dlq.Filter, stderr io.Writer,
	fn func(topic string, s dlq.Scanned) error,
) error {
	for _, t := range names {
		err := dlq.Scan(ctx, kopts, t, f, func(s dlq.Scanned) error { return fn(t, s) })
		if errors.Is(err, dlq.ErrTopicNotFound) && !explicit {
			fmt.Fprintf(stderr, "dead-letter topic %s does not exist; skipped\n", t)
			continue
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// jsonEntry is the JSON line of dlq list: the Entry fields plus the topic it was read from.
type jsonEntry struct {
	DLQTopic string `json:"dlq_topic"`
	dlq.Entry
}

func dlqList(ctx context.Context, kopts []kgo.Opt, names []string, explicit bool, f dlq.Filter, output string,
	stdout, stderr io.Writer, log *zap.Logger,
) int {
	var (
		emit  func(topic string, s dlq.Scanned) error
		flush = func() error { return nil }
	)
	if output == "json" {
		enc := json.NewEncoder(stdout)
		emit = func(topic string, s dlq.Scanned) error { return enc.Encode(jsonEntry{DLQTopic: topic, Entry: s.Entry}) }
	} else {
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "TOPIC\tOFFSET\tFAILED-AT\tORIGINAL\tATTEMPTS\tSTATUS\tERROR\tKEY")
		emit = func(topic string, s dlq.Scanned) error {
			_, err := fmt.Fprintln(tw, tableRow(topic, s.Entry))
			return err
		}
		flush = tw.Flush
	}
	err := scanAll(ctx, kopts, names, explicit, f, stderr, emit)
	if ferr := flush(); err == nil {
		err = ferr
	}
	if err != nil {
		return fatal(log, stderr, "listing dead letters", err)
	}
	return exitOK
}

// tableRow formats one entry for the table; free text is made single-line and cut so rows stay rows.
func tableRow(topic string, e dlq.Entry) string {
	failed := "-"
	if !e.FailedAt.IsZero() {
		failed = e.FailedAt.UTC().Format(time.RFC3339)
	}
	status := e.Status
	if status == "" {
		status = "-"
	}
	key := e.Key
	if e.KeyEncoding != "" {
		key = e.KeyEncoding + ":" + key
	}
	errText := e.Error
	if e.DecodeError != "" {
		errText += " [" + e.DecodeError + "]"
	}
	return strings.Join([]string{
		topic,
		dlq.Position{Partition: e.DLQPartition, Offset: e.DLQOffset}.String(),
		failed,
		fmt.Sprintf("%s/%d/%d", e.OriginalTopic, e.OriginalPartition, e.OriginalOffset),
		fmt.Sprint(e.Attempts),
		status,
		oneLine(errText, 80),
		oneLine(key, 40),
	}, "\t")
}

// oneLine replaces control characters (tabs and newlines would break the table) and cuts s to n runes.
func oneLine(s string, n int) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}

func dlqReplay(ctx context.Context, cfg *config.Config, kopts []kgo.Opt, names []string, explicit bool, f dlq.Filter,
	fl dlqFlags, stdout, stderr io.Writer, log *zap.Logger,
) int {
	opts := dlq.ReplayOptions{MaxReplays: fl.maxReplays, Rate: fl.rate, DryRun: fl.dryRun}
	if !fl.noMarks {
		rc, err := connect.Redis(cfg)
		if err != nil {
			fmt.Fprintln(stderr, connect.RedactURL(err.Error()))
			return exitConfig
		}
		defer func() { _ = rc.Close() }()
		marks, err := dedup.NewReplayMarks(rc, dedup.KeyPrefix(cfg.DedupKeyPrefix, cfg.KafkaGroup), fl.markTTL)
		if err != nil {
			fmt.Fprintln(stderr, "kafka-sidecar dlq replay: --mark-ttl:", err)
			return exitConfig
		}
		opts.Marks = marks
	}
	if !fl.dryRun {
		cl, err := kgo.NewClient(append(slices.Clip(kopts), dlq.ProducerOpts()...)...)
		if err != nil {
			return fatal(log, stderr, "creating the producer", err)
		}
		defer cl.Close()
		opts.Sender = timeoutSender{p: dlq.NewProducer(cl, log.Named("replay")), timeout: fl.sendTimeout}
	}
	r, err := dlq.NewReplayer(opts)
	if err != nil {
		return fatal(log, stderr, "replaying", err)
	}
	counts := map[dlq.Action]int{}
	err = scanAll(ctx, kopts, names, explicit, f, stderr, func(topic string, s dlq.Scanned) error {
		res, err := r.Replay(ctx, s)
		if err != nil {
			return err
		}
		counts[res.Action]++
		line := fmt.Sprintf("%-16s %s/%s -> %s/%d/%d id=%s replay=%d", res.Action, topic,
			dlq.Position{Partition: s.Entry.DLQPartition, Offset: s.Entry.DLQOffset}, s.Entry.OriginalTopic,
			s.Entry.OriginalPartition, s.Entry.OriginalOffset, s.Entry.ID, res.Count)
		if res.Reason != "" {
			line += ": " + res.Reason
		}
		_, err = fmt.Fprintln(stdout, line)
		return err
	})
	fmt.Fprintf(stdout, "sent %d, would send %d, already replayed %d, refused %d\n",
		counts[dlq.Sent], counts[dlq.WouldSend], counts[dlq.AlreadyReplayed], counts[dlq.Refused])
	if err != nil {
		return fatal(log, stderr, "replaying", err)
	}
	return exitOK
}

// timeoutSender bounds each send: Producer.Send retries until its context ends, and a command must not
// hang on a source topic that no longer exists.
type timeoutSender struct {
	p       *dlq.Producer
	timeout time.Duration
}

func (s timeoutSender) Send(ctx context.Context, rec *kgo.Record) error {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	return s.p.Send(ctx, rec)
}
