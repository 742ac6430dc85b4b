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
	return s.appendOwn(ctx, func(b *pgx.Batch) {
		if value == nil {
			b.Queue("DELETE FROM credentials WHERE key = $1", key)
			return
		}
		b.Queue(`INSERT INTO credentials (key, value) VALUES ($1, $2)
			ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = now()`, key, value)
	}, appends)
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
