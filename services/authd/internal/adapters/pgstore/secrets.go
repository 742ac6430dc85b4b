package pgstore

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"strongroom.dev/services/authd/internal/eventstore"
)

// AppendWithSecret appends events and, in the same transaction, stores
// value under key (nil deletes it): a passcode verifier changes exactly
// when its device.passcode_set (or device.revoked) commits.
func (s *Store) AppendWithSecret(ctx context.Context, key string, value []byte, appends ...eventstore.Append) ([]eventstore.Event, error) {
	var out []eventstore.Event
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var err error
		if out, err = s.AppendTx(ctx, tx, appends...); err != nil {
			return err
		}
		if value == nil {
			_, err = tx.Exec(ctx, "DELETE FROM credentials WHERE key = $1", key)
		} else {
			_, err = tx.Exec(ctx, `INSERT INTO credentials (key, value) VALUES ($1, $2)
				ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = now()`, key, value)
		}
		if err != nil {
			return fmt.Errorf("store credential: %w", err)
		}
		return nil
	})
	return out, err
}

// Secret returns the value stored under key.
func (s *Store) Secret(ctx context.Context, key string) ([]byte, bool, error) {
	var v []byte
	err := s.pool.QueryRow(ctx, "SELECT value FROM credentials WHERE key = $1", key).Scan(&v)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("read credential: %w", err)
	}
	return v, true, nil
}
