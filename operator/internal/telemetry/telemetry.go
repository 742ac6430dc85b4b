// Package telemetry sets up the operator's traces and metrics. Spans go to
// an OTLP collector when the standard OTEL_* environment asks for it, and
// nowhere otherwise; metrics go to a Prometheus registry (in the operator,
// controller-runtime's, which its metrics endpoint serves).
package telemetry

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/otlptranslator"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// ServiceName is the service.name of the operator's spans, unless
// OTEL_SERVICE_NAME or OTEL_RESOURCE_ATTRIBUTES say otherwise.
const ServiceName = "strongroom-operator"

// The OTLP protocols (OTEL_EXPORTER_OTLP_PROTOCOL) the operator exports
// spans with.
const (
	ProtocolGRPC = "grpc"
	ProtocolHTTP = "http/protobuf"
)

// TraceProtocol decides from the environment (read through getenv)
// whether spans are exported, and with which OTLP protocol: "" when
// tracing is off, else ProtocolGRPC or ProtocolHTTP.
//
// Tracing is off unless asked for: OTEL_TRACES_EXPORTER=otlp, or an OTLP
// endpoint (OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_EXPORTER_OTLP_TRACES_ENDPOINT)
// set. OTEL_TRACES_EXPORTER=none and OTEL_SDK_DISABLED=true switch it off
// whatever else is set. The protocol is OTEL_EXPORTER_OTLP_TRACES_PROTOCOL,
// else OTEL_EXPORTER_OTLP_PROTOCOL, else http/protobuf. A value the
// operator cannot honour is an error rather than spans quietly sent
// nowhere.
func TraceProtocol(getenv func(string) string) (string, error) {
	env := func(key string) string { return strings.TrimSpace(getenv(key)) }
	if strings.EqualFold(env("OTEL_SDK_DISABLED"), "true") {
		return "", nil
	}
	switch exporter := env("OTEL_TRACES_EXPORTER"); exporter {
	case "none":
		return "", nil
	case "otlp":
	case "":
		if env("OTEL_EXPORTER_OTLP_ENDPOINT") == "" && env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") == "" {
			return "", nil
		}
	default:
		return "", fmt.Errorf("OTEL_TRACES_EXPORTER=%q: the operator exports spans only with otlp (or none)", exporter)
	}
	switch proto := cmp.Or(env("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"), env("OTEL_EXPORTER_OTLP_PROTOCOL"), ProtocolHTTP); proto {
	case ProtocolGRPC, ProtocolHTTP:
		return proto, nil
	case "http/json":
		// otlptracehttp speaks protobuf only; an OTLP/HTTP receiver
		// takes either on the same path, so protobuf reaches it too.
		return ProtocolHTTP, nil
	default:
		return "", fmt.Errorf("OTLP protocol %q: want %s or %s", proto, ProtocolGRPC, ProtocolHTTP)
	}
}

// TraceExporter returns the OTLP span exporter the environment asks for
// (TraceProtocol), or nil when tracing is off. The exporters read their
// endpoint, headers, TLS and timeout from the OTEL_EXPORTER_OTLP_*
// environment themselves; getenv only decides. Neither connects here.
func TraceExporter(ctx context.Context, getenv func(string) string) (sdktrace.SpanExporter, error) {
	proto, err := TraceProtocol(getenv)
	if err != nil || proto == "" {
		return nil, err
	}
	var exp sdktrace.SpanExporter
	switch proto {
	case ProtocolGRPC:
		exp, err = otlptracegrpc.New(ctx)
	default:
		exp, err = otlptracehttp.New(ctx)
	}
	if err != nil {
		return nil, fmt.Errorf("OTLP trace exporter (%s): %w", proto, err)
	}
	return exp, nil
}

// Tracing installs the W3C TraceContext propagator and, with an exporter,
// a TracerProvider that exports every span through it, as the global
// provider. It returns the function that flushes and stops the provider,
// to call on exit. Without an exporter the global provider stays the
// no-op one: spans cost nothing when they would go nowhere.
func Tracing(ctx context.Context, exp sdktrace.SpanExporter) (shutdown func(context.Context) error, err error) {
	otel.SetTextMapPropagator(propagation.TraceContext{})
	if exp == nil {
		return func(context.Context) error { return nil }, nil
	}
	// The environment (OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES) comes
	// last, so that it overrides the default service name.
	res, err := resource.New(ctx,
		resource.WithTelemetrySDK(),
		resource.WithAttributes(attribute.String("service.name", ServiceName)),
		resource.WithFromEnv(),
	)
	if err != nil && !errors.Is(err, resource.ErrPartialResource) {
		return nil, fmt.Errorf("telemetry resource: %w", err)
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithResource(res), sdktrace.WithBatcher(exp))
	otel.SetTracerProvider(tp)
	return tp.Shutdown, nil
}

// MeterProvider returns a MeterProvider whose instruments reg exposes in
// the Prometheus format, each under exactly the name it was given and with
// exactly the attributes it was observed with: alert rules and dashboards
// are written against those names and labels.
//
// Each call registers one more collector with reg (the exporter's
// collector describes nothing, so several do not clash).
func MeterProvider(reg prometheus.Registerer) (*sdkmetric.MeterProvider, error) {
	exp, err := otelprom.New(
		otelprom.WithRegisterer(reg),
		// No unit or _total suffix appended (nor by a later default):
		// instruments are named as Prometheus shows them.
		otelprom.WithTranslationStrategy(otlptranslator.UnderscoreEscapingWithoutSuffixes),
		// No otel_scope_* labels on every series, and no target_info
		// series: the scrape's own target labels say which pod it was.
		otelprom.WithoutScopeInfo(),
		otelprom.WithoutTargetInfo(),
	)
	if err != nil {
		return nil, fmt.Errorf("prometheus exporter: %w", err)
	}
	return sdkmetric.NewMeterProvider(sdkmetric.WithReader(exp)), nil
}
