package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// clockTick is the unit of utime and stime in /proc/<pid>/stat (USER_HZ, 100 on every Linux ABI Go runs on).
const clockTick = 10 * time.Millisecond

// parseStatCPU returns utime+stime from the contents of /proc/<pid>/stat.
//
// The command name (field 2) is in parentheses and may itself hold spaces and parentheses, so fields are
// counted from the last ')'; utime and stime are fields 14 and 15.
func parseStatCPU(stat []byte) (time.Duration, error) {
	end := bytes.LastIndexByte(stat, ')')
	if end < 0 {
		return 0, errors.New("parsing /proc stat: no command name")
	}
	fields := strings.Fields(string(stat[end+1:]))
	// fields[0] is field 3 (state), so field n is fields[n-3].
	if len(fields) < 13 {
		return 0, fmt.Errorf("parsing /proc stat: %d fields after the command name, want at least 13", len(fields))
	}
	var total uint64
	for _, f := range fields[11:13] {
		v, err := strconv.ParseUint(f, 10, 63)
		if err != nil {
			return 0, fmt.Errorf("parsing /proc stat cpu field %q: %w", f, err)
		}
		total += v
		// 2^36 ticks of 10 ms is about 21 years; beyond that time.Duration would overflow.
		if total > 1<<36 {
			return 0, errors.New("parsing /proc stat: cpu ticks out of range")
		}
	}
	return time.Duration(total) * clockTick, nil
}

// parseStatusKB returns the value in bytes of a "Name:   123 kB" line of /proc/<pid>/status.
func parseStatusKB(status []byte, name string) (int64, error) {
	sc := bufio.NewScanner(bytes.NewReader(status))
	for sc.Scan() {
		line := sc.Text()
		rest, ok := strings.CutPrefix(line, name+":")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("parsing /proc status %s: unexpected %q", name, line)
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil || kb < 0 || kb > 1<<40 {
			return 0, fmt.Errorf("parsing /proc status %s: bad number %q", name, f[0])
		}
		return kb << 10, nil
	}
	return 0, fmt.Errorf("parsing /proc status: no %s line", name)
}

// processCPU reads the CPU time used so far by process pid.
func processCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, fmt.Errorf("reading cpu of pid %d: %w", pid, err)
	}
	return parseStatCPU(b)
}

// peakRSS reads the high-water mark of the resident set of process pid.
func peakRSS(pid int) (int64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, fmt.Errorf("reading memory of pid %d: %w", pid, err)
	}
	return parseStatusKB(b, "VmHWM")
}
