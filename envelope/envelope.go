package envelope

import (
	"errors"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Header names of the provenance headers on retry and dead-letter records. They are part of the
// user-facing contract.
const (
	// HeaderPrefix starts every header the sidecar owns; Strip removes every header with it.
	HeaderPrefix = "sidecar-"
	// HeaderID holds the message ID.
	HeaderID = "sidecar-id"
	// HeaderOriginalTopic holds the topic the record was first consumed from.
	HeaderOriginalTopic = "sidecar-original-topic"
	// HeaderOriginalPartition holds the partition the record was first consumed from.
	HeaderOriginalPartition = "sidecar-original-partition"
	// HeaderOriginalOffset holds the offset the record had on its source topic.
	HeaderOriginalOffset = "sidecar-original-offset"
	// HeaderOriginalTimestamp holds the source record's timestamp in Unix milliseconds.
	HeaderOriginalTimestamp = "sidecar-original-timestamp"
	// HeaderGroup holds the consumer group that made the copy.
	HeaderGroup = "sidecar-group"
	// HeaderAttempts counts delivery attempts so far, across all tiers.
	HeaderAttempts = "sidecar-attempts"
	// HeaderNotBefore holds, on retry tiers, the Unix milliseconds before which the record is not offered.
	HeaderNotBefore = "sidecar-not-before"
	// HeaderError holds a short reason for the last failure.
	HeaderError = "sidecar-error"
	// HeaderErrorStatus holds the app's HTTP status for the last failure, when there was one.
	HeaderErrorStatus = "sidecar-error-status"
	// HeaderFailedAt holds the time of the last failure, RFC 3339.
	HeaderFailedAt = "sidecar-failed-at"
)

// MaxErrorLen caps the sidecar-error header in bytes: enough for a status line and the start of a response
// body, small enough that a chatty app cannot bloat every retry and dead-letter record.
const MaxErrorLen = 512

// failedAtLayout is RFC 3339 with fixed milliseconds: precise enough to order failures, and it sorts as text.
const failedAtLayout = "2006-01-02T15:04:05.000Z07:00"

// Provenance is a record's history as carried in its sidecar-* headers: where it was first consumed and
// what happened to it since. The zero value describes a record fresh from its source topic.
type Provenance struct {
	// ID is the message ID, the same on every tier.
	ID string
	// OriginalTopic, OriginalPartition and OriginalOffset locate the record as first consumed.
	OriginalTopic     string
	OriginalPartition int32
	OriginalOffset    int64
	// OriginalTimestamp is the source record's timestamp (millisecond precision on the wire).
	OriginalTimestamp time.Time
	// Group is the consumer group that copied the record.
	Group string
	// Attempts counts delivery attempts so far, across all tiers.
	Attempts int
	// NotBefore is when a retry-tier record may be offered again (millisecond precision); zero elsewhere.
	NotBefore time.Time
	// Error is a short reason for the last failure, at most MaxErrorLen bytes of valid UTF-8 on the wire.
	Error string
	// ErrorStatus is the app's HTTP status for the last failure, 0 when there was none (a timeout).
	ErrorStatus int
	// FailedAt is when the last failure happened (millisecond precision on the wire).
	FailedAt time.Time
}

// MalformedHeaderError reports a provenance header whose value could not be parsed. Parse returns it
// (joined with any others) next to the fields that did parse; find it with errors.As.
type MalformedHeaderError struct {
	// Header is the header's name, e.g. "sidecar-attempts".
	Header string
	// Value is the header's value as found.
	Value string
	// Err says what is wrong with it.
	Err error
}

// Error names the header and the problem, quoting at most the first 64 bytes of the value.
func (e *MalformedHeaderError) Error() string {
	v := e.Value
	if len(v) > 64 {
		v = v[:64] + "..."
	}
	return "parsing header " + e.Header + " " + strconv.Quote(v) + ": " + e.Err.Error()
}

// Unwrap returns the underlying parse error.
func (e *MalformedHeaderError) Unwrap() error { return e.Err }

var (
	errNegative = errors.New("negative value")
	errStatus   = errors.New("not an HTTP status (100-599)")
)

// Parse reads the provenance headers among headers. It is tolerant: headers it does not own are ignored,
// an empty value counts as absent, a duplicated header takes its last value (earlier ones are not looked
// at), and a malformed value leaves its field zero and adds a *MalformedHeaderError naming the header to
// the returned error — every other field is still filled in, so a damaged record can be routed and
// inspected rather than stuck. Parse never panics.
func Parse(headers []kgo.RecordHeader) (Provenance, error) {
	// One slot per header name, filled in a single pass so the last duplicate wins without a map.
	var slots [numFields][]byte
	for _, h := range headers {
		if i := fieldIndex(h.Key); i >= 0 {
			slots[i] = h.Value
		}
	}
	var (
		p    Provenance
		errs []error
	)
	bad := func(i int, err error) {
		// strconv's message repeats the value; keep only its reason (invalid syntax, out of range).
		var ne *strconv.NumError
		if errors.As(err, &ne) {
			err = ne.Err
		}
		errs = append(errs, &MalformedHeaderError{Header: fieldNames[i], Value: string(slots[i]), Err: err})
	}
	for i := range numFields {
		if len(slots[i]) == 0 {
			continue
		}
		v := string(slots[i])
		switch i {
		case fID:
			p.ID = v
		case fOriginalTopic:
			p.OriginalTopic = v
		case fGroup:
			p.Group = v
		case fError:
			p.Error = v
		case fOriginalPartition:
			n, err := parseNonNegative(v, 32)
			if err != nil {
				bad(i, err)
				continue
			}
			p.OriginalPartition = int32(n)
		case fOriginalOffset:
			n, err := parseNonNegative(v, 64)
			if err != nil {
				bad(i, err)
				continue
			}
			p.OriginalOffset = n
		case fAttempts:
			n, err := parseNonNegative(v, 32)
			if err != nil {
				bad(i, err)
				continue
			}
			p.Attempts = int(n)
		case fErrorStatus:
			n, err := strconv.Atoi(v)
			if err == nil && (n < 100 || n > 599) {
				err = errStatus
			}
			if err != nil {
				bad(i, err)
				continue
			}
			p.ErrorStatus = n
		case fOriginalTimestamp, fNotBefore:
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				bad(i, err)
				continue
			}
			if i == fOriginalTimestamp {
				p.OriginalTimestamp = time.UnixMilli(n)
			} else {
				p.NotBefore = time.UnixMilli(n)
			}
		case fFailedAt:
			t, err := time.Parse(time.RFC3339, v)
			if err != nil {
				bad(i, err)
				continue
			}
			p.FailedAt = t
		}
	}
	return p, errors.Join(errs...)
}

// Indexes of the provenance fields, in the order Copy writes them.
const (
	fID = iota
	fOriginalTopic
	fOriginalPartition
	fOriginalOffset
	fOriginalTimestamp
	fGroup
	fAttempts
	fNotBefore
	fError
	fErrorStatus
	fFailedAt
	numFields
)

var fieldNames = [numFields]string{
	fID:                HeaderID,
	fOriginalTopic:     HeaderOriginalTopic,
	fOriginalPartition: HeaderOriginalPartition,
	fOriginalOffset:    HeaderOriginalOffset,
	fOriginalTimestamp: HeaderOriginalTimestamp,
	fGroup:             HeaderGroup,
	fAttempts:          HeaderAttempts,
	fNotBefore:         HeaderNotBefore,
	fError:             HeaderError,
	fErrorStatus:       HeaderErrorStatus,
	fFailedAt:          HeaderFailedAt,
}

// fieldIndex maps a header name to its field, -1 for a header Parse does not read.
func fieldIndex(key string) int {
	if !strings.HasPrefix(key, HeaderPrefix) {
		return -1
	}
	for i, name := range fieldNames {
		if key == name {
			return i
		}
	}
	return -1
}

// parseNonNegative reads a base-10 integer of the given bit size that must not be negative.
func parseNonNegative(v string, bits int) (int64, error) {
	n, err := strconv.ParseInt(v, 10, bits)
	if err == nil && n < 0 {
		err = errNegative
	}
	return n, err
}

// NotBefore returns the time before which a retry copy may not be offered (its sidecar-not-before header, the
// last one wins), zero when it has none. A malformed value counts as zero: the record is delivered rather than
// stuck. It reads only that header, for the consumer, which asks for every record of a retry topic.
func NotBefore(headers []kgo.RecordHeader) time.Time {
	for i := len(headers) - 1; i >= 0; i-- {
		if headers[i].Key == HeaderNotBefore {
			ms, err := strconv.ParseInt(string(headers[i].Value), 10, 64)
			if err != nil || ms <= 0 {
				return time.Time{}
			}
			return time.UnixMilli(ms)
		}
	}
	return time.Time{}
}

// Strip returns headers without the sidecar-* ones: the record's own headers, in their order. The result
// is a new slice (appending to it never writes into headers); header values still share their bytes with
// the input, which records treat as read-only. It returns nil when nothing is left.
func Strip(headers []kgo.RecordHeader) []kgo.RecordHeader {
	n := 0
	for _, h := range headers {
		if !strings.HasPrefix(h.Key, HeaderPrefix) {
			n++
		}
	}
	if n == 0 {
		return nil
	}
	return appendOwn(make([]kgo.RecordHeader, 0, n), headers)
}

// appendOwn appends the headers of src that are not sidecar-* ones to dst.
func appendOwn(dst, src []kgo.RecordHeader) []kgo.RecordHeader {
	for _, h := range src {
		if !strings.HasPrefix(h.Key, HeaderPrefix) {
			dst = append(dst, h)
		}
	}
	return dst
}

// Copy builds the copy of rec for a retry or dead-letter topic: the same key and value, rec's own headers
// followed by fresh provenance headers from p (old sidecar-* headers are dropped, never duplicated), the
// given topic, the partition p.OriginalPartition (the source partition, so a partitioner that honours it
// keeps the record on the same partition number on every tier), and the current time as its timestamp.
//
// Zero times, an empty ID, topic, group or error, and a zero status are left out rather than written
// empty. p.Error is made valid UTF-8 and cut to MaxErrorLen bytes. rec is not modified and shares no
// header slice with the copy.
func Copy(rec *kgo.Record, p Provenance, topic string) *kgo.Record {
	headers := appendOwn(make([]kgo.RecordHeader, 0, len(rec.Headers)+numFields), rec.Headers)

	errText := truncateError(p.Error)
	// All values share one buffer: one allocation instead of one per header. Each value is capped at its
	// own length (three-index slice), so an append to one header's value can never overwrite the next.
	buf := make([]byte, 0, len(p.ID)+len(p.OriginalTopic)+len(p.Group)+len(errText)+len(failedAtLayout)+80)
	add := func(k string, start int) {
		headers = append(headers, kgo.RecordHeader{Key: k, Value: buf[start:len(buf):len(buf)]})
	}
	addString := func(k, v string) {
		if v != "" {
			start := len(buf)
			buf = append(buf, v...)
			add(k, start)
		}
	}
	addInt := func(k string, n int64) {
		start := len(buf)
		buf = strconv.AppendInt(buf, n, 10)
		add(k, start)
	}
	addMillis := func(k string, t time.Time) {
		if !t.IsZero() {
			addInt(k, t.UnixMilli())
		}
	}
	addString(HeaderID, p.ID)
	addString(HeaderOriginalTopic, p.OriginalTopic)
	addInt(HeaderOriginalPartition, int64(p.OriginalPartition))
	addInt(HeaderOriginalOffset, p.OriginalOffset)
	addMillis(HeaderOriginalTimestamp, p.OriginalTimestamp)
	addString(HeaderGroup, p.Group)
	addInt(HeaderAttempts, int64(p.Attempts))
	addMillis(HeaderNotBefore, p.NotBefore)
	addString(HeaderError, errText)
	if p.ErrorStatus != 0 {
		addInt(HeaderErrorStatus, int64(p.ErrorStatus))
	}
	if !p.FailedAt.IsZero() {
		start := len(buf)
		buf = p.FailedAt.UTC().AppendFormat(buf, failedAtLayout)
		add(HeaderFailedAt, start)
	}
	return &kgo.Record{
		Key:       rec.Key,
		Value:     rec.Value,
		Headers:   headers,
		Topic:     topic,
		Partition: p.OriginalPartition,
		Timestamp: time.Now(),
	}
}

// DeadLetter builds the dead-letter copy of rec for topic: Copy with p, minus the not-before time
// (a dead letter is not offered again on its own). p should carry the failure (Error, ErrorStatus when
// the app answered, Attempts); FailedAt is set to now when p leaves it zero.
func DeadLetter(rec *kgo.Record, p Provenance, topic string) *kgo.Record {
	p.NotBefore = time.Time{}
	if p.FailedAt.IsZero() {
		p.FailedAt = time.Now()
	}
	return Copy(rec, p, topic)
}

// truncateError makes s valid UTF-8 and at most MaxErrorLen bytes, cutting on a rune boundary and marking
// the cut with an ellipsis so a reader knows the reason goes on.
func truncateError(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= MaxErrorLen {
		return s
	}
	const ellipsis = "…"
	cut := MaxErrorLen - len(ellipsis)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + ellipsis
}
