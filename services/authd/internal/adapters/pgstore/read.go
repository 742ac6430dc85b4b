package pgstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/jackc/pgx/v5"

	"strongroom.dev/services/authd/internal/eventstore"
)

// ErrCorruptEvent is returned for a stored row that cannot be read as an
// event (broken metadata, impossible position). Payload problems are left to
// the events registry, which types them when the payload is decoded.
var ErrCorruptEvent = errors.New("corrupt event row")

const eventColumns = `tx_id::text, seq, event_id, stream_id, stream_type, version, type, schema_version,
	occurred_at, coalesce(user_id, ''), data, metadata, personal`

// visible holds back events of transactions that may still be followed by an
// older one committing: everything below the oldest running transaction is
// final, so a reader that pages by position never skips an event.
const visible = `tx_id < pg_snapshot_xmin(pg_current_snapshot())`

// queryer is a pool or a transaction.
type queryer interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// ReadStream implements eventstore.Store.
func (s *Store) ReadStream(ctx context.Context, streamID string, after int64) ([]eventstore.Event, error) {
	return readEvents(ctx, s.pool, `SELECT `+eventColumns+` FROM events
		WHERE stream_id = $1 AND version > $2 ORDER BY version`, streamID, after)
}

// ReadAll implements eventstore.Store.
func (s *Store) ReadAll(ctx context.Context, after eventstore.Position, limit int) ([]eventstore.Event, error) {
	return readAll(ctx, s.pool, after, limit, true)
}

func readAll(ctx context.Context, q queryer, after eventstore.Position, limit int, onlyFinal bool) ([]eventstore.Event, error) {
	cond := "true"
	if onlyFinal {
		cond = visible
	}
	return readEvents(ctx, q, `SELECT `+eventColumns+` FROM events
		WHERE (tx_id, seq) > ($1::text::xid8, $2) AND `+cond+`
		ORDER BY tx_id, seq LIMIT $3`,
		strconv.FormatUint(after.Tx, 10), after.Seq, eventstore.ClampLimit(limit))
}

// ReadUser implements eventstore.Store.
func (s *Store) ReadUser(ctx context.Context, userID string, after eventstore.Position, limit int) ([]eventstore.Event, error) {
	return readEvents(ctx, s.pool, `SELECT `+eventColumns+` FROM events
		WHERE user_id = $1 AND (tx_id, seq) > ($2::text::xid8, $3) AND `+visible+`
		ORDER BY tx_id, seq LIMIT $4`,
		userID, strconv.FormatUint(after.Tx, 10), after.Seq, eventstore.ClampLimit(limit))
}

// Head implements eventstore.Store.
func (s *Store) Head(ctx context.Context) (eventstore.Position, error) {
	return head(ctx, s.pool)
}

func head(ctx context.Context, q queryer) (eventstore.Position, error) {
	var txText string
	var p eventstore.Position
	err := q.QueryRow(ctx, `SELECT tx_id::text, seq FROM events WHERE `+visible+`
		ORDER BY tx_id DESC, seq DESC LIMIT 1`).Scan(&txText, &p.Seq)
	if errors.Is(err, pgx.ErrNoRows) {
		return eventstore.Start, nil
	}
	if err != nil {
		return p, fmt.Errorf("read head: %w", err)
	}
	if p.Tx, err = strconv.ParseUint(txText, 10, 64); err != nil {
		return p, fmt.Errorf("%w: transaction id %q", ErrCorruptEvent, txText)
	}
	return p, nil
}

func readEvents(ctx context.Context, q queryer, sql string, args ...any) ([]eventstore.Event, error) {
	rows, err := q.Query(ctx, sql, args...)
	if err != nil {
		return nil, fmt.Errorf("read events: %w", err)
	}
	defer rows.Close()
	var out []eventstore.Event
	for rows.Next() {
		var (
			ev                       eventstore.Event
			txText                   string
			data, meta, personalJSON []byte
		)
		if err := rows.Scan(&txText, &ev.Position.Seq, &ev.EventID, &ev.StreamID, &ev.StreamType, &ev.Version,
			&ev.Type, &ev.SchemaVersion, &ev.OccurredAt, &ev.UserID, &data, &meta, &personalJSON); err != nil {
			return nil, fmt.Errorf("read events: scan: %w", err)
		}
		if ev.Position.Tx, err = strconv.ParseUint(txText, 10, 64); err != nil {
			return nil, fmt.Errorf("%w: transaction id %q", ErrCorruptEvent, txText)
		}
		ev.Data = data
		ev.OccurredAt = ev.OccurredAt.UTC()
		if err := json.Unmarshal(meta, &ev.Metadata); err != nil {
			return nil, fmt.Errorf("%w at %s: metadata: %v", ErrCorruptEvent, ev.Position, err)
		}
		if personalJSON != nil {
			ev.Personal = new(eventstore.Personal)
			if err := json.Unmarshal(personalJSON, ev.Personal); err != nil {
				return nil, fmt.Errorf("%w at %s: personal data: %v", ErrCorruptEvent, ev.Position, err)
			}
		}
		out = append(out, ev)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read events: %w", err)
	}
	return out, nil
}
