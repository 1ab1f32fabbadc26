package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"
)

// App is a repository and what it deploys.
type App struct {
	Name         string `json:"name"`
	RegistryRepo string `json:"registry_repository"`
	// SourceURL never holds credentials: they are sealed apart, and
	// SourceCredentials says whether there are some.
	SourceURL         string        `json:"source_url,omitempty"`
	SourceCredentials bool          `json:"source_credentials_set"`
	HasWebhook        bool          `json:"webhook_secret_set"`
	Environments      []string      `json:"environments"`
	CreatedAt         time.Time     `json:"created_at"`
	Build             BuildSettings `json:"build"`
}

// AppSource is where an app's webhook pushes are fetched from, as stored.
// URL has no credentials; Credentials holds them sealed with the master
// key. A row written before credentials were sealed apart may still have
// them in URL, with Credentials nil (SplitSourceCredentials finds them).
type AppSource struct {
	URL         string
	Credentials []byte
}

// SourceURLError is a source URL that does not parse. Its message never
// holds the URL's userinfo.
type SourceURLError struct {
	Public string // the URL with any userinfo cut out
	Reason string
}

func (e *SourceURLError) Error() string {
	return fmt.Sprintf("source URL %s does not parse: %s", e.Public, e.Reason)
}

// SplitSourceCredentials cuts the credentials out of a source URL: all
// the userinfo of an http(s) URL (a token may be the user name alone), or
// userinfo holding a password in other URLs (an ssh user name is no secret,
// and ssh needs it). user is nil when there are none. Paths and git's
// scp-like user@host:path are returned as they are.
func SplitSourceCredentials(raw string) (public string, user *url.Userinfo, err error) {
	u, err := url.Parse(raw)
	if err != nil {
		if !strings.Contains(raw, "://") {
			return raw, nil, nil // a path or scp-like: git reads those, url.Parse may not
		}
		// url.Parse's message may quote part of the userinfo: the reason
		// comes from the URL without it.
		public, _ := cutUserinfo(raw)
		reason := "the user name or password is not valid URL syntax; escape @ : / ? # % in them as %40 %3A %2F %3F %23 %25"
		if _, perr := url.Parse(public); perr != nil {
			reason = perr.Error()
			var ue *url.Error
			if errors.As(perr, &ue) {
				reason = ue.Err.Error() // url.Error repeats the URL
			}
		}
		return "", nil, &SourceURLError{Public: public, Reason: reason}
	}
	if u.User == nil {
		return raw, nil, nil
	}
	_, hasPassword := u.User.Password()
	if !hasPassword && !httpScheme(u.Scheme) {
		return raw, nil, nil
	}
	user = u.User
	u.User = nil
	return u.String(), user, nil
}

func httpScheme(scheme string) bool {
	switch strings.ToLower(scheme) {
	case "http", "https":
		return true
	}
	return false
}

// cutUserinfo removes the userinfo of a scheme://userinfo@host… string
// that may not parse, and returns it too.
func cutUserinfo(raw string) (rest, userinfo string) {
	i := strings.Index(raw, "://")
	if i < 0 {
		return raw, ""
	}
	authority := raw[i+3:]
	if end := strings.IndexAny(authority, "/?#"); end >= 0 {
		authority = authority[:end]
	}
	at := strings.LastIndex(authority, "@")
	if at < 0 {
		return raw, ""
	}
	return raw[:i+3] + raw[i+3+at+1:], authority[:at]
}

// publicSource is a stored source as it may be shown: the URL without
// credentials, and whether there are some (sealed, or in an old row's URL).
func publicSource(rawURL string, sealed []byte) (string, bool) {
	public, user, err := SplitSourceCredentials(rawURL)
	if err != nil {
		public, userinfo := cutUserinfo(rawURL)
		return public, len(sealed) > 0 || userinfo != ""
	}
	return public, len(sealed) > 0 || user != nil
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
	SetAppSource(ctx context.Context, name string, src AppSource, sealedSecret []byte, keepSecret bool) (App, error)
	GetAppSource(ctx context.Context, name string) (AppSource, error)
	UnsealedSourceURLs(ctx context.Context) (map[string]string, error)
	UpgradeAppSource(ctx context.Context, name, oldURL string, src AppSource) (bool, error)
	AppWebhookSecret(ctx context.Context, name string) ([]byte, error)
	SetBuildSettings(ctx context.Context, name string, b BuildSettings) (App, error)
}

var _ AppStore = (*DB)(nil)

func (db *DB) CreateApp(ctx context.Context, a App) (App, error) {
	a.CreatedAt = now()
	err := db.tx(ctx, func(tx *Tx) error {
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
	var secret, creds []byte
	var rawURL string
	err := db.read.QueryRowContext(ctx, `SELECT name, registry_repo, source_url, source_credentials, webhook_secret, created_at, build_executor, build_docker FROM apps WHERE name = ?`, name).
		Scan(&a.Name, &a.RegistryRepo, &rawURL, &creds, &secret, &created, &a.Build.Executor, &a.Build.DockerAccess)
	if errors.Is(err, sql.ErrNoRows) {
		return a, fmt.Errorf("app %q: %w", name, ErrNotFound)
	}
	if err != nil {
		return a, err
	}
	a.CreatedAt = fromDB(created)
	a.SourceURL, a.SourceCredentials = publicSource(rawURL, creds)
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
	return db.tx(ctx, func(tx *Tx) error {
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
			`DELETE FROM webhook_payloads WHERE app = ?`,
			`DELETE FROM service_events WHERE app = ?`,
			`DELETE FROM deployments WHERE app = ?`,
			`DELETE FROM secrets WHERE app = ?`,
			// Kept, retired, until the tasks it ran there are gone.
			`UPDATE env_runtimes SET retired = 1 WHERE app = ?`,
		} {
			if _, err := tx.ExecContext(ctx, q, name); err != nil {
				return err
			}
		}
		return nil
	})
}

// SetAppSource sets where webhook pushes are fetched from, replacing the
// credentials too. src.Credentials and sealedSecret are already encrypted;
// keepSecret leaves the stored webhook secret untouched.
func (db *DB) SetAppSource(ctx context.Context, name string, src AppSource, sealedSecret []byte, keepSecret bool) (App, error) {
	if keepSecret {
		return db.updateApp(ctx, name, `UPDATE apps SET source_url = ?, source_credentials = ? WHERE name = ?`, src.URL, nilIfEmpty(src.Credentials), name)
	}
	return db.updateApp(ctx, name, `UPDATE apps SET source_url = ?, source_credentials = ?, webhook_secret = ? WHERE name = ?`, src.URL, nilIfEmpty(src.Credentials), sealedSecret, name)
}

// updateApp runs one UPDATE of app name's row and returns the app as it
// is now; an app that is not there is ErrNotFound.
func (db *DB) updateApp(ctx context.Context, name, query string, args ...any) (App, error) {
	err := db.tx(ctx, func(tx *Tx) error {
		res, err := tx.ExecContext(ctx, query, args...)
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

func nilIfEmpty(b []byte) any {
	if len(b) == 0 {
		return nil
	}
	return b
}

// GetAppSource returns the app's source as stored, for fetching: the only
// read of the sealed credentials.
func (db *DB) GetAppSource(ctx context.Context, name string) (AppSource, error) {
	var src AppSource
	err := db.read.QueryRowContext(ctx, `SELECT source_url, source_credentials FROM apps WHERE name = ?`, name).Scan(&src.URL, &src.Credentials)
	if errors.Is(err, sql.ErrNoRows) {
		return src, fmt.Errorf("app %q: %w", name, ErrNotFound)
	}
	return src, err
}

// UnsealedSourceURLs returns, by app, the stored source URLs that may hold
// credentials in the clear: rows written before credentials were sealed
// apart.
func (db *DB) UnsealedSourceURLs(ctx context.Context) (map[string]string, error) {
	rows, err := db.read.QueryContext(ctx, `SELECT name, source_url FROM apps WHERE source_credentials IS NULL AND source_url LIKE '%@%'`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var name, u string
		if err := rows.Scan(&name, &u); err != nil {
			return nil, err
		}
		out[name] = u
	}
	return out, rows.Err()
}

// UpgradeAppSource replaces an app's source only while it is still oldURL
// without sealed credentials, so a set-source in between wins. It reports
// whether the row was replaced.
func (db *DB) UpgradeAppSource(ctx context.Context, name, oldURL string, src AppSource) (bool, error) {
	var n int64
	err := db.tx(ctx, func(tx *Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE apps SET source_url = ?, source_credentials = ? WHERE name = ? AND source_url = ? AND source_credentials IS NULL`,
			src.URL, nilIfEmpty(src.Credentials), name, oldURL)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	return n > 0, err
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
	return db.updateApp(ctx, name, `UPDATE apps SET build_executor = ?, build_docker = ? WHERE name = ?`, b.Executor, b.DockerAccess, name)
}
