// Package telemetry sets up tracing and structured logs so that every
// request has a trace, every log line names it, and every event appended
// during the request carries its W3C trace context (see eventstore).
package telemetry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// Options configures Setup.
type Options struct {
	ServiceName    string
	ServiceVersion string
	// Exporter receives finished spans; nil means spans are created (so
	// trace ids reach logs, responses and events) but not exported.
	Exporter sdktrace.SpanExporter
	// Logger receives OpenTelemetry's internal errors (e.g. a failing
	// exporter); nil means slog.Default().
	Logger *slog.Logger
}

// Setup builds the process's TracerProvider, installs it and the W3C
// TraceContext propagator globally, and returns the provider; call its
// Shutdown on exit to flush the exporter.
//
// With an exporter every span is sampled: a client must not be able to
// switch tracing off with a traceparent flag. Volume is for the collector
// to reduce (tail sampling), not for authd. Without an exporter no span is
// recorded, since none would go anywhere: spans still get their trace and
// span ids (the response's traceparent, the audit trail's trace id), but
// cost no attributes, events or end processing on the hot path.
func Setup(ctx context.Context, o Options) (*sdktrace.TracerProvider, error) {
	// The environment (OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES) comes
	// last, so that it overrides the built-in name: an SRE names each
	// deployment (authd-eu-1) without a rebuild.
	res, err := resource.New(ctx,
		resource.WithTelemetrySDK(),
		resource.WithAttributes(
			attribute.String("service.name", o.ServiceName),
			attribute.String("service.version", o.ServiceVersion),
		),
		resource.WithFromEnv(),
	)
	if err != nil && !errors.Is(err, resource.ErrPartialResource) {
		return nil, fmt.Errorf("build telemetry resource: %w", err)
	}
	opts := []sdktrace.TracerProviderOption{
		sdktrace.WithResource(res),
		sdktrace.WithSampler(sdktrace.NeverSample()),
	}
	if o.Exporter != nil {
		opts = append(opts, sdktrace.WithSampler(sdktrace.AlwaysSample()), sdktrace.WithBatcher(o.Exporter))
	}
	tp := sdktrace.NewTracerProvider(opts...)

	log := o.Logger
	if log == nil {
		log = slog.Default()
	}
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
		log.WarnContext(ctx, "opentelemetry", "error", err)
	}))
	otel.SetTracerProvider(tp)
	otel.SetTextMapPropagator(Propagator)
	return tp, nil
}

// Propagator is the only propagation format authd reads and writes: W3C
// Trace Context. Baggage is deliberately not read from untrusted clients.
var Propagator propagation.TextMapPropagator = propagation.TraceContext{}
