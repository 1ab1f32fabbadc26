// Package store keeps Slipway's state: in one SQLite file by default, or in
// a PostgreSQL database that several servers share. One implementation
// serves both engines (see dialect.go); each entity has a small interface
// where it is consumed.
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"time"

	_ "modernc.org/sqlite" // pure-Go driver: the binary stays CGO_ENABLED=0
)

// ErrNotFound is returned when the requested row does not exist.
var ErrNotFound = errors.New("not found")

// ErrConflict is a request the current state refuses (HTTP 409): a run
// that is not waiting, a deployment still in progress, a name taken.
var ErrConflict = errors.New("conflict")

// ErrExists is the conflict of a unique key already taken.
var ErrExists error = &conflict{msg: "already exists"}

// Conflictf is an ErrConflict whose message is the formatted sentence
// alone, without the sentinel's word after it.
func Conflictf(format string, args ...any) error {
	return &conflict{msg: fmt.Sprintf(format, args...)}
}

type conflict struct{ msg string }

func (c *conflict) Error() string        { return c.msg }
func (c *conflict) Is(target error) bool { return target == ErrConflict }

// DB is the SQLite-backed store. Writes go through a single connection so
// concurrent writers queue in Go instead of failing with SQLITE_BUSY; reads
// use a separate pool and see WAL snapshots.
type DB struct {
	write   *pool
	read    *pool
	control *pool // leases and heartbeats (PostgreSQL: their own connections)
	dialect Dialect
	// Path is the SQLite file, or the PostgreSQL URL without its password.
	Path string
	dsn  string // PostgreSQL: the URL, for Listen's own connections

	logMu   sync.Mutex
	logBell chan struct{} // closed, and replaced, when log lines are committed

	// stmts holds read statements prepared once: the reconciler lists the
	// services several times a second, and SQLite parsing the query each
	// time cost more than running it.
	stmtMu sync.Mutex
	stmts  map[string]*sql.Stmt
}

// readStmt returns the read statement of query, prepared on first use.
func (db *DB) readStmt(ctx context.Context, query string) (*sql.Stmt, error) {
	db.stmtMu.Lock()
	defer db.stmtMu.Unlock()
	if st, ok := db.stmts[query]; ok {
		return st, nil
	}
	st, err := db.read.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	if db.stmts == nil {
		db.stmts = map[string]*sql.Stmt{}
	}
	db.stmts[query] = st
	return st, nil
}

// Open opens (creating if needed) the database file in dir and applies migrations.
func Open(ctx context.Context, dir string) (*DB, error) {
	path := filepath.Join(dir, "slipway.db")
	if err := ownerOnly(path); err != nil {
		return nil, err
	}
	// SQLite decodes %XX in a file: URI, so the path is escaped.
	dsn := "file:" + (&url.URL{Path: path}).EscapedPath() + "?_pragma=journal_mode(WAL)&_pragma=busy_timeout(10000)&_pragma=foreign_keys(1)&_pragma=synchronous(NORMAL)&_txlock=immediate"
	w, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	r, err := sql.Open("sqlite", dsn)
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	r.SetMaxOpenConns(8)
	db := &DB{
		write:   &pool{db: w, dialect: SQLite},
		read:    &pool{db: r, dialect: SQLite},
		dialect: SQLite,
		Path:    path,
		logBell: make(chan struct{}),
	}
	db.control = db.write // SQLite has one writer, whatever the write is
	if err := db.migrate(ctx); err != nil {
		db.Close()
		return nil, err
	}
	// Migrations have written, so SQLite has its WAL and SHM files now.
	// By path only: opening and closing a file SQLite has open would drop
	// the process's POSIX locks on it (every one, on Linux), and another
	// process opening the database would then take the server for gone
	// and delete the WAL under it.
	if err := chmodOwnerOnly(path); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

// dbFiles are the database and the files SQLite keeps beside it in WAL mode.
var dbFiles = []string{"", "-wal", "-shm"}

// ownerOnly makes the database files mode 0600: they hold token hashes and
// sealed secrets. SQLite creates them 0644 less the umask, so each is
// created here first (an empty file is what SQLite expects of a new one),
// and chmod puts right a file an older version or another tool created.
// SQLite gives a WAL or SHM file it creates later the database file's mode.
func ownerOnly(path string) error {
	for _, suffix := range dbFiles {
		name := path + suffix
		f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			return fmt.Errorf("create %s: %w", name, err)
		}
		err = f.Chmod(0o600)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("make %s readable by its owner only (mode 0600): %w", name, err)
		}
	}
	return nil
}

// chmodOwnerOnly is ownerOnly for files SQLite may have open: it never
// opens them.
func chmodOwnerOnly(path string) error {
	for _, suffix := range dbFiles {
		if err := os.Chmod(path+suffix, 0o600); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("make %s readable by its owner only (mode 0600): %w", path+suffix, err)
		}
	}
	return nil
}

// Close releases both pools.
func (db *DB) Close() error {
	db.stmtMu.Lock()
	var errs []error
	for _, st := range db.stmts {
		errs = append(errs, st.Close())
	}
	db.stmts = nil
	db.stmtMu.Unlock()
	errs = append(errs, db.write.Close())
	if db.read != db.write {
		errs = append(errs, db.read.Close())
	}
	if db.control != nil && db.control != db.write {
		errs = append(errs, db.control.Close())
	}
	return errors.Join(errs...)
}

// Timestamps are stored as Unix microseconds: sortable and exact.
func toDB(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UTC().UnixMicro()
}

func fromDB(v sql.NullInt64) time.Time {
	if !v.Valid {
		return time.Time{}
	}
	return time.UnixMicro(v.Int64).UTC()
}

func now() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }

// Page bounds a list: at most Limit rows with an id below Before (0 = newest).
type Page struct {
	Limit  int
	Before int64
}

func (p Page) normalize() Page {
	if p.Limit <= 0 {
		p.Limit = 50
	}
	if p.Limit > 500 {
		p.Limit = 500
	}
	if p.Before <= 0 {
		p.Before = 1<<63 - 1
	}
	return p
}

// scanner is a *sql.Row or *sql.Rows.
type scanner interface{ Scan(...any) error }

// collect scans every row with scan and closes rows; an empty result is an
// empty slice, so lists encode as [] rather than null.
func collect[T any](rows *sql.Rows, scan func(scanner) (T, error)) ([]T, error) {
	defer rows.Close()
	out := []T{}
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}
