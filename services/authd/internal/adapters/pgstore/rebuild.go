package pgstore

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"strongroom.dev/services/authd/internal/eventstore"
	"strongroom.dev/services/authd/internal/projection"
)

// rebuildBatch is how many events one replay transaction applies: small
// enough that no transaction is long (long ones hold back outbox delivery).
const rebuildBatch = 500

// Rebuild replays the log into a fresh generation of the named read model
// and swaps it in. Readers keep reading the old generation through the view
// until the swap; the live subscriber (or, for inline projections, every
// append) waits only for the short final transaction that applies the last
// events and switches the view.
func (p *Projector) Rebuild(ctx context.Context, name string) error {
	pr, ok := p.all[name]
	if !ok {
		return fmt.Errorf("%w: %q", projection.ErrUnknown, name)
	}
	_, async := p.async[name]

	conn, err := p.store.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("rebuild %s: %w", name, err)
	}
	defer conn.Release()
	var got bool
	if err := conn.QueryRow(ctx, "SELECT pg_try_advisory_lock(hashtextextended('rebuild:' || $1, 0))", name).Scan(&got); err != nil {
		return fmt.Errorf("rebuild %s: lock: %w", name, err)
	}
	if !got {
		return fmt.Errorf("rebuild %s: another rebuild is running", name)
	}
	defer func() {
		_, _ = conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock(hashtextextended('rebuild:' || $1, 0))", name)
	}()

	var oldGen int
	if err := conn.QueryRow(ctx, "SELECT generation FROM projections WHERE name = $1", name).Scan(&oldGen); err != nil {
		return fmt.Errorf("rebuild %s: read generation: %w", name, err)
	}
	gen := oldGen + 1
	if err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error { return createGeneration(ctx, tx, name, gen) }); err != nil {
		return fmt.Errorf("rebuild %s: %w", name, err)
	}

	// Replay everything final in short transactions.
	pos := eventstore.Start
	for {
		var n int
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			evs, err := readAll(ctx, tx, pos, rebuildBatch, true)
			if err != nil {
				return err
			}
			n = len(evs)
			if n == 0 {
				return nil
			}
			pos = evs[n-1].Position
			return applyEvents(ctx, tx, pr, gen, evs)
		})
		if err != nil {
			return fmt.Errorf("rebuild %s: replay: %w", name, err)
		}
		if n < rebuildBatch {
			break
		}
	}

	// Catch up and swap in one short transaction that holds off the
	// writers of this read model.
	err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		if !async {
			// Waits for every append in flight (each holds ROW EXCLUSIVE
			// on streams from before it touches a read model) and holds off
			// new ones until the swap commits: see append.go.
			if _, err := tx.Exec(ctx, "LOCK TABLE streams IN SHARE MODE"); err != nil {
				return err
			}
		}
		_, live, err := lockProjection(ctx, tx, name)
		if err != nil {
			return err
		}
		for {
			// Inline: no append of this read model is in flight (we hold
			// its lock), so every committed event counts. Async: take what
			// is final; the live subscriber applies the rest after the swap.
			evs, err := readAll(ctx, tx, pos, rebuildBatch, async)
			if err != nil {
				return err
			}
			if len(evs) > 0 {
				if err := applyEvents(ctx, tx, pr, gen, evs); err != nil {
					return err
				}
				pos = evs[len(evs)-1].Position
			}
			if len(evs) < rebuildBatch {
				break
			}
		}
		if async && pos.Less(live) {
			return fmt.Errorf("live position %s is ahead of the rebuilt %s: retry", live, pos)
		}
		if _, err := tx.Exec(ctx, `UPDATE projections SET generation = $2, pos_tx = $3::text::xid8, pos_seq = $4,
			updated_at = now() WHERE name = $1`, name, gen, strconv.FormatUint(pos.Tx, 10), pos.Seq); err != nil {
			return err
		}
		return swapView(ctx, tx, name, gen)
	})
	if err != nil {
		_, _ = conn.Exec(context.WithoutCancel(ctx), "DROP TABLE IF EXISTS "+tableName(name, gen))
		return fmt.Errorf("rebuild %s: swap: %w", name, err)
	}
	if _, err := conn.Exec(ctx, "DROP TABLE IF EXISTS "+tableName(name, oldGen)); err != nil {
		p.log.WarnContext(ctx, "rebuild: old generation not dropped", "projection", name, "err", err)
	}
	p.log.InfoContext(ctx, "projection rebuilt", "projection", name, "generation", gen, "position", pos.String())
	return nil
}

// Get implements projection.Reader.
func (p *Projector) Get(ctx context.Context, name, key string) (projection.Doc, bool, error) {
	if _, ok := p.all[name]; !ok {
		return projection.Doc{}, false, fmt.Errorf("%w: %q", projection.ErrUnknown, name)
	}
	docs, err := p.query(ctx, "SELECT "+docColumns+" FROM "+viewName(name)+" WHERE key = $1", key)
	if err != nil || len(docs) == 0 {
		return projection.Doc{}, false, err
	}
	return docs[0], true, nil
}

// ListByOwner implements projection.Reader.
func (p *Projector) ListByOwner(ctx context.Context, name, owner string) ([]projection.Doc, error) {
	if _, ok := p.all[name]; !ok {
		return nil, fmt.Errorf("%w: %q", projection.ErrUnknown, name)
	}
	return p.query(ctx, "SELECT "+docColumns+" FROM "+viewName(name)+" WHERE owner = $1 ORDER BY key", owner)
}

// All implements projection.Reader.
func (p *Projector) All(ctx context.Context, name string) ([]projection.Doc, error) {
	if _, ok := p.all[name]; !ok {
		return nil, fmt.Errorf("%w: %q", projection.ErrUnknown, name)
	}
	return p.query(ctx, "SELECT "+docColumns+" FROM "+viewName(name)+" ORDER BY key")
}

// Due implements projection.Reader, through the partial index on due.
func (p *Projector) Due(ctx context.Context, name string, t time.Time, limit int) ([]projection.Doc, error) {
	if _, ok := p.all[name]; !ok {
		return nil, fmt.Errorf("%w: %q", projection.ErrUnknown, name)
	}
	return p.query(ctx, "SELECT "+docColumns+" FROM "+viewName(name)+" WHERE due <= $1 ORDER BY due, key LIMIT $2",
		t, eventstore.ClampLimit(limit))
}

func (p *Projector) query(ctx context.Context, sql string, args ...any) ([]projection.Doc, error) {
	rows, err := p.store.pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, fmt.Errorf("read model: %w", err)
	}
	docs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (projection.Doc, error) {
		return scanDoc(r)
	})
	if err != nil {
		return nil, fmt.Errorf("read model: %w", err)
	}
	return docs, nil
}

// lagScanLimit bounds the work of counting a lagging projection's backlog.
const lagScanLimit = 100000

// Status implements projection.Runner.
func (p *Projector) Status(ctx context.Context) ([]projection.Status, error) {
	h, err := head(ctx, p.store.pool)
	if err != nil {
		return nil, err
	}
	rows, err := p.store.pool.Query(ctx, "SELECT name, generation, inline, pos_tx::text, pos_seq FROM projections ORDER BY name")
	if err != nil {
		return nil, fmt.Errorf("projection status: %w", err)
	}
	var out []projection.Status
	for rows.Next() {
		var st projection.Status
		var txText string
		if err := rows.Scan(&st.Name, &st.Generation, &st.Inline, &txText, &st.Position.Seq); err != nil {
			rows.Close()
			return nil, fmt.Errorf("projection status: %w", err)
		}
		if st.Position.Tx, err = strconv.ParseUint(txText, 10, 64); err != nil {
			rows.Close()
			return nil, fmt.Errorf("projection status: position %q: %w", txText, err)
		}
		st.Head = h
		out = append(out, st)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("projection status: %w", err)
	}
	now := time.Now()
	for i := range out {
		if out[i].Inline {
			out[i].Position = h // applied in every append's own transaction
			continue
		}
		// Lag counts only the events the projection reads: a projection
		// scoped to device streams is not behind for a session refresh.
		var oldest *time.Time
		var scope []string
		if pr, ok := p.all[out[i].Name]; ok {
			scope = projection.Scope(pr)
		}
		err := p.store.pool.QueryRow(ctx, `SELECT count(*), min(occurred_at) FROM (
			SELECT occurred_at FROM events WHERE (tx_id, seq) > ($1::text::xid8, $2) AND `+visible+`
				AND ($3::text[] IS NULL OR stream_type = ANY($3))
			ORDER BY tx_id, seq LIMIT `+strconv.Itoa(lagScanLimit)+`) pending`,
			strconv.FormatUint(out[i].Position.Tx, 10), out[i].Position.Seq, scope).Scan(&out[i].LagEvents, &oldest)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return nil, fmt.Errorf("projection status: lag of %s: %w", out[i].Name, err)
		}
		if oldest != nil {
			out[i].LagSeconds = projection.LagAt(now, *oldest)
		}
	}
	return out, nil
}

var _ projection.Runner = (*Projector)(nil)
