package httpapp

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/textproto"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/kafka-sidecar/kafka-sidecar/handler"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Reference rules for header validity, written independently of the production ones (RFC 9110 5.1 and 5.5).
var (
	refToken = regexp.MustCompile("^[!#$%&'*+\\-.^_`|~0-9A-Za-z]+$")
	refValue = regexp.MustCompile(`^[^\x00-\x08\x0a-\x1f\x7f]*$`)
)

func refValid(name string, value []byte) bool {
	return refToken.MatchString(name) && refValue.Match(value)
}

// FuzzAppendRequest checks that whatever the record holds, the request encoded is valid HTTP: parsed back, it
// is exactly one request that carries exactly the expected headers, the ID, key and value survive, and nothing
// else (such as a header injected through a CRLF in a value) appears.
func FuzzAppendRequest(f *testing.F) {
	f.Add("orders/0/1", "orders", []byte("customer-7"), false, "tenant", []byte("acme"), "content-type", []byte("application/json"), []byte(`{"a":1}`))
	f.Add("id\r\nX: y", "orders", []byte{0, 0xff}, false, "bad name", []byte("v"), "ok", []byte("line\r\nInjected: yes"), []byte{})
	f.Add("", "a b/c?d#e", []byte(" padded "), false, "traceparent", []byte("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"), "tracestate", []byte("k=v"), []byte("x"))
	f.Add("ü", "t\x00", []byte(nil), true, "", []byte(nil), "Content-Type", []byte("\x01"), []byte("x"))
	f.Add("\xff\xfe", "\tt ", []byte("\x7f"), false, "dup", []byte(" \ta\t "), "DUP", []byte("b"), []byte("x"))
	f.Add("k", "t", []byte("k"), false, "x:y", []byte("é"), "a\x00", []byte("v"), []byte("x"))

	h, err := New(Options{URL: "http://127.0.0.1:8080/in/{topic}"})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, id, topic string, key []byte, nilKey bool, n1 string, v1 []byte, n2 string, v2 []byte, value []byte) {
		if nilKey {
			key = nil
		} else if key == nil {
			key = []byte{}
		}
		d := &handler.Delivery{
			ID: id, Topic: topic, Partition: 5, Offset: -1, Timestamp: time.UnixMilli(-1), Key: key, Value: value, Attempt: 3,
			Headers: []kgo.RecordHeader{{Key: n1, Value: v1}, {Key: n2, Value: v2}},
		}
		var out outgoing
		b, err := h.appendRequest(nil, d, &out)
		if err != nil {
			if refValue.MatchString(topic) {
				t.Fatalf("appendRequest refused a valid topic %q: %v", topic, err)
			}
			return
		}
		if len(out.body) > 0 && len(out.head) != len(b) {
			t.Fatalf("the head is %d bytes, but %d were encoded", len(out.head), len(b))
		}
		wire := append(slices.Clip(out.head), out.body...)
		br := bufio.NewReader(bytes.NewReader(wire))
		got, err := http.ReadRequest(br)
		if err != nil {
			t.Fatalf("the request does not parse back: %v\n%q", err, wire)
		}
		body, err := io.ReadAll(got.Body)
		if err != nil || !bytes.Equal(body, value) {
			t.Fatalf("body = %q (%v), want %q", body, err, value)
		}
		if rest, _ := io.ReadAll(br); len(rest) > 0 {
			t.Fatalf("%d bytes follow the request: %q", len(rest), rest)
		}
		if got.Method != http.MethodPost || got.URL.Path != "/in/"+topic || got.Proto != "HTTP/1.1" {
			t.Fatalf("request line = %s %q %s, want POST %q HTTP/1.1", got.Method, got.URL.Path, got.Proto, "/in/"+topic)
		}
		if got.Host != "127.0.0.1:8080" {
			t.Fatalf("Host = %q, want 127.0.0.1:8080", got.Host)
		}

		want := http.Header{}
		add := func(k, v string) {
			want[textproto.CanonicalMIMEHeaderKey(k)] = append(want[textproto.CanonicalMIMEHeaderKey(k)], strings.Trim(v, " \t"))
		}
		add("User-Agent", userAgent)
		add("Content-Length", strconv.Itoa(len(value)))
		ct := defaultContentType
		var tp, ts []byte
		tpOK, tsOK := false, false
		for _, rh := range d.Headers {
			switch {
			case strings.EqualFold(rh.Key, "content-type") && len(rh.Value) > 0 && refValue.Match(rh.Value):
				ct = string(rh.Value)
			case strings.EqualFold(rh.Key, "traceparent"):
				tp, tpOK = rh.Value, refValue.Match(rh.Value)
			case strings.EqualFold(rh.Key, "tracestate"):
				ts, tsOK = rh.Value, refValue.Match(rh.Value)
			}
		}
		add("Content-Type", ct)
		if plainASCII(id) {
			add("Idempotency-Key", id)
		} else {
			add("Idempotency-Key", base64.StdEncoding.EncodeToString([]byte(id)))
			add("Idempotency-Key-Encoding", "base64")
		}
		add("Kafka-Topic", topic)
		add("Kafka-Partition", "5")
		add("Kafka-Offset", "-1")
		add("Kafka-Timestamp", "1969-12-31T23:59:59.999Z")
		add("Kafka-Attempt", "3")
		if key != nil {
			if plainASCII(key) {
				add("Kafka-Key", string(key))
			} else {
				add("Kafka-Key", base64.StdEncoding.EncodeToString(key))
				add("Kafka-Key-Encoding", "base64")
			}
		}
		for _, rh := range d.Headers {
			if refValid(rh.Key, rh.Value) {
				add(HeaderRecordPrefix+rh.Key, string(rh.Value))
			}
		}
		if tpOK {
			add("traceparent", string(tp))
		}
		if tsOK {
			add("tracestate", string(ts))
		}
		for k, v := range want {
			if !slices.Equal(got.Header[k], v) {
				t.Errorf("header %s = %q, want %q", k, got.Header[k], v)
			}
		}
		for k := range got.Header {
			if _, ok := want[k]; !ok {
				t.Errorf("unexpected header %s: %q", k, got.Header[k])
			}
		}
		// The encodings are lossless.
		gotID := got.Header.Get("Idempotency-Key")
		if got.Header.Get("Idempotency-Key-Encoding") == "base64" {
			raw, err := base64.StdEncoding.DecodeString(gotID)
			if err != nil {
				t.Fatalf("Idempotency-Key %q is not base64: %v", gotID, err)
			}
			gotID = string(raw)
		}
		if gotID != id {
			t.Errorf("ID arrived as %q, want %q", gotID, id)
		}
	})
}

// FuzzBatchResponse checks that any answer to a batch, however malformed, yields one well-formed result per
// record: a known outcome, a reason exactly when it is not a success, log-safe, Retry-After within bounds.
func FuzzBatchResponse(f *testing.F) {
	f.Add(200, []byte(`{"results":[{"id":"0","status":200},{"id":"1","status":422,"error":"bad"}]}`), uint8(3), "", "", true)
	f.Add(500, []byte(`{"results":[{"id":"2","status":200,"action":"dead-letter"}]}`), uint8(5), "retry", "10", true)
	f.Add(207, []byte(`{"results":[{"id":"0","status":-1},{"id":"0","status":1000},{"id":"1","status":503}]}`), uint8(2), "", "Wed, 01 May 2024 12:01:00 GMT", true)
	f.Add(503, []byte("<html>\x00\xff</html>"), uint8(4), "dead-letter", "99999", false)
	f.Add(-7, []byte(`{"results":null}`), uint8(1), "DEAD-LETTER", "", true)
	f.Add(200, []byte(`{"results":[{"id":1}]}`), uint8(7), "", "", true)
	f.Add(0, []byte{}, uint8(0), "", "", true)
	now := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, status int, body []byte, n uint8, action, retryAfter string, complete bool) {
		ids := make([]string, n%8)
		for i := range ids {
			ids[i] = strconv.Itoa(i % 3) // some ids repeat, as a batch might
		}
		results := make([]handler.Result, len(ids))
		decodeBatchAnswer(results, ids, status, action, retryAfter, body, complete, now)
		if len(results) != len(ids) {
			t.Fatalf("%d results for %d records", len(results), len(ids))
		}
		for i, r := range results {
			if r.Outcome > handler.AppUnavailable {
				t.Errorf("record %d: unknown outcome %d", i, r.Outcome)
			}
			if r.Status != status && (r.Status < 100 || r.Status > 999) {
				t.Errorf("record %d: status %d is neither the answer's nor a valid code", i, r.Status)
			}
			if (r.Reason == "") != (r.Outcome == handler.Success) {
				t.Errorf("record %d: outcome %v with reason %q", i, r.Outcome, r.Reason)
			}
			if !utf8.ValidString(r.Reason) || strings.ContainsAny(r.Reason, "\r\n\x00") || len(r.Reason) > 300 {
				t.Errorf("record %d: reason %q is not short and log-safe", i, r.Reason)
			}
			if r.RetryAfter < 0 || r.RetryAfter > MaxRetryAfter {
				t.Errorf("record %d: RetryAfter %v out of bounds", i, r.RetryAfter)
			}
		}
	})
}

// FuzzRetryAfter checks that any Retry-After value gives a delay within [0, MaxRetryAfter], and that small
// delay-seconds are taken exactly.
func FuzzRetryAfter(f *testing.F) {
	for _, s := range []string{"", "0", "120", "300", "18446744073709551616", "-1", "1.5", " 7 ",
		"Wed, 01 May 2024 12:01:00 GMT", "Wednesday, 01-May-24 12:00:10 GMT", "Wed May  1 12:00:20 2024", "soon", "9abc"} {
		f.Add(s)
	}
	now := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, v string) {
		d := ParseRetryAfter(v, now)
		if d < 0 || d > MaxRetryAfter {
			t.Fatalf("ParseRetryAfter(%q) = %v, out of [0, %v]", v, d, MaxRetryAfter)
		}
		if secs, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && secs >= 0 && secs < 300 &&
			!strings.HasPrefix(strings.TrimSpace(v), "+") && d != time.Duration(secs)*time.Second {
			t.Fatalf("ParseRetryAfter(%q) = %v, want %ds", v, d, secs)
		}
	})
}

// FuzzEncodeBatch checks that the batch body is always valid JSON and gives back the ID, key, value and
// headers unchanged once the documented encodings are undone.
func FuzzEncodeBatch(f *testing.F) {
	f.Add("orders/0/1", []byte("k"), false, "application/json", []byte(`{"a":[1,2]}`), "tenant", []byte("acme"))
	f.Add("\xff", []byte{0, 1}, false, "application/x+json; charset=utf-8", []byte("{bad"), "\xfe", []byte("v"))
	f.Add("q\"\\\n", []byte(nil), true, "", []byte(nil), "h", []byte("\xff"))
	f.Add("é", []byte(" k"), false, "application/json", []byte(" \"\xff\" "), "Content-Type", []byte("application/json"))
	f.Fuzz(func(t *testing.T, id string, key []byte, nilKey bool, ct string, value []byte, hk string, hv []byte) {
		if nilKey {
			key = nil
		} else if key == nil {
			key = []byte{}
		}
		d := &handler.Delivery{ID: id, Topic: "orders", Key: key, Value: value, Attempt: 1, Headers: []kgo.RecordHeader{{Key: hk, Value: hv}}}
		if ct != "" {
			d.Headers = append(d.Headers, kgo.RecordHeader{Key: "content-type", Value: []byte(ct)})
		}
		body, ids := encodeBatch([]*handler.Delivery{d, d})
		if !json.Valid(body) {
			t.Fatalf("body is not valid JSON: %q", body)
		}
		var got struct {
			Records []struct {
				ID            string            `json:"id"`
				IDEncoding    string            `json:"id_encoding"`
				Key           *string           `json:"key"`
				KeyEncoding   string            `json:"key_encoding"`
				Headers       map[string]string `json:"headers"`
				Value         json.RawMessage   `json:"value"`
				ValueEncoding string            `json:"value_encoding"`
			} `json:"records"`
		}
		if err := json.Unmarshal(body, &got); err != nil || len(got.Records) != 2 {
			t.Fatalf("decoding the body: %v (%d records)", err, len(got.Records))
		}
		r := got.Records[0]
		if r.ID != ids[0] || ids[0] != ids[1] {
			t.Errorf("id sent as %q, reported as %q and %q", r.ID, ids[0], ids[1])
		}
		if decoded := decodeField(t, r.ID, r.IDEncoding); decoded != id {
			t.Errorf("id = %q, want %q", decoded, id)
		}
		switch {
		case key == nil && r.Key != nil:
			t.Errorf("key = %q, want none", *r.Key)
		case key != nil && r.Key == nil:
			t.Errorf("key missing, want %q", key)
		case key != nil && decodeField(t, *r.Key, r.KeyEncoding) != string(key):
			t.Errorf("key = %q (%s), want %q", *r.Key, r.KeyEncoding, key)
		}
		if r.ValueEncoding == EncodingBase64 {
			var s string
			if err := json.Unmarshal(r.Value, &s); err != nil || decodeField(t, s, r.ValueEncoding) != string(value) {
				t.Errorf("value = %s, want base64 of %q", r.Value, value)
			}
		} else {
			var a, b bytes.Buffer
			if json.Compact(&a, r.Value) != nil || json.Compact(&b, value) != nil || a.String() != b.String() {
				t.Errorf("value = %s, want the JSON %q", r.Value, value)
			}
		}
		if utf8.ValidString(hk) && utf8.Valid(hv) && (hk != "content-type" || ct == "") {
			if v, ok := r.Headers[hk]; !ok || v != string(hv) {
				t.Errorf("header %q = %q (%v), want %q", hk, v, ok, hv)
			}
		}
	})
}

func decodeField(t *testing.T, s, encoding string) string {
	t.Helper()
	if encoding == "" {
		return s
	}
	if encoding != EncodingBase64 {
		t.Fatalf("unknown encoding %q", encoding)
	}
	raw, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		t.Fatalf("%q is not base64: %v", s, err)
	}
	return string(raw)
}

// FuzzAppendSafe checks that a quoted body is always one line of valid UTF-8 without control characters or
// surrounding spaces, and bounded in size.
func FuzzAppendSafe(f *testing.F) {
	f.Add([]byte("boom"), uint16(256))
	f.Add([]byte("\r\n\x00\xff\xc3\u2028\u0085 x "), uint16(5))
	f.Add([]byte("ab€"), uint16(4))
	f.Fuzz(func(t *testing.T, src []byte, limit uint16) {
		out := appendSafe(nil, src, int(limit))
		if !utf8.Valid(out) {
			t.Fatalf("%q is not valid UTF-8", out)
		}
		if len(out) > int(limit) {
			t.Fatalf("%d bytes out of a limit of %d", len(out), limit)
		}
		if bytes.HasPrefix(out, []byte(" ")) || bytes.HasSuffix(out, []byte(" ")) {
			t.Fatalf("%q has surrounding spaces", out)
		}
		for _, r := range string(out) {
			if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == '\u2028' || r == '\u2029' {
				t.Fatalf("%q holds the control character %U", out, r)
			}
		}
	})
}

// FuzzParseHead holds parseHead, the fast path for common answers, to net/http's ReadResponse: whenever it
// takes a head, ReadResponse reads the same status, Kafka-Sidecar-Action, Retry-After, keep-alive and body,
// and leaves the same bytes after it; whenever it waits for more, ReadResponse fails on the bytes so far.
func FuzzParseHead(f *testing.F) {
	for _, s := range []string{
		"HTTP/1.1 204 No Content\r\nDate: Wed, 01 May 2024 12:00:00 GMT\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nokHTTP/1.1 200 OK\r\n",
		"HTTP/1.1 500 Internal Server Error\r\ncontent-length: 4\r\nConnection: close\r\n\r\nboom",
		"HTTP/1.1 503 x\r\nRetry-After: 7 \r\nretry-after: 9\r\nKafka-Sidecar-Action:\tretry\r\nContent-Length: 0\r\n\r\n",
		"HTTP/1.1 304 Not Modified\r\nContent-Length: 12\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
		"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
		"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\nx",
		"HTTP/1.1 200 OK\nContent-Length: 0\n\n",
		"HTTP/1.1 200 OK\r\nX: a\r\n b\r\nContent-Length: 0\r\n\r\n",
		"HTTP/1.1 200 OK\r\nConnection: close, te\r\nContent-Length: 0\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: +1\r\n\r\nx",
		"HTTP/1.1 200 OK\r\nX\x7f: 1\r\nContent-Length: 0\r\n\r\n",
		"HTTP/1.1 200 OK\r\nX: \x01\r\nContent-Length: 0\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
		"HTTP/1.1 200 OK\r\nContent-Len",
		"HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n",
		"HTTP/1.1 2000 OK\r\n\r\n",
		"HTTP/1.1 200 OK\r\n\r\nuntil close",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		h, state := parseHead(b)
		br := bufio.NewReader(bytes.NewReader(b))
		resp, err := http.ReadResponse(br, nil)
		if err == nil {
			defer resp.Body.Close()
		}
		switch state {
		case headOther:
			return // ReadResponse's to read, whatever it makes of it
		case headShort:
			if err == nil {
				t.Fatalf("parseHead waits for more, but ReadResponse read a head: %q", b)
			}
			return
		}
		if err != nil {
			t.Fatalf("parseHead took a head that ReadResponse rejects (%v): %q", err, b)
		}
		if resp.StatusCode != h.status || resp.Close != h.close || resp.ContentLength != h.contentLength {
			t.Fatalf("parseHead: status %d, close %v, length %d; ReadResponse: %d, %v, %d\n%q",
				h.status, h.close, h.contentLength, resp.StatusCode, resp.Close, resp.ContentLength, b)
		}
		if a, r := resp.Header.Get(HeaderAction), resp.Header.Get(HeaderRetryAfter); a != string(h.action) || r != string(h.retryAfter) {
			t.Fatalf("parseHead: action %q, retry-after %q; ReadResponse: %q, %q\n%q", h.action, h.retryAfter, a, r, b)
		}
		body, err := io.ReadAll(resp.Body)
		want := b[h.size:]
		if int64(len(want)) >= h.contentLength {
			want = want[:h.contentLength]
		} else if !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("a body cut short read with error %v, want %v", err, io.ErrUnexpectedEOF)
		}
		if !bytes.Equal(body, want) {
			t.Fatalf("body: ReadResponse read %q, parseHead's framing gives %q\n%q", body, want, b)
		}
		if rest, _ := io.ReadAll(br); !bytes.Equal(rest, b[h.size+len(body):]) {
			t.Fatalf("after the answer: ReadResponse left %q, parseHead %q", rest, b[h.size+len(body):])
		}
	})
}

// FuzzEventBatch encodes arbitrary CloudEvents (presented in binary mode, or values claimed to be structured
// JSON) as a batched-mode body. Invariants: the body is one valid JSON array with an element per record, and
// each binary-mode element holds the record's id attribute as sent.
func FuzzEventBatch(f *testing.F) {
	f.Add("1", "/s%20x", "text/plain", []byte("hi"), false)
	f.Add("%zz\xff", "\x00", "application/json", []byte(`{"a":[1,2]}`), false)
	f.Add("", "", "application/cloudevents+json", []byte(`{"id":"7","source":"/s"}`), true)
	f.Add("é", "a\"b", "", []byte{0xff, 0}, false)
	f.Fuzz(func(t *testing.T, id, source, ct string, value []byte, structured bool) {
		d := &handler.Delivery{ID: "x", Topic: "t", Value: value,
			Headers: []kgo.RecordHeader{{Key: "content-type", Value: []byte(ct)}}}
		if !structured {
			d.Extra = []handler.Header{{Name: "ce-specversion", Value: "1.0"}, {Name: "ce-id", Value: id},
				{Name: "Ce-Source", Value: source}, {Name: "ce-data", Value: "ignored"}}
		}
		body, ids, ok := encodeEventBatch([]*handler.Delivery{d, d})
		if !ok {
			if !structured {
				t.Fatal("a binary-mode delivery was not taken as a CloudEvent")
			}
			return
		}
		var arr []map[string]any
		if err := json.Unmarshal(body, &arr); err != nil || len(arr) != 2 || len(ids) != 2 {
			t.Fatalf("body %q: %v, %d elements, %d ids; want a JSON array of 2", body, err, len(arr), len(ids))
		}
		if !structured && ids[0] != decodeAttribute(id) {
			t.Fatalf("id %q taken as %q", id, ids[0])
		}
	})
}
