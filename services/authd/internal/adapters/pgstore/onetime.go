package pgstore

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// OneTime remembers one-time values (DPoP proof jti, client assertion jti)
// in PostgreSQL, so a value seen by one replica is refused by all.
type OneTime struct {
	pool *pgxpool.Pool
	now  func() time.Time
}

// NewOneTime returns the PostgreSQL one-time value store.
func NewOneTime(pool *pgxpool.Pool, now func() time.Time) *OneTime {
	return &OneTime{pool: pool, now: now}
}

// Remember records value under scope until the given time. An expired
// record of the same value is replaced, so expiry never needs the janitor
// to be correct.
func (o *OneTime) Remember(ctx context.Context, scope, value string, until time.Time) (bool, error) {
	tag, err := o.pool.Exec(ctx, rememberSQL, scope, value, until, o.now())
	if err != nil {
		return false, fmt.Errorf("remember one-time value: %w", err)
	}
	return tag.RowsAffected() == 1, nil
}

// rememberSQL records a one-time value unless an unexpired record of it
// exists: one row affected means fresh.
const rememberSQL = `INSERT INTO one_time_values (scope, value, expires_at) VALUES ($1, $2, $3)
	ON CONFLICT (scope, value) DO UPDATE SET expires_at = excluded.expires_at
	WHERE one_time_values.expires_at <= $4`

// Seen reports whether value is recorded under scope and not expired.
func (o *OneTime) Seen(ctx context.Context, scope, value string) (bool, error) {
	var n int
	err := o.pool.QueryRow(ctx, `SELECT count(*) FROM one_time_values WHERE scope = $1 AND value = $2 AND expires_at > $3`,
		scope, value, o.now()).Scan(&n)
	if err != nil {
		return false, fmt.Errorf("look up one-time value: %w", err)
	}
	return n > 0, nil
}

// Sweep deletes expired values; any replica may run it at any time.
func (o *OneTime) Sweep(ctx context.Context) (int64, error) {
	tag, err := o.pool.Exec(ctx, `DELETE FROM one_time_values WHERE expires_at <= $1`, o.now())
	if err != nil {
		return 0, fmt.Errorf("sweep one-time values: %w", err)
	}
	return tag.RowsAffected(), nil
}

// ServerSecret returns the named shared secret, creating it with 32 random
// bytes if no replica has yet.
func ServerSecret(ctx context.Context, pool *pgxpool.Pool, name string) ([]byte, error) {
	fresh := make([]byte, 32)
	if _, err := rand.Read(fresh); err != nil {
		return nil, err
	}
	if _, err := pool.Exec(ctx, `INSERT INTO server_secrets (name, secret) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING`, name, fresh); err != nil {
		return nil, fmt.Errorf("create server secret %s: %w", name, err)
	}
	var secret []byte
	err := pool.QueryRow(ctx, `SELECT secret FROM server_secrets WHERE name = $1`, name).Scan(&secret)
	if errors.Is(err, pgx.ErrNoRows) || len(secret) < 32 {
		return nil, fmt.Errorf("server secret %s missing", name)
	}
	if err != nil {
		return nil, fmt.Errorf("read server secret %s: %w", name, err)
	}
	return secret, nil
}
