package httpapp

// Names of the HTTP headers the sidecar sends to the app and reads from its answers. They are part of the
// user-facing contract: apps match on them, so they never change.
const (
	// HeaderContentType carries the record's content-type header, or application/octet-stream.
	HeaderContentType = "Content-Type"
	// HeaderIdempotencyKey carries the message ID.
	HeaderIdempotencyKey = "Idempotency-Key"
	// HeaderIdempotencyKeyEncoding is "base64" when HeaderIdempotencyKey holds the base64 (standard alphabet,
	// padded) form of an ID that could not travel as is; absent otherwise.
	HeaderIdempotencyKeyEncoding = "Idempotency-Key-Encoding"
	// HeaderTopic is the source topic of the record as first consumed.
	HeaderTopic = "Kafka-Topic"
	// HeaderPartition is the source partition of the record as first consumed.
	HeaderPartition = "Kafka-Partition"
	// HeaderOffset is the source offset of the record as first consumed.
	HeaderOffset = "Kafka-Offset"
	// HeaderKey is the record key; absent when the record has no key.
	HeaderKey = "Kafka-Key"
	// HeaderKeyEncoding is "base64" when HeaderKey holds the base64 (standard alphabet, padded) form of the key.
	HeaderKeyEncoding = "Kafka-Key-Encoding"
	// HeaderTimestamp is the record timestamp, RFC 3339 in UTC with millisecond precision.
	HeaderTimestamp = "Kafka-Timestamp"
	// HeaderAttempt is 1 on the first delivery and counts across all retry tiers.
	HeaderAttempt = "Kafka-Attempt"
	// HeaderRecordPrefix prefixes the name of each record header copied to the request.
	HeaderRecordPrefix = "Kafka-Header-"
	// HeaderBatchSize is the number of records in a batch request.
	HeaderBatchSize = "Kafka-Batch-Size"
	// HeaderAction is the response header by which the app overrides the class of its status code.
	HeaderAction = "Kafka-Sidecar-Action"
	// HeaderRetryAfter is the response header honoured on 429 and 503.
	HeaderRetryAfter = "Retry-After"
	// HeaderAuthorization carries "Bearer <token>" when an auth token file is configured.
	HeaderAuthorization = "Authorization"

	// headerTraceparent and headerTracestate are the W3C trace context headers, copied from the record as is.
	headerTraceparent = "traceparent"
	headerTracestate  = "tracestate"
)

// Values of HeaderAction (and of "action" in a batch answer), matched case-insensitively.
const (
	// ActionDeadLetter sends the record to the dead-letter topic now, whatever the status.
	ActionDeadLetter = "dead-letter"
	// ActionRetry makes the attempt count as failed and retryable, whatever the status.
	ActionRetry = "retry"
)

// EncodingBase64 is the value of the *-Encoding headers and *_encoding JSON fields: standard base64 with padding.
const EncodingBase64 = "base64"

// defaultContentType is sent when the record has no usable content-type header.
const defaultContentType = "application/octet-stream"

// tokenTable marks the bytes allowed in an HTTP token (RFC 9110 section 5.6.2), the syntax of a header name.
var tokenTable = func() (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
		t[c-'a'+'A'] = true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return t
}()

// validHeaderName reports whether name is a non-empty HTTP token, so it can be sent as (part of) a header name.
func validHeaderName[T string | []byte](name T) bool {
	if len(name) == 0 {
		return false
	}
	for i := 0; i < len(name); i++ {
		if !tokenTable[name[i]] {
			return false
		}
	}
	return true
}

// validHeaderValue reports whether v can be sent as a header value: no control bytes other than horizontal tab.
// Bytes from 0x80 up (obs-text) are allowed, as net/http allows them, so UTF-8 values pass.
func validHeaderValue[T string | []byte](v T) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; (c < ' ' && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}

// plainASCII reports whether b can travel unchanged in a header and arrive byte for byte: printable ASCII
// (0x20–0x7E) that neither starts nor ends with a space, because HTTP parsers strip surrounding whitespace.
// Keys and IDs that fail this are sent base64-encoded.
func plainASCII[T string | []byte](b T) bool {
	n := len(b)
	if n == 0 {
		return true
	}
	if b[0] == ' ' || b[n-1] == ' ' {
		return false
	}
	for i := 0; i < n; i++ {
		if c := b[i]; c < 0x20 || c > 0x7e {
			return false
		}
	}
	return true
}
