// Package service is the one place that wires authd together: it picks the
// event store (PostgreSQL, or memory in dev mode), registers the
// projections, runs their workers and exposes readiness.
package service

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/exaring/otelpgx"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"strongroom.dev/api/events"
	"strongroom.dev/services/authd/internal/adapters/memstore"
	"strongroom.dev/services/authd/internal/adapters/pgstore"
	"strongroom.dev/services/authd/internal/app"
	"strongroom.dev/services/authd/internal/config"
	"strongroom.dev/services/authd/internal/eventstore"
	"strongroom.dev/services/authd/internal/metrics"
	"strongroom.dev/services/authd/internal/oauth"
	"strongroom.dev/services/authd/internal/passcode"
	"strongroom.dev/services/authd/internal/ports/admin"
	"strongroom.dev/services/authd/internal/ports/selfservice"
	"strongroom.dev/services/authd/internal/projection"
	"strongroom.dev/services/authd/internal/readmodel"
)

// projections returns the read models authd maintains: inline ones (read
// by the request that wrote them) and asynchronous ones.
func projections() (inline, async []projection.Projection) {
	return []projection.Projection{readmodel.Sessions(events.Default)},
		[]projection.Projection{readmodel.Devices(events.Default)}
}

// App is a wired authd: its event store, read models and workers.
type App struct {
	log *slog.Logger
	// Store is the event log.
	Store eventstore.Store
	// ReadModels reads (and rebuilds) the projections.
	ReadModels projection.Runner

	// OAuth is the OAuth2 server; Admin the back-office API; SelfService
	// the app's /v1 API; Devices the device use cases.
	OAuth       *oauth.Server
	Admin       *admin.API
	SelfService *selfservice.API
	Devices     *app.Service
	Hasher      *passcode.Hasher
	// Metrics are this instance's instruments and /metrics handler.
	Metrics *metrics.Metrics

	pool    *pgxpool.Pool // nil in memory
	onetime oneTimeStore
	waker   *pgstore.Waker
	// pruneOutbox deletes acknowledged outbox messages (PostgreSQL only).
	pruneOutbox func(ctx context.Context, keep time.Duration) (int64, error)
	// outboxBacklog counts messages not yet acknowledged by every
	// subscriber (PostgreSQL only).
	outboxBacklog func(ctx context.Context) (int64, error)
	healthy       func() error
	closers       []func()

	lag lagCache
}

// Open builds the whole app: the event store and projections (see
// openStore) and the OAuth2 server with its keys and clients.
func Open(ctx context.Context, cfg config.Config, log *slog.Logger) (*App, error) {
	a, err := openStore(ctx, cfg, log)
	if err != nil {
		return nil, err
	}
	if a.Metrics, err = metrics.New(); err != nil {
		a.Close()
		return nil, err
	}
	a.closers = append(a.closers, func() { _ = a.Metrics.Shutdown(context.Background()) })
	if err := a.setupOAuth(ctx, cfg); err != nil {
		a.Close()
		return nil, err
	}
	return a, nil
}

// openStore builds the event store and projections: in memory when
// cfg.DatabaseURL is empty (dev mode only), else PostgreSQL, migrated first
// when cfg.MigrateOnStart or in dev mode.
func openStore(ctx context.Context, cfg config.Config, log *slog.Logger) (*App, error) {
	inline, async := projections()
	a := &App{log: log}
	if cfg.DatabaseURL == "" {
		if !cfg.Dev {
			return nil, errors.New("a database is required outside dev mode: set DATABASE_URL")
		}
		onetime := memstore.NewOneTime(cfg.Clock())
		s := memstore.New(memstore.WithInline(inline...), memstore.WithOneTime(onetime), memstore.WithClock(cfg.Clock()))
		p, err := memstore.NewProjector(s, log, async)
		if err != nil {
			return nil, err
		}
		a.Store, a.ReadModels, a.healthy = s, p, p.Healthy
		a.onetime = onetime
		a.closers = append(a.closers, func() { _ = s.Close() })
		log.InfoContext(ctx, "event store in memory (dev mode): everything is lost at exit")
		return a, nil
	}
	pool, err := openPool(ctx, cfg.DatabaseURL, len(async))
	if err != nil {
		return nil, err
	}
	a.pool = pool
	a.closers = append(a.closers, pool.Close)
	if cfg.MigrateOnStart || cfg.Dev {
		applied, err := pgstore.Migrate(ctx, pool)
		if err != nil {
			a.Close()
			return nil, err
		}
		if len(applied) > 0 {
			log.InfoContext(ctx, "migrated", "applied", applied)
		}
	}
	if err := checkSchema(ctx, pool); err != nil {
		a.Close()
		return nil, err
	}
	s := pgstore.New(pool, pgstore.WithInline(inline...), pgstore.WithClock(cfg.Clock()))
	connString := pool.Config().ConnString()
	a.waker = pgstore.NewWaker(func(ctx context.Context) (*pgx.Conn, error) { return pgx.Connect(ctx, connString) }, log)
	p, err := pgstore.NewProjector(s, a.waker, log, async)
	if err != nil {
		a.Close()
		return nil, err
	}
	if err := p.Setup(ctx); err != nil {
		a.Close()
		return nil, err
	}
	a.Store, a.ReadModels, a.healthy = s, p, p.Healthy
	a.onetime = pgstore.NewOneTime(pool, cfg.Clock())
	a.pruneOutbox = p.PruneOutbox
	a.outboxBacklog = p.OutboxBacklog
	return a, nil
}

// minRequestConns is the part of the pool kept for requests, on top of
// what the projection workers may hold.
const minRequestConns = 8

func openPool(ctx context.Context, url string, asyncProjections int) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		// pgx errors may quote the DSN, password included: say less.
		return nil, errors.New("DATABASE_URL is not a valid PostgreSQL connection string")
	}
	// pgxpool defaults to max(4, CPUs) connections, which the workers alone
	// could fill; pool_max_conns in the URL sets it, but never below this.
	if need := pgstore.ConnsNeeded(asyncProjections) + minRequestConns; cfg.MaxConns < need {
		cfg.MaxConns = need
	}
	// A span per query (with the statement, never its arguments), in the
	// trace of the request or job that ran it.
	cfg.ConnConfig.Tracer = otelpgx.NewTracer()
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open database: %w", err)
	}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := pool.Ping(pctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("connect to database %s@%s:%d/%s: %w", cfg.ConnConfig.User, cfg.ConnConfig.Host, cfg.ConnConfig.Port, cfg.ConnConfig.Database, err)
	}
	return pool, nil
}

// checkSchema refuses to serve from a database this binary has not
// migrated: a half-migrated schema fails in surprising places later.
func checkSchema(ctx context.Context, pool *pgxpool.Pool) error {
	ms, err := pgstore.Migrations()
	if err != nil {
		return err
	}
	var current int
	err = pool.QueryRow(ctx, "SELECT coalesce(max(version), 0) FROM schema_migrations").Scan(&current)
	if err != nil {
		current = 0
	}
	if current != len(ms) {
		return fmt.Errorf("database schema is at version %d, this binary needs %d: run `authd migrate` (or start with --migrate-on-start)", current, len(ms))
	}
	return nil
}

// Run runs the outbox listener, the projection workers and the lag gauge
// until ctx is done.
func (a *App) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, 5)
	run := func(f func(context.Context) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(ctx); err != nil {
				errs <- err
				cancel()
			}
		}()
	}
	if a.waker != nil {
		run(a.waker.Run)
	}
	if a.pruneOutbox != nil {
		run(a.every("prune outbox", a.pruneOutboxJob))
	}
	run(a.ReadModels.Run)
	run(a.watchLag)
	run(a.every("sweep one-time values", a.sweepOneTimeJob))
	run(a.every("housekeeping of devices and sessions", a.sweepUnfinishedDevices))
	wg.Wait()
	close(errs)
	return errors.Join(collect(errs)...)
}

func collect(ch <-chan error) []error {
	var out []error
	for err := range ch {
		out = append(out, err)
	}
	return out
}

// ReadinessChecks returns the named checks /readyz runs.
func (a *App) ReadinessChecks() map[string]func(context.Context) error {
	checks := map[string]func(context.Context) error{
		"outbox": func(context.Context) error { return a.healthy() },
	}
	if a.pool != nil {
		checks["database"] = a.pool.Ping
	}
	return checks
}

// Routes adds the app's handlers to the public and internal muxes.
func (a *App) Routes(public, admin oauth.Mux) {
	admin.Handle("GET /metrics", a.Metrics.Handler)
	a.OAuth.Routes(public, admin)
	a.Admin.Routes(admin)
	a.SelfService.Routes(public)
}

// Close releases the store's resources.
func (a *App) Close() {
	for i := len(a.closers) - 1; i >= 0; i-- {
		a.closers[i]()
	}
	a.closers = nil
}

// Migrate applies the embedded migrations to the database at url.
func Migrate(ctx context.Context, url string, log *slog.Logger) error {
	pool, err := openPool(ctx, url, 0)
	if err != nil {
		return err
	}
	defer pool.Close()
	applied, err := pgstore.Migrate(ctx, pool)
	if err != nil {
		return err
	}
	log.InfoContext(ctx, "migrated", "applied", applied, "count", len(applied))
	return nil
}

// RebuildProjection replays the log into a fresh generation of the named
// read model and swaps it in, while authd keeps serving.
func RebuildProjection(ctx context.Context, url, name string, log *slog.Logger) error {
	a, err := openStore(ctx, config.Config{DatabaseURL: url}, log)
	if err != nil {
		return err
	}
	defer a.Close()
	start := time.Now()
	if err := a.ReadModels.Rebuild(ctx, name); err != nil {
		return err
	}
	log.InfoContext(ctx, "rebuilt", "projection", name, "took", time.Since(start).String())
	return nil
}

// ProjectionStatus writes every projection's position and lag as JSON.
func ProjectionStatus(ctx context.Context, url string, w io.Writer) error {
	a, err := openStore(ctx, config.Config{DatabaseURL: url}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		return err
	}
	defer a.Close()
	sts, err := a.ReadModels.Status(ctx)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(map[string]any{"projections": sts})
}
