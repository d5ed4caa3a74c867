package sidecar

import (
	"os"
	"runtime/debug"

	"github.com/kafka-sidecar/kafka-sidecar/config"
)

// ApplyMemoryLimit sets the Go runtime's soft memory limit from the buffer caps unless GOMEMLIMIT is set: twice
// SIDECAR_MAX_BUFFERED_BYTES (records buffered and their copies in flight) plus 32 MiB for the runtime, the
// clients and their connections. The collector then works harder near the limit instead of letting the heap
// double, which keeps a sidecar's footprint predictable beside an app. It returns the limit in force.
func ApplyMemoryLimit(cfg *config.Config) int64 {
	if os.Getenv("GOMEMLIMIT") != "" {
		return debug.SetMemoryLimit(-1)
	}
	limit := 2*cfg.MaxBufferedBytes + 32<<20
	debug.SetMemoryLimit(limit)
	return limit
}
