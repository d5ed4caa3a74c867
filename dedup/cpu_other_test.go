//go:build !linux

package dedup_test

import "time"

// selfCPU is not measured off Linux; the benchmarks then leave the CPU metrics out.
func selfCPU() (time.Duration, bool) { return 0, false }

// processCPU is not measured off Linux.
func processCPU(int) (time.Duration, bool) { return 0, false }
