package envelope

import (
	"bytes"
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/twmb/franz-go/pkg/kgo"
)

func hdr(k, v string) kgo.RecordHeader { return kgo.RecordHeader{Key: k, Value: []byte(v)} }

// fullProvenance has every field set, at millisecond precision so it survives the wire.
func fullProvenance() Provenance {
	return Provenance{
		ID:                "orders/3/41",
		OriginalTopic:     "orders",
		OriginalPartition: 3,
		OriginalOffset:    41,
		OriginalTimestamp: time.UnixMilli(1_700_000_000_123),
		Group:             "billing",
		Attempts:          4,
		NotBefore:         time.UnixMilli(1_700_000_060_000),
		Error:             "http 500: boom",
		ErrorStatus:       500,
		FailedAt:          time.UnixMilli(1_700_000_050_456).UTC(),
	}
}

// sameProvenance compares provenances with time.Equal, since a parsed time carries its own location.
func sameProvenance(a, b Provenance) bool {
	ta := [3]time.Time{a.OriginalTimestamp, a.NotBefore, a.FailedAt}
	tb := [3]time.Time{b.OriginalTimestamp, b.NotBefore, b.FailedAt}
	for i := range ta {
		if !ta[i].Equal(tb[i]) {
			return false
		}
	}
	a.OriginalTimestamp, a.NotBefore, a.FailedAt = time.Time{}, time.Time{}, time.Time{}
	b.OriginalTimestamp, b.NotBefore, b.FailedAt = time.Time{}, time.Time{}, time.Time{}
	return a == b
}

func TestParse(t *testing.T) {
	full := []kgo.RecordHeader{
		hdr("traceparent", "00-abc-def-01"),
		hdr(HeaderID, "orders/3/41"),
		hdr(HeaderOriginalTopic, "orders"),
		hdr(HeaderOriginalPartition, "3"),
		hdr(HeaderOriginalOffset, "41"),
		hdr(HeaderOriginalTimestamp, "1700000000123"),
		hdr(HeaderGroup, "billing"),
		hdr(HeaderAttempts, "4"),
		hdr(HeaderNotBefore, "1700000060000"),
		hdr(HeaderError, "http 500: boom"),
		hdr(HeaderErrorStatus, "500"),
		hdr(HeaderFailedAt, "2023-11-14T22:14:10.456Z"),
	}
	withAttempts := func(p Provenance, n int) Provenance { p.Attempts = n; return p }

	tests := []struct {
		name    string
		headers []kgo.RecordHeader
		want    Provenance
		badHdrs []string // headers the error must name, in order
	}{
		{name: "no headers", headers: nil, want: Provenance{}},
		{name: "only foreign headers", headers: []kgo.RecordHeader{hdr("a", "1"), hdr("sidecar-unknown", "x")}, want: Provenance{}},
		{name: "every field", headers: full, want: fullProvenance()},
		{
			name:    "last duplicate wins",
			headers: append(slices.Clone(full), hdr(HeaderAttempts, "9")),
			want:    withAttempts(fullProvenance(), 9),
		},
		{
			name:    "earlier malformed duplicate is ignored",
			headers: append([]kgo.RecordHeader{hdr(HeaderAttempts, "x")}, full...),
			want:    fullProvenance(),
		},
		{
			name:    "malformed attempts keeps the other fields",
			headers: append(slices.Clone(full), hdr(HeaderAttempts, "four")),
			want:    withAttempts(fullProvenance(), 0),
			badHdrs: []string{HeaderAttempts},
		},
		{
			name:    "empty value counts as absent",
			headers: append(slices.Clone(full), hdr(HeaderAttempts, "")),
			want:    withAttempts(fullProvenance(), 0),
		},
		{
			name: "several malformed fields are all named",
			headers: []kgo.RecordHeader{
				hdr(HeaderID, "x"),
				hdr(HeaderOriginalPartition, "-1"),
				hdr(HeaderOriginalOffset, "9223372036854775808"),
				hdr(HeaderOriginalTimestamp, "soon"),
				hdr(HeaderAttempts, "-2"),
				hdr(HeaderNotBefore, "1.5"),
				hdr(HeaderErrorStatus, "42"),
				hdr(HeaderFailedAt, "yesterday"),
			},
			want: Provenance{ID: "x"},
			badHdrs: []string{
				HeaderOriginalPartition, HeaderOriginalOffset, HeaderOriginalTimestamp,
				HeaderAttempts, HeaderNotBefore, HeaderErrorStatus, HeaderFailedAt,
			},
		},
		{
			name:    "partition beyond int32",
			headers: []kgo.RecordHeader{hdr(HeaderOriginalPartition, "2147483648")},
			badHdrs: []string{HeaderOriginalPartition},
		},
		{
			name:    "status not a number",
			headers: []kgo.RecordHeader{hdr(HeaderErrorStatus, "five hundred")},
			badHdrs: []string{HeaderErrorStatus},
		},
		{
			name:    "negative timestamps are times before 1970",
			headers: []kgo.RecordHeader{hdr(HeaderOriginalTimestamp, "-1")},
			want:    Provenance{OriginalTimestamp: time.UnixMilli(-1)},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(tt.headers)
			if !sameProvenance(got, tt.want) {
				t.Errorf("Parse() = %+v, want %+v", got, tt.want)
			}
			var named []string
			if err != nil {
				var joined interface{ Unwrap() []error }
				if !errors.As(err, &joined) {
					t.Fatalf("error %v does not unwrap to a list", err)
				}
				for _, e := range joined.Unwrap() {
					var he *MalformedHeaderError
					if !errors.As(e, &he) {
						t.Fatalf("error %v is not a *MalformedHeaderError", e)
					}
					if !strings.Contains(he.Error(), he.Header) {
						t.Errorf("error %q does not name its header %q", he.Error(), he.Header)
					}
					named = append(named, he.Header)
				}
			}
			if !slices.Equal(named, tt.badHdrs) {
				t.Fatalf("error names %v, want %v (error: %v)", named, tt.badHdrs, err)
			}
		})
	}
}

func TestMalformedHeaderErrorQuotesAtMost64Bytes(t *testing.T) {
	_, err := Parse([]kgo.RecordHeader{hdr(HeaderAttempts, strings.Repeat("9x", 5000))})
	var he *MalformedHeaderError
	if !errors.As(err, &he) {
		t.Fatalf("Parse error %v is not a *MalformedHeaderError", err)
	}
	if len(he.Value) != 10000 {
		t.Fatalf("Value holds %d bytes, want the whole 10000", len(he.Value))
	}
	if msg := he.Error(); len(msg) > 200 || !errors.Is(err, strconv.ErrSyntax) {
		t.Fatalf("Error() = %q (%d bytes): want a short message wrapping strconv.ErrSyntax", msg, len(msg))
	}
}

func TestStrip(t *testing.T) {
	tests := []struct {
		name string
		in   []kgo.RecordHeader
		want []kgo.RecordHeader
	}{
		{"nil", nil, nil},
		{"only sidecar headers", []kgo.RecordHeader{hdr(HeaderID, "1"), hdr("sidecar-future", "x")}, nil},
		{"none of ours", []kgo.RecordHeader{hdr("a", "1"), hdr("b", "2")}, []kgo.RecordHeader{hdr("a", "1"), hdr("b", "2")}},
		{
			"mixed keeps order",
			[]kgo.RecordHeader{hdr("a", "1"), hdr(HeaderID, "x"), hdr("b", "2"), hdr(HeaderAttempts, "3"), hdr("a", "4")},
			[]kgo.RecordHeader{hdr("a", "1"), hdr("b", "2"), hdr("a", "4")},
		},
		{"prefix match is case-sensitive", []kgo.RecordHeader{hdr("Sidecar-Id", "1")}, []kgo.RecordHeader{hdr("Sidecar-Id", "1")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Strip(tt.in)
			if !headersEqual(got, tt.want) {
				t.Fatalf("Strip() = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestStripDoesNotAlias(t *testing.T) {
	in := make([]kgo.RecordHeader, 0, 10) // spare capacity: an aliasing append would write into it
	in = append(in, hdr("a", "1"), hdr("b", "2"))
	before := slices.Clone(in)
	out := Strip(in)
	out[0].Key = "changed"
	if out = append(out, hdr("c", "3")); len(out) != 3 {
		t.Fatalf("Strip result has %d headers after an append, want 3", len(out))
	}
	if !headersEqual(in, before) {
		t.Fatalf("input changed to %v, want %v", in, before)
	}
	if extra := in[:cap(in)][len(in)]; extra.Key != "" {
		t.Fatalf("append to Strip's result wrote %v into the input's spare capacity", extra)
	}
}

func headersEqual(a, b []kgo.RecordHeader) bool {
	return slices.EqualFunc(a, b, func(x, y kgo.RecordHeader) bool {
		return x.Key == y.Key && bytes.Equal(x.Value, y.Value)
	})
}

func TestCopy(t *testing.T) {
	src := &kgo.Record{
		Topic:     "orders.billing.retry.1",
		Partition: 7, // the retry topic's partition; the copy must use the source partition instead
		Offset:    99,
		Key:       []byte("k1"),
		Value:     []byte("payload"),
		Headers: []kgo.RecordHeader{
			hdr("traceparent", "00-abc-def-01"),
			hdr(HeaderID, "stale"),
			hdr("content-type", "application/json"),
			hdr(HeaderAttempts, "3"),
			hdr(HeaderNotBefore, "1"),
		},
	}
	before := *src
	before.Headers = slices.Clone(src.Headers)
	p := fullProvenance()

	start := time.Now()
	got := Copy(src, p, "orders.billing.retry.2")
	end := time.Now()

	if got.Topic != "orders.billing.retry.2" || got.Partition != 3 {
		t.Errorf("topic/partition = %s/%d, want orders.billing.retry.2/3", got.Topic, got.Partition)
	}
	if string(got.Key) != "k1" || string(got.Value) != "payload" {
		t.Errorf("key/value = %q/%q, want k1/payload", got.Key, got.Value)
	}
	if got.Timestamp.Before(start) || got.Timestamp.After(end) {
		t.Errorf("timestamp %v not within [%v, %v]", got.Timestamp, start, end)
	}
	wantHeaders := []kgo.RecordHeader{
		hdr("traceparent", "00-abc-def-01"),
		hdr("content-type", "application/json"),
		hdr(HeaderID, "orders/3/41"),
		hdr(HeaderOriginalTopic, "orders"),
		hdr(HeaderOriginalPartition, "3"),
		hdr(HeaderOriginalOffset, "41"),
		hdr(HeaderOriginalTimestamp, "1700000000123"),
		hdr(HeaderGroup, "billing"),
		hdr(HeaderAttempts, "4"),
		hdr(HeaderNotBefore, "1700000060000"),
		hdr(HeaderError, "http 500: boom"),
		hdr(HeaderErrorStatus, "500"),
		hdr(HeaderFailedAt, "2023-11-14T22:14:10.456Z"),
	}
	if !headersEqual(got.Headers, wantHeaders) {
		t.Errorf("headers =\n%v\nwant\n%v", got.Headers, wantHeaders)
	}
	if src.Topic != before.Topic || src.Partition != before.Partition || !headersEqual(src.Headers, before.Headers) {
		t.Errorf("Copy modified its input: %+v", src)
	}
	got.Headers[0].Key = "changed"
	if src.Headers[0].Key != "traceparent" {
		t.Errorf("copy shares its header slice with the input")
	}
}

func TestCopyHeaderValuesAreIndependent(t *testing.T) {
	got := Copy(&kgo.Record{}, fullProvenance(), "t")
	want := slices.Clone(got.Headers)
	for i := range want {
		want[i].Value = slices.Clone(want[i].Value)
	}
	for i := range got.Headers {
		if grown := append(got.Headers[i].Value, "XXXXXXXX"...); len(grown) != len(want[i].Value)+8 {
			t.Fatalf("append grew %s to %d bytes", got.Headers[i].Key, len(grown))
		}
	}
	if !headersEqual(got.Headers, want) {
		t.Fatalf("appending to one header value changed another:\n%v\nwant\n%v", got.Headers, want)
	}
}

func TestCopyOmitsZeroFields(t *testing.T) {
	got := Copy(&kgo.Record{Value: []byte("v")}, Provenance{ID: "x"}, "t")
	want := []kgo.RecordHeader{
		hdr(HeaderID, "x"),
		hdr(HeaderOriginalPartition, "0"),
		hdr(HeaderOriginalOffset, "0"),
		hdr(HeaderAttempts, "0"),
	}
	if !headersEqual(got.Headers, want) {
		t.Fatalf("headers = %v, want %v", got.Headers, want)
	}
}

func TestCopyTruncatesError(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    string // exact result, when wantLen is 0
		wantLen int    // expected byte length of a truncated result
	}{
		{name: "short kept", in: "timeout after 30s", want: "timeout after 30s"},
		{name: "exactly at the cap kept", in: strings.Repeat("a", MaxErrorLen), want: strings.Repeat("a", MaxErrorLen)},
		{name: "ascii over the cap", in: strings.Repeat("a", MaxErrorLen+1), wantLen: MaxErrorLen},
		{name: "multi-byte runes cut on a boundary", in: strings.Repeat("é", MaxErrorLen), wantLen: MaxErrorLen - 1},
		{name: "four-byte runes cut on a boundary", in: strings.Repeat("😀", MaxErrorLen), wantLen: MaxErrorLen - 1},
		{name: "invalid UTF-8 repaired", in: "bad \xff\xfe byte", want: "bad \uFFFD byte"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Parse(Copy(&kgo.Record{}, Provenance{Error: tt.in}, "t").Headers)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			got := p.Error
			if !utf8.ValidString(got) || len(got) > MaxErrorLen {
				t.Fatalf("error header %q: valid UTF-8 %v, %d bytes (cap %d)", got, utf8.ValidString(got), len(got), MaxErrorLen)
			}
			if tt.wantLen == 0 {
				if got != tt.want {
					t.Fatalf("error header = %q, want %q", got, tt.want)
				}
				return
			}
			if len(got) != tt.wantLen || !strings.HasSuffix(got, "…") {
				t.Fatalf("error header is %d bytes ending %q, want %d bytes ending with an ellipsis", len(got), got[max(0, len(got)-8):], tt.wantLen)
			}
			if !strings.HasPrefix(tt.in, strings.TrimSuffix(got, "…")) {
				t.Fatalf("truncated error is not a prefix of the original")
			}
		})
	}
}

func TestCopyParseRoundTrip(t *testing.T) {
	full := fullProvenance()
	tests := []struct {
		name string
		p    Provenance
	}{
		{"every field", full},
		{"zero", Provenance{}},
		{"source only", Provenance{ID: "a/0/0", OriginalTopic: "a", Attempts: 1}},
		{"dead letter without status", Provenance{ID: "i", Attempts: 12, Error: "timeout after 30s", FailedAt: full.FailedAt}},
		{"local time zone", Provenance{FailedAt: time.UnixMilli(1_000).In(time.FixedZone("X", 3600))}},
		{"max values", Provenance{OriginalPartition: 1<<31 - 1, OriginalOffset: 1<<63 - 1, Attempts: 1<<31 - 1, ErrorStatus: 599}},
		{"binary strings", Provenance{ID: "\x00\xff", OriginalTopic: "t\n", Group: "g=1,2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(Copy(&kgo.Record{Headers: []kgo.RecordHeader{hdr(HeaderID, "old")}}, tt.p, "t").Headers)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if !sameProvenance(got, tt.p) {
				t.Fatalf("round trip = %+v, want %+v", got, tt.p)
			}
		})
	}
}

// FuzzParse feeds Parse arbitrary headers and Copy arbitrary provenances. Invariants: Parse never panics;
// every error it returns is made of *MalformedHeaderError naming a sidecar-* header; and for a valid
// provenance (non-negative numbers, a real HTTP status or none, times in range at millisecond precision)
// Parse(Copy(p)) gives p back, with the error text as Copy truncates it.
func FuzzParse(f *testing.F) {
	f.Add("sidecar-attempts", []byte("3"), "sidecar-attempts", []byte("x"), "id", "orders", int32(3), int64(41), int64(1_700_000_000_123), "billing", 4, int64(1_700_000_060_000), "http 500: boom", 500, int64(1_700_000_050_456))
	f.Add("sidecar-failed-at", []byte("2023-11-14T22:14:10Z"), "traceparent", []byte("00"), "", "", int32(0), int64(0), int64(0), "", 0, int64(0), "", 0, int64(0))
	f.Add("sidecar-original-offset", []byte("-1"), "sidecar-error-status", []byte("99"), "\xff", "t", int32(-1), int64(-5), int64(-1), "g", -3, int64(-1), strings.Repeat("é", 400), 42, int64(-62135596800000))
	f.Add("sidecar-not-before", []byte("99999999999999999999"), "sidecar-original-partition", []byte("2147483648"), "a", "b", int32(1<<31-1), int64(1<<63-1), int64(-1<<63), "c", 1<<31-1, int64(1<<63-1), "\xff\xfe", 599, int64(253402300799999))
	f.Fuzz(func(t *testing.T, k1 string, v1 []byte, k2 string, v2 []byte,
		id, topic string, partition int32, offset, ts int64, group string, attempts int, notBefore int64,
		errText string, status int, failedAt int64) {
		// Arbitrary headers: Parse must not panic and must only report its own headers.
		_, err := Parse([]kgo.RecordHeader{{Key: k1, Value: v1}, {Key: k2, Value: v2}, {Key: k1, Value: v2}})
		if err != nil {
			var joined interface{ Unwrap() []error }
			if !errors.As(err, &joined) {
				t.Fatalf("error %v does not unwrap to a list", err)
			}
			for _, e := range joined.Unwrap() {
				var he *MalformedHeaderError
				if !errors.As(e, &he) || !strings.HasPrefix(he.Header, HeaderPrefix) {
					t.Fatalf("error %v is not a *MalformedHeaderError for a sidecar header", e)
				}
			}
		}

		// A valid provenance must round-trip through Copy and Parse.
		const maxRFC3339Millis = 253402300799999 // 9999-12-31T23:59:59.999Z
		p := Provenance{
			ID:                id,
			OriginalTopic:     topic,
			OriginalPartition: max(partition, 0),
			OriginalOffset:    max(offset, 0),
			OriginalTimestamp: time.UnixMilli(ts),
			Group:             group,
			Attempts:          max(attempts%(1<<31), 0),
			NotBefore:         time.UnixMilli(notBefore),
			Error:             errText,
			FailedAt:          time.UnixMilli(min(max(failedAt, 0), maxRFC3339Millis)),
		}
		if status >= 100 && status <= 599 {
			p.ErrorStatus = status
		}
		got, err := Parse(Copy(&kgo.Record{Headers: []kgo.RecordHeader{{Key: k1, Value: v1}}}, p, "t").Headers)
		if err != nil {
			t.Fatalf("Parse(Copy(%+v)): %v", p, err)
		}
		want := p
		want.Error = truncateError(p.Error)
		if !sameProvenance(got, want) {
			t.Fatalf("round trip = %+v, want %+v", got, want)
		}
	})
}

func benchRecord() *kgo.Record {
	return Copy(&kgo.Record{
		Key:     []byte("customer-42"),
		Value:   bytes.Repeat([]byte("x"), 512),
		Headers: []kgo.RecordHeader{hdr("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"), hdr("content-type", "application/json")},
	}, fullProvenance(), "orders.billing.retry.1")
}

func BenchmarkParse(b *testing.B) {
	headers := benchRecord().Headers
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(headers); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCopy(b *testing.B) {
	rec := benchRecord()
	p := fullProvenance()
	b.ReportAllocs()
	for b.Loop() {
		_ = Copy(rec, p, "orders.billing.retry.2")
	}
}

func BenchmarkStrip(b *testing.B) {
	headers := benchRecord().Headers
	b.ReportAllocs()
	for b.Loop() {
		_ = Strip(headers)
	}
}

func TestDeadLetter(t *testing.T) {
	failedAt := time.UnixMilli(1_700_000_000_000)
	tests := []struct {
		name         string
		p            Provenance
		wantFailedAt func(before, after time.Time, got time.Time) bool
	}{
		{
			name: "not-before dropped, failed-at kept",
			p:    Provenance{ID: "x", NotBefore: time.UnixMilli(5), FailedAt: failedAt, Error: "timeout after 30s"},
			wantFailedAt: func(_, _, got time.Time) bool {
				return got.Equal(failedAt)
			},
		},
		{
			name: "failed-at defaults to now",
			p:    Provenance{ID: "x", Error: "http 400: bad", ErrorStatus: 400},
			wantFailedAt: func(before, after, got time.Time) bool {
				// Millisecond precision on the wire.
				return !got.Before(before.Truncate(time.Millisecond)) && !got.After(after)
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := &kgo.Record{
				Topic: "orders.billing.retry.2", Partition: 1, Key: []byte("k"), Value: []byte("v"),
				Headers: []kgo.RecordHeader{
					{Key: "a", Value: []byte("1")},
					{Key: HeaderNotBefore, Value: []byte("99")},
				},
			}
			before := time.Now()
			rec := DeadLetter(src, tt.p, "orders.billing.dlq")
			after := time.Now()
			if rec.Topic != "orders.billing.dlq" || string(rec.Key) != "k" || string(rec.Value) != "v" {
				t.Fatalf("copy is %s key %q value %q", rec.Topic, rec.Key, rec.Value)
			}
			for _, h := range rec.Headers {
				if h.Key == HeaderNotBefore {
					t.Fatalf("dead letter carries %s: %q", h.Key, h.Value)
				}
			}
			got, err := Parse(rec.Headers)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if !tt.wantFailedAt(before, after, got.FailedAt) {
				t.Fatalf("failed-at %v not as expected (now was %v..%v)", got.FailedAt, before, after)
			}
			if got.Error != tt.p.Error || got.ErrorStatus != tt.p.ErrorStatus || got.ID != tt.p.ID {
				t.Fatalf("provenance %+v does not carry the failure of %+v", got, tt.p)
			}
			if own := Strip(rec.Headers); len(own) != 1 || own[0].Key != "a" {
				t.Fatalf("own headers %v, want [a]", own)
			}
		})
	}
}

func TestNotBefore(t *testing.T) {
	tests := []struct {
		name    string
		headers []kgo.RecordHeader
		want    time.Time
	}{
		{"absent", []kgo.RecordHeader{{Key: "a", Value: []byte("1")}}, time.Time{}},
		{"set", []kgo.RecordHeader{{Key: HeaderNotBefore, Value: []byte("1700000010000")}}, time.UnixMilli(1_700_000_010_000)},
		{"last wins", []kgo.RecordHeader{{Key: HeaderNotBefore, Value: []byte("5")}, {Key: HeaderNotBefore, Value: []byte("7")}}, time.UnixMilli(7)},
		{"malformed counts as now", []kgo.RecordHeader{{Key: HeaderNotBefore, Value: []byte("soon")}}, time.Time{}},
		{"negative counts as now", []kgo.RecordHeader{{Key: HeaderNotBefore, Value: []byte("-3")}}, time.Time{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := NotBefore(tt.headers); !got.Equal(tt.want) {
				t.Errorf("NotBefore = %v, want %v", got, tt.want)
			}
		})
	}
}
