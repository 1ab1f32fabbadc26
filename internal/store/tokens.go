package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Token is an API credential; the secret itself is never stored, only its hash.
type Token struct {
	ID         string     `json:"id"`
	Name       string     `json:"name"`
	Role       string     `json:"role"`
	CreatedAt  time.Time  `json:"created_at"`
	LastUsedAt *time.Time `json:"last_used_at,omitempty"`
	RevokedAt  *time.Time `json:"revoked_at,omitempty"`
	// App limits the token to one app's repositories and objects ("": all).
	App string `json:"app,omitempty"`
	// Env further limits an app's token to one environment's services and
	// deployments; elsewhere in the app it may only read.
	Env string `json:"env,omitempty"`
	// RegistryOnly limits the token to the OCI registry (a build's token).
	RegistryOnly bool `json:"registry_only,omitempty"`
}

// TokenStore keeps API tokens.
type TokenStore interface {
	CreateToken(ctx context.Context, t Token, hash []byte) (Token, error)
	TokenByHash(ctx context.Context, hash []byte) (Token, error)
	ListTokens(ctx context.Context) ([]Token, error)
	RevokeToken(ctx context.Context, idOrName string) (Token, error)
	TouchToken(ctx context.Context, id string, at time.Time) error
	CountTokens(ctx context.Context) (int, error)
	DeleteToken(ctx context.Context, id string) error
	DeleteTokensNamed(ctx context.Context, prefix string) (int, error)
}

var _ TokenStore = (*DB)(nil)

const tokenCols = `id, name, role, created_at, last_used_at, revoked_at, app, env, registry_only`

func scanToken(row scanner) (Token, error) {
	var t Token
	var created, used, revoked sql.NullInt64
	if err := row.Scan(&t.ID, &t.Name, &t.Role, &created, &used, &revoked, &t.App, &t.Env, &t.RegistryOnly); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return t, ErrNotFound
		}
		return t, err
	}
	t.CreatedAt = fromDB(created)
	if used.Valid {
		u := fromDB(used)
		t.LastUsedAt = &u
	}
	if revoked.Valid {
		r := fromDB(revoked)
		t.RevokedAt = &r
	}
	return t, nil
}

func (db *DB) CreateToken(ctx context.Context, t Token, hash []byte) (Token, error) {
	t.CreatedAt = now()
	err := db.tx(ctx, func(tx *Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO tokens(id, name, role, hash, created_at, app, env, registry_only) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
			t.ID, t.Name, t.Role, hash, toDB(t.CreatedAt), t.App, t.Env, t.RegistryOnly)
		return err
	})
	if isUniqueViolation(err) {
		return t, fmt.Errorf("token name %q: %w", t.Name, ErrExists)
	}
	return t, err
}

func (db *DB) TokenByHash(ctx context.Context, hash []byte) (Token, error) {
	return scanToken(db.read.QueryRowContext(ctx, `SELECT `+tokenCols+` FROM tokens WHERE hash = ?`, hash))
}

func (db *DB) ListTokens(ctx context.Context) ([]Token, error) {
	rows, err := db.read.QueryContext(ctx, `SELECT `+tokenCols+` FROM tokens ORDER BY created_at, id`)
	if err != nil {
		return nil, err
	}
	return collect(rows, scanToken)
}

func (db *DB) RevokeToken(ctx context.Context, idOrName string) (Token, error) {
	var t Token
	err := db.tx(ctx, func(tx *Tx) error {
		var err error
		t, err = scanToken(tx.QueryRowContext(ctx, `SELECT `+tokenCols+` FROM tokens WHERE id = ? OR name = ?`, idOrName, idOrName))
		if err != nil {
			return err
		}
		if t.RevokedAt != nil {
			return nil
		}
		at := now()
		t.RevokedAt = &at
		_, err = tx.ExecContext(ctx, `UPDATE tokens SET revoked_at = ? WHERE id = ?`, toDB(at), t.ID)
		return err
	})
	return t, err
}

func (db *DB) TouchToken(ctx context.Context, id string, at time.Time) error {
	return db.tx(ctx, func(tx *Tx) error {
		_, err := tx.ExecContext(ctx, `UPDATE tokens SET last_used_at = ? WHERE id = ?`, toDB(at), id)
		return err
	})
}

func (db *DB) CountTokens(ctx context.Context) (int, error) {
	var n int
	err := db.read.QueryRowContext(ctx, `SELECT COUNT(*) FROM tokens`).Scan(&n)
	return n, err
}

// GetMeta and SetMeta hold small server facts such as whether the first admin token was issued.
func (db *DB) GetMeta(ctx context.Context, key string) (string, error) {
	var v string
	err := db.read.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = ?`, key).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return "", ErrNotFound
	}
	return v, err
}

func (db *DB) SetMeta(ctx context.Context, key, value string) error {
	return db.tx(ctx, func(tx *Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value`, key, value)
		return err
	})
}

// BootstrapAdmin issues the first admin token once per database. It reports
// false when a bootstrap already happened, so a restart never mints another.
func (db *DB) BootstrapAdmin(ctx context.Context, t Token, hash []byte) (bool, error) {
	created := false
	err := db.tx(ctx, func(tx *Tx) error {
		created = false // an attempt whose commit failed may have set it
		var v string
		err := tx.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = 'admin_bootstrapped'`).Scan(&v)
		if err == nil {
			return nil
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		t.CreatedAt = now()
		if _, err := tx.ExecContext(ctx, `INSERT INTO tokens(id, name, role, hash, created_at) VALUES (?, ?, ?, ?, ?)`,
			t.ID, t.Name, t.Role, hash, toDB(t.CreatedAt)); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO meta(key, value) VALUES ('admin_bootstrapped', ?)`, t.ID); err != nil {
			return err
		}
		created = true
		return nil
	})
	if isUniqueViolation(err) {
		// Another server bootstrapped at the same time: on PostgreSQL its
		// committed "admin" token fails this insert as a duplicate name
		// rather than as a conflict to retry, as this transaction never
		// read that name. Its record tells the two cases apart.
		if v, merr := db.GetMeta(ctx, "admin_bootstrapped"); merr == nil && v != "" {
			return false, nil
		}
	}
	return created, err
}

// ReplaceToken issues a token under name, deleting any earlier one of that
// name in the same transaction (the server's own pipeline token, minted at
// each start and known only to that process).
func (db *DB) ReplaceToken(ctx context.Context, t Token, hash []byte) (Token, error) {
	t.CreatedAt = now()
	err := db.tx(ctx, func(tx *Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM tokens WHERE name = ?`, t.Name); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO tokens(id, name, role, hash, created_at, app, env, registry_only) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
			t.ID, t.Name, t.Role, hash, toDB(t.CreatedAt), t.App, t.Env, t.RegistryOnly)
		return err
	})
	return t, err
}

// DeleteToken removes a token outright (a build's token when the build ends).
func (db *DB) DeleteToken(ctx context.Context, id string) error {
	return db.tx(ctx, func(tx *Tx) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM tokens WHERE id = ?`, id)
		return err
	})
}

// DeleteTokensNamed removes the tokens whose name starts with prefix (the
// build tokens a stopped server left) and says how many went.
func (db *DB) DeleteTokensNamed(ctx context.Context, prefix string) (int, error) {
	var n int64
	err := db.tx(ctx, func(tx *Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM tokens WHERE substr(name, 1, length(?)) = ?`, prefix, prefix)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	return int(n), err
}
