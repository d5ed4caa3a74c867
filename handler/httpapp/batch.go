package httpapp

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/kafka-sidecar/kafka-sidecar/handler"
)

// batchContentType is the content type of batch requests.
const batchContentType = "application/json"

// DeliverBatch POSTs ds to the app in one JSON request and classifies the answer per record; it implements
// BatchDeliverer. The request and answer formats are described in the package documentation. The URL's
// {topic} is the topic of the first record: callers batch records of one topic. Results come in the order
// of ds and always number len(ds). Timeout and cancellation behave as in Deliver, for every record at once.
func (h *Deliverer) DeliverBatch(ctx context.Context, ds []*handler.Delivery) []handler.Result {
	results := make([]handler.Result, len(ds))
	h.deliverBatch(ctx, ds, results)
	return results
}

// deliverBatch is DeliverBatch writing into results, which has the length of ds.
func (h *Deliverer) deliverBatch(ctx context.Context, ds []*handler.Delivery, results []handler.Result) {
	if len(ds) == 0 {
		return
	}
	start := time.Now()
	if ctx.Err() != nil {
		handler.Fill(results, canceled(start))
		return
	}
	t, err := h.url.forTopic(ds[0].Topic)
	if err != nil {
		handler.Fill(results, handler.Result{Outcome: handler.Permanent, Reason: "building the request: building the app url for the topic: " + safeString(err.Error()), Elapsed: time.Since(start)})
		return
	}
	contentType := eventBatchContentType
	body, ids, events := encodeEventBatch(ds)
	if !events {
		contentType = batchContentType
		body, ids = encodeBatch(ds)
	}
	buf := getHead()
	defer putHead(buf)
	var out outgoing
	*buf = h.appendBatchRequest(*buf, t, ds, contentType, body, &out)
	deadline := start.Add(h.timeout)
	a, err := h.pool.exchange(ctx, &out, deadline)
	if err != nil {
		handler.Fill(results, h.failed(ctx, deadline, err, start))
		return
	}
	answer, complete := readAll(a, h.maxBody)
	status, action, retryAfter := a.status, a.action, a.retryAfter
	a.release() // a is the connection's again from here on
	decodeBatchAnswer(results, ids, status, action, retryAfter, answer, complete, h.now())
	elapsed := time.Since(start)
	for i := range results {
		results[i].Elapsed = elapsed
	}
}

// appendBatchRequest encodes the POST of a batch with its body and content type, appending to b, and points out at the
// result; it returns b grown, for recycling.
func (h *Deliverer) appendBatchRequest(b []byte, t *target, ds []*handler.Delivery, contentType string, body []byte, out *outgoing) []byte {
	b = appendStart(b, t, len(body))
	b = appendHeader(b, HeaderContentType, contentType)
	b = append(b, HeaderBatchSize+": "...)
	b = strconv.AppendInt(b, int64(len(ds)), 10)
	b = append(b, "\r\n"...)
	// A key derived from the IDs makes the request safe to send again on a new connection when a kept-alive
	// one turns out to be closed, and tells the app that a repeated batch is the same batch.
	b = appendHeader(b, HeaderIdempotencyKey, batchKey(ds))
	// The batch's own trace context, which middleware that traces the request sets on every record.
	for _, name := range []string{headerTraceparent, headerTracestate} {
		if v, ok := ds[0].ExtraValue(name); ok && validHeaderValue(v) {
			b = appendHeader(b, name, v)
		}
	}
	if h.token != nil {
		b = appendHeader(b, HeaderAuthorization, h.token.header())
	}
	return finishRequest(b, body, out)
}

// readAll reads body up to limit bytes; complete is false when the body was longer or broke off.
func readAll(body io.Reader, limit int64) (b []byte, complete bool) {
	var buf bytes.Buffer
	n, err := buf.ReadFrom(io.LimitReader(body, limit+1))
	if n > limit {
		return buf.Bytes()[:limit], false
	}
	return buf.Bytes(), err == nil
}

// batchKey digests the record IDs, length-prefixed so that no two different lists collide by concatenation.
func batchKey(ds []*handler.Delivery) string {
	hash := sha256.New()
	var n [binary.MaxVarintLen64]byte
	for _, d := range ds {
		hash.Write(n[:binary.PutUvarint(n[:], uint64(len(d.ID)))])
		hash.Write([]byte(d.ID))
	}
	return "batch-" + hex.EncodeToString(hash.Sum(nil))
}

// encodeBatch writes the batch request body and returns, per record, the "id" string as sent, which is
// what the app echoes in its answer.
func encodeBatch(ds []*handler.Delivery) (body []byte, ids []string) {
	size := 16
	for _, d := range ds {
		size += 160 + len(d.ID) + len(d.Topic) + base64.StdEncoding.EncodedLen(len(d.Key)) +
			base64.StdEncoding.EncodedLen(len(d.Value))
		for i := range d.Headers {
			size += 6 + len(d.Headers[i].Key) + len(d.Headers[i].Value)
		}
	}
	b := make([]byte, 0, size)
	ids = make([]string, len(ds))
	b = append(b, `{"records":[`...)
	for i, d := range ds {
		if i > 0 {
			b = append(b, ',')
		}
		b, ids[i] = appendRecord(b, d)
	}
	b = append(b, "]}"...)
	return b, ids
}

// appendRecord appends one record object and returns the id as sent.
func appendRecord(b []byte, d *handler.Delivery) ([]byte, string) {
	id := d.ID
	idEncoded := !utf8.ValidString(id)
	if idEncoded {
		id = base64.StdEncoding.EncodeToString([]byte(id))
	}
	b = append(b, `{"id":`...)
	b = appendJSONString(b, id)
	if idEncoded {
		b = append(b, `,"id_encoding":"base64"`...)
	}
	b = append(b, `,"topic":`...)
	b = appendJSONString(b, d.Topic)
	b = append(b, `,"partition":`...)
	b = strconv.AppendInt(b, int64(d.Partition), 10)
	b = append(b, `,"offset":`...)
	b = strconv.AppendInt(b, d.Offset, 10)
	b = append(b, `,"timestamp":"`...)
	b = appendTimestamp(b, d.Timestamp)
	b = append(b, '"')
	if d.Key != nil {
		b = append(b, `,"key":`...)
		if plainASCII(d.Key) {
			b = appendJSONString(b, d.Key)
		} else {
			b = append(b, '"')
			b = base64.StdEncoding.AppendEncode(b, d.Key)
			b = append(b, `","key_encoding":"base64"`...)
		}
	}
	b = append(b, `,"headers":{`...)
	b = appendHeaders(b, d)
	b = append(b, `},"attempt":`...)
	b = strconv.AppendInt(b, int64(d.Attempt), 10)
	b = append(b, `,"value":`...)
	if isJSONContentType(recordContentType(d)) && utf8.Valid(d.Value) && json.Valid(d.Value) {
		b = append(b, bytes.TrimSpace(d.Value)...)
	} else {
		b = append(b, '"')
		b = base64.StdEncoding.AppendEncode(b, d.Value)
		b = append(b, `","value_encoding":"base64"`...)
	}
	b = append(b, '}')
	return b, id
}

// appendHeaders appends the record headers as JSON members. Names and values that are not valid UTF-8 are
// skipped, as a JSON string cannot carry them unchanged; a name that occurs more than once keeps its last
// value, as Kafka's "last header" lookup does.
func appendHeaders(b []byte, d *handler.Delivery) []byte {
	first := true
	for i := range d.Headers {
		rh := &d.Headers[i]
		if !utf8.ValidString(rh.Key) || !utf8.Valid(rh.Value) || laterHeader(d, i) {
			continue
		}
		if !first {
			b = append(b, ',')
		}
		first = false
		b = appendJSONString(b, rh.Key)
		b = append(b, ':')
		b = appendJSONString(b, rh.Value)
	}
	return b
}

// laterHeader reports whether a header after i has the same name and a value that can be sent.
func laterHeader(d *handler.Delivery, i int) bool {
	for j := i + 1; j < len(d.Headers); j++ {
		if d.Headers[j].Key == d.Headers[i].Key && utf8.Valid(d.Headers[j].Value) {
			return true
		}
	}
	return false
}

// recordContentType returns the delivery's content type (set by middleware), else the value of the record's
// last non-empty content-type header, or nil.
func recordContentType(d *handler.Delivery) []byte {
	if d.ContentType != "" {
		return []byte(d.ContentType)
	}
	var ct []byte
	for i := range d.Headers {
		if strings.EqualFold(d.Headers[i].Key, "content-type") && len(d.Headers[i].Value) > 0 {
			ct = d.Headers[i].Value
		}
	}
	return ct
}

// isJSONContentType reports whether a content type names application/json or a +json structured syntax
// type, ignoring parameters and case. It runs once per record in a batch, so it does not allocate.
func isJSONContentType(ct []byte) bool {
	if i := bytes.IndexByte(ct, ';'); i >= 0 {
		ct = ct[:i]
	}
	ct = bytes.TrimSpace(ct)
	slash := bytes.IndexByte(ct, '/')
	if slash <= 0 || slash == len(ct)-1 || !validHeaderName(ct[:slash]) || !validHeaderName(ct[slash+1:]) {
		return false
	}
	const suffix = "+json"
	return bytes.EqualFold(ct, []byte("application/json")) ||
		(len(ct)-slash-1 > len(suffix) && bytes.EqualFold(ct[len(ct)-len(suffix):], []byte(suffix)))
}

// appendJSONString appends s as a JSON string. Invalid UTF-8 becomes U+FFFD, so the output is always valid
// JSON; callers encode as base64 anything that must survive byte for byte.
func appendJSONString[T string | []byte](b []byte, s T) []byte {
	const hexDigits = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := decodeRune(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i++
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// batchAnswer is the optional JSON body of an answer to a batch.
type batchAnswer struct {
	Results []batchResult `json:"results"`
}

// batchResult is the app's verdict on one record of a batch.
type batchResult struct {
	ID     string `json:"id"`
	Status int    `json:"status"`
	Action string `json:"action"`
	Error  string `json:"error"`
}

// decodeBatchAnswer classifies a batch answer into results, which has one entry per id. Each record takes
// its own entry's status and action; a record without an entry, or whose entry has no valid status, takes
// the answer's status; a record without its own action takes the answer's Kafka-Sidecar-Action (wholeAction).
// retryAfter is the answer's Retry-After. A body that is cut off by the cap or is not the expected JSON counts
// as no entries at all. Elapsed is left to the caller.
func decodeBatchAnswer(results []handler.Result, ids []string, status int, wholeAction, retryAfterValue string, body []byte, complete bool, now time.Time) {
	var ans batchAnswer
	parsed := complete && len(bytes.TrimSpace(body)) > 0 && json.Unmarshal(body, &ans) == nil

	own := make([]*batchResult, len(ids))
	if parsed && len(ans.Results) > 0 {
		// first maps an id to its first record; next chains the later records with the same id (-1 ends).
		first := make(map[string]int, len(ids))
		next := make([]int, len(ids))
		for i := len(ids) - 1; i >= 0; i-- {
			next[i] = -1
			if j, ok := first[ids[i]]; ok {
				next[i] = j
			}
			first[ids[i]] = i
		}
		for k := range ans.Results {
			i, ok := first[ans.Results[k].ID]
			for ; ok && i >= 0; i = next[i] {
				if own[i] == nil { // the first entry for an id counts
					own[i] = &ans.Results[k]
				}
			}
		}
	}

	retryAfter := ParseRetryAfter(retryAfterValue, now)
	for i := range results {
		code, action := status, wholeAction
		var detail []byte
		switch e := own[i]; {
		case e != nil:
			if e.Status >= 100 && e.Status <= 999 {
				code = e.Status
			}
			if _, ok := parseAction(e.Action); ok {
				action = e.Action
			}
			detail = []byte(e.Error)
		case parsed:
			detail = []byte("no result for this record in the batch answer")
		default:
			detail = body
		}
		results[i] = classifyAnswer(code, action, detail, retryAfter)
	}
}

// classifyAnswer builds the Result for one status, an optional action override, the detail to quote and the
// answer's Retry-After (kept only for 429 and 503).
func classifyAnswer(code int, action string, detail []byte, retryAfter time.Duration) handler.Result {
	o, shownAction := outcomeOf(code, action)
	res := handler.Result{Status: code, Outcome: o}
	if o == handler.Success {
		return res
	}
	if code == http.StatusTooManyRequests || code == http.StatusServiceUnavailable {
		res.RetryAfter = retryAfter
	}
	res.Reason = statusReason(code, shownAction, detail)
	return res
}

// outcomeOf classifies a status with an optional action override; shownAction is the override as the
// reason names it, empty when there was none.
func outcomeOf(code int, action string) (o handler.Outcome, shownAction string) {
	if o, ok := parseAction(action); ok {
		return o, strings.ToLower(strings.TrimSpace(action))
	}
	return ClassifyStatus(code), ""
}

// decodeRune decodes the first rune of a string or byte slice.
func decodeRune[T string | []byte](s T) (rune, int) {
	switch v := any(s).(type) {
	case string:
		return utf8.DecodeRuneInString(v)
	case []byte:
		return utf8.DecodeRune(v)
	}
	return utf8.RuneError, 1
}
