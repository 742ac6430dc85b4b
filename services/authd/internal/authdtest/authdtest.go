// Package authdtest starts a whole authd for tests: both listeners on real
// TLS on 127.0.0.1, the wired app on a fresh PostgreSQL schema (or in
// memory), its workers running, and everything it logs and traces captured
// so tests can search it for secrets.
package authdtest

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pires/go-proxyproto"
	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.yaml.in/yaml/v3"

	"strongroom.dev/services/authd/internal/config"
	"strongroom.dev/services/authd/internal/devmode"
	"strongroom.dev/services/authd/internal/oauth"
	"strongroom.dev/services/authd/internal/pgtest"
	"strongroom.dev/services/authd/internal/ports/httpserver"
	"strongroom.dev/services/authd/internal/service"
	"strongroom.dev/services/authd/internal/telemetry"
	"strongroom.dev/services/dpop"
)

// Server is a running authd.
type Server struct {
	PublicURL, AdminURL string
	// AdminSecret is the back-office client's secret.
	AdminSecret string
	App         *service.App
	// Client trusts the server's certificate (and nothing else).
	Client *http.Client
	Logs   *SyncBuffer
	Spans  *tracetest.InMemoryExporter
	// DSN is the database the server uses ("" in memory).
	DSN string
}

// SyncBuffer is a goroutine-safe bytes.Buffer.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Options choose the store and the configuration.
type Options struct {
	// Memory runs on the in-memory store; otherwise a fresh schema of the
	// package's test database (pgtest.Main must run), or DSN when set.
	Memory bool
	DSN    string
	// Issuer overrides the issuer (a second replica of the same service).
	Issuer string
	// Clients, when set, are written to a clients file that replaces the
	// dev clients (the back-office secret is then AdminSecret's hash only
	// if listed).
	Clients []oauth.ClientConfig
	// PasscodeBackoff replaces the 30 s wait after 3 failures (tests must
	// not sleep for minutes).
	PasscodeBackoff time.Duration
	// CodeAttemptsPerIP overrides the activation-code limit (tests run
	// from one address; the default here is generous).
	CodeAttemptsPerIP int
	// GlobalTracing records every span of the process — authd's packages
	// trace through the global provider — in one in-memory exporter
	// (Server.Spans), sampling all. The global provider can be set only
	// once per process, so the exporter is shared by every server of the
	// test binary that asks for it: Reset it first, and tell runs apart by
	// trace id.
	GlobalTracing bool
	// ChallengesPerMinute overrides the per-device-key limit (the default
	// here is generous, for benchmarks).
	ChallengesPerMinute int
	// ChallengeLifetime and StepUpMaxAge override the biometric defaults
	// (60 s, 5 minutes), so tests can see them end.
	ChallengeLifetime, StepUpMaxAge time.Duration
	// Clock replaces the wall clock (config.Config.TimeSource).
	Clock interface{ Now() time.Time }
	// ProxyProtocolFrom makes the public listener take only connections
	// from these senders with a PROXY protocol header (BalancerClient).
	ProxyProtocolFrom []string
}

var global struct {
	once  sync.Once
	spans *tracetest.InMemoryExporter
	tp    *sdktrace.TracerProvider
}

// globalTracing installs (once) and returns the process's global tracer
// provider and its exporter.
func globalTracing() (*tracetest.InMemoryExporter, *sdktrace.TracerProvider) {
	global.once.Do(func() {
		global.spans = tracetest.NewInMemoryExporter()
		global.tp = sdktrace.NewTracerProvider(sdktrace.WithSyncer(global.spans), sdktrace.WithSampler(sdktrace.AlwaysSample()))
		otel.SetTracerProvider(global.tp)
		otel.SetTextMapPropagator(telemetry.Propagator)
	})
	return global.spans, global.tp
}

// Start runs authd until the test ends.
func Start(t testing.TB, o Options) *Server {
	t.Helper()
	s := &Server{Logs: &SyncBuffer{}, Spans: tracetest.NewInMemoryExporter()}
	log := telemetry.NewLogger(s.Logs, slog.LevelDebug)
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(s.Spans))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	if o.GlobalTracing {
		s.Spans, tp = globalTracing()
	}

	cert, err := devmode.NewCertificate(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	srv, err := httpserver.New(httpserver.Options{PublicAddr: "127.0.0.1:0", AdminAddr: "127.0.0.1:0",
		TLS: &tls.Config{Certificates: []tls.Certificate{cert.TLS}}, Logger: log, TracerProvider: tp,
		ProxyProtocolFrom: o.ProxyProtocolFrom})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Listen(); err != nil {
		t.Fatal(err)
	}
	s.PublicURL = "https://" + srv.PublicAddr().String()
	s.AdminURL = "https://" + srv.AdminAddr().String()
	secret := make([]byte, 32)
	_, _ = rand.Read(secret)
	s.AdminSecret = base64.RawURLEncoding.EncodeToString(secret)
	cfg := config.Config{Dev: true, Issuer: s.PublicURL, AdminURL: s.AdminURL, DevAdminSecret: s.AdminSecret,
		AccessTokenLifetime: 5 * time.Minute}
	if o.Issuer != "" {
		cfg.Issuer = o.Issuer
	}
	cfg.PasscodeBackoff = o.PasscodeBackoff
	cfg.TimeSource = o.Clock
	cfg.ChallengeLifetime, cfg.StepUpMaxAge = o.ChallengeLifetime, o.StepUpMaxAge
	cfg.ChallengesPerMinute = 1_000_000
	if o.ChallengesPerMinute > 0 {
		cfg.ChallengesPerMinute = o.ChallengesPerMinute
	}
	cfg.CodeAttemptsPerIP, cfg.CodeAttemptsTotal = 6000, 60000
	if o.CodeAttemptsPerIP > 0 {
		cfg.CodeAttemptsPerIP = o.CodeAttemptsPerIP
	}
	if o.Clients != nil {
		raw, err := yaml.Marshal(oauth.ClientsFile{Clients: o.Clients})
		if err != nil {
			t.Fatal(err)
		}
		cfg.ClientsFile = filepath.Join(t.TempDir(), "clients.yaml")
		if err := os.WriteFile(cfg.ClientsFile, raw, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if !o.Memory {
		cfg.DatabaseURL = o.DSN
		if cfg.DatabaseURL == "" {
			cfg.DatabaseURL = pgtest.Schema(t)
		}
		s.DSN = cfg.DatabaseURL
	}
	ctx, cancel := context.WithCancel(context.Background())
	app, err := service.Open(ctx, cfg, log)
	if err != nil {
		cancel()
		t.Fatalf("open authd: %v", err)
	}
	s.App = app
	app.Routes(srv.Public(), srv.Admin())
	for name, check := range app.ReadinessChecks() {
		srv.Readiness().Add(name, check)
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = app.Run(ctx) }()
	srv.StartAdmin()
	srv.StartPublic()
	srv.Readiness().MarkStarted()
	t.Cleanup(func() {
		sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer scancel()
		_ = srv.Shutdown(sctx)
		cancel()
		<-done
		app.Close()
	})
	leaf, _ := x509.ParseCertificate(cert.TLS.Certificate[0])
	roots := x509.NewCertPool()
	roots.AddCert(leaf)
	s.Client = &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}, ForceAttemptHTTP2: true,
		MaxIdleConnsPerHost: 64,
	}}
	t.Cleanup(s.Client.CloseIdleConnections)
	if len(o.ProxyProtocolFrom) > 0 {
		// The helpers' requests come through the balancer too.
		s.Client = s.BalancerClient(t, "192.0.2.1:40000")
	}
	return s
}

// BalancerClient is an HTTP client for authd as seen through a load
// balancer sending the PROXY protocol, forwarding a client at clientAddr
// ("ip:port"): each connection to the public listener opens with a v2
// header naming it (the internal listener is reached directly). The
// server must trust 127.0.0.1 (Options.ProxyProtocolFrom).
func (s *Server) BalancerClient(t testing.TB, clientAddr string) *http.Client {
	t.Helper()
	client := net.TCPAddrFromAddrPort(netip.MustParseAddrPort(clientAddr))
	public := strings.TrimPrefix(s.PublicURL, "https://")
	tr := s.DirectClient().Transport.(*http.Transport)
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if err != nil || addr != public {
			return c, err
		}
		if _, err := proxyproto.HeaderProxyFromAddrs(2, client, c.RemoteAddr()).WriteTo(c); err != nil {
			c.Close()
			return nil, err
		}
		return c, nil
	}
	hc := &http.Client{Timeout: s.Client.Timeout, Transport: tr}
	t.Cleanup(hc.CloseIdleConnections)
	return hc
}

// DirectClient is a new client like Client that never sends a PROXY
// protocol header.
func (s *Server) DirectClient() *http.Client {
	tr := s.Client.Transport.(*http.Transport).Clone()
	tr.DialContext = nil
	return &http.Client{Timeout: s.Client.Timeout, Transport: tr}
}

// Response is a finished HTTP exchange.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// JSON decodes the body into a map.
func (r *Response) JSON(t testing.TB) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.Body, &m); err != nil {
		t.Fatalf("response %d is not JSON: %s", r.Status, r.Body)
	}
	return m
}

// Do sends a request and reads the whole response.
func (s *Server) Do(t testing.TB, method, u string, header http.Header, body string) *Response {
	t.Helper()
	req, err := http.NewRequest(method, u, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := s.Client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return &Response{Status: resp.StatusCode, Header: resp.Header, Body: b}
}

// Form posts a urlencoded form.
func (s *Server) Form(t testing.TB, u string, header http.Header, form url.Values) *Response {
	t.Helper()
	h := http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}
	for k, v := range header {
		h[k] = v
	}
	return s.Do(t, http.MethodPost, u, h, form.Encode())
}

// Device is a DPoP key held by a test client.
type Device struct {
	Key *ecdsa.PrivateKey
	JKT string
}

// NewDevice makes a fresh P-256 DPoP key.
func NewDevice(t testing.TB) *Device {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return &Device{Key: k, JKT: dpop.Thumbprint(&k.PublicKey)}
}

// Proof makes a DPoP proof for a request.
func (d *Device) Proof(t testing.TB, method, u, nonce, accessToken string) string {
	t.Helper()
	p, err := dpop.NewProof(d.Key, method, u, nonce, accessToken, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// Nonce fetches a current DPoP nonce from the token endpoint.
func (s *Server) Nonce(t testing.TB) string {
	t.Helper()
	r := s.Form(t, s.PublicURL+"/oauth2/token", nil, url.Values{"grant_type": {"client_credentials"}})
	n := r.Header.Get("DPoP-Nonce")
	if n == "" {
		t.Fatalf("no DPoP-Nonce in a token endpoint response (%d %s)", r.Status, r.Body)
	}
	return n
}

// AdminToken obtains a back-office access token; with a device, bound to
// its key.
func (s *Server) AdminToken(t testing.TB, d *Device) (token string, resp map[string]any) {
	t.Helper()
	h := http.Header{"Authorization": {"Basic " + base64.StdEncoding.EncodeToString([]byte("back-office:"+s.AdminSecret))}}
	if d != nil {
		h.Set("DPoP", d.Proof(t, http.MethodPost, s.PublicURL+"/oauth2/token", s.Nonce(t), ""))
	}
	r := s.Form(t, s.PublicURL+"/oauth2/token", h, url.Values{"grant_type": {"client_credentials"}, "scope": {"strongroom:admin"}})
	if r.Status != http.StatusOK {
		t.Fatalf("back-office token: %d %s", r.Status, r.Body)
	}
	m := r.JSON(t)
	return m["access_token"].(string), m
}

// ActivationCode has the back office issue a code for a user.
func (s *Server) ActivationCode(t testing.TB, userID, purpose string) string {
	t.Helper()
	token, _ := s.AdminToken(t, nil)
	body, _ := json.Marshal(map[string]string{"user_id": userID, "purpose": purpose, "operator": "Olivia Operator"})
	r := s.Do(t, http.MethodPost, s.AdminURL+"/admin/v1/activations",
		http.Header{"Authorization": {"Bearer " + token}, "Content-Type": {"application/json"}}, string(body))
	if r.Status != http.StatusCreated {
		t.Fatalf("issue activation code: %d %s", r.Status, r.Body)
	}
	return r.JSON(t)["code"].(string)
}
