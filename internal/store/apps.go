package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// App is a repository and what it deploys.
type App struct {
	Name         string        `json:"name"`
	RegistryRepo string        `json:"registry_repository"`
	SourceURL    string        `json:"source_url,omitempty"`
	HasWebhook   bool          `json:"webhook_secret_set"`
	Environments []string      `json:"environments"`
	CreatedAt    time.Time     `json:"created_at"`
	Build        BuildSettings `json:"build"`
}

// Build executors: where an app's build phases, invoke commands and hooks run.
const (
	// ExecutorSandbox is a container that sees only the build's workspace (default).
	ExecutorSandbox = "sandbox"
	// ExecutorHost runs on the host as the server's user: an admin's explicit choice.
	ExecutorHost = "host"
)

// BuildSettings are an app's admin-only build settings.
type BuildSettings struct {
	Executor string `json:"executor"`
	// DockerAccess gives builds the Docker engine (CodeBuild's privileged
	// mode): equivalent to root on the host.
	DockerAccess bool `json:"docker_access"`
}

// AppStore keeps apps and their environments.
type AppStore interface {
	CreateApp(ctx context.Context, a App) (App, error)
	GetApp(ctx context.Context, name string) (App, error)
	ListApps(ctx context.Context) ([]App, error)
	DeleteApp(ctx context.Context, name string) error
	SetAppSource(ctx context.Context, name, url string, sealedSecret []byte, keepSecret bool) (App, error)
	AppWebhookSecret(ctx context.Context, name string) ([]byte, error)
	SetBuildSettings(ctx context.Context, name string, b BuildSettings) (App, error)
}

var _ AppStore = (*DB)(nil)

func (db *DB) CreateApp(ctx context.Context, a App) (App, error) {
	a.CreatedAt = now()
	err := db.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO apps(name, registry_repo, created_at) VALUES (?, ?, ?)`, a.Name, a.RegistryRepo, toDB(a.CreatedAt)); err != nil {
			return err
		}
		for _, env := range a.Environments {
			if _, err := tx.ExecContext(ctx, `INSERT INTO environments(app, name, created_at) VALUES (?, ?, ?)`, a.Name, env, toDB(a.CreatedAt)); err != nil {
				return err
			}
		}
		return nil
	})
	if isUniqueViolation(err) {
		return a, fmt.Errorf("app %q: %w", a.Name, ErrExists)
	}
	return a, err
}

func (db *DB) GetApp(ctx context.Context, name string) (App, error) {
	var a App
	var created sql.NullInt64
	var secret []byte
	err := db.read.QueryRowContext(ctx, `SELECT name, registry_repo, source_url, webhook_secret, created_at, build_executor, build_docker FROM apps WHERE name = ?`, name).
		Scan(&a.Name, &a.RegistryRepo, &a.SourceURL, &secret, &created, &a.Build.Executor, &a.Build.DockerAccess)
	if errors.Is(err, sql.ErrNoRows) {
		return a, fmt.Errorf("app %q: %w", name, ErrNotFound)
	}
	if err != nil {
		return a, err
	}
	a.CreatedAt = fromDB(created)
	a.HasWebhook = len(secret) > 0
	a.Environments, err = db.environments(ctx, name)
	return a, err
}

func (db *DB) environments(ctx context.Context, app string) ([]string, error) {
	rows, err := db.read.QueryContext(ctx, `SELECT name FROM environments WHERE app = ? ORDER BY created_at, name`, app)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	envs := []string{}
	for rows.Next() {
		var e string
		if err := rows.Scan(&e); err != nil {
			return nil, err
		}
		envs = append(envs, e)
	}
	return envs, rows.Err()
}

func (db *DB) ListApps(ctx context.Context) ([]App, error) {
	rows, err := db.read.QueryContext(ctx, `SELECT name FROM apps ORDER BY name`)
	if err != nil {
		return nil, err
	}
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			rows.Close()
			return nil, err
		}
		names = append(names, n)
	}
	rows.Close()
	out := []App{}
	for _, n := range names {
		a, err := db.GetApp(ctx, n)
		if errors.Is(err, ErrNotFound) {
			continue // deleted between the two reads
		}
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, nil
}

func (db *DB) DeleteApp(ctx context.Context, name string) error {
	return db.tx(ctx, func(tx *sql.Tx) error {
		if err := noDeploymentInProgress(ctx, tx, `app = ?`, name); err != nil {
			return err
		}
		// A run that has not ended still has actions to run and write.
		var run int64
		var state string
		err := tx.QueryRowContext(ctx, `SELECT id, state FROM runs WHERE app = ? AND state IN (?, ?, ?) ORDER BY id LIMIT 1`, name, RunQueued, RunRunning, RunWaiting).Scan(&run, &state)
		if err == nil {
			return Conflictf("run %d of app %s is %s; cancel it first (slipway run cancel %d)", run, name, state, run)
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM apps WHERE name = ?`, name)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("app %q: %w", name, ErrNotFound)
		}
		// What is the app's without a foreign key goes too, so an app made
		// again under this name starts afresh: no old service events,
		// deployments to roll back into, or secrets injected into its tasks.
		for _, q := range []string{
			`DELETE FROM webhook_deliveries WHERE app = ?`,
			`DELETE FROM service_events WHERE app = ?`,
			`DELETE FROM deployments WHERE app = ?`,
			`DELETE FROM secrets WHERE app = ?`,
		} {
			if _, err := tx.ExecContext(ctx, q, name); err != nil {
				return err
			}
		}
		return nil
	})
}

// SetAppSource sets where webhook pushes are fetched from. sealedSecret is
// already encrypted; keepSecret leaves the stored one untouched.
func (db *DB) SetAppSource(ctx context.Context, name, url string, sealedSecret []byte, keepSecret bool) (App, error) {
	err := db.tx(ctx, func(tx *sql.Tx) error {
		var res sql.Result
		var err error
		if keepSecret {
			res, err = tx.ExecContext(ctx, `UPDATE apps SET source_url = ? WHERE name = ?`, url, name)
		} else {
			res, err = tx.ExecContext(ctx, `UPDATE apps SET source_url = ?, webhook_secret = ? WHERE name = ?`, url, sealedSecret, name)
		}
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("app %q: %w", name, ErrNotFound)
		}
		return nil
	})
	if err != nil {
		return App{}, err
	}
	return db.GetApp(ctx, name)
}

// AppWebhookSecret returns the sealed webhook secret (nil when none is set).
func (db *DB) AppWebhookSecret(ctx context.Context, name string) ([]byte, error) {
	var secret []byte
	err := db.read.QueryRowContext(ctx, `SELECT webhook_secret FROM apps WHERE name = ?`, name).Scan(&secret)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("app %q: %w", name, ErrNotFound)
	}
	return secret, err
}

// SetBuildSettings sets where an app's builds run and whether they reach
// the Docker engine.
func (db *DB) SetBuildSettings(ctx context.Context, name string, b BuildSettings) (App, error) {
	err := db.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE apps SET build_executor = ?, build_docker = ? WHERE name = ?`, b.Executor, b.DockerAccess, name)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("app %q: %w", name, ErrNotFound)
		}
		return nil
	})
	if err != nil {
		return App{}, err
	}
	return db.GetApp(ctx, name)
}
