package dlq

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Position locates one record on a dead-letter topic: what `--offsets P:O` names.
type Position struct {
	Partition int32
	Offset    int64
}

// String formats p as P:O, the form ParseOffsets reads.
func (p Position) String() string {
	return strconv.FormatInt(int64(p.Partition), 10) + ":" + strconv.FormatInt(p.Offset, 10)
}

// ParseOffsets reads a comma-separated list of P:O positions ("0:17,3:5"). Blanks around items are
// ignored, duplicates are kept once, and the result is sorted by partition then offset. An empty string
// is an error: a filter that names no position would select nothing, which is never what was meant.
func ParseOffsets(s string) ([]Position, error) {
	if strings.TrimSpace(s) == "" {
		return nil, errors.New("parsing offsets: empty list (want P:O[,P:O...])")
	}
	var out []Position
	for item := range strings.SplitSeq(s, ",") {
		item = strings.TrimSpace(item)
		ps, os, ok := strings.Cut(item, ":")
		if !ok {
			return nil, fmt.Errorf("parsing offsets: %q is not P:O", item)
		}
		p, err := strconv.ParseInt(strings.TrimSpace(ps), 10, 32)
		if err != nil || p < 0 {
			return nil, fmt.Errorf("parsing offsets: partition in %q is not a non-negative number", item)
		}
		o, err := strconv.ParseInt(strings.TrimSpace(os), 10, 64)
		if err != nil || o < 0 {
			return nil, fmt.Errorf("parsing offsets: offset in %q is not a non-negative number", item)
		}
		out = append(out, Position{Partition: int32(p), Offset: o})
	}
	slices.SortFunc(out, comparePositions)
	return slices.Compact(out), nil
}

func comparePositions(a, b Position) int {
	if c := cmp.Compare(a.Partition, b.Partition); c != 0 {
		return c
	}
	return cmp.Compare(a.Offset, b.Offset)
}

// ParseTime reads a --since or --until value: an RFC 3339 time ("2025-03-01T12:00:00Z"), or a duration
// back from now ("90m", "36h"). A negative duration would point into the future and is rejected, as is
// zero, which would mean "now" and select nothing useful for --since.
func ParseTime(s string, now time.Time) (time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, errors.New("parsing time: empty (want RFC 3339 or a duration such as 2h)")
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return time.Time{}, fmt.Errorf("parsing time %q: not RFC 3339 (2006-01-02T15:04:05Z) nor a duration (2h)", s)
	}
	if d <= 0 {
		return time.Time{}, fmt.Errorf("parsing time %q: a duration back from now must be positive", s)
	}
	return now.Add(-d), nil
}

// Filter selects dead-letter records; the zero Filter selects every record. Every set field must match.
type Filter struct {
	// Since and Until bound the failure time (sidecar-failed-at): Since ≤ failed-at < Until. A record
	// without a failure time never matches a time bound.
	Since, Until time.Time
	// OriginalTopic must equal the topic the record was first consumed from.
	OriginalTopic string
	// Status is the app's HTTP status of the last failure: exact ("422"), a class ("4xx", "5xx"), or
	// "none" for failures without one (timeouts, refused records).
	Status string
	// Error must be a substring of the failure reason.
	Error string
	// Key must equal the key as Entry prints it (base64 for a key that is not printable ASCII).
	Key string
	// Offsets, when not empty, are the only positions on the dead-letter topic that match.
	Offsets []Position
}

// ValidateStatus checks a --status value: a status 100-599, a class 1xx-5xx, or "none".
func ValidateStatus(s string) error {
	switch {
	case s == "" || s == "none":
		return nil
	case len(s) == 3 && s[0] >= '1' && s[0] <= '5' && strings.EqualFold(s[1:], "xx"):
		return nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 100 || n > 599 {
		return fmt.Errorf("parsing status %q: want an HTTP status (422), a class (5xx) or none", s)
	}
	return nil
}

// Match reports whether e passes every set field of f.
func (f Filter) Match(e Entry) bool {
	if !f.Since.IsZero() && (e.FailedAt.IsZero() || e.FailedAt.Before(f.Since)) {
		return false
	}
	if !f.Until.IsZero() && (e.FailedAt.IsZero() || !e.FailedAt.Before(f.Until)) {
		return false
	}
	if f.OriginalTopic != "" && e.OriginalTopic != f.OriginalTopic {
		return false
	}
	if f.Status != "" && !statusMatches(f.Status, e.Status) {
		return false
	}
	if f.Error != "" && !strings.Contains(e.Error, f.Error) {
		return false
	}
	if f.Key != "" && e.Key != f.Key {
		return false
	}
	if len(f.Offsets) > 0 {
		if !slices.Contains(f.Offsets, Position{Partition: e.DLQPartition, Offset: e.DLQOffset}) {
			return false
		}
	}
	return true
}

func statusMatches(want, got string) bool {
	switch {
	case want == "none":
		return got == ""
	case len(want) == 3 && strings.EqualFold(want[1:], "xx"):
		return len(got) == 3 && got[0] == want[0]
	}
	return want == got
}

// scanLimits narrows a scan to what Offsets can match: per partition, the highest offset named (a scan
// can stop there). It returns nil when every partition and offset may match.
func (f Filter) scanLimits() map[int32]int64 {
	if len(f.Offsets) == 0 {
		return nil
	}
	limits := make(map[int32]int64, len(f.Offsets))
	for _, p := range f.Offsets {
		limits[p.Partition] = max(limits[p.Partition], p.Offset)
	}
	return limits
}
