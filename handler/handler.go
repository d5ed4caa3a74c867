package handler

import (
	"context"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Outcome classifies the app's answer to one delivery.
type Outcome uint8

const (
	// Success means the app accepted the record (2xx, or 409: it already has it). The record is done.
	Success Outcome = iota
	// Retryable means this attempt failed but another may succeed (408, 5xx other than 503, timeout,
	// connection reset during the request).
	Retryable
	// Permanent means no attempt will ever succeed (400, 410, 413, 415, 422 and other unlisted 4xx, or a
	// record that cannot be presented to the app at all): the record goes to the dead-letter topic now.
	Permanent
	// AppUnavailable means the app cannot take records right now or is misconfigured (connection refused,
	// 429, 503, 401, 403, 404, 405), or a dependency of the delivery itself is down: delivery pauses and the
	// same record is offered again; no attempt is used.
	AppUnavailable
)

// String names the outcome for logs and metrics.
func (o Outcome) String() string {
	switch o {
	case Success:
		return "success"
	case Retryable:
		return "retryable"
	case Permanent:
		return "permanent"
	case AppUnavailable:
		return "app_unavailable"
	}
	return "unknown"
}

// Header is a name and value that a deliverer sends as they are: over HTTP, a request header of that name.
// Middleware adds them (CloudEvents attributes, trace context, schema IDs).
type Header struct {
	Name  string
	Value string
}

// Delivery is one record as the app will see it. Topic, Partition, Offset and Timestamp describe the record as
// first consumed from its source topic, also when it is delivered again from a retry topic.
//
// A Delivery belongs to the caller of Deliver. Middleware may change its fields for the deliverers after it
// (and put them back, or not, as the caller never reads them after the call), but never the memory they point
// to: Key, Value and Headers share their bytes with the consumed record, whose copies go to the retry and
// dead-letter topics unchanged. To present other bytes, assign a new slice.
type Delivery struct {
	// ID is the message ID, sent as Idempotency-Key.
	ID string
	// Topic is the source topic; it also replaces {topic} in the app URL.
	Topic     string
	Partition int32
	Offset    int64
	Timestamp time.Time
	Key       []byte
	Value     []byte
	// Headers are the record's own headers (the sidecar's provenance headers already removed).
	Headers []kgo.RecordHeader
	// Attempt is 1 on the first delivery, counting across all tiers.
	Attempt int
	// ContentType, when not empty, is the content type of Value; it replaces the one the deliverer would take
	// from the record's content-type header (middleware that changes Value sets it).
	ContentType string
	// Context is the record's own context, carrying its trace (the consumer span of the record); middleware
	// that traces a delivery parents its span on it, also when many records travel in one call. Nil means the
	// context of the Deliver call.
	Context context.Context
	// Extra are headers that middleware adds. A deliverer sends each as it is, in place of any header of the
	// same name (case-insensitively) that it would otherwise derive from the record, such as traceparent.
	Extra []Header
}

// SetExtra sets header name to value in d.Extra, replacing an earlier value of the same name. It never writes
// into the array of the slice it was given, which its caller may share.
func (d *Delivery) SetExtra(name, value string) {
	extra := make([]Header, 0, len(d.Extra)+1)
	for _, h := range d.Extra {
		if !strings.EqualFold(h.Name, name) {
			extra = append(extra, h)
		}
	}
	d.Extra = append(extra, Header{Name: name, Value: value})
}

// ExtraValue returns the value of the extra header name (case-insensitively) and whether it is set.
func (d *Delivery) ExtraValue(name string) (string, bool) {
	for i := len(d.Extra) - 1; i >= 0; i-- {
		if strings.EqualFold(d.Extra[i].Name, name) {
			return d.Extra[i].Value, true
		}
	}
	return "", false
}

// Result is the classified answer to one delivery.
type Result struct {
	Outcome Outcome
	// Status is the HTTP status code, 0 when there was no response.
	Status int
	// Reason is a short, log-safe description of a failure, e.g. "http 500: <first bytes of the body>" or
	// "timeout after 30s"; empty on success.
	Reason string
	// RetryAfter is how long the app asked to be left alone (Retry-After on 429/503), zero when it did not.
	RetryAfter time.Duration
	// Elapsed is the time the delivery took.
	Elapsed time.Duration
}

// Deliverer hands records to the app. It is the seam every delivery goes through: the engine calls it with
// one record per call in per-record mode and with the records of one request in batch mode, and middleware
// (pausing, metrics, tracing, CloudEvents, decoding) wraps it.
//
// Deliver writes the answer for ds[i] into results[i]; len(results) is len(ds). How the records travel is the
// deliverer's business: the HTTP deliverer sends one request per record or one request for all, as
// configured. Deliver must be safe for concurrent use. When ctx ends before the app answers, Deliver returns
// promptly; the caller tells that case apart by ctx.Err() and treats the records as not delivered.
type Deliverer interface {
	Deliver(ctx context.Context, ds []*Delivery, results []Result)
}

// DelivererFunc is a function that is a Deliverer.
type DelivererFunc func(ctx context.Context, ds []*Delivery, results []Result)

// Deliver calls f.
func (f DelivererFunc) Deliver(ctx context.Context, ds []*Delivery, results []Result) {
	f(ctx, ds, results)
}

// Middleware wraps a Deliverer with a cross-cutting concern. It may change the deliveries before passing them
// on, answer some itself without passing them on (a value that cannot be decoded is Permanent), or observe
// and amend the results.
type Middleware func(next Deliverer) Deliverer

// Chain returns d wrapped in mws: the first middleware is the outermost, the one a delivery meets first.
func Chain(d Deliverer, mws ...Middleware) Deliverer {
	for i := len(mws) - 1; i >= 0; i-- {
		if mws[i] != nil {
			d = mws[i](d)
		}
	}
	return d
}

// Fill sets every result to r, for middleware that answers a whole call at once.
func Fill(results []Result, r Result) {
	for i := range results {
		results[i] = r
	}
}
