package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Runtime kinds an environment can name; RuntimeDocker (the default) has
// no row.
const (
	RuntimeDocker     = "docker"
	RuntimeKubernetes = "kubernetes"
)

// EnvRuntime is where an environment runs its tasks when not on the local
// Docker engine. Its client configuration (a kubeconfig: credentials) is
// kept sealed and is never part of it.
type EnvRuntime struct {
	App       string    `json:"app"`
	Env       string    `json:"environment"`
	Kind      string    `json:"kind"`
	Context   string    `json:"context,omitempty"`
	Namespace string    `json:"namespace,omitempty"`
	UpdatedBy string    `json:"updated_by"`
	UpdatedAt time.Time `json:"updated_at"`
	// Retired: its app was deleted; the runtime stays known until the
	// tasks it ran there are gone.
	Retired bool `json:"retired,omitempty"`
}

// EnvRuntimeStore keeps environments' runtimes.
type EnvRuntimeStore interface {
	// SetEnvRuntime names an environment's runtime; it is refused while
	// the environment has services (their tasks would have to move).
	SetEnvRuntime(ctx context.Context, r EnvRuntime, configSealed []byte) error
	// EnvRuntime returns an environment's runtime and its sealed
	// configuration; ErrNotFound when it runs on Docker.
	EnvRuntime(ctx context.Context, app, env string) (EnvRuntime, []byte, error)
	// ListEnvRuntimes lists every runtime row, retired ones too, sealed
	// configurations in the same order.
	ListEnvRuntimes(ctx context.Context) ([]EnvRuntime, [][]byte, error)
	// ForgetRetiredEnvRuntime deletes a retired row (none: no error).
	ForgetRetiredEnvRuntime(ctx context.Context, app, env string) error
}

var _ EnvRuntimeStore = (*DB)(nil)

func (db *DB) SetEnvRuntime(ctx context.Context, r EnvRuntime, configSealed []byte) error {
	if r.Kind == RuntimeDocker && configSealed == nil {
		configSealed = []byte{}
	}
	return db.tx(ctx, func(tx *Tx) error {
		var names []string
		rows, err := tx.QueryContext(ctx, `SELECT name FROM services WHERE app = ? AND env = ? ORDER BY name`, r.App, r.Env)
		if err != nil {
			return err
		}
		for rows.Next() {
			var n string
			if err := rows.Scan(&n); err != nil {
				rows.Close()
				return err
			}
			names = append(names, n)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		if len(names) > 0 {
			cur := RuntimeDocker
			var kind string
			var retired bool
			err := tx.QueryRowContext(ctx, `SELECT kind, retired FROM env_runtimes WHERE app = ? AND env = ?`, r.App, r.Env).Scan(&kind, &retired)
			if err == nil && !retired {
				cur = kind
			}
			if cur != r.Kind || r.Kind != RuntimeDocker {
				return Conflictf("environment %s of app %s has services (%s) running on %s; delete them first (slipway service delete %s %s NAME), then set the runtime and create them again",
					r.Env, r.App, strings.Join(names, ", "), cur, r.App, r.Env)
			}
		}
		if r.Kind == RuntimeDocker {
			_, err := tx.ExecContext(ctx, `DELETE FROM env_runtimes WHERE app = ? AND env = ?`, r.App, r.Env)
			return err
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO env_runtimes(app, env, kind, context, namespace, config_sealed, updated_by, updated_at, retired)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0)
			ON CONFLICT(app, env) DO UPDATE SET kind = excluded.kind, context = excluded.context, namespace = excluded.namespace,
				config_sealed = excluded.config_sealed, updated_by = excluded.updated_by, updated_at = excluded.updated_at, retired = 0`,
			r.App, r.Env, r.Kind, r.Context, r.Namespace, configSealed, r.UpdatedBy, toDB(now()))
		return err
	})
}

const envRuntimeColumns = `app, env, kind, context, namespace, updated_by, updated_at, retired, config_sealed`

func scanEnvRuntime(row scanner) (EnvRuntime, []byte, error) {
	var r EnvRuntime
	var at sql.NullInt64
	var sealed []byte
	err := row.Scan(&r.App, &r.Env, &r.Kind, &r.Context, &r.Namespace, &r.UpdatedBy, &at, &r.Retired, &sealed)
	r.UpdatedAt = fromDB(at)
	return r, sealed, err
}

func (db *DB) EnvRuntime(ctx context.Context, app, env string) (EnvRuntime, []byte, error) {
	r, sealed, err := scanEnvRuntime(db.read.QueryRowContext(ctx, `SELECT `+envRuntimeColumns+` FROM env_runtimes WHERE app = ? AND env = ? AND retired = 0`, app, env))
	if errors.Is(err, sql.ErrNoRows) {
		return r, nil, fmt.Errorf("runtime of environment %s of app %s: %w", env, app, ErrNotFound)
	}
	return r, sealed, err
}

func (db *DB) ListEnvRuntimes(ctx context.Context) ([]EnvRuntime, [][]byte, error) {
	rows, err := db.read.QueryContext(ctx, `SELECT `+envRuntimeColumns+` FROM env_runtimes ORDER BY app, env`)
	if err != nil {
		return nil, nil, err
	}
	var sealed [][]byte
	list, err := collect(rows, func(r scanner) (EnvRuntime, error) {
		e, s, err := scanEnvRuntime(r)
		sealed = append(sealed, s)
		return e, err
	})
	return list, sealed, err
}

func (db *DB) ForgetRetiredEnvRuntime(ctx context.Context, app, env string) error {
	return db.tx(ctx, func(tx *Tx) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM env_runtimes WHERE app = ? AND env = ? AND retired = 1`, app, env)
		return err
	})
}
