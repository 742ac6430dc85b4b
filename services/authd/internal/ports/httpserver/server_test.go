package httpserver

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"strongroom.dev/services/authd/internal/devmode"
	"strongroom.dev/services/authd/internal/ports/problem"
	"strongroom.dev/services/authd/internal/telemetry"
)

// syncBuffer is a log sink the server's goroutines can write concurrently.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type harness struct {
	srv    *Server
	spans  *tracetest.SpanRecorder
	logs   *syncBuffer
	client *http.Client
	pool   *x509.CertPool
}

func (h *harness) publicURL(path string) string {
	return "https://" + h.srv.PublicAddr().String() + path
}
func (h *harness) adminURL(path string) string { return "https://" + h.srv.AdminAddr().String() + path }

// newHarness starts both listeners on 127.0.0.1:0 with a real dev
// certificate; setup may add routes and checks before they start serving.
func newHarness(t *testing.T, o Options, setup func(s *Server)) *harness {
	t.Helper()
	cert, err := devmode.NewCertificate(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{spans: tracetest.NewSpanRecorder(), logs: &syncBuffer{}}
	o.PublicAddr, o.AdminAddr = "127.0.0.1:0", "127.0.0.1:0"
	o.TLS = &tls.Config{Certificates: []tls.Certificate{cert.TLS}}
	o.Logger = telemetry.NewLogger(h.logs, slog.LevelDebug)
	o.TracerProvider = sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(h.spans))
	h.srv, err = New(o)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.srv.Listen(); err != nil {
		t.Fatal(err)
	}
	if setup != nil {
		setup(h.srv)
	}
	h.srv.StartAdmin()
	h.srv.StartPublic()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = h.srv.Shutdown(ctx)
	})

	h.pool = x509.NewCertPool()
	h.pool.AddCert(cert.TLS.Leaf)
	h.client = &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{
			TLSClientConfig:   &tls.Config{RootCAs: h.pool},
			ForceAttemptHTTP2: true,
		},
	}
	t.Cleanup(h.client.CloseIdleConnections)
	return h
}

func (h *harness) do(t *testing.T, method, url string, header http.Header, body io.Reader) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	resp, err := h.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

func TestHealthzAndNotFound(t *testing.T) {
	h := newHarness(t, Options{}, nil)
	tests := []struct {
		name       string
		url        string
		wantStatus int
		wantType   string
		wantBody   string
	}{
		{"healthz on the internal listener", h.adminURL("/healthz"), 200, "application/json", `{"status":"ok"}`},
		{"healthz is not public", h.publicURL("/healthz"), 404, problem.ContentType, `"code":"not_found"`},
		{"readyz is not public", h.publicURL("/readyz"), 404, problem.ContentType, `"code":"not_found"`},
		{"unknown public path", h.publicURL("/.well-known/nothing"), 404, problem.ContentType, `"code":"not_found"`},
		{"unknown internal path", h.adminURL("/admin/v1/nothing"), 404, problem.ContentType, `"status":404`},
		{"path with traversal", h.publicURL("/%2e%2e/%2e%2e/etc/passwd"), 404, problem.ContentType, `"code":"not_found"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := h.do(t, http.MethodGet, tt.url, nil, nil)
			if resp.StatusCode != tt.wantStatus || resp.Header.Get("Content-Type") != tt.wantType {
				t.Errorf("got %d %q, want %d %q", resp.StatusCode, resp.Header.Get("Content-Type"), tt.wantStatus, tt.wantType)
			}
			if !strings.Contains(string(body), tt.wantBody) {
				t.Errorf("body %s does not contain %s", body, tt.wantBody)
			}
			if resp.ProtoMajor != 2 {
				t.Errorf("protocol %s, want HTTP/2 over TLS", resp.Proto)
			}
			if resp.Header.Get("Traceparent") == "" {
				t.Error("no traceparent in the response")
			}
		})
	}
}

func TestTLSVersions(t *testing.T) {
	h := newHarness(t, Options{}, nil)
	tests := []struct {
		name    string
		max     uint16
		wantErr bool
	}{
		{"TLS 1.1 is refused", tls.VersionTLS11, true},
		{"TLS 1.2 is accepted", tls.VersionTLS12, false},
		{"TLS 1.3 is accepted", tls.VersionTLS13, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conn, err := tls.Dial("tcp", h.srv.PublicAddr().String(), &tls.Config{
				RootCAs: h.pool, MinVersion: tls.VersionTLS10, MaxVersion: tt.max,
			})
			if conn != nil {
				conn.Close()
			}
			if (err != nil) != tt.wantErr {
				t.Errorf("handshake err = %v, want error %v", err, tt.wantErr)
			}
		})
	}
}

func TestNewRequiresACertificate(t *testing.T) {
	for name, c := range map[string]*tls.Config{"nil": nil, "empty": {}} {
		t.Run(name, func(t *testing.T) {
			if _, err := New(Options{TLS: c}); err == nil {
				t.Error("New succeeded without a certificate")
			}
		})
	}
}

func TestListenFailsOnATakenPort(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	cert, err := devmode.NewCertificate(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Options{
		PublicAddr: "127.0.0.1:0", AdminAddr: taken.Addr().String(),
		TLS: &tls.Config{Certificates: []tls.Certificate{cert.TLS}}, Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	err = s.Listen()
	if err == nil || !strings.Contains(err.Error(), "listen admin on "+taken.Addr().String()) {
		t.Fatalf("Listen err = %v", err)
	}
}

func TestBodyLimits(t *testing.T) {
	h := newHarness(t, Options{MaxBodyBytes: 1024}, func(s *Server) {
		s.Public().HandleFunc("POST /echo", func(w http.ResponseWriter, r *http.Request) {
			b, err := io.ReadAll(r.Body)
			var tooLarge *http.MaxBytesError
			if errors.As(err, &tooLarge) {
				problem.Write(w, http.StatusRequestEntityTooLarge, "request_too_large", "")
				return
			}
			_, _ = w.Write(b)
		})
	})
	tests := []struct {
		name       string
		body       io.Reader
		wantStatus int
	}{
		{"within the limit", strings.NewReader(strings.Repeat("a", 1024)), 200},
		{"declared length over the limit", strings.NewReader(strings.Repeat("a", 1025)), 413},
		// io.MultiReader hides the length, so the body is sent chunked
		// (HTTP/2: without content-length) and only the reader stops it.
		{"undeclared length over the limit", io.MultiReader(strings.NewReader(strings.Repeat("a", 4096))), 413},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := h.do(t, http.MethodPost, h.publicURL("/echo"), nil, tt.body)
			if resp.StatusCode != tt.wantStatus {
				t.Errorf("status %d, want %d: %s", resp.StatusCode, tt.wantStatus, body)
			}
			if tt.wantStatus == 413 && resp.Header.Get("Content-Type") != problem.ContentType {
				t.Errorf("413 is not a problem: %q", resp.Header.Get("Content-Type"))
			}
		})
	}
}

func TestHeaderLimit(t *testing.T) {
	h := newHarness(t, Options{}, nil)
	var h1 http.Protocols
	h1.SetHTTP1(true)
	tests := []struct {
		name      string
		protocols *http.Protocols
		// wantRefused accepts a transport error instead of a 431: an
		// HTTP/2 server may answer an oversized header block with GOAWAY.
		wantRefused bool
	}{
		{name: "HTTP/1.1 gets 431", protocols: &h1},
		{name: "HTTP/2 is refused", wantRefused: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: h.pool}, ForceAttemptHTTP2: true, Protocols: tt.protocols}
			defer tr.CloseIdleConnections()
			req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, h.adminURL("/healthz"), nil)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("X-Big", strings.Repeat("a", 64<<10))
			resp, err := tr.RoundTrip(req)
			if err != nil {
				if !tt.wantRefused {
					t.Errorf("request failed: %v, want a 431", err)
				}
				return
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
				t.Errorf("status %d, want 431", resp.StatusCode)
			}
		})
	}
}

func TestPanicBecomesProblem(t *testing.T) {
	h := newHarness(t, Options{}, func(s *Server) {
		s.Public().HandleFunc("GET /boom", func(http.ResponseWriter, *http.Request) { panic("kaboom") })
	})
	resp, body := h.do(t, http.MethodGet, h.publicURL("/boom"), nil, nil)
	if resp.StatusCode != 500 || !strings.Contains(string(body), `"code":"internal_error"`) || strings.Contains(string(body), "kaboom") {
		t.Errorf("got %d %s", resp.StatusCode, body)
	}
	if !strings.Contains(h.logs.String(), `"msg":"handler panicked"`) || !strings.Contains(h.logs.String(), "kaboom") {
		t.Errorf("panic not logged: %s", h.logs.String())
	}
	// The server keeps serving.
	if resp, _ := h.do(t, http.MethodGet, h.adminURL("/healthz"), nil, nil); resp.StatusCode != 200 {
		t.Errorf("healthz after a panic: %d", resp.StatusCode)
	}
}

func TestListeningLogLines(t *testing.T) {
	h := newHarness(t, Options{}, nil)
	want := map[string]string{"public": h.srv.PublicAddr().String(), "admin": h.srv.AdminAddr().String()}
	got := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(h.logs.String()), "\n") {
		var m struct{ Msg, Listener, Addr string }
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if m.Msg == "listening" {
			got[m.Listener] = m.Addr
		}
	}
	if got["public"] != want["public"] || got["admin"] != want["admin"] || strings.HasSuffix(got["public"], ":0") {
		t.Errorf("listening lines %v, want %v", got, want)
	}
}

// TestShutdownDrains starts a slow request, shuts down while it runs, and
// checks that it completes while new connections are refused.
func TestShutdownDrains(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	h := newHarness(t, Options{}, func(s *Server) {
		s.Public().HandleFunc("GET /slow", func(w http.ResponseWriter, r *http.Request) {
			close(entered)
			<-release
			_, _ = io.WriteString(w, "done")
		})
	})
	addr := h.srv.PublicAddr().String()

	type answer struct {
		status int
		body   string
		err    error
	}
	answers := make(chan answer, 1)
	go func() {
		resp, err := h.client.Get(h.publicURL("/slow"))
		if err != nil {
			answers <- answer{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		answers <- answer{resp.StatusCode, string(b), err}
	}()
	<-entered

	shutdownErr := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		shutdownErr <- h.srv.Shutdown(ctx)
	}()

	// New connections are refused once the listeners are closed.
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatal("the listener still accepts connections during shutdown")
		}
		time.Sleep(10 * time.Millisecond)
	}
	select {
	case err := <-shutdownErr:
		t.Fatalf("Shutdown returned %v before the in-flight request finished", err)
	default:
	}

	close(release)
	a := <-answers
	if a.err != nil || a.status != 200 || a.body != "done" {
		t.Errorf("in-flight request: %d %q %v, want 200 done", a.status, a.body, a.err)
	}
	if err := <-shutdownErr; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
}

// TestShutdownTimeout checks that a request outliving the drain does not
// hold the process: Shutdown returns the deadline error and closes it.
func TestShutdownTimeout(t *testing.T) {
	entered := make(chan struct{})
	h := newHarness(t, Options{}, func(s *Server) {
		s.Public().HandleFunc("GET /stuck", func(w http.ResponseWriter, r *http.Request) {
			close(entered)
			<-r.Context().Done()
		})
	})
	clientErr := make(chan error, 1)
	go func() {
		resp, err := h.client.Get(h.publicURL("/stuck"))
		if err == nil {
			_, err = io.ReadAll(resp.Body)
			resp.Body.Close()
		}
		clientErr <- err
	}()
	<-entered
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := h.srv.Shutdown(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Shutdown err = %v, want deadline exceeded", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("Shutdown took %s", d)
	}
	select {
	case <-clientErr: // closed: error or truncated response, either way not hanging
	case <-time.After(5 * time.Second):
		t.Error("the stuck request was not closed")
	}
}

func TestShutdownBeforeStart(t *testing.T) {
	cert, err := devmode.NewCertificate(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Options{
		PublicAddr: "127.0.0.1:0", AdminAddr: "127.0.0.1:0",
		TLS: &tls.Config{Certificates: []tls.Certificate{cert.TLS}}, Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	addr := s.PublicAddr().String()
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if c, err := net.Dial("tcp", addr); err == nil {
		c.Close()
		t.Error("an unstarted listener was left open")
	}
}
