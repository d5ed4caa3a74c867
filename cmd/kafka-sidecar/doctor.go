package main

import (
	"context"
	"flag"
	"fmt"
	"io"

	"github.com/kafka-sidecar/kafka-sidecar/sidecar"
)

func runDoctor(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("doctor", flag.ContinueOnError)
	fs.SetOutput(stderr)
	output := fs.String("output", "table", "table or json")
	if err := fs.Parse(args); err != nil {
		return exitConfig
	}
	if *output != "table" && *output != "json" {
		fmt.Fprintf(stderr, "--output: %q is not table or json\n", *output)
		return exitConfig
	}
	cfg, log, code := loadConfig(stderr)
	if cfg == nil {
		return code
	}
	report, err := sidecar.Audit(ctx, cfg, log)
	if err != nil {
		return fatal(log, stderr, "auditing", err)
	}
	if *output == "json" {
		err = report.WriteJSON(stdout)
	} else {
		err = report.WriteTable(stdout)
	}
	if err != nil {
		return fatal(log, stderr, "writing the report", err)
	}
	if report.Failed() {
		return exitFatal
	}
	return exitOK
}
