// Command kafka-sidecar runs the Kafka consumer sidecar and its tools. It only wires: the work is done by the
// packages it calls.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/kafka-sidecar/kafka-sidecar/config"
	"github.com/kafka-sidecar/kafka-sidecar/demo"
	"github.com/kafka-sidecar/kafka-sidecar/sidecar"
	"go.uber.org/zap"
)

// version is stamped at build time with -ldflags "-X main.version=...".
var version = "dev"

// Exit codes of the contract.
const (
	exitOK     = 0
	exitFatal  = 1
	exitConfig = 2
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

const usage = `kafka-sidecar: a Kafka consumer sidecar that delivers every record to the app over HTTP,
suppresses duplicates through Redis, retries through retry topics and parks failures in a dead-letter topic.

Usage:
  kafka-sidecar [run]         run the sidecar (configured by the SIDECAR_* variables below)
  kafka-sidecar demo          the whole pipeline on embedded Kafka, Redis and a sample app (--help for flags)
  kafka-sidecar doctor        audit the durability settings of the cluster, topics, Redis and app
                              (--output table|json; exit 1 on any FAIL)
  kafka-sidecar dlq list      read the dead-letter topic (--help for filters)
  kafka-sidecar dlq replay    send chosen dead letters back to their source topic
  kafka-sidecar inject        add the sidecar to Kubernetes manifests by their annotations (--help)
  kafka-sidecar injector      the same as a mutating admission webhook server (--help)
  kafka-sidecar version       print the version

Exit codes: 0 clean shutdown, 1 fatal error, 2 invalid configuration.

Configuration (environment variables):
`

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cmd := "run"
	if len(args) > 0 {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "-h", "--help", "help":
		fmt.Fprint(stdout, usage)
		_ = config.WriteHelp(stdout)
		return exitOK
	case "version", "--version":
		fmt.Fprintln(stdout, version)
		return exitOK
	case "run":
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
			fmt.Fprint(stdout, usage)
			_ = config.WriteHelp(stdout)
			return exitOK
		}
		return runSidecar(ctx, stderr)
	case "demo":
		return demo.Main(ctx, args, stdout, stderr)
	case "doctor":
		return runDoctor(ctx, args, stdout, stderr)
	case "dlq":
		return runDLQ(ctx, args, stdout, stderr)
	case "inject":
		return runInject(args, os.Stdin, stdout, stderr)
	case "injector":
		return runInjector(ctx, args, stderr)
	default:
		fmt.Fprintf(stderr, "unknown command %q\n\n%s", cmd, usage)
		return exitConfig
	}
}

// loadConfig reads the environment; on failure it prints every problem and returns the exit code.
func loadConfig(stderr io.Writer) (*config.Config, *zap.Logger, int) {
	cfg, err := config.Load()
	if err != nil {
		fmt.Fprintln(stderr, err)
		var cerr *config.Error
		if errors.As(err, &cerr) {
			return nil, nil, exitConfig
		}
		return nil, nil, exitFatal
	}
	log, err := sidecar.NewLogger(cfg.LogLevel, cfg.LogFormat)
	if err != nil {
		fmt.Fprintln(stderr, "SIDECAR_LOG_LEVEL:", err)
		return nil, nil, exitConfig
	}
	return cfg, log, exitOK
}

func runSidecar(ctx context.Context, stderr io.Writer) int {
	cfg, log, code := loadConfig(stderr)
	if cfg == nil {
		return code
	}
	defer func() { _ = log.Sync() }()
	// Anything written through the standard library's log package becomes a line of this log too.
	defer zap.RedirectStdLog(log.Named("stdlog"))()
	sidecar.ApplyMemoryLimit(cfg)
	sidecar.Version = version
	s, err := sidecar.New(ctx, cfg, log)
	if err != nil {
		return fatal(log, stderr, "starting", err)
	}
	if err := s.Run(ctx); err != nil {
		return fatal(log, stderr, "running", err)
	}
	log.Info("clean shutdown: work drained, offsets committed")
	return exitOK
}

func fatal(log *zap.Logger, stderr io.Writer, what string, err error) int {
	if errors.Is(err, context.Canceled) {
		return exitOK
	}
	msg := what + ": " + err.Error()
	if errors.Is(err, sidecar.ErrAuth) {
		msg = "authentication failed: " + err.Error()
	}
	log.Error(msg)
	fmt.Fprintln(stderr, "kafka-sidecar:", msg)
	return exitFatal
}
