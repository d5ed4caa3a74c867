package tracing

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"go.opentelemetry.io/contrib/exporters/autoexport"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"
)

// EnvExporter is the variable that turns tracing on.
const EnvExporter = "OTEL_TRACES_EXPORTER"

// instrumentation names the tracer in every span's scope.
const instrumentation = "github.com/kafka-sidecar/kafka-sidecar/tracing"

// defaultServiceName is service.name unless OTEL_SERVICE_NAME or OTEL_RESOURCE_ATTRIBUTES set one.
const defaultServiceName = "kafka-sidecar"

// Provider is the tracer provider the OTEL_* variables describe, and the sidecar's tracer and middleware
// built on it.
type Provider struct {
	tp     *sdktrace.TracerProvider
	tracer trace.Tracer
	prop   propagation.TextMapPropagator
}

// Enabled reports whether the environment asks for traces: OTEL_TRACES_EXPORTER set to anything but none.
func Enabled() bool {
	v := strings.TrimSpace(os.Getenv(EnvExporter))
	return v != "" && v != "none"
}

// Setup builds the provider from the OTEL_* variables: the exporter (autoexport: otlp over
// OTEL_EXPORTER_OTLP_PROTOCOL, or console), the sampler (OTEL_TRACES_SAMPLER, OTEL_TRACES_SAMPLER_ARG; the
// SDK's default parentbased_always_on), and the resource (OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES). It
// returns nil, and builds nothing, when tracing is not enabled.
func Setup(ctx context.Context) (*Provider, error) {
	if !Enabled() {
		return nil, nil
	}
	exp, err := autoexport.NewSpanExporter(ctx)
	if err != nil {
		return nil, fmt.Errorf("%s: building the span exporter: %w", EnvExporter, err)
	}
	res, err := resource.New(ctx,
		resource.WithAttributes(semconv.ServiceName(defaultServiceName)),
		resource.WithTelemetrySDK(),
		resource.WithFromEnv(), // after the default: OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES win
	)
	if err != nil && !errors.Is(err, resource.ErrPartialResource) {
		_ = exp.Shutdown(ctx)
		return nil, fmt.Errorf("OTEL_RESOURCE_ATTRIBUTES: %w", err)
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	return newProvider(tp), nil
}

// newProvider wraps a tracer provider; tests build theirs with in-memory exporters.
func newProvider(tp *sdktrace.TracerProvider) *Provider {
	return &Provider{
		tp:     tp,
		tracer: tp.Tracer(instrumentation),
		prop:   propagation.TraceContext{},
	}
}

// Shutdown exports the spans still buffered and stops the exporter; ctx bounds it.
func (p *Provider) Shutdown(ctx context.Context) error {
	if p == nil {
		return nil
	}
	if err := p.tp.Shutdown(ctx); err != nil {
		return fmt.Errorf("flushing traces: %w", err)
	}
	return nil
}
