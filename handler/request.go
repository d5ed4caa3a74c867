package handler

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

// timestampLayout is RFC 3339 with exactly three fractional digits; callers convert to UTC first so the zone
// prints as "Z".
const timestampLayout = "2006-01-02T15:04:05.000Z07:00"

// fixedHeaders is the most headers a request carries besides the record's own: Content-Type, Idempotency-Key
// and its encoding, topic, partition, offset, key and its encoding, timestamp, attempt, Authorization,
// traceparent and tracestate.
const fixedHeaders = 13

// errTopicName rejects a topic name that an HTTP header cannot carry.
var errTopicName = errors.New("the topic name holds control characters")

// valueBody returns a body over a record value. It is an io.NopCloser around a *bytes.Reader on purpose:
// net/http recognises that as an in-memory body and writes headers and body in one write, where any other type
// makes it flush the headers first — two writes, and two reads for the app, per delivery.
func valueBody(value []byte) io.ReadCloser { return io.NopCloser(bytes.NewReader(value)) }

// noBody is GetBody for an empty value.
func noBody() (io.ReadCloser, error) { return http.NoBody, nil }

// headerSet fills an http.Header whose value slices share one backing array, and whose value strings share one
// backing string: a request costs a few allocations in all instead of a few per header.
type headerSet struct {
	h    http.Header
	vals []string
	sb   strings.Builder
}

// set adds one value under key, which is written to the wire exactly as given.
func (s *headerSet) set(key, value string) {
	if old, ok := s.h[key]; ok {
		// A repeated record header: the shared backing array is capped per key, so append copies.
		s.h[key] = append(old, value)
		return
	}
	s.vals = append(s.vals, value)
	n := len(s.vals)
	s.h[key] = s.vals[n-1 : n : n]
}

// mark returns the position the next text written to sb starts at.
func (s *headerSet) mark() int { return s.sb.Len() }

// since returns the text written to sb after mark. The builder never rewrites bytes it has handed out, so the
// string stays valid while more is written; when the size estimate was right it is not even copied.
func (s *headerSet) since(mark int) string { return s.sb.String()[mark:] }

// textSize estimates the bytes of header text a delivery needs, so one Grow covers them.
func textSize(d *Delivery) int {
	n := 20 + 20 + 20 + len(timestampLayout) + 8 // partition, offset, attempt, timestamp, slack
	n += base64.StdEncoding.EncodedLen(len(d.ID))
	n += base64.StdEncoding.EncodedLen(len(d.Key))
	for i := range d.Headers {
		n += len(HeaderRecordPrefix) + len(d.Headers[i].Key) + len(d.Headers[i].Value)
	}
	return n
}

// buildRequest turns a delivery into the POST the contract describes. It does no URL parsing on the hot path:
// the URL for the topic comes from the template's cache. Header names and values that HTTP cannot carry are
// skipped rather than sent, so the request is always valid.
func (h *HTTP) buildRequest(ctx context.Context, d *Delivery) (*http.Request, error) {
	if !validHeaderValue(d.Topic) {
		// Kafka topic names are [a-zA-Z0-9._-], so this never happens with a real record; it keeps the
		// promise that no invalid request is ever built.
		return nil, errTopicName
	}
	u, err := h.url.forTopic(d.Topic)
	if err != nil {
		return nil, fmt.Errorf("building the app url for the topic: %w", err)
	}
	hs := headerSet{
		h:    make(http.Header, fixedHeaders+len(d.Headers)),
		vals: make([]string, 0, fixedHeaders+len(d.Headers)),
	}
	hs.sb.Grow(textSize(d))

	contentType := defaultContentType
	var traceparent, tracestate []byte
	hasTraceparent, hasTracestate := false, false
	for i := range d.Headers {
		rh := &d.Headers[i]
		switch {
		case strings.EqualFold(rh.Key, "content-type"):
			// The last one wins, as with Kafka's own "last header" lookup.
			if len(rh.Value) > 0 && validHeaderValue(rh.Value) {
				m := hs.mark()
				hs.sb.Write(rh.Value)
				contentType = hs.since(m)
			}
		case strings.EqualFold(rh.Key, headerTraceparent):
			traceparent, hasTraceparent = rh.Value, validHeaderValue(rh.Value)
		case strings.EqualFold(rh.Key, headerTracestate):
			tracestate, hasTracestate = rh.Value, validHeaderValue(rh.Value)
		}
	}
	hs.set(HeaderContentType, contentType)

	if plainASCII(d.ID) {
		hs.set(HeaderIdempotencyKey, d.ID)
	} else {
		m := hs.mark()
		appendBase64(&hs.sb, []byte(d.ID))
		hs.set(HeaderIdempotencyKey, hs.since(m))
		hs.set(HeaderIdempotencyKeyEncoding, EncodingBase64)
	}
	hs.set(HeaderTopic, d.Topic)

	var num [64]byte
	m := hs.mark()
	hs.sb.Write(strconv.AppendInt(num[:0], int64(d.Partition), 10))
	hs.set(HeaderPartition, hs.since(m))
	m = hs.mark()
	hs.sb.Write(strconv.AppendInt(num[:0], d.Offset, 10))
	hs.set(HeaderOffset, hs.since(m))
	m = hs.mark()
	hs.sb.Write(d.Timestamp.UTC().AppendFormat(num[:0], timestampLayout))
	hs.set(HeaderTimestamp, hs.since(m))
	m = hs.mark()
	hs.sb.Write(strconv.AppendInt(num[:0], int64(d.Attempt), 10))
	hs.set(HeaderAttempt, hs.since(m))

	if d.Key != nil {
		m = hs.mark()
		if plainASCII(d.Key) {
			hs.sb.Write(d.Key)
			hs.set(HeaderKey, hs.since(m))
		} else {
			appendBase64(&hs.sb, d.Key)
			hs.set(HeaderKey, hs.since(m))
			hs.set(HeaderKeyEncoding, EncodingBase64)
		}
	}

	for i := range d.Headers {
		rh := &d.Headers[i]
		if !validHeaderName(rh.Key) || !validHeaderValue(rh.Value) {
			continue
		}
		m = hs.mark()
		hs.sb.WriteString(HeaderRecordPrefix)
		writeCanonical(&hs.sb, rh.Key)
		key := hs.since(m)
		m = hs.mark()
		hs.sb.Write(rh.Value)
		hs.set(key, hs.since(m))
	}
	if hasTraceparent {
		m = hs.mark()
		hs.sb.Write(traceparent)
		hs.set(headerTraceparent, hs.since(m))
	}
	if hasTracestate {
		m = hs.mark()
		hs.sb.Write(tracestate)
		hs.set(headerTracestate, hs.since(m))
	}
	if h.token != nil {
		hs.set(HeaderAuthorization, h.token.header())
	}
	return newPost(ctx, u, hs.h, d.Value), nil
}

// newPost builds a POST without parsing its URL: u comes parsed from the cache and is never modified, neither
// here nor by the transport, so requests share it.
func newPost(ctx context.Context, u *url.URL, hdr http.Header, body []byte) *http.Request {
	tmpl := http.Request{
		Method:        http.MethodPost,
		URL:           u,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        hdr,
		Host:          u.Host,
		ContentLength: int64(len(body)),
	}
	if len(body) == 0 {
		tmpl.Body = http.NoBody
		tmpl.GetBody = noBody
	} else {
		tmpl.Body = valueBody(body)
		// GetBody lets the transport replay the request on a keep-alive connection the app closed under it.
		tmpl.GetBody = func() (io.ReadCloser, error) { return valueBody(body), nil }
	}
	return tmpl.WithContext(ctx)
}

// writeCanonical writes a header name (a valid token) in canonical form, as textproto.CanonicalMIMEHeaderKey
// would without allocating: names that differ only in case then share one key, and their values keep the
// record's order on the wire.
func writeCanonical(sb *strings.Builder, name string) {
	upper := true
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case upper && 'a' <= c && c <= 'z':
			c -= 'a' - 'A'
		case !upper && 'A' <= c && c <= 'Z':
			c += 'a' - 'A'
		}
		sb.WriteByte(c)
		upper = c == '-'
	}
}

// appendBase64 writes the standard, padded base64 form of src to sb in chunks through a stack buffer.
func appendBase64(sb *strings.Builder, src []byte) {
	var buf [256]byte // encodes 192 input bytes, a multiple of 3, so chunks join without padding between them
	const chunk = 192
	for len(src) > 0 {
		n := min(len(src), chunk)
		base64.StdEncoding.Encode(buf[:], src[:n])
		sb.Write(buf[:base64.StdEncoding.EncodedLen(n)])
		src = src[n:]
	}
}

// urlTemplate is the app URL split around "{topic}" once at start, with the parsed URL per topic cached.
type urlTemplate struct {
	// parts is the raw URL split around "{topic}"; one part means there is no placeholder.
	parts []string
	fixed *url.URL
	cache cacheMap
	// cached counts the topics stored (racing first uses of one topic may count it twice).
	cached atomic.Int64
}

// maxCachedTopics bounds the URL cache, far above any real number of source topics.
const maxCachedTopics = 4096

// forTopic returns the parsed URL for topic, building and caching it on first use. The set of topics is the
// configured source topics, so the cache stays small.
func (t *urlTemplate) forTopic(topic string) (*url.URL, error) {
	if t.fixed != nil {
		return t.fixed, nil
	}
	if u, ok := t.cache.Load(topic); ok {
		return u, nil
	}
	u, err := url.Parse(strings.Join(t.parts, url.PathEscape(topic)))
	if err != nil {
		return nil, err
	}
	// Bounded all the same, so that a stream of unexpected topic names cannot grow it without end.
	if t.cached.Add(1) <= maxCachedTopics {
		t.cache.Store(topic, u)
	}
	return u, nil
}

// cacheMap is a typed sync.Map from topic to its parsed URL: read on every request, written once per topic.
type cacheMap struct{ m sync.Map }

// Load returns the URL cached for topic.
func (c *cacheMap) Load(topic string) (*url.URL, bool) {
	v, ok := c.m.Load(topic)
	if !ok {
		return nil, false
	}
	return v.(*url.URL), true
}

// Store caches u for topic.
func (c *cacheMap) Store(topic string, u *url.URL) { c.m.Store(topic, u) }
