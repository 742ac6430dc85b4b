package e2e

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
)

// receiver is an OTLP trace receiver built on the OTLP protocol's own
// generated packages (the collector's receivers speak the same): it keeps
// every span it is sent, over gRPC or HTTP.
type receiver struct {
	coltracepb.UnimplementedTraceServiceServer
	mu    sync.Mutex
	spans []*tracepb.ResourceSpans
}

func (r *receiver) Export(_ context.Context, req *coltracepb.ExportTraceServiceRequest) (*coltracepb.ExportTraceServiceResponse, error) {
	r.mu.Lock()
	r.spans = append(r.spans, req.ResourceSpans...)
	r.mu.Unlock()
	return &coltracepb.ExportTraceServiceResponse{}, nil
}

// ServeHTTP is OTLP/HTTP with binary protobuf (POST /v1/traces).
func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if req.Method != http.MethodPost || req.URL.Path != "/v1/traces" || req.Header.Get("Content-Type") != "application/x-protobuf" {
		http.Error(w, "want POST /v1/traces, application/x-protobuf", http.StatusBadRequest)
		return
	}
	body, err := io.ReadAll(io.LimitReader(req.Body, 16<<20))
	var msg coltracepb.ExportTraceServiceRequest
	if err != nil || proto.Unmarshal(body, &msg) != nil {
		http.Error(w, "not an ExportTraceServiceRequest", http.StatusBadRequest)
		return
	}
	resp, _ := r.Export(req.Context(), &msg)
	out, _ := proto.Marshal(resp)
	w.Header().Set("Content-Type", "application/x-protobuf")
	_, _ = w.Write(out)
}

// trace returns the spans of one trace, with the resource that sent each.
func (r *receiver) trace(traceID []byte) (spans []*tracepb.Span, services []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rs := range r.spans {
		service := ""
		for _, a := range rs.GetResource().GetAttributes() {
			if a.Key == "service.name" {
				service = a.GetValue().GetStringValue()
			}
		}
		for _, ss := range rs.ScopeSpans {
			for _, sp := range ss.Spans {
				if string(sp.TraceId) == string(traceID) {
					spans = append(spans, sp)
					services = append(services, service)
				}
			}
		}
	}
	return spans, services
}

// TestTracesExportOverOTLP runs authd as a process with nothing but the
// standard OTEL_* environment pointing at an OTLP receiver, over gRPC and
// over HTTP, and checks that a request's trace arrives intact: the trace
// id the client sent, the server span as the child of the client's span,
// the grant, the append and the PostgreSQL queries under it, from service
// authd.
func TestTracesExportOverOTLP(t *testing.T) {
	for _, protocol := range []string{"grpc", "http/protobuf"} {
		t.Run(protocol, func(t *testing.T) {
			rec := &receiver{}
			var endpoint string
			if protocol == "grpc" {
				lis, err := net.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					t.Fatal(err)
				}
				srv := grpc.NewServer()
				coltracepb.RegisterTraceServiceServer(srv, rec)
				go func() { _ = srv.Serve(lis) }()
				t.Cleanup(srv.Stop)
				endpoint = "http://" + lis.Addr().String()
			} else {
				srv := httptest.NewServer(rec)
				t.Cleanup(srv.Close)
				endpoint = srv.URL
			}
			env := cleanEnv("DATABASE_URL="+freshDatabase(t), "OTEL_EXPORTER_OTLP_ENDPOINT="+endpoint,
				"OTEL_EXPORTER_OTLP_PROTOCOL="+protocol, "OTEL_EXPORTER_OTLP_INSECURE=true", "OTEL_BSP_SCHEDULE_DELAY=100")
			args, pin := productionServe(t)
			p := startAuthd(t, env, append(args, "--migrate-on-start")...)
			client := pinnedClient(pin)
			defer client.CloseIdleConnections()

			traceID, parent := make([]byte, 16), make([]byte, 8)
			_, _ = rand.Read(traceID)
			_, _ = rand.Read(parent)
			req, _ := http.NewRequest(http.MethodPost, "https://"+p.public+"/oauth2/token",
				strings.NewReader(url.Values{"grant_type": {"client_credentials"}, "scope": {"strongroom:admin"}}.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("traceparent", "00-"+hex.EncodeToString(traceID)+"-"+hex.EncodeToString(parent)+"-01")
			req.SetBasicAuth("back-office", backOfficeSecret)
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("token: %d", resp.StatusCode)
			}

			var spans []*tracepb.Span
			var services []string
			byName := map[string]*tracepb.Span{}
			for deadline := time.Now().Add(20 * time.Second); ; {
				spans, services = rec.trace(traceID)
				clear(byName)
				for _, sp := range spans {
					byName[sp.Name] = sp
				}
				if byName["oauth2.grant client_credentials"] != nil && byName["eventstore.append"] != nil && byName["POST /oauth2/token"] != nil {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("the request's spans did not arrive over %s: got %d spans", protocol, len(spans))
				}
				time.Sleep(50 * time.Millisecond)
			}
			for _, s := range services {
				if s != "authd" {
					t.Fatalf("a span from service %q", s)
				}
			}
			server, grant, appendSpan := byName["POST /oauth2/token"], byName["oauth2.grant client_credentials"], byName["eventstore.append"]
			if string(server.ParentSpanId) != string(parent) || server.Kind != tracepb.Span_SPAN_KIND_SERVER {
				t.Errorf("server span: parent %x kind %v, want the client's span %x, server", server.ParentSpanId, server.Kind, parent)
			}
			if string(grant.ParentSpanId) != string(server.SpanId) {
				t.Errorf("the grant span is not the server span's child")
			}
			ids := map[string]*tracepb.Span{}
			for _, sp := range spans {
				ids[string(sp.SpanId)] = sp
			}
			// The append runs inside the grant (fosite's storage).
			for at := appendSpan; ; at = ids[string(at.ParentSpanId)] {
				if at == nil {
					t.Fatal("the append span does not descend from the grant span")
				}
				if at == grant {
					break
				}
			}
			queries := 0
			for _, sp := range spans {
				for _, a := range sp.Attributes {
					if a.Key == "db.system.name" || a.Key == "db.system" {
						queries++
					}
				}
			}
			if queries == 0 {
				t.Error("no PostgreSQL query span in the trace")
			}
			if !attr(server, "http.request.method", "POST") {
				t.Errorf("server span attributes %v", server.Attributes)
			}
		})
	}
}

func attr(sp *tracepb.Span, key, want string) bool {
	for _, a := range sp.Attributes {
		if a.Key == key {
			return a.GetValue().GetStringValue() == want
		}
	}
	return false
}
