package telemetry

import "testing"

// TestTraceExport: tracing is off unless the standard environment asks for
// OTLP; the protocol follows OTEL_EXPORTER_OTLP_(TRACES_)PROTOCOL.
func TestTraceExport(t *testing.T) {
	for _, c := range []struct {
		name     string
		env      map[string]string
		use      bool
		protocol string
		err      bool
	}{
		{"nothing set", nil, false, "", false},
		{"endpoint", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, true, "http/protobuf", false},
		{"traces endpoint", map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, true, "http/protobuf", false},
		{"exporter otlp, default endpoint", map[string]string{"OTEL_TRACES_EXPORTER": "otlp"}, true, "http/protobuf", false},
		{"grpc", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, true, "grpc", false},
		{"traces protocol wins", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
			"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf"}, true, "http/protobuf", false},
		{"none wins over an endpoint", map[string]string{"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c"}, false, "", false},
		{"SDK disabled", map[string]string{"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "otlp"}, false, "", false},
		{"unsupported exporter", map[string]string{"OTEL_TRACES_EXPORTER": "zipkin"}, false, "", true},
		{"http/json is sent as protobuf", map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}, true, "http/protobuf", false},
		{"a typo is refused", map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "gprc"}, false, "", true},
	} {
		t.Run(c.name, func(t *testing.T) {
			use, protocol, err := traceExport(func(k string) string { return c.env[k] })
			if use != c.use || protocol != c.protocol || (err != nil) != c.err {
				t.Fatalf("got %v %q %v, want %v %q error %v", use, protocol, err, c.use, c.protocol, c.err)
			}
		})
	}
}
