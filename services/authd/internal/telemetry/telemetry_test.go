package telemetry

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

const (
	incomingTrace  = "4bf92f3577b34da6a3ce929d0e0e4736"
	incomingParent = "00f067aa0ba902b7"
)

var traceparentRE = regexp.MustCompile(`^00-([0-9a-f]{32})-([0-9a-f]{16})-0[01]$`)

func decodeLines(t *testing.T, b []byte) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range bytes.Split(bytes.TrimSpace(b), []byte("\n")) {
		var m map[string]any
		if err := json.Unmarshal(line, &m); err != nil {
			t.Fatalf("log line %q is not JSON: %v", line, err)
		}
		out = append(out, m)
	}
	return out
}

func TestLogHandler(t *testing.T) {
	tp := sdktrace.NewTracerProvider()
	ctx, span := tp.Tracer("test").Start(context.Background(), "op")
	defer span.End()
	sc := span.SpanContext()

	tests := []struct {
		name      string
		log       func(l *slog.Logger)
		wantTrace bool
		check     func(t *testing.T, m map[string]any)
	}{
		{
			name:      "context with a span",
			log:       func(l *slog.Logger) { l.InfoContext(ctx, "hello", "k", "v") },
			wantTrace: true,
			check: func(t *testing.T, m map[string]any) {
				if m["k"] != "v" || m["msg"] != "hello" {
					t.Errorf("record attributes lost: %v", m)
				}
			},
		},
		{
			name: "context without a span",
			log:  func(l *slog.Logger) { l.InfoContext(context.Background(), "hello") },
		},
		{
			name:      "attributes added with With are kept",
			log:       func(l *slog.Logger) { l.With("component", "x").InfoContext(ctx, "hello") },
			wantTrace: true,
			check: func(t *testing.T, m map[string]any) {
				if m["component"] != "x" {
					t.Errorf("With attribute lost: %v", m)
				}
			},
		},
		{
			name: "ids land in the open group",
			log:  func(l *slog.Logger) { l.WithGroup("g").InfoContext(ctx, "hello", "k", "v") },
			check: func(t *testing.T, m map[string]any) {
				g, _ := m["g"].(map[string]any)
				if g["trace_id"] != sc.TraceID().String() || g["k"] != "v" {
					t.Errorf("group = %v", m["g"])
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b bytes.Buffer
			tt.log(NewLogger(&b, slog.LevelInfo))
			m := decodeLines(t, b.Bytes())[0]
			_, hasTrace := m["trace_id"]
			if hasTrace != tt.wantTrace {
				t.Fatalf("trace_id present = %v, want %v: %v", hasTrace, tt.wantTrace, m)
			}
			if tt.wantTrace && (m["trace_id"] != sc.TraceID().String() || m["span_id"] != sc.SpanID().String()) {
				t.Errorf("ids = %v/%v, want %s/%s", m["trace_id"], m["span_id"], sc.TraceID(), sc.SpanID())
			}
			if tt.check != nil {
				tt.check(t, m)
			}
		})
	}
}

func TestLogHandlerLevel(t *testing.T) {
	var b bytes.Buffer
	l := NewLogger(&b, slog.LevelWarn)
	l.Info("dropped")
	l.Warn("kept")
	if lines := decodeLines(t, b.Bytes()); len(lines) != 1 || lines[0]["msg"] != "kept" {
		t.Errorf("lines = %v, want only the warning", lines)
	}
}

// serve runs h behind HTTPMiddleware on a real server, sends one request
// with the given traceparent, and returns the recorded server span and the
// response's traceparent.
func serve(t *testing.T, tp trace.TracerProvider, header http.Header) (*http.Response, trace.SpanContext) {
	t.Helper()
	var seen trace.SpanContext
	h := HTTPMiddleware("test", tp)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen = trace.SpanContextFromContext(r.Context())
		w.WriteHeader(http.StatusTeapot)
	}))
	srv := httptest.NewServer(h)
	defer srv.Close()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL+"/x", nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp, seen
}

func TestHTTPMiddleware(t *testing.T) {
	tests := []struct {
		name        string
		traceparent []string
		honoured    bool
	}{
		{name: "valid traceparent is honoured", traceparent: []string{"00-" + incomingTrace + "-" + incomingParent + "-01"}, honoured: true},
		{name: "unsampled traceparent is honoured", traceparent: []string{"00-" + incomingTrace + "-" + incomingParent + "-00"}, honoured: true},
		{name: "no traceparent starts a trace"},
		{name: "all-zero trace id", traceparent: []string{"00-00000000000000000000000000000000-" + incomingParent + "-01"}},
		{name: "all-zero parent id", traceparent: []string{"00-" + incomingTrace + "-0000000000000000-01"}},
		{name: "forbidden version ff", traceparent: []string{"ff-" + incomingTrace + "-" + incomingParent + "-01"}},
		{name: "upper case hex", traceparent: []string{"00-" + strings.ToUpper(incomingTrace) + "-" + incomingParent + "-01"}},
		{name: "garbage", traceparent: []string{"'; DROP TABLE events; --"}},
		{name: "huge", traceparent: []string{"00-" + strings.Repeat("a", 8000)}},
		{name: "trailing data on version 00", traceparent: []string{"00-" + incomingTrace + "-" + incomingParent + "-01-extra"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := tracetest.NewSpanRecorder()
			tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec), sdktrace.WithSampler(sdktrace.AlwaysSample()))
			resp, seen := serve(t, tp, http.Header{"Traceparent": tt.traceparent})

			spans := rec.Ended()
			if len(spans) != 1 {
				t.Fatalf("recorded %d spans, want 1", len(spans))
			}
			span := spans[0]
			if span.SpanKind() != trace.SpanKindServer {
				t.Errorf("span kind = %v, want server", span.SpanKind())
			}
			if span.SpanContext().SpanID() != seen.SpanID() {
				t.Errorf("handler saw span %s, recorded %s", seen.SpanID(), span.SpanContext().SpanID())
			}
			gotTrace := span.SpanContext().TraceID().String()
			if tt.honoured {
				if gotTrace != incomingTrace || span.Parent().SpanID().String() != incomingParent {
					t.Errorf("span trace/parent = %s/%s, want %s/%s", gotTrace, span.Parent().SpanID(), incomingTrace, incomingParent)
				}
			} else if gotTrace == incomingTrace || span.Parent().IsValid() {
				t.Errorf("a new trace was not started: trace %s parent %v", gotTrace, span.Parent())
			}

			m := traceparentRE.FindStringSubmatch(resp.Header.Get("Traceparent"))
			if m == nil {
				t.Fatalf("response traceparent %q is not W3C", resp.Header.Get("Traceparent"))
			}
			if m[1] != gotTrace || m[2] != span.SpanContext().SpanID().String() {
				t.Errorf("response traceparent %s does not name the server span %s/%s", m[0], gotTrace, span.SpanContext().SpanID())
			}
			if resp.StatusCode != http.StatusTeapot {
				t.Errorf("status = %d: the middleware changed the response", resp.StatusCode)
			}
		})
	}
}

// TestSetupWithoutExporter: with nowhere to send spans, none is recorded,
// yet every request still gets a trace (an incoming one is continued) and
// answers its traceparent.
func TestSetupWithoutExporter(t *testing.T) {
	tp, err := Setup(t.Context(), Options{ServiceName: "authd-test", ServiceVersion: "v0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = tp.Shutdown(context.Background())
		otel.SetTracerProvider(noop.NewTracerProvider())
	})
	_, span := tp.Tracer("t").Start(t.Context(), "x")
	if span.IsRecording() || !span.SpanContext().IsValid() {
		t.Fatalf("span recording %v, context valid %v; want not recording, valid", span.IsRecording(), span.SpanContext().IsValid())
	}
	span.End()
	resp, _ := serve(t, nil, http.Header{"Traceparent": {"00-" + incomingTrace + "-" + incomingParent + "-01"}})
	if tp := resp.Header.Get("Traceparent"); !strings.HasPrefix(tp, "00-"+incomingTrace+"-") || strings.Contains(tp, incomingParent) {
		t.Fatalf("response traceparent %q does not continue the incoming trace with a span of its own", tp)
	}
}

// TestSetup checks the global wiring main relies on: the W3C propagator,
// sampling even when the client's flag says not to, and export.
func TestSetup(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp, err := Setup(t.Context(), Options{ServiceName: "authd-test", ServiceVersion: "v0", Exporter: exp})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = tp.Shutdown(context.Background())
		otel.SetTracerProvider(noop.NewTracerProvider())
	})
	if otel.GetTracerProvider() != tp {
		t.Error("Setup did not install the provider globally")
	}
	if f := otel.GetTextMapPropagator().Fields(); len(f) != 2 || f[0] != "traceparent" {
		t.Errorf("global propagator fields = %v, want W3C trace context", f)
	}

	resp, _ := serve(t, nil, http.Header{"Traceparent": {"00-" + incomingTrace + "-" + incomingParent + "-00"}})
	if err := tp.ForceFlush(t.Context()); err != nil {
		t.Fatal(err)
	}
	spans := exp.GetSpans()
	if len(spans) != 1 {
		t.Fatalf("exported %d spans, want 1 (sampled although the client said 00)", len(spans))
	}
	if got := spans[0].SpanContext.TraceID().String(); got != incomingTrace {
		t.Errorf("trace id = %s, want %s", got, incomingTrace)
	}
	if !strings.HasSuffix(resp.Header.Get("Traceparent"), "-01") {
		t.Errorf("response traceparent %q is not sampled", resp.Header.Get("Traceparent"))
	}
	if got := resourceAttr(spans[0], "service.name"); got != "authd-test" {
		t.Errorf("service.name = %q", got)
	}
}

// TestSetupResourceFromEnvironment: OTEL_SERVICE_NAME and
// OTEL_RESOURCE_ATTRIBUTES name a deployment over the built-in name;
// what they leave out keeps authd's values.
func TestSetupResourceFromEnvironment(t *testing.T) {
	for _, c := range []struct {
		name, serviceName, attrs string
		want                     map[string]string
	}{
		{"unset", "", "", map[string]string{"service.name": "authd", "service.version": "v1.2.3"}},
		{"service name", "authd-eu-1", "", map[string]string{"service.name": "authd-eu-1", "service.version": "v1.2.3"}},
		{"resource attributes", "", "service.name=authd-us,deployment.environment.name=prod",
			map[string]string{"service.name": "authd-us", "deployment.environment.name": "prod", "service.version": "v1.2.3"}},
		{"service name wins", "authd-eu-2", "service.name=other", map[string]string{"service.name": "authd-eu-2"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Setenv("OTEL_SERVICE_NAME", c.serviceName)
			t.Setenv("OTEL_RESOURCE_ATTRIBUTES", c.attrs)
			exp := tracetest.NewInMemoryExporter()
			tp, err := Setup(t.Context(), Options{ServiceName: "authd", ServiceVersion: "v1.2.3", Exporter: exp})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				_ = tp.Shutdown(context.Background())
				otel.SetTracerProvider(noop.NewTracerProvider())
			})
			_, span := tp.Tracer("test").Start(t.Context(), "x")
			span.End()
			if err := tp.ForceFlush(t.Context()); err != nil {
				t.Fatal(err)
			}
			spans := exp.GetSpans()
			if len(spans) != 1 {
				t.Fatalf("%d spans", len(spans))
			}
			for k, v := range c.want {
				if got := resourceAttr(spans[0], k); got != v {
					t.Errorf("%s = %q, want %q", k, got, v)
				}
			}
		})
	}
}

func resourceAttr(s tracetest.SpanStub, key string) string {
	for _, kv := range s.Resource.Attributes() {
		if string(kv.Key) == key {
			return kv.Value.AsString()
		}
	}
	return ""
}
