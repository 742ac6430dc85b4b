// Package httpserver runs authd's two HTTPS listeners (CONTRACT.md, Actors
// and listeners): the public one, which later issues fill with discovery,
// /oauth2 and /v1, and the internal one with /healthz, /readyz and the admin
// API. Both share the same hardening: TLS 1.2+, header and body limits,
// timeouts, a server span per request, and the request facts the event
// store records (client IP, user agent, correlation id).
package httpserver

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"go.opentelemetry.io/otel/trace"

	"strongroom.dev/services/authd/internal/ports/problem"
	"strongroom.dev/services/authd/internal/telemetry"
)

// Limits every listener applies. A token request, even with an attestation
// chain or an App Attest object, is a few kilobytes; anything much larger
// is a mistake or an attack and is refused before a handler reads it.
const (
	DefaultMaxBodyBytes = 64 << 10
	maxHeaderBytes      = 32 << 10
	readHeaderTimeout   = 5 * time.Second
	readTimeout         = 30 * time.Second
	writeTimeout        = 30 * time.Second
	idleTimeout         = 120 * time.Second
)

// Options configures New.
type Options struct {
	// PublicAddr and AdminAddr are host:port listen addresses (port 0 picks
	// a free port; see PublicAddr and AdminAddr after Listen).
	PublicAddr, AdminAddr string
	// TLS must hold a certificate (Certificates or GetCertificate). It is
	// cloned; MinVersion is raised to TLS 1.2 if lower.
	TLS *tls.Config
	// Logger receives the "listening" lines and request-level errors.
	Logger *slog.Logger
	// TracerProvider creates the server spans; nil means the global one.
	TracerProvider trace.TracerProvider
	// MaxBodyBytes bounds request bodies; 0 means DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// ReadinessTimeout bounds one /readyz evaluation; 0 means 2s.
	ReadinessTimeout time.Duration
	// ProxyProtocolFrom lists the IPs and CIDRs of the load balancers in
	// front of the public listener. When it is not empty, the public
	// listener takes connections only from them, and only when they open
	// with a PROXY protocol (v1 or v2) header; the header's source is the
	// client address handlers see. Anything else is dropped: a port that
	// takes both would let any client choose its IP.
	ProxyProtocolFrom []string
}

// The routes the internal listener always serves.
const (
	RouteHealthz = "GET /healthz"
	RouteReadyz  = "GET /readyz"
)

// Server is the pair of listeners.
type Server struct {
	public, admin *listener
	readiness     *Readiness
	log           *slog.Logger
	errc          chan error
}

type listener struct {
	name    string
	addr    string
	mux     *http.ServeMux
	srv     *http.Server
	ln      net.Listener
	mu      sync.Mutex
	serving bool
	// proxyFrom: see Options.ProxyProtocolFrom.
	proxyFrom []netip.Prefix
}

// New builds both listeners without binding them: call Listen, add routes
// to Public and Admin, then StartAdmin and StartPublic.
func New(o Options) (*Server, error) {
	if o.TLS == nil || (len(o.TLS.Certificates) == 0 && o.TLS.GetCertificate == nil && o.TLS.GetConfigForClient == nil) {
		return nil, errors.New("httpserver: a TLS certificate is required")
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.MaxBodyBytes <= 0 {
		o.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if o.ReadinessTimeout <= 0 {
		o.ReadinessTimeout = 2 * time.Second
	}
	tlsConf := o.TLS.Clone()
	if tlsConf.MinVersion < tls.VersionTLS12 {
		tlsConf.MinVersion = tls.VersionTLS12
	}

	s := &Server{
		readiness: NewReadiness(o.ReadinessTimeout, o.Logger),
		log:       o.Logger,
		errc:      make(chan error, 2),
	}
	s.public = s.newListener("public", o.PublicAddr, tlsConf, o)
	if len(o.ProxyProtocolFrom) > 0 {
		senders, err := parseSenders(o.ProxyProtocolFrom)
		if err != nil {
			return nil, fmt.Errorf("httpserver: %w", err)
		}
		s.public.proxyFrom = senders
	}
	s.admin = s.newListener("admin", o.AdminAddr, tlsConf, o)
	s.admin.mux.HandleFunc(RouteHealthz, healthz)
	s.admin.mux.Handle(RouteReadyz, s.readiness)
	return s, nil
}

func (s *Server) newListener(name, addr string, tlsConf *tls.Config, o Options) *listener {
	mux := http.NewServeMux()
	mux.HandleFunc("/", problem.NotFound)
	var h http.Handler = mux
	h = limitBody(o.MaxBodyBytes, h)
	h = requestContext(h)
	h = recoverPanics(o.Logger, h)
	h = telemetry.HTTPMiddleware(name, o.TracerProvider)(h)
	return &listener{
		name: name,
		addr: addr,
		mux:  mux,
		srv: &http.Server{
			Handler:           h,
			TLSConfig:         tlsConf.Clone(),
			ReadHeaderTimeout: readHeaderTimeout,
			ReadTimeout:       readTimeout,
			WriteTimeout:      writeTimeout,
			IdleTimeout:       idleTimeout,
			MaxHeaderBytes:    maxHeaderBytes,
			// Debug: what net/http logs here is mostly TLS handshake noise
			// from scanners and TCP probes; real failures are logged by
			// the handlers themselves.
			ErrorLog: slog.NewLogLogger(o.Logger.With("listener", name).Handler(), slog.LevelDebug),
		},
	}
}

// Public is the public listener's mux; unknown paths answer a 404 problem.
func (s *Server) Public() *http.ServeMux { return s.public.mux }

// Admin is the internal listener's mux, which already serves /healthz and
// /readyz.
func (s *Server) Admin() *http.ServeMux { return s.admin.mux }

// Readiness is the set of checks /readyz evaluates.
func (s *Server) Readiness() *Readiness { return s.readiness }

// Listen binds both listeners, so their real addresses are known (and the
// ports taken) before anything slow, such as opening the database, runs.
func (s *Server) Listen() error {
	for _, l := range []*listener{s.public, s.admin} {
		ln, err := net.Listen("tcp", l.addr)
		if err != nil {
			s.closeListeners()
			return fmt.Errorf("listen %s on %s: %w", l.name, l.addr, err)
		}
		if l.proxyFrom != nil {
			// Under TLS: the header comes first, in clear, from the
			// balancer; the handshake follows it.
			ln = &proxyListener{Listener: ln, senders: l.proxyFrom, log: s.log.With("listener", l.name)}
		}
		l.ln = ln
	}
	return nil
}

func (s *Server) closeListeners() {
	for _, l := range []*listener{s.public, s.admin} {
		if l.ln != nil {
			_ = l.ln.Close()
		}
	}
}

// PublicAddr is the public listener's bound address (nil before Listen).
func (s *Server) PublicAddr() net.Addr { return addrOf(s.public) }

// AdminAddr is the internal listener's bound address (nil before Listen).
func (s *Server) AdminAddr() net.Addr { return addrOf(s.admin) }

func addrOf(l *listener) net.Addr {
	if l.ln == nil {
		return nil
	}
	return l.ln.Addr()
}

// StartAdmin serves the internal listener in the background. It can start
// before the application is ready: /healthz answers and /readyz says
// "starting" until Readiness().MarkStarted.
func (s *Server) StartAdmin() { s.start(s.admin) }

// StartPublic serves the public listener in the background; call it once
// the application's routes are on Public.
func (s *Server) StartPublic() { s.start(s.public) }

func (s *Server) start(l *listener) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.ln == nil || l.serving {
		return
	}
	l.serving = true
	s.log.Info("listening", "listener", l.name, "addr", l.ln.Addr().String())
	go func() {
		if err := l.srv.ServeTLS(l.ln, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.errc <- fmt.Errorf("serve %s listener: %w", l.name, err)
		}
	}()
}

// Errors reports listeners that stopped serving other than by Shutdown.
func (s *Server) Errors() <-chan error { return s.errc }

// Shutdown stops accepting connections on both listeners and waits for
// in-flight requests to finish until ctx is done; then it closes whatever
// is left and returns ctx's error.
func (s *Server) Shutdown(ctx context.Context) error {
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, l := range []*listener{s.public, s.admin} {
		wg.Go(func() { errs[i] = l.shutdown(ctx) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (l *listener) shutdown(ctx context.Context) error {
	l.mu.Lock()
	serving := l.serving
	l.mu.Unlock()
	if !serving {
		if l.ln != nil {
			_ = l.ln.Close()
		}
		return nil
	}
	if err := l.srv.Shutdown(ctx); err != nil {
		_ = l.srv.Close()
		return fmt.Errorf("drain %s listener: %w", l.name, err)
	}
	return nil
}
