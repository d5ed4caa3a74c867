package main

import (
	"context"
	"fmt"
	"io"
)

func runDLQ(_ context.Context, args []string, _, stderr io.Writer) int {
	fmt.Fprintf(stderr, "dlq %v: not available in this build\n", args)
	return exitFatal
}
