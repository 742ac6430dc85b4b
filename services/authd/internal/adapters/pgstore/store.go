// Package pgstore is the PostgreSQL adapter of the event store: the
// append-only log, its transactional outbox through watermill-sql, the
// LISTEN/NOTIFY wake-up of subscribers, and projections into read models.
package pgstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"strongroom.dev/api/events"
	"strongroom.dev/services/authd/internal/eventstore"
	"strongroom.dev/services/authd/internal/projection"
)

var tracer = otel.Tracer("strongroom.dev/services/authd/internal/adapters/pgstore")

// Store is the PostgreSQL event store. It is safe for concurrent use.
type Store struct {
	pool     *pgxpool.Pool
	registry *events.Registry
	now      func() time.Time
	inline   []projection.Projection
}

// Option configures a Store.
type Option func(*Store)

// WithClock sets the clock that stamps occurred_at (tests use a fake one).
func WithClock(now func() time.Time) Option { return func(s *Store) { s.now = now } }

// WithRegistry replaces the api/events default registry (tests register
// their own types to exercise upcasting).
func WithRegistry(r *events.Registry) Option { return func(s *Store) { s.registry = r } }

// WithInline registers projections that run inside every append
// transaction, for read models a request must read its own write from.
func WithInline(ps ...projection.Projection) Option {
	return func(s *Store) { s.inline = append(s.inline, ps...) }
}

// New returns a store on pool. The schema must be migrated (Migrate).
func New(pool *pgxpool.Pool, opts ...Option) *Store {
	s := &Store{pool: pool, registry: events.Default, now: time.Now}
	for _, o := range opts {
		o(s)
	}
	return s
}

// Pool returns the connection pool the store uses.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// Append implements eventstore.Store in a transaction of its own.
func (s *Store) Append(ctx context.Context, appends ...eventstore.Append) (out []eventstore.Event, err error) {
	ctx, span := tracer.Start(ctx, "eventstore.append", trace.WithSpanKind(trace.SpanKindInternal),
		trace.WithAttributes(spanAttrs(appends)...))
	defer func() { endSpan(span, err) }()
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var err error
		out, err = s.AppendTx(ctx, tx, appends...)
		return err
	})
	var ce *eventstore.ConflictError
	if errors.As(err, &ce) && ce.Actual < 0 {
		// The transaction is gone; tell the caller what it lost to.
		_ = s.pool.QueryRow(ctx, "SELECT version FROM streams WHERE stream_id = $1", ce.StreamID).Scan(&ce.Actual)
		if ce.Actual < 0 {
			ce.Actual = 0
		}
	}
	return out, err
}

// AppendTx appends inside the caller's transaction, so a command can put
// other writes (and several appends) in the same commit. Events are
// published to the outbox in the same transaction: if it rolls back,
// nothing is published. The transaction must be READ COMMITTED (the
// default): inline projections read state after taking their locks.
func (s *Store) AppendTx(ctx context.Context, tx pgx.Tx, appends ...eventstore.Append) ([]eventstore.Event, error) {
	out, err := eventstore.Prepare(ctx, s.registry, s.now(), appends)
	if err != nil {
		return nil, err
	}
	metaJSON, err := json.Marshal(out[0].Metadata)
	if err != nil {
		return nil, fmt.Errorf("append: encode metadata: %w", err)
	}
	var personalJSON []byte
	if out[0].Personal != nil {
		if personalJSON, err = json.Marshal(out[0].Personal); err != nil {
			return nil, fmt.Errorf("append: encode personal data: %w", err)
		}
	}

	// Move every stream's version first, in stream-id order so that two
	// multi-stream appends can never deadlock on each other's rows.
	sorted := slices.Clone(appends)
	slices.SortFunc(sorted, func(a, b eventstore.Append) int { return strings.Compare(a.StreamID, b.StreamID) })
	owners := make(map[string]string, len(appends))
	for _, a := range sorted {
		owner, err := casVersion(ctx, tx, a)
		if err != nil {
			return nil, err
		}
		owners[a.StreamID] = owner
	}

	batch := &pgx.Batch{}
	for i := range out {
		ev := &out[i]
		ev.UserID = owners[ev.StreamID]
		batch.Queue(`INSERT INTO events (event_id, stream_id, stream_type, version, type, schema_version,
			occurred_at, user_id, data, metadata, personal)
			VALUES ($1, $2, $3, $4, $5, $6, $7, nullif($8, ''), $9, $10, $11)
			RETURNING tx_id::text, seq`,
			ev.EventID, ev.StreamID, ev.StreamType, ev.Version, ev.Type, ev.SchemaVersion,
			ev.OccurredAt, ev.UserID, string(ev.Data), string(metaJSON), nullableJSON(personalJSON))
	}
	// Delivered at commit only, so a rolled-back append wakes no one.
	batch.Queue("SELECT pg_notify($1, '')", NotifyChannel)
	results := tx.SendBatch(ctx, batch)
	for i := range out {
		var txText string
		if err := results.QueryRow().Scan(&txText, &out[i].Position.Seq); err != nil {
			_ = results.Close()
			if isUniqueViolation(err) {
				return nil, &eventstore.ConflictError{StreamID: out[i].StreamID, Expected: out[i].Version - 1, Actual: -1}
			}
			return nil, fmt.Errorf("append: insert event: %w", err)
		}
		if out[i].Position.Tx, err = strconv.ParseUint(txText, 10, 64); err != nil {
			_ = results.Close()
			return nil, fmt.Errorf("append: parse transaction id %q: %w", txText, err)
		}
	}
	if err := results.Close(); err != nil {
		return nil, fmt.Errorf("append: notify: %w", err)
	}
	if err := publish(ctx, tx, out); err != nil {
		return nil, err
	}
	if err := s.applyInline(ctx, tx, out); err != nil {
		return nil, err
	}
	return out, nil
}

// casVersion moves a stream from its expected version to the new one, or
// reports a conflict. It returns the stream's owner.
func casVersion(ctx context.Context, tx pgx.Tx, a eventstore.Append) (string, error) {
	next := a.ExpectedVersion + int64(len(a.Events))
	if a.ExpectedVersion == eventstore.NoStream {
		tag, err := tx.Exec(ctx, `INSERT INTO streams (stream_id, stream_type, user_id, version)
			VALUES ($1, $2, nullif($3, ''), $4) ON CONFLICT (stream_id) DO NOTHING`,
			a.StreamID, a.StreamType, a.UserID, next)
		if err != nil {
			return "", fmt.Errorf("append: create stream %q: %w", a.StreamID, err)
		}
		if tag.RowsAffected() == 0 {
			return "", conflict(ctx, tx, a)
		}
		return a.UserID, nil
	}
	var streamType string
	var owner *string
	err := tx.QueryRow(ctx, `UPDATE streams SET version = $3
		WHERE stream_id = $1 AND version = $2 RETURNING stream_type, user_id`,
		a.StreamID, a.ExpectedVersion, next).Scan(&streamType, &owner)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", conflict(ctx, tx, a)
	}
	if err != nil {
		return "", fmt.Errorf("append: move stream %q: %w", a.StreamID, err)
	}
	if streamType != a.StreamType {
		return "", fmt.Errorf("%w: stream %q is a %q stream, not %q", eventstore.ErrInvalidAppend, a.StreamID, streamType, a.StreamType)
	}
	if owner == nil {
		owner = new(string)
	}
	if a.UserID != "" && a.UserID != *owner {
		return "", fmt.Errorf("%w: stream %q belongs to another user", eventstore.ErrInvalidAppend, a.StreamID)
	}
	return *owner, nil
}

func conflict(ctx context.Context, tx pgx.Tx, a eventstore.Append) error {
	actual := int64(0)
	if err := tx.QueryRow(ctx, "SELECT version FROM streams WHERE stream_id = $1", a.StreamID).Scan(&actual); err != nil && !errors.Is(err, pgx.ErrNoRows) {
		actual = -1
	}
	return &eventstore.ConflictError{StreamID: a.StreamID, Expected: a.ExpectedVersion, Actual: actual}
}

func isUniqueViolation(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23505"
}

func nullableJSON(b []byte) any {
	if b == nil {
		return nil
	}
	return string(b)
}

func endSpan(span trace.Span, err error) {
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, "append failed")
	}
	span.End()
}

var _ eventstore.Store = (*Store)(nil)

// spanAttrs names the streams of an append on its span (ids only: stream
// ids are opaque identifiers, never secrets).
func spanAttrs(appends []eventstore.Append) []attribute.KeyValue {
	ids := make([]string, len(appends))
	for i, a := range appends {
		ids[i] = a.StreamID
	}
	return []attribute.KeyValue{attribute.StringSlice("strongroom.stream_ids", ids)}
}
