package telemetry

import (
	"context"
	"fmt"
	"strings"

	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// TraceExporter returns the span exporter the standard OpenTelemetry
// environment asks for, or nil when it asks for none. Tracing is off
// unless configured: OTEL_TRACES_EXPORTER=otlp, or an OTLP endpoint
// (OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_EXPORTER_OTLP_TRACES_ENDPOINT);
// OTEL_TRACES_EXPORTER=none and OTEL_SDK_DISABLED=true turn it off. The
// protocol is OTEL_EXPORTER_OTLP_TRACES_PROTOCOL or
// OTEL_EXPORTER_OTLP_PROTOCOL: grpc, or http/protobuf (the default; http/json
// is sent as protobuf too, as the operator does). The
// exporters read the endpoint, headers, TLS and timeout settings from the
// same environment themselves.
func TraceExporter(ctx context.Context, getenv func(string) string) (sdktrace.SpanExporter, error) {
	use, protocol, err := traceExport(getenv)
	if err != nil || !use {
		return nil, err
	}
	if protocol == "grpc" {
		return otlptracegrpc.New(ctx)
	}
	return otlptracehttp.New(ctx)
}

// traceExport decides from the environment whether to export spans and
// with which OTLP protocol.
func traceExport(getenv func(string) string) (bool, string, error) {
	if strings.EqualFold(strings.TrimSpace(getenv("OTEL_SDK_DISABLED")), "true") {
		return false, "", nil
	}
	switch exp := strings.TrimSpace(getenv("OTEL_TRACES_EXPORTER")); exp {
	case "none":
		return false, "", nil
	case "":
		if getenv("OTEL_EXPORTER_OTLP_ENDPOINT") == "" && getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") == "" {
			return false, "", nil
		}
	case "otlp":
	default:
		return false, "", fmt.Errorf("OTEL_TRACES_EXPORTER=%q: authd exports traces over OTLP only (otlp or none)", exp)
	}
	protocol := strings.TrimSpace(getenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"))
	if protocol == "" {
		protocol = strings.TrimSpace(getenv("OTEL_EXPORTER_OTLP_PROTOCOL"))
	}
	switch protocol {
	case "", "http/protobuf", "http/json":
		// Go's exporter speaks binary protobuf only; OTLP/HTTP receivers
		// take either encoding on the same path.
		return true, "http/protobuf", nil
	case "grpc":
		return true, "grpc", nil
	default:
		return false, "", fmt.Errorf("OTLP protocol %q: want grpc or http/protobuf", protocol)
	}
}
