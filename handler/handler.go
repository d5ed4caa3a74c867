package handler

import (
	"context"
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
	// Permanent means no attempt will ever succeed (400, 410, 413, 415, 422 and other unlisted 4xx):
	// the record goes to the dead-letter topic now.
	Permanent
	// AppUnavailable means the app cannot take records right now or is misconfigured (connection refused,
	// 429, 503, 401, 403, 404, 405): delivery pauses and the same record is offered again; no attempt is used.
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

// Delivery is one record as the app will see it. Topic, Partition, Offset and Timestamp describe the record as
// first consumed from its source topic, also when it is delivered again from a retry topic.
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
}

// Result is the classified answer to one delivery.
type Result struct {
	Outcome Outcome
	// Status is the HTTP status code, 0 when there was no response.
	Status int
	// Reason is a short, log-safe description of a failure, e.g. "http 500: <first bytes of the body>" or
	// "timeout after 30s"; empty on success.
	Reason string
	// RetryAfter is the app's Retry-After on 429/503, zero when absent.
	RetryAfter time.Duration
	// Elapsed is the time the request took.
	Elapsed time.Duration
}

// Deliverer hands records to the app. Deliver must be safe for concurrent use. When ctx ends before the app
// answers, Deliver returns promptly; the caller tells that case apart by ctx.Err() and treats the record as
// not delivered.
type Deliverer interface {
	Deliver(ctx context.Context, d *Delivery) Result
}

// BatchDeliverer hands many records to the app in one request. Results come back in the order of ds.
type BatchDeliverer interface {
	DeliverBatch(ctx context.Context, ds []*Delivery) []Result
}
