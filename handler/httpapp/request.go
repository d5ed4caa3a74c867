package httpapp

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/kafka-sidecar/kafka-sidecar/handler"
)

// userAgent is the User-Agent header: the value net/http sent when it carried the deliveries, kept so that
// apps and their access logs see no change.
const userAgent = "Go-http-client/1.1"

// errTopicName rejects a topic name that an HTTP header cannot carry.
var errTopicName = errors.New("the topic name holds control characters")

// headBufs recycles the buffers requests are encoded into: with the value copied behind the head, a typical
// delivery fits the first size and its wire form costs no allocation.
var headBufs = sync.Pool{New: func() any { b := make([]byte, 0, 2<<10); return &b }}

// maxPooledHead keeps an occasional huge request from pinning its buffer in the pool.
const maxPooledHead = 64 << 10

// getHead returns an empty buffer for a request's wire form. The caller stores the grown slice back through
// the pointer and hands it to putHead once the exchange is over, as the connection writes straight from it.
func getHead() *[]byte { return headBufs.Get().(*[]byte) }

// putHead recycles a buffer from getHead.
func putHead(b *[]byte) {
	if cap(*b) > maxPooledHead {
		return
	}
	*b = (*b)[:0]
	headBufs.Put(b)
}

// appendHeader appends "name: value\r\n"; callers have checked both.
func appendHeader[T string | []byte](b []byte, name string, value T) []byte {
	b = append(b, name...)
	b = append(b, ": "...)
	b = append(b, value...)
	return append(b, "\r\n"...)
}

// appendStart appends the request line and the headers every request carries: Host, User-Agent and
// Content-Length (also when it is 0, as a POST without it may be read as having no body at all).
func appendStart(b []byte, t *target, contentLength int) []byte {
	b = append(b, "POST "...)
	b = append(b, t.requestURI...)
	b = append(b, " HTTP/1.1\r\nHost: "...)
	b = append(b, t.host...)
	b = append(b, "\r\nUser-Agent: "+userAgent+"\r\nContent-Length: "...)
	b = strconv.AppendInt(b, int64(contentLength), 10)
	return append(b, "\r\n"...)
}

// finishRequest ends the head in b and points out at the request: a small body is copied behind the head so
// that one write sends everything (and the app reads it at once); a large one is written from where it is.
// It returns b, grown, for recycling.
func finishRequest(b, body []byte, out *outgoing) []byte {
	b = append(b, "\r\n"...)
	if len(body) > inlineBodyMax {
		out.head, out.body = b, body
		return b
	}
	b = append(b, body...)
	out.head, out.body = b, nil
	return b
}

// appendRequest encodes a delivery as the POST the contract describes, appending to buf, and points out at
// the result; it returns buf grown, for recycling. It does no URL parsing on the hot path: the target for the
// topic comes from the template's cache. Header names and values that HTTP cannot carry are skipped rather
// than sent, so the request is always valid.
func (h *Deliverer) appendRequest(buf []byte, d *handler.Delivery, out *outgoing) ([]byte, error) {
	if !validHeaderValue(d.Topic) {
		// Kafka topic names are [a-zA-Z0-9._-], so this never happens with a real record; it keeps the
		// promise that no invalid request is ever built.
		return buf, errTopicName
	}
	t, err := h.url.forTopic(d.Topic)
	if err != nil {
		return buf, fmt.Errorf("building the app url for the topic: %w", err)
	}
	b := appendStart(buf, t, len(d.Value))

	var contentType []byte
	var traceparent, tracestate []byte
	hasTraceparent, hasTracestate := false, false
	for i := range d.Headers {
		rh := &d.Headers[i]
		switch {
		case strings.EqualFold(rh.Key, "content-type"):
			// The last one wins, as with Kafka's own "last header" lookup.
			if len(rh.Value) > 0 && validHeaderValue(rh.Value) {
				contentType = rh.Value
			}
		case strings.EqualFold(rh.Key, headerTraceparent):
			traceparent, hasTraceparent = rh.Value, validHeaderValue(rh.Value)
		case strings.EqualFold(rh.Key, headerTracestate):
			tracestate, hasTracestate = rh.Value, validHeaderValue(rh.Value)
		}
	}
	if d.ContentType != "" && validHeaderValue(d.ContentType) {
		b = appendHeader(b, HeaderContentType, d.ContentType)
	} else if contentType != nil {
		b = appendHeader(b, HeaderContentType, contentType)
	} else {
		b = appendHeader(b, HeaderContentType, defaultContentType)
	}

	if plainASCII(d.ID) {
		b = appendHeader(b, HeaderIdempotencyKey, d.ID)
	} else {
		b = append(b, HeaderIdempotencyKey+": "...)
		b = base64.StdEncoding.AppendEncode(b, []byte(d.ID))
		b = append(b, "\r\n"...)
		b = appendHeader(b, HeaderIdempotencyKeyEncoding, EncodingBase64)
	}
	b = appendHeader(b, HeaderTopic, d.Topic)
	b = append(b, HeaderPartition+": "...)
	b = strconv.AppendInt(b, int64(d.Partition), 10)
	b = append(b, "\r\n"+HeaderOffset+": "...)
	b = strconv.AppendInt(b, d.Offset, 10)
	b = append(b, "\r\n"+HeaderTimestamp+": "...)
	b = appendTimestamp(b, d.Timestamp)
	b = append(b, "\r\n"+HeaderAttempt+": "...)
	b = strconv.AppendInt(b, int64(d.Attempt), 10)
	b = append(b, "\r\n"...)

	if d.Key != nil {
		if plainASCII(d.Key) {
			b = appendHeader(b, HeaderKey, d.Key)
		} else {
			b = append(b, HeaderKey+": "...)
			b = base64.StdEncoding.AppendEncode(b, d.Key)
			b = append(b, "\r\n"...)
			b = appendHeader(b, HeaderKeyEncoding, EncodingBase64)
		}
	}

	for i := range d.Headers {
		rh := &d.Headers[i]
		if !validHeaderName(rh.Key) || !validHeaderValue(rh.Value) {
			continue
		}
		// Repeated names go out as repeated lines in the record's order; the app's server joins them.
		b = append(b, HeaderRecordPrefix...)
		b = appendCanonical(b, rh.Key)
		b = append(b, ": "...)
		b = append(b, rh.Value...)
		b = append(b, "\r\n"...)
	}
	if hasTraceparent && !hasExtra(d, headerTraceparent) {
		b = appendHeader(b, headerTraceparent, traceparent)
	}
	// A traceparent set by middleware starts a new trace context: the record's tracestate belongs to the old.
	if hasTracestate && !hasExtra(d, headerTracestate) && !hasExtra(d, headerTraceparent) {
		b = appendHeader(b, headerTracestate, tracestate)
	}
	for _, x := range d.Extra {
		if validHeaderName(x.Name) && validHeaderValue(x.Value) && !reservedHeader(x.Name) {
			b = appendHeader(b, x.Name, x.Value)
		}
	}
	if h.token != nil {
		b = appendHeader(b, HeaderAuthorization, h.token.header())
	}
	return finishRequest(b, d.Value, out), nil
}

// hasExtra reports whether middleware set the header name, which then replaces the one taken from the record.
func hasExtra(d *handler.Delivery, name string) bool {
	_, ok := d.ExtraValue(name)
	return ok
}

// reservedHeader reports whether name is a header the deliverer alone writes (framing, the record's identity
// and position, authorization), which middleware cannot replace: the request stays valid and the contract's
// headers keep their meaning.
func reservedHeader(name string) bool {
	switch strings.ToLower(name) {
	case "host", "content-length", "transfer-encoding", "connection", "user-agent", "authorization",
		"content-type", "idempotency-key", "idempotency-key-encoding", "kafka-topic", "kafka-partition",
		"kafka-offset", "kafka-timestamp", "kafka-attempt", "kafka-key", "kafka-key-encoding":
		return true
	}
	return false
}

// appendCanonical appends a header name (a valid token) in canonical form, as
// textproto.CanonicalMIMEHeaderKey would without allocating, so names that differ only in case reach the app
// as one header.
func appendCanonical(b []byte, name string) []byte {
	upper := true
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case upper && 'a' <= c && c <= 'z':
			c -= 'a' - 'A'
		case !upper && 'A' <= c && c <= 'Z':
			c += 'a' - 'A'
		}
		b = append(b, c)
		upper = c == '-'
	}
	return b
}

// target is where the requests for one topic go: the request-target of the request line and the Host header.
type target struct {
	// requestURI is the escaped path and query, as net/http's URL.RequestURI gives them.
	requestURI string
	host       string
}

// urlTemplate is the app URL split around "{topic}" once at start, with the target per topic cached.
type urlTemplate struct {
	// parts is the raw URL split around "{topic}"; one part means there is no placeholder.
	parts []string
	// host is the Host header, the same for every topic as the placeholder cannot be in the authority.
	host  string
	fixed *target
	cache cacheMap
	// cached counts the topics stored (racing first uses of one topic may count it twice).
	cached atomic.Int64
}

// maxCachedTopics bounds the target cache, far above any real number of source topics.
const maxCachedTopics = 4096

// forTopic returns the target for topic, building and caching it on first use. The set of topics is the
// configured source topics, so the cache stays small.
func (t *urlTemplate) forTopic(topic string) (*target, error) {
	if t.fixed != nil {
		return t.fixed, nil
	}
	if tg, ok := t.cache.Load(topic); ok {
		return tg, nil
	}
	u, err := url.Parse(strings.Join(t.parts, url.PathEscape(topic)))
	if err != nil {
		return nil, err
	}
	tg := &target{requestURI: u.RequestURI(), host: t.host}
	// Bounded all the same, so that a stream of unexpected topic names cannot grow it without end.
	if t.cached.Add(1) <= maxCachedTopics {
		t.cache.Store(topic, tg)
	}
	return tg, nil
}

// cacheMap is a typed sync.Map from topic to its target: read on every request, written once per topic.
type cacheMap struct{ m sync.Map }

// Load returns the target cached for topic.
func (c *cacheMap) Load(topic string) (*target, bool) {
	v, ok := c.m.Load(topic)
	if !ok {
		return nil, false
	}
	return v.(*target), true
}

// Store caches tg for topic.
func (c *cacheMap) Store(topic string, tg *target) { c.m.Store(topic, tg) }
