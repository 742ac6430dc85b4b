package pgstore

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"strongroom.dev/services/authd/internal/eventstore/storetest"
	"strongroom.dev/services/authd/internal/pgtest"
	"strongroom.dev/services/authd/internal/projection"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// migrated returns a pool on a fresh, migrated schema.
func migrated(t *testing.T) *pgxpool.Pool {
	t.Helper()
	pool := pgtest.Pool(t)
	if _, err := Migrate(context.Background(), pool); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	return pool
}

// harness builds a store, a running waker and a set-up projector.
func harness(t *testing.T, pool *pgxpool.Pool, inline, async []projection.Projection, opts ...ProjectorOption) (*Store, *Projector) {
	t.Helper()
	s := New(pool, WithInline(inline...))
	w := runWaker(t, pool)
	p, err := NewProjector(s, w, quiet, async, append([]ProjectorOption{WithIdlePoll(200 * time.Millisecond)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Setup(context.Background()); err != nil {
		t.Fatalf("setup: %v", err)
	}
	return s, p
}

func TestContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T, inline, async []projection.Projection) storetest.Harness {
		s, p := harness(t, migrated(t), inline, async)
		return storetest.Harness{Store: s, Runner: p}
	})
}

// runWaker returns a waker listening on pool's database until cleanup.
func runWaker(t testing.TB, pool *pgxpool.Pool) *Waker {
	connString := pool.Config().ConnString()
	w := NewWaker(func(ctx context.Context) (*pgx.Conn, error) { return pgx.Connect(ctx, connString) }, quiet)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = w.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return w
}

// withBatch sets the catch-up batch size, so tests can crash between
// batches.
func withBatch(n int) ProjectorOption { return func(p *Projector) { p.batch = n } }
