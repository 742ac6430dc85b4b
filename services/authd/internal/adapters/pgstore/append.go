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
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"strongroom.dev/services/authd/internal/eventstore"
	"strongroom.dev/services/authd/internal/projection"
)

// Round trips, not SQL, are what an append costs authd and PostgreSQL most
// on the refresh path: each is a pair of system calls and wake-ups on both
// sides. So an append is one pipeline, cut only where authd needs an answer
// before it can go on:
//
//  1. BEGIN; the request's one-time value; per stream, one statement that
//     moves its version and inserts its events.
//  2. Locks and reads of the read-model documents the store must read.
//  3. The folded documents, the outbox insert, COMMIT.
//
// When every inline projection the append touches is per stream and the
// store already has its documents (a new stream has none; a command may
// hand over the current one in Append.Known), and every existing stream's
// owner is named by the append, all of it is one round trip (the refresh
// path). Otherwise the pipeline is cut after 2 (folds need the documents),
// and after 1 when an existing stream's owner is not named (documents may
// be keyed by it).
//
// A precondition that fails (a stream that moved, a one-time value already
// used) aborts the transaction through strongroom_abort, which skips the
// rest of the pipeline; authd then rolls back and finds out why.

// SQLSTATEs raised through strongroom_abort (migration 0006).
const (
	stateStreamMoved = "SR001" // message: the stream id
	stateReplayed    = "SR002"
)

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
	// A connection released inside a transaction (after a failure below
	// that even ROLLBACK could not mend) is closed by the pool, which ends
	// the transaction.
	defer conn.Release()
	send := func(b *pgx.Batch) error { return conn.SendBatch(ctx, b).Close() }
	b := &pgx.Batch{}
	b.Queue("BEGIN")
	committed := false
	err = run.pipeline(ctx, b, send, func(b *pgx.Batch) {
		if extra != nil {
			extra(b)
		}
		b.Queue("COMMIT").Exec(func(tag pgconn.CommandTag) error {
			committed = tag.String() == "COMMIT"
			return nil
		})
	})
	if err == nil && !committed {
		err = errors.New("append: transaction did not commit")
	}
	span.SetAttributes(attribute.Int("strongroom.append.round_trips", run.trips))
	if err != nil {
		if conn.Conn().PgConn().TxStatus() != 'I' {
			if _, rbErr := conn.Exec(context.WithoutCancel(ctx), "ROLLBACK"); rbErr != nil {
				_ = conn.Conn().Close(context.WithoutCancel(ctx))
				return nil, classify(ctx, nil, run, err)
			}
		}
		// Never a second connection while holding this one: with every
		// connection held by a failed append, none would be left.
		return nil, classify(ctx, conn, run, err)
	}
	if err := run.done(); err != nil {
		// Committed, but the database answered something impossible.
		return nil, err
	}
	types := make([]string, 0, 1)
	for _, ev := range run.out {
		if !slices.Contains(types, ev.StreamType) {
			types = append(types, ev.StreamType)
		}
	}
	s.committed(types)
	return run.out, nil
}

// AppendTx appends inside the caller's transaction, so a command can put
// other writes (and several appends) in the same commit. Events are
// published to the outbox in the same transaction: if it rolls back,
// nothing is published. The transaction must be READ COMMITTED (the
// default). After the caller commits it should call Committed, which wakes
// subscribers. A one-time value in ctx (eventstore.WithOnce) is recorded
// in tx too, and counted as recorded when AppendTx returns. On an error the
// caller must roll back.
func (s *Store) AppendTx(ctx context.Context, tx pgx.Tx, appends ...eventstore.Append) ([]eventstore.Event, error) {
	run, err := s.newAppendRun(ctx, appends)
	if err != nil {
		return nil, err
	}
	err = run.pipeline(ctx, &pgx.Batch{}, func(b *pgx.Batch) error { return tx.SendBatch(ctx, b).Close() }, nil)
	if err != nil {
		return nil, classify(ctx, nil, run, err)
	}
	if err := run.done(); err != nil {
		return nil, err
	}
	return run.out, nil
}

// pipeline sends the append in as few round trips as it can, starting
// with what b already holds; last queues what must follow the writes.
func (r *appendRun) pipeline(ctx context.Context, b *pgx.Batch, send func(*pgx.Batch) error, last func(*pgx.Batch)) error {
	flush := func() error {
		r.trips++
		err := send(b)
		b = &pgx.Batch{}
		return err
	}
	r.queueHead(b)
	if !r.planned {
		// The events' owners (which folds may key documents by) come
		// from the stream statements.
		if err := flush(); err != nil {
			return err
		}
		if err := r.assign(); err != nil {
			return err
		}
		if err := r.plan(); err != nil {
			return err
		}
	}
	if r.queueReads(b) {
		if err := flush(); err != nil {
			return err
		}
	}
	if !r.assigned && r.trips > 0 {
		if err := r.assign(); err != nil {
			return err
		}
	}
	if err := r.queueSecond(ctx, b); err != nil {
		return err
	}
	if last != nil {
		last(b)
	}
	return flush()
}

// done finishes a committed append.
func (r *appendRun) done() error {
	if !r.assigned {
		if err := r.assign(); err != nil {
			return err
		}
	}
	if r.once != nil {
		r.once.MarkRecorded()
	}
	return nil
}

// appendRun is one append being built and sent.
type appendRun struct {
	s        *Store
	out      []eventstore.Event
	streams  []streamResult // in stream-id order
	works    []*docWork
	meta     []byte
	pers     []byte
	once     *eventstore.Once
	byStream map[string]*eventstore.Append
	// planned: works lists the inline projections' documents; assigned:
	// the events have their positions and owners; trips: round trips sent.
	planned, assigned bool
	trips             int
}

// streamResult is one stream's share of an append and what its statement
// returned.
type streamResult struct {
	append eventstore.Append
	evs    []eventstore.Event // the stream's events, a window of out
	rows   []streamRow
}

type streamRow struct {
	version int64
	pos     eventstore.Position
	owner   string
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
	r.byStream = make(map[string]*eventstore.Append, len(appends))
	i := 0
	for k, a := range appends {
		r.streams = append(r.streams, streamResult{append: a, evs: out[i : i+len(a.Events)]})
		r.byStream[a.StreamID] = &appends[k]
		i += len(a.Events)
	}
	slices.SortFunc(r.streams, func(a, b streamResult) int { return strings.Compare(a.append.StreamID, b.append.StreamID) })
	ownersKnown := true
	for _, st := range r.streams {
		if st.append.ExpectedVersion != eventstore.NoStream && st.append.UserID == "" {
			ownersKnown = false
		}
	}
	if ownersKnown {
		if err := r.plan(); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// plan lists the documents each inline projection changes, and settles
// those the store has without reading them.
func (r *appendRun) plan() error {
	for _, pr := range r.s.inline {
		w := newDocWork(pr, r.out)
		if len(w.keys) == 0 {
			continue
		}
		w.table = viewName(pr.Name())
		if err := w.resolvePerStream(r.byStream); err != nil {
			return err
		}
		r.works = append(r.works, w)
	}
	r.planned = true
	return nil
}

// resolvePerStream settles, for a per-stream projection, every document
// the store already knows: none for a new stream, the command's own copy
// when its version is the expected one. Only the rest must be read.
func (w *docWork) resolvePerStream(byStream map[string]*eventstore.Append) error {
	ps, ok := w.pr.(projection.PerStream)
	if !ok || !ps.PerStream() {
		return nil
	}
	w.perStream = true
	for _, key := range w.keys {
		a, ok := byStream[key]
		if !ok {
			return fmt.Errorf("projection %s is per stream but keys a document %q by no appended stream", w.pr.Name(), key)
		}
		if a.ExpectedVersion == eventstore.NoStream {
			w.known[key] = true // a new stream has no document yet
			continue
		}
		data, ok := a.Known[w.pr.Name()]
		if !ok {
			continue
		}
		d := &projection.Doc{Key: key, Data: data}
		if v, err := ps.DocVersion(d); err != nil || v != a.ExpectedVersion {
			continue // stale or unreadable: read it instead
		}
		w.docs[key], w.existed[key], w.known[key] = d, true, true
	}
	return nil
}

// Each stream statement moves (or creates) one stream and inserts its
// events only if that compare-and-set held, the stream being of the
// append's type and, when the append names one, owner; otherwise it aborts
// the transaction (SR001, message = stream id) and classify finds out why.
//
// Most appends (every refresh) carry one event: they take the one-event
// form, whose event columns are plain parameters, instead of five arrays
// that pgx encodes element by element and PostgreSQL unnests and sorts.
const (
	appendEventsSQL = `e AS (INSERT INTO events (event_id, stream_id, stream_type, version, type, schema_version,
			occurred_at, user_id, data, metadata, personal)
		SELECT e.event_id, $1, $2, e.version, e.type, e.schema_version, $5, s.user_id, e.data, $6, $7
		FROM s, unnest($8::uuid[], $9::bigint[], $10::text[], $11::int[], $12::jsonb[])
			WITH ORDINALITY AS e(event_id, version, type, schema_version, data, ord)
		ORDER BY e.ord
		RETURNING version, tx_id, seq, user_id)
	` + appendedRowsSQL
	// The one event's version is the stream's new version, $4.
	appendEventSQL = `e AS (INSERT INTO events (event_id, stream_id, stream_type, version, type, schema_version,
			occurred_at, user_id, data, metadata, personal)
		SELECT $8::uuid, $1, $2, $4, $9, $10::int, $5, s.user_id, $11::jsonb, $6, $7
		FROM s
		RETURNING version, tx_id, seq, user_id)
	` + appendedRowsSQL
	appendedRowsSQL = `SELECT version, tx_id::text, seq, coalesce(user_id, '') FROM e
	UNION ALL
	SELECT NULL, NULL, NULL, NULL
	WHERE CASE WHEN EXISTS (SELECT 1 FROM e) THEN false ELSE strongroom_abort('SR001', $1) END`
	moveStreamSQL = `WITH s AS (UPDATE streams SET version = $4
			WHERE stream_id = $1 AND version = $3 AND stream_type = $2 AND ($13 = '' OR user_id = $13)
			RETURNING user_id),
		` + appendEventsSQL
	// $3 of a new stream is always NoStream.
	createStreamSQL = `WITH s AS (INSERT INTO streams (stream_id, stream_type, user_id, version)
			SELECT $1, $2, nullif($13, ''), $4 WHERE $3::bigint = 0
			ON CONFLICT (stream_id) DO NOTHING RETURNING user_id),
		` + appendEventsSQL
	// The one-event forms: the owner is $12.
	moveStreamSQL1 = `WITH s AS (UPDATE streams SET version = $4
			WHERE stream_id = $1 AND version = $3 AND stream_type = $2 AND ($12 = '' OR user_id = $12)
			RETURNING user_id),
		` + appendEventSQL
	createStreamSQL1 = `WITH s AS (INSERT INTO streams (stream_id, stream_type, user_id, version)
			SELECT $1, $2, nullif($12, ''), $4 WHERE $3::bigint = 0
			ON CONFLICT (stream_id) DO NOTHING RETURNING user_id),
		` + appendEventSQL
)

const (
	// An expired record of the same value is replaced, so expiry never
	// needs the sweeper to be correct.
	onceSQL = `WITH o AS (` + rememberSQL + ` RETURNING 1)
	SELECT CASE WHEN EXISTS (SELECT 1 FROM o) THEN true ELSE strongroom_abort('SR002', 'one-time value already used') END`
)

// queueHead queues what comes first: the one-time value and the stream
// statements. Then come the locks and reads of the documents the store must
// read (queueReads).
//
// Inline projections read and write through each read model's view; a
// rebuild swaps the view while holding the streams table in SHARE mode,
// which waits for every append in flight (each holds ROW EXCLUSIVE from
// its stream statement, queued before any document access) and holds off
// new ones, so the view names the current generation for the whole
// transaction. Per-stream documents need no lock: the stream statement
// already orders their writers, and a read after it sees the last one.
// Other documents are locked (advisory, in one global order, after the
// stream rows) so two appends to different streams cannot lose an update
// of one document.
func (r *appendRun) queueHead(b *pgx.Batch) {
	if r.once != nil {
		b.Queue(onceSQL, r.once.Scope, r.once.Value, r.once.Until, r.s.now())
	}
	for k := range r.streams {
		queueStreamAppend(b, &r.streams[k], r.meta, r.pers)
	}
}

// queueReads queues the locks and reads of the documents the store must
// read, and reports whether there are any.
func (r *appendRun) queueReads(b *pgx.Batch) bool {
	var locks []string
	reads := false
	for _, w := range r.works {
		if len(w.unknown()) > 0 {
			reads = true
		}
		if !w.perStream {
			for _, k := range w.keys {
				locks = append(locks, w.pr.Name()+":"+k)
			}
		}
	}
	if len(locks) > 0 {
		sort.Strings(locks)
		b.Queue(`SELECT pg_advisory_xact_lock(hashtextextended(k, 0)) FROM unnest($1::text[]) AS k`, locks)
	}
	for _, w := range r.works {
		if keys := w.unknown(); len(keys) > 0 {
			w.queueReadKeys(b, keys)
		}
	}
	return reads
}

// queueSecond folds the documents and queues the outbox insert and the
// writes. In one round trip the events have no positions yet: neither the
// folds (per stream: they need none) nor the outbox messages carry them.
func (r *appendRun) queueSecond(ctx context.Context, b *pgx.Batch) error {
	for _, w := range r.works {
		if err := w.fold(r.out); err != nil {
			return err
		}
		w.queueWrites(b)
	}
	return queuePublish(ctx, b, r.out)
}

// assign gives the events the positions and owners the stream statements
// returned.
func (r *appendRun) assign() error {
	for k := range r.streams {
		st := &r.streams[k]
		if len(st.rows) != len(st.evs) {
			return fmt.Errorf("append: stream %q: %d of %d events stored", st.append.StreamID, len(st.rows), len(st.evs))
		}
		for _, row := range st.rows {
			j := row.version - st.evs[0].Version
			if j < 0 || j >= int64(len(st.evs)) {
				return fmt.Errorf("append: stream %q: unexpected version %d stored", st.append.StreamID, row.version)
			}
			st.evs[j].Position, st.evs[j].UserID = row.pos, row.owner
		}
	}
	r.assigned = true
	return nil
}

// classify turns the failure of an append into what the caller must know:
// a conflict (with the version the stream has now), a replayed one-time
// value, an invalid append, or the database error itself. q reads the
// stream outside the failed transaction; without one (inside a caller's
// transaction, which failed) a conflict's actual version is -1, unknown,
// and a stream of another type or owner is reported as a conflict.
type rowQueryer interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

func classify(ctx context.Context, q rowQueryer, run *appendRun, err error) error {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return err
	}
	switch pgErr.Code {
	case stateReplayed:
		return eventstore.ErrReplayed
	case "23505": // unique violation: an event id seen before
		a := run.streams[0].append
		return &eventstore.ConflictError{StreamID: a.StreamID, Expected: a.ExpectedVersion, Actual: currentVersion(ctx, q, a.StreamID)}
	case stateStreamMoved:
	default:
		return fmt.Errorf("append: %w", err)
	}
	var a *eventstore.Append
	for k := range run.streams {
		if run.streams[k].append.StreamID == pgErr.Message {
			a = &run.streams[k].append
		}
	}
	if a == nil {
		return fmt.Errorf("append: %w", err)
	}
	if q == nil {
		return &eventstore.ConflictError{StreamID: a.StreamID, Expected: a.ExpectedVersion, Actual: -1}
	}
	var version int64
	var streamType string
	var owner *string
	rowErr := q.QueryRow(ctx, "SELECT version, stream_type, user_id FROM streams WHERE stream_id = $1", a.StreamID).Scan(&version, &streamType, &owner)
	switch {
	case errors.Is(rowErr, pgx.ErrNoRows):
		return &eventstore.ConflictError{StreamID: a.StreamID, Expected: a.ExpectedVersion, Actual: 0}
	case rowErr != nil:
		return &eventstore.ConflictError{StreamID: a.StreamID, Expected: a.ExpectedVersion, Actual: -1}
	case version == a.ExpectedVersion && streamType != a.StreamType:
		return fmt.Errorf("%w: stream %q is a %q stream, not %q", eventstore.ErrInvalidAppend, a.StreamID, streamType, a.StreamType)
	case version == a.ExpectedVersion && a.UserID != "" && (owner == nil || *owner != a.UserID):
		return fmt.Errorf("%w: stream %q belongs to another user", eventstore.ErrInvalidAppend, a.StreamID)
	}
	return &eventstore.ConflictError{StreamID: a.StreamID, Expected: a.ExpectedVersion, Actual: version}
}

func currentVersion(ctx context.Context, q rowQueryer, streamID string) int64 {
	var v int64
	if q == nil {
		return -1
	}
	if err := q.QueryRow(ctx, "SELECT version FROM streams WHERE stream_id = $1", streamID).Scan(&v); err != nil {
		return 0
	}
	return v
}

func queueStreamAppend(b *pgx.Batch, st *streamResult, meta, personal []byte) {
	a, evs := st.append, st.evs
	n := len(evs)
	scan := func(rows pgx.Rows) error {
		for rows.Next() {
			var row streamRow
			var txText string
			if err := rows.Scan(&row.version, &txText, &row.pos.Seq, &row.owner); err != nil {
				return err
			}
			tx, err := strconv.ParseUint(txText, 10, 64)
			if err != nil {
				return fmt.Errorf("append: parse transaction id %q: %w", txText, err)
			}
			row.pos.Tx = tx
			st.rows = append(st.rows, row)
		}
		return rows.Err()
	}
	if n == 1 {
		ev := evs[0]
		query := moveStreamSQL1
		if a.ExpectedVersion == eventstore.NoStream {
			query = createStreamSQL1
		}
		b.Queue(query, a.StreamID, a.StreamType, a.ExpectedVersion, ev.Version, ev.OccurredAt,
			string(meta), nullableJSON(personal), [16]byte(ev.EventID), ev.Type, int32(ev.SchemaVersion), string(ev.Data),
			a.UserID).Query(scan)
		return
	}
	ids, versions, types, schemas, data := make([]uuid.UUID, n), make([]int64, n), make([]string, n), make([]int32, n), make([]string, n)
	for i, ev := range evs {
		ids[i], versions[i], types[i], schemas[i], data[i] = ev.EventID, ev.Version, ev.Type, int32(ev.SchemaVersion), string(ev.Data)
	}
	query := moveStreamSQL
	if a.ExpectedVersion == eventstore.NoStream {
		query = createStreamSQL
	}
	b.Queue(query, a.StreamID, a.StreamType, a.ExpectedVersion, a.ExpectedVersion+int64(n), evs[0].OccurredAt,
		string(meta), nullableJSON(personal), ids, versions, types, schemas, data, a.UserID).Query(scan)
}
