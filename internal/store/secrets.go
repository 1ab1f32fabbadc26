package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Secret describes one secret's newest version; the sealed value is never
// part of it, so it is safe to return from an API.
type Secret struct {
	Name      string    `json:"name"`
	App       string    `json:"app,omitempty"`
	Env       string    `json:"env,omitempty"`
	Version   int       `json:"version"`
	UpdatedBy string    `json:"updated_by"`
	UpdatedAt time.Time `json:"updated_at"`
}

// SecretStore keeps sealed secret values, one row per version.
type SecretStore interface {
	// PutSecret stores a new version and returns its number.
	PutSecret(ctx context.Context, s Secret, sealed []byte) (int, error)
	ListSecrets(ctx context.Context, app string) ([]Secret, error)
	// SealedSecret returns the newest version's sealed value in exactly that scope.
	SealedSecret(ctx context.Context, name, app, env string) (Secret, []byte, error)
	DeleteSecret(ctx context.Context, name, app, env string) error
}

var _ SecretStore = (*DB)(nil)

func (db *DB) PutSecret(ctx context.Context, s Secret, sealed []byte) (int, error) {
	var version int
	err := db.tx(ctx, func(tx *Tx) error {
		if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) + 1 FROM secrets WHERE name = ? AND app = ? AND env = ?`,
			s.Name, s.App, s.Env).Scan(&version); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO secrets(name, app, env, version, sealed, created_by, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)`,
			s.Name, s.App, s.Env, version, sealed, s.UpdatedBy, toDB(now()))
		return err
	})
	return version, err
}

func scanSecret(row scanner) (Secret, error) {
	var s Secret
	var at sql.NullInt64
	err := row.Scan(&s.Name, &s.App, &s.Env, &s.Version, &s.UpdatedBy, &at)
	s.UpdatedAt = fromDB(at)
	return s, err
}

// ListSecrets lists the newest version of every secret; app "" lists all.
func (db *DB) ListSecrets(ctx context.Context, app string) ([]Secret, error) {
	rows, err := db.read.QueryContext(ctx, `SELECT s.name, s.app, s.env, s.version, s.created_by, s.created_at FROM secrets s
		WHERE s.version = (SELECT MAX(version) FROM secrets x WHERE x.name = s.name AND x.app = s.app AND x.env = s.env)
		AND (? = '' OR s.app = ? OR s.app = '')
		ORDER BY s.app, s.env, s.name`, app, app)
	if err != nil {
		return nil, err
	}
	return collect(rows, scanSecret)
}

func (db *DB) SealedSecret(ctx context.Context, name, app, env string) (Secret, []byte, error) {
	var sealed []byte
	var s Secret
	var at sql.NullInt64
	err := db.read.QueryRowContext(ctx, `SELECT name, app, env, version, created_by, created_at, sealed FROM secrets
		WHERE name = ? AND app = ? AND env = ? ORDER BY version DESC LIMIT 1`, name, app, env).
		Scan(&s.Name, &s.App, &s.Env, &s.Version, &s.UpdatedBy, &at, &sealed)
	if errors.Is(err, sql.ErrNoRows) {
		return s, nil, fmt.Errorf("secret %s: %w", name, ErrNotFound)
	}
	s.UpdatedAt = fromDB(at)
	if err == nil && sealed == nil {
		sealed = []byte{} // SQLite reads an empty BLOB as nil, PostgreSQL as empty
	}
	return s, sealed, err
}

func (db *DB) DeleteSecret(ctx context.Context, name, app, env string) error {
	return db.tx(ctx, func(tx *Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM secrets WHERE name = ? AND app = ? AND env = ?`, name, app, env)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("secret %s%s: %w", name, scopeText(app, env), ErrNotFound)
		}
		return nil
	})
}

func scopeText(app, env string) string {
	switch {
	case app == "":
		return " (global)"
	case env == "":
		return " of app " + app
	}
	return " of app " + app + " environment " + env
}
