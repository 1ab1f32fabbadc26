package store

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"

	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/database"
	"github.com/pressly/goose/v3/lock"
)

// Migrations live in one directory per dialect, applied by goose in
// version order, each in its own transaction, so a failing one leaves the
// database at the version before it. Never edit a released file: add the
// next version to every dialect's directory. PostgreSQL starts at version
// 18, the SQLite schema of that version in one file.
//
//go:embed migrate/sqlite/*.sql migrate/postgres/*.sql
var migrationFiles embed.FS

// migrateTo stops migrations at a version, for tests of an upgrade from
// an older schema; 0 applies them all.
var migrateTo int64

func (db *DB) migrations() (fs.FS, error) {
	return migrationSource(db.dialect)
}

// migrationSource is a dialect's migrations; tests add a failing one.
var migrationSource = func(d Dialect) (fs.FS, error) {
	return fs.Sub(migrationFiles, "migrate/"+string(d))
}

func (db *DB) migrate(ctx context.Context) error {
	files, err := db.migrations()
	if err != nil {
		return err
	}
	opts := []goose.ProviderOption{
		goose.WithStore(versionTable{dialect: db.dialect}),
		goose.WithDisableGlobalRegistry(true),
		goose.WithLogger(goose.NopLogger()),
	}
	if db.dialect == Postgres {
		// Servers starting together take turns; the lock is a session
		// advisory lock, released if the server dies.
		locker, err := lock.NewPostgresSessionLocker()
		if err != nil {
			return err
		}
		opts = append(opts, goose.WithSessionLocker(locker))
	}
	p, err := goose.NewProvider(goose.DialectCustom, db.write.db, files, opts...)
	if err != nil {
		return fmt.Errorf("load migrations: %w", err)
	}
	sources := p.ListSources()
	target := sources[len(sources)-1].Version
	if db.dialect == Postgres {
		// A new database: check the role may create tables before goose
		// tries (and retries) to make its own.
		if exists, err := (versionTable{dialect: db.dialect}).TableExists(ctx, db.write.db); err == nil && !exists {
			if err := db.mayMigrate(ctx); err != nil {
				return err
			}
		}
	}
	current, _, err := p.GetVersions(ctx)
	if err != nil {
		// A new database has no version table yet; Up creates it (and
		// reports any other failure itself).
		current = 0
	}
	if current > target {
		return fmt.Errorf("database schema version %d is newer than this binary knows (%d): upgrade slipway", current, target)
	}
	if db.dialect == Postgres && current < target {
		if err := db.mayMigrate(ctx); err != nil {
			return err
		}
	}
	up := p.Up
	if migrateTo > 0 {
		up = func(ctx context.Context) ([]*goose.MigrationResult, error) { return p.UpTo(ctx, migrateTo) }
	}
	if _, err := up(ctx); err != nil {
		var pe *goose.PartialError
		if errors.As(err, &pe) && pe.Failed != nil && pe.Failed.Source != nil {
			return fmt.Errorf("apply migration %d (the database stays at the version before it): %w", pe.Failed.Source.Version, pe.Err)
		}
		return fmt.Errorf("apply migrations: %w", err)
	}
	return nil
}

// SchemaVersion reports the highest applied migration.
func (db *DB) SchemaVersion(ctx context.Context) (int, error) {
	var v int
	err := db.read.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&v)
	return v, err
}

// versionTable is goose's record of applied migrations, kept in the
// schema_migrations table Slipway has always used, so databases made
// before goose was adopted carry on from their version.
type versionTable struct{ dialect Dialect }

var _ database.Store = versionTable{}

func (v versionTable) q(query string) string {
	if v.dialect == Postgres {
		return rebind(query)
	}
	return query
}

func (versionTable) Tablename() string { return "schema_migrations" }

func (v versionTable) TableExists(ctx context.Context, db database.DBTxConn) (bool, error) {
	query := `SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'`
	if v.dialect == Postgres {
		query = `SELECT count(*) FROM pg_catalog.pg_tables WHERE schemaname = current_schema() AND tablename = 'schema_migrations'`
	}
	var n int
	err := db.QueryRowContext(ctx, query).Scan(&n)
	return n > 0, err
}

func (v versionTable) CreateVersionTable(ctx context.Context, db database.DBTxConn) error {
	_, err := db.ExecContext(ctx, `CREATE TABLE schema_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)`)
	return err
}

func (v versionTable) Insert(ctx context.Context, db database.DBTxConn, req database.InsertRequest) error {
	_, err := db.ExecContext(ctx, v.q(`INSERT INTO schema_migrations(version, applied_at) VALUES (?, ?)`), req.Version, toDB(now()))
	return err
}

func (v versionTable) Delete(ctx context.Context, db database.DBTxConn, version int64) error {
	_, err := db.ExecContext(ctx, v.q(`DELETE FROM schema_migrations WHERE version = ?`), version)
	return err
}

func (v versionTable) GetMigration(ctx context.Context, db database.DBTxConn, version int64) (*database.GetMigrationResult, error) {
	var at sql.NullInt64
	err := db.QueryRowContext(ctx, v.q(`SELECT applied_at FROM schema_migrations WHERE version = ?`), version).Scan(&at)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, database.ErrVersionNotFound
	}
	if err != nil {
		return nil, err
	}
	return &database.GetMigrationResult{Timestamp: fromDB(at), IsApplied: true}, nil
}

func (v versionTable) GetLatestVersion(ctx context.Context, db database.DBTxConn) (int64, error) {
	var max sql.NullInt64
	if err := db.QueryRowContext(ctx, `SELECT MAX(version) FROM schema_migrations`).Scan(&max); err != nil {
		return -1, err
	}
	if !max.Valid {
		return -1, database.ErrVersionNotFound
	}
	return max.Int64, nil
}

func (v versionTable) ListMigrations(ctx context.Context, db database.DBTxConn) ([]*database.ListMigrationsResult, error) {
	rows, err := db.QueryContext(ctx, `SELECT version FROM schema_migrations ORDER BY version DESC`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*database.ListMigrationsResult
	for rows.Next() {
		r := &database.ListMigrationsResult{IsApplied: true}
		if err := rows.Scan(&r.Version); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// mayMigrate refuses, with the fix, a PostgreSQL role that cannot create
// tables where migrations would: PostgreSQL 15 gives new roles no CREATE on
// the public schema, and goose then reports only a missing table.
func (db *DB) mayMigrate(ctx context.Context) error {
	var role, dbname, schema string
	var may bool
	err := db.write.QueryRowContext(ctx, `SELECT current_user, current_database(), COALESCE(current_schema(), ''),
		COALESCE(has_schema_privilege(current_schema(), 'CREATE'), false)`).Scan(&role, &dbname, &schema, &may)
	switch {
	case err != nil:
		return fmt.Errorf("check the database role's rights: %w", err)
	case schema == "":
		return fmt.Errorf("role %s has no schema to create its tables in (its search_path names none that exists): create one it owns, or set search_path", role)
	case !may:
		return fmt.Errorf("role %s may not create tables in schema %s of database %s, which the migrations need: make the role the database's owner (ALTER DATABASE %s OWNER TO %s, then ALTER SCHEMA %s OWNER TO %s), or GRANT CREATE ON SCHEMA %s TO %s",
			role, schema, dbname, dbname, role, schema, role, schema, role)
	}
	return nil
}
