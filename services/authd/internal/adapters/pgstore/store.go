// Package pgstore is the PostgreSQL adapter of the event store: the
// append-only log, its transactional outbox through watermill-sql, the
// LISTEN/NOTIFY wake-up of subscribers, and projections into read models.
package pgstore

import (
	"context"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

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

	notifying, again atomic.Bool
	// woken is what the next notification names: the stream types
	// appended to since the last one, or every type (all).
	wokenMu sync.Mutex
	woken   map[string]bool
	all     bool
	// listened, once a projector is set up, is what some asynchronous
	// projection reads: nil for every stream type, or the union of their
	// scopes. An append to no listened stream type notifies nobody.
	listened atomic.Pointer[[]string]
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

// notifyInterval is the least time between two wake-up notifications: under
// load one NOTIFY stands for every append committed in the interval.
const notifyInterval = 5 * time.Millisecond

// Committed wakes the outbox subscribers of every replica after an append
// committed (AppendTx's callers call it after their commit). The NOTIFY is
// sent after the commit, from one goroutine at a time, and coalesced: a
// NOTIFY inside the append transaction would take PostgreSQL's global
// notify lock until its commit was flushed, serializing every append's
// commit. A notification lost to a crash costs one idle poll.
func (s *Store) Committed() { s.committed(nil) }

// committed is Committed for appends to streams of the given types: the
// notification names them, so subscribers scoped to other stream types
// are not woken (they read those events in their next batch).
func (s *Store) committed(streamTypes []string) {
	if l := s.listened.Load(); l != nil && streamTypes != nil &&
		!slices.ContainsFunc(streamTypes, func(t string) bool { return slices.Contains(*l, t) }) {
		// Every replica runs the same projections: none reads these
		// streams. (Across a rolling upgrade that changes a scope, the
		// idle poll delivers within a second.)
		return
	}
	s.wokenMu.Lock()
	if streamTypes == nil {
		s.all = true
	}
	for _, t := range streamTypes {
		if s.woken == nil {
			s.woken = map[string]bool{}
		}
		s.woken[t] = true
	}
	s.wokenMu.Unlock()
	s.again.Store(true)
	if !s.notifying.CompareAndSwap(false, true) {
		return
	}
	go func() {
		for {
			for s.again.Swap(false) {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				// Asynchronous commit: the notification needs no flush.
				_, _ = s.pool.Exec(ctx, "BEGIN; SET LOCAL synchronous_commit = off; NOTIFY "+NotifyChannel+", '"+s.takeWoken()+"'; COMMIT")
				cancel()
				time.Sleep(notifyInterval)
			}
			s.notifying.Store(false)
			// A Committed between the last Swap and the Store above found
			// notifying still true: look once more.
			if !s.again.Load() || !s.notifying.CompareAndSwap(false, true) {
				return
			}
		}
	}()
}

// takeWoken returns the payload of the next notification and starts a new
// one: the stream types, comma separated, or "" for every type. Stream
// types are the store's own names ([a-z_]); anything else widens the
// payload to "" rather than reach the SQL text.
func (s *Store) takeWoken() string {
	s.wokenMu.Lock()
	defer s.wokenMu.Unlock()
	all, woken := s.all, s.woken
	s.all, s.woken = false, nil
	if all || len(woken) == 0 {
		return ""
	}
	types := make([]string, 0, len(woken))
	for t := range woken {
		if !plainName(t) {
			return ""
		}
		types = append(types, t)
	}
	slices.Sort(types)
	return strings.Join(types, ",")
}

func plainName(t string) bool {
	if t == "" || len(t) > 64 {
		return false
	}
	for _, c := range t {
		if (c < 'a' || c > 'z') && c != '_' {
			return false
		}
	}
	return true
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
