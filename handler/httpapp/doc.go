// Package httpapp hands records to the app over HTTP and classifies its answers into a handler.Outcome.
//
// Deliverer (built by New) implements handler.Deliverer with one POST per record, or, with Options.Batch, one
// POST per call carrying all its records. Headers that middleware puts in handler.Delivery.Extra are sent as
// they are, and Delivery.ContentType replaces the record's content type. Probe tells whether the app is
// ready. The formats below are the contract with the app.
//
// # One record per request
//
// The request is a POST to the app URL, "{topic}" in its path replaced by the path-escaped source topic. The
// body is the record value, unchanged. Headers:
//
//	Content-Type              the record's content-type header (name matched case-insensitively, the last
//	                          one wins), else application/octet-stream
//	Idempotency-Key           the message ID
//	Idempotency-Key-Encoding  "base64" when the ID is not plain (see below) and Idempotency-Key holds its
//	                          base64 form; absent otherwise
//	Kafka-Topic               source topic        } of the record as first consumed, also when it is
//	Kafka-Partition           source partition    } delivered again from a retry topic
//	Kafka-Offset              source offset       }
//	Kafka-Timestamp           record timestamp    } RFC 3339, UTC, milliseconds: 2024-05-01T12:00:00.250Z
//	Kafka-Key                 the key when plain, else its base64 form; absent when the record has no key
//	                          (an empty key is sent as an empty value)
//	Kafka-Key-Encoding        "base64" when Kafka-Key holds the base64 form; absent otherwise
//	Kafka-Attempt             1 on the first delivery, counting across all retry tiers
//	Kafka-Header-<name>       each record header whose name is an HTTP token and whose value has no control
//	                          characters other than tab; others are left out. A name that occurs more than
//	                          once is sent once per value. HTTP does not keep a value's surrounding spaces.
//	traceparent, tracestate   copied from the record headers of these names (any case; the last one wins),
//	                          when valid
//	Authorization             "Bearer <token>" when a token file is configured
//
// Plain means printable ASCII (0x20–0x7E) that neither starts nor ends with a space, so it arrives byte
// for byte. Every base64 form here is standard base64 (RFC 4648 section 4) with padding.
//
// Requests go over kept-alive HTTP/1.1 connections. When the app has closed the one a request is sent on,
// and no part of an answer came back, the request is sent once more on a new connection; so the app may see
// a request twice, with the same Idempotency-Key.
//
// # The answer
//
//	2xx, 409                                    Success: the record is done
//	400, 410, 413, 415, 422, other 4xx          Permanent: to the dead-letter topic now
//	408, 500, 502, 504, other 5xx               Retryable: the next attempt, then the next retry tier
//	timeout, connection reset or closed
//	during the request
//	429, 503, 401, 403, 404, 405, 3xx           AppUnavailable: delivery pauses, backs off and offers the
//	connection refused, DNS failure, failure    same record again; no attempt is used
//	to connect, TLS set-up failure
//
// Redirects are not followed, so a 3xx means the URL is misconfigured. On 429 and 503 a Retry-After header,
// in seconds or as an HTTP date, is honoured up to MaxRetryAfter. A response header
// "Kafka-Sidecar-Action: dead-letter" (Permanent) or "Kafka-Sidecar-Action: retry" (Retryable) overrides the
// class of any status; other values are ignored. Up to the configured maximum of the answer body is read; the
// first 256 bytes of a failed answer's body become the reason "http 500: <body>" (control characters as
// spaces, invalid UTF-8 replaced), which travels with the record to the retry and dead-letter topics.
//
// # Many records per request (batch mode)
//
// The request is a POST to the app URL, "{topic}" replaced by the first record's topic, with headers
// Content-Type: application/json, Kafka-Batch-Size: <number of records>, Idempotency-Key: "batch-" and the
// hex SHA-256 of the records' IDs (the same records in the same order give the same key), Authorization
// when configured, and traceparent and tracestate when middleware set them on the first record (a tracing
// middleware sets the batch span's context on every record). The body:
//
//	{"records":[
//	  {"id":"orders/0/42", "topic":"orders", "partition":0, "offset":42,
//	   "timestamp":"2024-05-01T12:00:00.250Z",
//	   "key":"customer-7",
//	   "headers":{"content-type":"application/json", "tenant":"acme"},
//	   "attempt":1,
//	   "value":{"total":12.5}},
//	  {"id":"orders/0/43", "topic":"orders", "partition":0, "offset":43,
//	   "timestamp":"2024-05-01T12:00:00.300Z",
//	   "key":"AAE=", "key_encoding":"base64",
//	   "headers":{},
//	   "attempt":2,
//	   "value":"3q2+7w==", "value_encoding":"base64"}
//	]}
//
// Per record:
//   - "id": the message ID; when the ID is not valid UTF-8 it is sent in base64 with "id_encoding":"base64".
//     The answer names records by "id" exactly as sent.
//   - "topic", "partition", "offset", "timestamp", "attempt": as the single-record headers of the same names.
//   - "key": the key when plain (as above), else its base64 form with "key_encoding":"base64"; both fields
//     are absent when the record has no key.
//   - "headers": the record headers as an object of strings. Headers whose name or value is not valid UTF-8
//     are left out; a name that occurs more than once keeps its last value.
//   - "value": the value itself as JSON when the record's content type is application/json or ends in +json
//     and the value is valid JSON; otherwise its base64 form with "value_encoding":"base64".
//
// The answer may carry a JSON body:
//
//	{"results":[
//	  {"id":"orders/0/42", "status":200},
//	  {"id":"orders/0/43", "status":422, "error":"total must be positive"},
//	  {"id":"orders/0/44", "status":200, "action":"dead-letter"}
//	]}
//
// Each record takes the status of its entry, classified with the table above, and "action" ("dead-letter" or
// "retry") overrides it like the response header does; "error" becomes the reason "http 422: <error>". A record
// with no entry, or whose entry has no status, takes the status of the whole answer, and the response's
// Kafka-Sidecar-Action when its entry has no action of its own. The first entry for an id counts. A body that
// is empty, not this JSON, or longer than the configured maximum counts as no entries: every record takes the
// status of the whole answer (so a 2xx with any body means every record is done). Retry-After on the answer
// applies to every record whose status is 429 or 503. A timeout or broken connection gives every record the
// same outcome, as for a single record.
//
// # Batches of CloudEvents
//
// When every record of a batch is a CloudEvent — presented in HTTP binary mode by middleware (a
// ce-specversion extra header) or held in the JSON event format (content type application/cloudevents+json)
// — the batch goes in the CloudEvents HTTP binding's batched mode instead: Content-Type
// application/cloudevents-batch+json and a JSON array of events in the JSON event format. A binary-mode
// record becomes an object of its ce-* attributes (percent-decoding undone), "datacontenttype" (the record's
// content type, application/octet-stream when it has none) and "data" (the value, when it is JSON) or
// "data_base64"; a structured record is its value as it is. The other headers stay the same, and the answer
// is read as above, an entry's "id" naming the event id.
package httpapp
