// Package tracing traces a record's path through the sidecar with OpenTelemetry, configured by the standard
// OTEL_* variables only: OTEL_TRACES_EXPORTER (default none: nothing is traced and no span is ever built),
// OTEL_EXPORTER_OTLP_ENDPOINT and OTEL_EXPORTER_OTLP_PROTOCOL, OTEL_TRACES_SAMPLER and its argument,
// OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES.
//
// Tracer is the pipeline.Tracer: a consumer span per record (messaging semantic conventions), a child of the
// trace context in the record's traceparent header when it has one, with child spans for the dedup store's
// round trips, the wait before a retry tier's not-before time and each retry or dead-letter produce. A
// produce writes its span's context into the copy's traceparent, with the consumer span's ID in the copy's
// tracestate, so the copy's own consumer span continues the trace and links back to the first.
//
// Middleware makes an HTTP client span per delivery attempt, a child of the record's consumer span, and
// hands its context to the app in traceparent. A batch request gets one span, linked to every record's
// consumer span, and carries its context.
package tracing
