package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"strongroom.dev/api/memlimit"
	"strongroom.dev/services/authd/internal/config"
	"strongroom.dev/services/authd/internal/devmode"
	"strongroom.dev/services/authd/internal/mounted"
	"strongroom.dev/services/authd/internal/ports/httpserver"
	"strongroom.dev/services/authd/internal/service"
	"strongroom.dev/services/authd/internal/telemetry"
)

func serveCommand(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	cfg, err := config.Load(args, getenv)
	if errors.Is(err, flag.ErrHelp) {
		config.Usage(stdout)
		return exitOK
	}
	if err != nil {
		fmt.Fprintf(stderr, "authd serve: invalid configuration:\n  %s\n", strings.ReplaceAll(err.Error(), "\n", "\n  "))
		return exitUsage
	}
	log := telemetry.NewLogger(stdout, cfg.LogLevel)
	if limit, err := memlimit.Apply(getenv); err != nil {
		fmt.Fprintf(stderr, "authd serve: %v\n", err)
		return exitUsage
	} else if limit > 0 {
		log.Info("Go memory limit set from the container's", "limit_bytes", limit)
	}
	if cfg.TimeSource, err = testClock(getenv); err != nil {
		fmt.Fprintf(stderr, "authd serve: %v\n", err)
		return exitUsage
	}
	if cfg.TimeSource != nil {
		log.Warn("the clock runs faster than the wall clock: a build for end-to-end tests", "now", cfg.TimeSource.Now().UTC().Format(time.RFC3339))
	}
	if err := serve(ctx, cfg, log); err != nil {
		log.Error("authd stopped", "error", err)
		return exitFailure
	}
	return exitOK
}

// serve runs authd until ctx is done, then drains within
// cfg.ShutdownTimeout. The order matters: the internal listener serves
// /healthz from the start while the application opens (migrations can be
// slow); the public one starts only once the routes are in, and /readyz
// says ready only after that.
func serve(ctx context.Context, cfg config.Config, log *slog.Logger) error {
	exporter, err := telemetry.TraceExporter(ctx, os.Getenv)
	if err != nil {
		return fmt.Errorf("traces: %w", err)
	}
	tp, err := telemetry.Setup(ctx, telemetry.Options{ServiceName: "authd", ServiceVersion: version, Logger: log, Exporter: exporter})
	if err != nil {
		return err
	}
	if exporter != nil {
		log.InfoContext(ctx, "exporting traces over OTLP (OTEL_* environment)")
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = tp.Shutdown(sctx)
	}()

	tlsConf, err := serverTLS(&cfg, log)
	if err != nil {
		return err
	}
	srv, err := httpserver.New(httpserver.Options{
		PublicAddr: cfg.Listen, AdminAddr: cfg.AdminListen, TLS: tlsConf, Logger: log,
		ProxyProtocolFrom: cfg.ProxyProtocolSenders(),
	})
	if err != nil {
		return err
	}
	if err := srv.Listen(); err != nil {
		return err
	}
	if cfg.Issuer == "" { // dev mode on port 0: only now is the port known
		cfg.Issuer = "https://" + srv.PublicAddr().String()
	}
	srv.StartAdmin()

	app, err := service.Open(ctx, cfg, log)
	if err != nil {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.ShutdownTimeout)
		defer cancel()
		_ = srv.Shutdown(sctx)
		return fmt.Errorf("open application: %w", err)
	}
	defer app.Close()
	app.Routes(srv.Public(), srv.Admin())
	for name, check := range app.ReadinessChecks() {
		srv.Readiness().Add(name, check)
	}

	// The workers stop after the listeners have drained, so requests still
	// in flight see their projections advance.
	runCtx, stopRun := context.WithCancel(context.WithoutCancel(ctx))
	defer stopRun()
	runDone := make(chan error, 1)
	go func() { runDone <- app.Run(runCtx) }()

	srv.StartPublic()
	srv.Readiness().MarkStarted()
	log.InfoContext(ctx, "authd started", "version", version, "issuer", cfg.Issuer, "config", cfg)

	failure := wait(ctx, srv, &runDone, log)

	log.Info("shutting down", "timeout", cfg.ShutdownTimeout.String())
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.ShutdownTimeout)
	defer cancel()
	var errs []error
	if failure != nil {
		errs = append(errs, failure)
	}
	if err := srv.Shutdown(sctx); err != nil {
		errs = append(errs, err)
	}
	stopRun()
	if runDone != nil {
		select {
		case err := <-runDone:
			if err != nil && !errors.Is(err, context.Canceled) {
				errs = append(errs, fmt.Errorf("projection workers: %w", err))
			}
		case <-sctx.Done():
			errs = append(errs, errors.New("projection workers did not stop within the shutdown timeout"))
		}
	}
	if len(errs) == 0 {
		log.Info("stopped")
	}
	return errors.Join(errs...)
}

// wait blocks until ctx is done (a signal) or something fails. A Run that
// returns nil early is not a failure: the app may have no workers. On
// return, *runDone is nil if Run already returned.
func wait(ctx context.Context, srv *httpserver.Server, runDone *chan error, log *slog.Logger) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-srv.Errors():
			return err
		case err := <-*runDone:
			*runDone = nil
			if err != nil {
				return fmt.Errorf("projection workers: %w", err)
			}
			log.Info("projection workers stopped")
		}
	}
}

// serverTLS returns the listeners' TLS configuration: the files of
// --tls-cert-file/--tls-key-file (reloaded when they change), or in dev mode a generated certificate
// and the back-office secret, whose pin and file path (never the secret)
// are logged. In dev mode it sets cfg.DevAdminSecret to the effective
// secret, so the wiring can register the back-office client with it.
func serverTLS(cfg *config.Config, log *slog.Logger) (*tls.Config, error) {
	if !cfg.Dev {
		// A Secret mount the operator rotates: every new connection gets
		// the newest good certificate, without a restart.
		cert, err := mounted.Certificate(cfg.TLSCertFile, cfg.TLSKeyFile, mounted.Options{Log: log, Now: cfg.Clock()})
		if err != nil {
			return nil, fmt.Errorf("load TLS certificate %s: %w", cfg.TLSCertFile, err)
		}
		return &tls.Config{GetCertificate: mounted.GetCertificate(cert), MinVersion: tls.VersionTLS12}, nil
	}

	cert, err := devmode.NewCertificate(cfg.Clock()())
	if err != nil {
		return nil, err
	}
	source := "generated"
	if cfg.DevAdminSecret != "" {
		source = "STRONGROOM_DEV_ADMIN_SECRET"
	}
	secret, path, err := devmode.AdminSecret(cfg.DevAdminSecret, cfg.DevStateDir)
	if err != nil {
		return nil, err
	}
	cfg.DevAdminSecret = secret
	attrs := []any{
		"pin", cert.Pin,
		"curl_pinnedpubkey", "sha256//" + cert.Pin,
		"cert_not_after", cert.NotAfter.UTC().Format(time.RFC3339),
		"client_id", "back-office",
		"secret_source", source,
		"path", path,
	}
	if cfg.PinSetDir == "" {
		// Dev mode plays the operator: a pin set of its certificate,
		// signed by a manifest key of this run, served like production's.
		stateDir := cfg.DevStateDir
		if path != "" {
			stateDir = filepath.Dir(path)
		}
		dir, manifest, err := devmode.PinSet(stateDir, cert, cfg.Clock()())
		if err != nil {
			return nil, err
		}
		cfg.PinSetDir = dir
		attrs = append(attrs, "pinset_manifest_jwk", manifest)
	}
	log.Warn("dev mode", attrs...)
	return &tls.Config{Certificates: []tls.Certificate{cert.TLS}, MinVersion: tls.VersionTLS12}, nil
}
