package pgstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"go.opentelemetry.io/otel/trace"

	"strongroom.dev/services/authd/internal/eventstore"
)

// An append is two pipelined round trips, whatever it writes:
//
//  1. BEGIN; the one-time value of the request, if any; per stream, one
//     statement that moves its version and inserts its events only if that
//     compare-and-set succeeded; the inline projections' locks; the reads
//     of the documents they change.
//  2. The outbox insert; the folded documents; COMMIT.
//
// Between the two, authd checks every result and folds the documents; on
// a conflict (a stream statement returned no row) or any error it rolls
// back instead. Round trips, not statements, are what an append costs
// authd and PostgreSQL most on the refresh path: each is a pair of system
// calls and wake-ups on both sides.

// Append implements eventstore.Store in a transaction of its own.
func (s *Store) Append(ctx context.Context, appends ...eventstore.Append) ([]eventstore.Event, error) {
	return s.appendOwn(ctx, nil, appends)
}

// appendOwn appends in a transaction of its own; extra, if not nil, queues
// more writes that commit with the events.
func (s *Store) appendOwn(ctx context.Context, extra func(*pgx.Batch), appends []eventstore.Append) (out []eventstore.Event, err error) {
	ctx, span := tracer.Start(ctx, "eventstore.append", trace.WithSpanKind(trace.SpanKindInternal),
		trace.WithAttributes(spanAttrs(appends)...))
	defer func() { endSpan(span, err) }()
	run, err := s.newAppendRun(ctx, appends)
	if err != nil {
		return nil, err
	}
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("append: %w", err)
	}
	// A connection released inside a transaction (after any failure below)
	// is closed by the pool, which rolls the transaction back.
	defer conn.Release()
	rollback := func(err error) error {
		if conn.Conn().PgConn().TxStatus() != 'I' {
			if _, rbErr := conn.Exec(context.WithoutCancel(ctx), "ROLLBACK"); rbErr != nil {
				_ = conn.Conn().Close(context.WithoutCancel(ctx))
			}
		}
		return err
	}
	first := &pgx.Batch{}
	first.Queue("BEGIN")
	run.queueFirst(first)
	if err := conn.SendBatch(ctx, first).Close(); err != nil {
		return nil, rollback(run.batchError(err))
	}
	if err := run.checkFirst(ctx, conn.Conn()); err != nil {
		return nil, rollback(err)
	}
	second := &pgx.Batch{}
	if err := run.queueSecond(ctx, second); err != nil {
		return nil, rollback(err)
	}
	if extra != nil {
		extra(second)
	}
	committed := false
	second.Queue("COMMIT").Exec(func(tag pgconn.CommandTag) error {
		committed = tag.String() == "COMMIT"
		return nil
	})
	if err := conn.SendBatch(ctx, second).Close(); err != nil {
		return nil, rollback(fmt.Errorf("append: %w", err))
	}
	if !committed {
		return nil, rollback(errors.New("append: transaction did not commit"))
	}
	if run.once != nil {
		run.once.MarkRecorded()
	}
	s.Committed()
	return run.out, nil
}

// AppendTx appends inside the caller's transaction, so a command can put
// other writes (and several appends) in the same commit. Events are
// published to the outbox in the same transaction: if it rolls back,
// nothing is published. The transaction must be READ COMMITTED (the
// default): inline projections read state after taking their locks. After
// the caller commits it should call Committed, which wakes subscribers. A
// one-time value in ctx (eventstore.WithOnce) is recorded in tx too, and
// counted as recorded when AppendTx returns.
func (s *Store) AppendTx(ctx context.Context, tx pgx.Tx, appends ...eventstore.Append) ([]eventstore.Event, error) {
	run, err := s.newAppendRun(ctx, appends)
	if err != nil {
		return nil, err
	}
	first := &pgx.Batch{}
	run.queueFirst(first)
	if err := tx.SendBatch(ctx, first).Close(); err != nil {
		return nil, run.batchError(err)
	}
	if err := run.checkFirst(ctx, tx.Conn()); err != nil {
		return nil, err
	}
	second := &pgx.Batch{}
	if err := run.queueSecond(ctx, second); err != nil {
		return nil, err
	}
	if err := tx.SendBatch(ctx, second).Close(); err != nil {
		return nil, fmt.Errorf("append: %w", err)
	}
	if run.once != nil {
		run.once.MarkRecorded()
	}
	return run.out, nil
}

// appendRun is one append between its round trips.
type appendRun struct {
	s       *Store
	out     []eventstore.Event
	streams []streamResult // in stream-id order
	works   []*docWork
	meta    []byte
	pers    []byte

	once      *eventstore.Once
	onceFresh bool
}

// streamResult is one stream's share of an append and what its statement
// returned.
type streamResult struct {
	append     eventstore.Append
	evs        []eventstore.Event // the stream's events, a window of out
	positions  []eventstore.Position
	streamType string
	owner      string
	err        error
}

func (s *Store) newAppendRun(ctx context.Context, appends []eventstore.Append) (*appendRun, error) {
	out, err := eventstore.Prepare(ctx, s.registry, s.now(), appends)
	if err != nil {
		return nil, err
	}
	r := &appendRun{s: s, out: out, once: eventstore.PendingOnce(ctx)}
	if r.meta, err = json.Marshal(out[0].Metadata); err != nil {
		return nil, fmt.Errorf("append: encode metadata: %w", err)
	}
	if out[0].Personal != nil {
		if r.pers, err = json.Marshal(out[0].Personal); err != nil {
			return nil, fmt.Errorf("append: encode personal data: %w", err)
		}
	}
	// Streams move in stream-id order so that two multi-stream appends can
	// never deadlock on each other's rows.
	i := 0
	for _, a := range appends {
		r.streams = append(r.streams, streamResult{append: a, evs: out[i : i+len(a.Events)]})
		i += len(a.Events)
	}
	slices.SortFunc(r.streams, func(a, b streamResult) int { return strings.Compare(a.append.StreamID, b.append.StreamID) })
	for _, pr := range s.inline {
		if w := newDocWork(pr, out); len(w.keys) > 0 {
			w.table = viewName(pr.Name())
			r.works = append(r.works, w)
		}
	}
	return r, nil
}

// queueFirst queues the one-time value, the stream statements, and the
// inline projections' locks and reads.
//
// Inline projections read and write through each read model's view: an
// append takes the projection's lock shared, and a rebuild swaps the view
// only while holding it exclusively, so the view names the current
// generation for the whole transaction. Every shared lock is taken before
// any document lock (one statement, in that order), so an append waiting
// for a rebuild never holds a document another append needs. The document
// locks keep two appends to different streams from losing an update of one
// document; they are taken in one global order, so appends never deadlock.
func (r *appendRun) queueFirst(b *pgx.Batch) {
	if r.once != nil {
		// An expired record of the same value is replaced, so expiry never
		// needs the sweeper to be correct.
		b.Queue(rememberSQL, r.once.Scope, r.once.Value, r.once.Until, r.s.now()).Exec(func(tag pgconn.CommandTag) error {
			r.onceFresh = tag.RowsAffected() == 1
			return nil
		})
	}
	for k := range r.streams {
		queueStreamAppend(b, &r.streams[k], r.meta, r.pers)
	}
	if len(r.works) == 0 {
		return
	}
	var shared, exclusive []string
	for _, w := range r.works {
		shared = append(shared, "inline:"+w.pr.Name())
		for _, k := range w.keys {
			exclusive = append(exclusive, w.pr.Name()+":"+k)
		}
	}
	sort.Strings(exclusive)
	b.Queue(`SELECT CASE WHEN l.ord <= $2 THEN pg_advisory_xact_lock_shared(hashtextextended(l.k, 0))
			ELSE pg_advisory_xact_lock(hashtextextended(l.k, 0)) END
		FROM unnest($1::text[]) WITH ORDINALITY AS l(k, ord)`, append(shared, exclusive...), len(shared))
	for _, w := range r.works {
		w.queueRead(b)
	}
}

// batchError classifies a failure of the first round trip.
func (r *appendRun) batchError(err error) error {
	if isUniqueViolation(err) {
		// An event id seen before: the append is a duplicate.
		return &eventstore.ConflictError{StreamID: r.streams[0].append.StreamID, Expected: r.streams[0].append.ExpectedVersion, Actual: -1}
	}
	return fmt.Errorf("append: %w", err)
}

// checkFirst checks what the first round trip returned and gives the
// events their positions and owners. On a conflict it reads the version
// the stream has (on conn, inside the still open transaction).
func (r *appendRun) checkFirst(ctx context.Context, conn *pgx.Conn) error {
	if r.once != nil && !r.onceFresh {
		return eventstore.ErrReplayed
	}
	for k := range r.streams {
		st := &r.streams[k]
		a := st.append
		switch {
		case st.err != nil:
			return st.err
		case len(st.positions) == 0:
			actual := int64(0)
			if err := conn.QueryRow(ctx, "SELECT version FROM streams WHERE stream_id = $1", a.StreamID).Scan(&actual); err != nil && !errors.Is(err, pgx.ErrNoRows) {
				actual = -1
			}
			return &eventstore.ConflictError{StreamID: a.StreamID, Expected: a.ExpectedVersion, Actual: actual}
		case len(st.positions) != len(a.Events):
			return fmt.Errorf("append: stream %q: %d of %d events stored", a.StreamID, len(st.positions), len(a.Events))
		case st.streamType != a.StreamType:
			return fmt.Errorf("%w: stream %q is a %q stream, not %q", eventstore.ErrInvalidAppend, a.StreamID, st.streamType, a.StreamType)
		case a.UserID != "" && a.UserID != st.owner:
			return fmt.Errorf("%w: stream %q belongs to another user", eventstore.ErrInvalidAppend, a.StreamID)
		}
		for j := range st.evs {
			st.evs[j].UserID = st.owner
			st.evs[j].Position = st.positions[j]
		}
	}
	return nil
}

// queueSecond queues the outbox insert and the inline projections' writes.
func (r *appendRun) queueSecond(ctx context.Context, b *pgx.Batch) error {
	if err := queuePublish(ctx, b, r.out); err != nil {
		return err
	}
	for _, w := range r.works {
		if err := w.fold(r.out); err != nil {
			return err
		}
		w.queueWrites(b)
	}
	return nil
}

// Each stream statement moves (or creates) one stream and inserts its
// events only if that compare-and-set succeeded: no row back means a
// conflict. The events take the stream's recorded type and owner, which
// checkFirst compares with the append's (a mismatch fails the append).
const (
	appendEventsSQL = `INSERT INTO events (event_id, stream_id, stream_type, version, type, schema_version,
			occurred_at, user_id, data, metadata, personal)
		SELECT e.event_id, $1, s.stream_type, e.version, e.type, e.schema_version, $5, s.user_id, e.data, $6, $7
		FROM s, unnest($8::uuid[], $9::bigint[], $10::text[], $11::int[], $12::jsonb[])
			WITH ORDINALITY AS e(event_id, version, type, schema_version, data, ord)
		ORDER BY e.ord
		RETURNING tx_id::text, seq, stream_type, coalesce(user_id, '')`
	// $2 (the stream type) is compared with the row's by checkFirst; $3 of a
	// new stream is always NoStream.
	moveStreamSQL = `WITH s AS (UPDATE streams SET version = $4 WHERE stream_id = $1 AND version = $3
			AND $2::text IS NOT NULL RETURNING stream_type, user_id)
		` + appendEventsSQL
	createStreamSQL = `WITH s AS (INSERT INTO streams (stream_id, stream_type, user_id, version)
			SELECT $1, $2, nullif($13, ''), $4 WHERE $3::bigint = 0
			ON CONFLICT (stream_id) DO NOTHING RETURNING stream_type, user_id)
		` + appendEventsSQL
)

func queueStreamAppend(b *pgx.Batch, st *streamResult, meta, personal []byte) {
	a, evs := st.append, st.evs
	n := len(evs)
	ids, versions, types, schemas, data := make([]uuid.UUID, n), make([]int64, n), make([]string, n), make([]int32, n), make([]string, n)
	for i, ev := range evs {
		ids[i], versions[i], types[i], schemas[i], data[i] = ev.EventID, ev.Version, ev.Type, int32(ev.SchemaVersion), string(ev.Data)
	}
	args := []any{a.StreamID, a.StreamType, a.ExpectedVersion, a.ExpectedVersion + int64(n), evs[0].OccurredAt,
		string(meta), nullableJSON(personal), ids, versions, types, schemas, data}
	query := moveStreamSQL
	if a.ExpectedVersion == eventstore.NoStream {
		query = createStreamSQL
		args = append(args, a.UserID)
	}
	b.Queue(query, args...).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			var txText string
			var pos eventstore.Position
			if err := rows.Scan(&txText, &pos.Seq, &st.streamType, &st.owner); err != nil {
				return err
			}
			tx, err := strconv.ParseUint(txText, 10, 64)
			if err != nil {
				st.err = fmt.Errorf("append: parse transaction id %q: %w", txText, err)
				continue
			}
			pos.Tx = tx
			st.positions = append(st.positions, pos)
		}
		return rows.Err()
	})
}
