// Package proxydb writes user roles into LiteLLM's PostgreSQL table
// "LiteLLM_UserTable". Every write is a single statement that changes
// nothing when the row already holds what it would write, so a resync of
// unchanged users issues no row versions.
package proxydb

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// DB is a pool of connections to the proxy's database.
type DB struct {
	pool *pgxpool.Pool
}

// Open prepares a pool for dsn. It does not connect: the operator starts,
// and reports Synced=False, while the database is down.
func Open(ctx context.Context, dsn string, maxConns int32) (*DB, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		// The parse error may quote the DSN, password included: never pass it on.
		return nil, errors.New("proxydb: the database URL cannot be parsed")
	}
	if maxConns > 0 {
		cfg.MaxConns = maxConns
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("proxydb: create pool: %w", err)
	}
	return &DB{pool: pool}, nil
}

// Close closes the pool.
func (d *DB) Close() { d.pool.Close() }

// Ping checks that the database answers.
func (d *DB) Ping(ctx context.Context) error { return d.pool.Ping(ctx) }

// upsertSQL creates the row with LiteLLM's defaults for every NOT NULL column,
// or updates user_role (and updated_at) when it differs and fills user_email
// when the row has none. The WHERE clause makes an unchanged row a no-op:
// RETURNING then yields no row.
const upsertSQL = `
INSERT INTO "LiteLLM_UserTable" AS t
	(user_id, user_email, user_role, teams, models, metadata, spend,
	 model_spend, model_max_budget, allowed_cache_controls, policies, created_at, updated_at)
VALUES ($1, NULLIF($2, ''), $3, '{}', '{}', '{}', 0, '{}', '{}', '{}', '{}',
	CURRENT_TIMESTAMP AT TIME ZONE 'UTC', CURRENT_TIMESTAMP AT TIME ZONE 'UTC')
ON CONFLICT (user_id) DO UPDATE SET
	user_role  = EXCLUDED.user_role,
	user_email = COALESCE(t.user_email, EXCLUDED.user_email),
	updated_at = CASE WHEN t.user_role IS DISTINCT FROM EXCLUDED.user_role
		THEN CURRENT_TIMESTAMP AT TIME ZONE 'UTC' ELSE t.updated_at END
WHERE t.user_role IS DISTINCT FROM EXCLUDED.user_role
	OR (t.user_email IS NULL AND EXCLUDED.user_email IS NOT NULL)
RETURNING (xmax = 0) AS inserted`

// Result says what an upsert did.
type Result int

// Upsert outcomes.
const (
	Unchanged Result = iota
	Created
	Updated
)

func (r Result) String() string { return [...]string{"unchanged", "created", "updated"}[r] }

// Upsert makes the row of userID hold role (creating it when absent) and
// fills its email when it has none.
func (d *DB) Upsert(ctx context.Context, userID, email, role string) (Result, error) {
	var inserted bool
	err := d.pool.QueryRow(ctx, upsertSQL, userID, email, role).Scan(&inserted)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return Unchanged, nil
	case err != nil:
		return Unchanged, fmt.Errorf("proxydb: upsert user %s: %w", userID, err)
	case inserted:
		return Created, nil
	}
	return Updated, nil
}

// Role returns the role in the row of userID, and false when there is no
// row. A NULL role is returned as "".
func (d *DB) Role(ctx context.Context, userID string) (string, bool, error) {
	var role *string
	err := d.pool.QueryRow(ctx, `SELECT user_role FROM "LiteLLM_UserTable" WHERE user_id = $1`, userID).Scan(&role)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("proxydb: read user %s: %w", userID, err)
	}
	if role == nil {
		return "", true, nil
	}
	return *role, true, nil
}

// SetRole sets the role of an existing row (the Downgrade deletion policy);
// it creates nothing and writes nothing when the role is already set.
func (d *DB) SetRole(ctx context.Context, userID, role string) error {
	_, err := d.pool.Exec(ctx, `UPDATE "LiteLLM_UserTable"
		SET user_role = $2, updated_at = CURRENT_TIMESTAMP AT TIME ZONE 'UTC'
		WHERE user_id = $1 AND user_role IS DISTINCT FROM $2`, userID, role)
	if err != nil {
		return fmt.Errorf("proxydb: set role of user %s: %w", userID, err)
	}
	return nil
}

// Delete deletes the row of userID, if any (the Delete deletion policy).
func (d *DB) Delete(ctx context.Context, userID string) error {
	if _, err := d.pool.Exec(ctx, `DELETE FROM "LiteLLM_UserTable" WHERE user_id = $1`, userID); err != nil {
		return fmt.Errorf("proxydb: delete user %s: %w", userID, err)
	}
	return nil
}

// Count returns the number of rows in the user table.
func (d *DB) Count(ctx context.Context) (int, error) {
	var n int
	if err := d.pool.QueryRow(ctx, `SELECT count(*) FROM "LiteLLM_UserTable"`).Scan(&n); err != nil {
		return 0, fmt.Errorf("proxydb: count users: %w", err)
	}
	return n, nil
}
