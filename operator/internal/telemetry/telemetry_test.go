package telemetry

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/grpc"
)

// TestTraceProtocol: tracing is off unless the environment asks for it,
// none and OTEL_SDK_DISABLED win, the traces-specific protocol wins over
// the general one, and what the operator cannot do is an error.
func TestTraceProtocol(t *testing.T) {
	const endpoint = "http://collector.observability:4318"
	for _, tc := range []struct {
		name    string
		env     map[string]string
		want    string // "" off
		wantErr bool
	}{
		{name: "nothing set", env: nil, want: ""},
		{name: "only a protocol", env: map[string]string{"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, want: ""},
		{name: "only headers", env: map[string]string{"OTEL_EXPORTER_OTLP_HEADERS": "x=y"}, want: ""},
		{name: "exporter otlp", env: map[string]string{"OTEL_TRACES_EXPORTER": "otlp"}, want: ProtocolHTTP},
		{name: "exporter otlp, padded", env: map[string]string{"OTEL_TRACES_EXPORTER": " otlp "}, want: ProtocolHTTP},
		{name: "endpoint", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint}, want: ProtocolHTTP},
		{name: "traces endpoint", env: map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": endpoint + "/v1/traces"}, want: ProtocolHTTP},
		{name: "endpoint, exporter none", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "OTEL_TRACES_EXPORTER": "none"}, want: ""},
		{name: "exporter otlp, SDK disabled", env: map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_SDK_DISABLED": "TRUE"}, want: ""},
		{name: "endpoint, SDK not disabled", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "OTEL_SDK_DISABLED": "false"}, want: ProtocolHTTP},
		{name: "grpc", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, want: ProtocolGRPC},
		{name: "http/protobuf", env: map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}, want: ProtocolHTTP},
		{name: "traces protocol wins", env: map[string]string{"OTEL_TRACES_EXPORTER": "otlp",
			"OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "grpc"}, want: ProtocolGRPC},
		{name: "traces protocol wins, other way", env: map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": endpoint,
			"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf"}, want: ProtocolHTTP},
		{name: "http/json sent as protobuf", env: map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}, want: ProtocolHTTP},
		{name: "unknown protocol", env: map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "gprc"}, wantErr: true},
		{name: "unknown protocol, tracing off", env: map[string]string{"OTEL_EXPORTER_OTLP_PROTOCOL": "gprc"}, want: ""},
		{name: "unsupported exporter", env: map[string]string{"OTEL_TRACES_EXPORTER": "zipkin"}, wantErr: true},
		{name: "unsupported exporter, SDK disabled", env: map[string]string{"OTEL_TRACES_EXPORTER": "zipkin", "OTEL_SDK_DISABLED": "true"}, want: ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			getenv := func(k string) string { return tc.env[k] }
			got, err := TraceProtocol(getenv)
			if (err != nil) != tc.wantErr || got != tc.want {
				t.Fatalf("TraceProtocol = %q, %v; want %q, error %v", got, err, tc.want, tc.wantErr)
			}
			// The exporter follows the decision: nil exactly when off.
			exp, err := TraceExporter(context.Background(), getenv)
			if (err != nil) != tc.wantErr || (exp != nil) != (tc.want != "") {
				t.Fatalf("TraceExporter = %v, %v; want an exporter %v, error %v", exp, err, tc.want != "", tc.wantErr)
			}
			if exp != nil {
				if err := exp.Shutdown(context.Background()); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

// TestTracingExports: with only OTEL_EXPORTER_OTLP_ENDPOINT (and the
// protocol) set, spans reach a collector at that endpoint, over HTTP and
// over gRPC: the exporters read the rest of the environment themselves.
func TestTracingExports(t *testing.T) {
	t.Run("http/protobuf", func(t *testing.T) {
		var got atomic.Int64
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodPost && r.URL.Path == "/v1/traces" {
				got.Add(1)
			}
			w.Header().Set("Content-Type", "application/x-protobuf")
		}))
		defer srv.Close()
		t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", srv.URL)
		exportOneSpan(t)
		if got.Load() == 0 {
			t.Fatal("the collector received no spans")
		}
	})
	t.Run("grpc", func(t *testing.T) {
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		col := &collector{}
		srv := grpc.NewServer()
		coltracepb.RegisterTraceServiceServer(srv, col)
		go func() { _ = srv.Serve(lis) }()
		defer srv.Stop()
		t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://"+lis.Addr().String())
		t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
		exportOneSpan(t)
		if col.spans.Load() != 1 {
			t.Fatalf("the collector received %d spans, want 1", col.spans.Load())
		}
	})
}

// exportOneSpan sets up tracing from the process environment, ends one
// span and shuts the provider down (which flushes it).
func exportOneSpan(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	exp, err := TraceExporter(ctx, os.Getenv)
	if err != nil || exp == nil {
		t.Fatalf("TraceExporter = %v, %v", exp, err)
	}
	shutdown, err := Tracing(ctx, exp)
	if err != nil {
		t.Fatal(err)
	}
	_, span := otel.Tracer("test").Start(ctx, "reconcile KeySet")
	span.End()
	if err := shutdown(ctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
}

type collector struct {
	coltracepb.UnimplementedTraceServiceServer
	spans atomic.Int64
}

func (c *collector) Export(_ context.Context, req *coltracepb.ExportTraceServiceRequest) (*coltracepb.ExportTraceServiceResponse, error) {
	for _, rs := range req.ResourceSpans {
		for _, ss := range rs.ScopeSpans {
			c.spans.Add(int64(len(ss.Spans)))
		}
	}
	return &coltracepb.ExportTraceServiceResponse{}, nil
}

// TestMeterProviderNames: an instrument shows under exactly its name (no
// unit suffix although it has a unit), with exactly its attributes as
// labels (no otel_scope_*), and nothing else is registered (no
// target_info).
func TestMeterProviderNames(t *testing.T) {
	reg := prometheus.NewRegistry()
	mp, err := MeterProvider(reg)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = mp.Shutdown(context.Background()) }()
	meter := mp.Meter("strongroom.dev/operator")
	g, err := meter.Float64ObservableGauge("strongroom_operator_transition_seconds", metric.WithUnit("s"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := meter.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		o.ObserveFloat64(g, -1.5, metric.WithAttributes(attribute.String("kind", "KeySet"), attribute.String("namespace", "bank"),
			attribute.String("name", "tokens")))
		return nil
	}, g); err != nil {
		t.Fatal(err)
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	if len(families) != 1 || families[0].GetName() != "strongroom_operator_transition_seconds" || len(families[0].Metric) != 1 {
		t.Fatalf("gathered %v", families)
	}
	m := families[0].Metric[0]
	labels := map[string]string{}
	for _, l := range m.Label {
		labels[l.GetName()] = l.GetValue()
	}
	if len(labels) != 3 || labels["kind"] != "KeySet" || labels["namespace"] != "bank" || labels["name"] != "tokens" || m.GetGauge().GetValue() != -1.5 {
		t.Fatalf("series %v", m)
	}
}
