package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// Dialect names the SQL engine behind a DB.
type Dialect string

const (
	// SQLite is the embedded default: one file in the data directory.
	SQLite Dialect = "sqlite"
	// Postgres is the scale-out store several servers share.
	Postgres Dialect = "postgres"
)

// pool is a database/sql pool whose queries are written once, with `?`
// placeholders, and rewritten to the engine's form ($1, $2… on
// PostgreSQL) on their way out. The store's SQL is otherwise written in
// the subset both engines share; the few places that differ ask
// DB.dialectSQL for their engine's text.
type pool struct {
	db      *sql.DB
	dialect Dialect
	rebound sync.Map // query → its PostgreSQL text, built once
}

func (p *pool) q(query string) string {
	if p.dialect != Postgres {
		return query
	}
	if v, ok := p.rebound.Load(query); ok {
		return v.(string)
	}
	out := rebind(query)
	p.rebound.Store(query, out)
	return out
}

// rebind numbers the `?` placeholders outside string literals (standard
// and E'…' with backslash escapes) and comments.
func rebind(query string) string {
	var b strings.Builder
	b.Grow(len(query) + 8)
	n := 0
	for i := 0; i < len(query); i++ {
		c := query[i]
		switch {
		case c == '\'':
			// Copy the literal whole; '' inside it is a quote, and in an
			// E'' string so is \'.
			escapes := i > 0 && (query[i-1] == 'E' || query[i-1] == 'e')
			j := i + 1
			for ; j < len(query); j++ {
				if escapes && query[j] == '\\' {
					j++
					continue
				}
				if query[j] == '\'' {
					break
				}
			}
			end := min(j+1, len(query))
			b.WriteString(query[i:end])
			i = end - 1
			continue
		case c == '-' && strings.HasPrefix(query[i:], "--"):
			end := strings.IndexByte(query[i:], '\n')
			if end < 0 {
				end = len(query) - i
			}
			b.WriteString(query[i : i+end])
			i += end - 1
			continue
		case c == '/' && strings.HasPrefix(query[i:], "/*"):
			end := strings.Index(query[i+2:], "*/")
			if end < 0 {
				end = len(query) - i
			} else {
				end += 4
			}
			b.WriteString(query[i : i+end])
			i += end - 1
			continue
		case c == '?':
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

func (p *pool) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	return p.db.ExecContext(ctx, p.q(query), args...)
}

func (p *pool) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	return p.db.QueryContext(ctx, p.q(query), args...)
}

func (p *pool) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	return p.db.QueryRowContext(ctx, p.q(query), args...)
}

func (p *pool) PrepareContext(ctx context.Context, query string) (*sql.Stmt, error) {
	return p.db.PrepareContext(ctx, p.q(query))
}

func (p *pool) Close() error { return p.db.Close() }

// Tx is one write transaction, with the pool's placeholder rewriting.
type Tx struct {
	tx *sql.Tx
	p  *pool
}

func (t *Tx) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	return t.tx.ExecContext(ctx, t.p.q(query), args...)
}

func (t *Tx) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	return t.tx.QueryContext(ctx, t.p.q(query), args...)
}

func (t *Tx) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	return t.tx.QueryRowContext(ctx, t.p.q(query), args...)
}

func (t *Tx) PrepareContext(ctx context.Context, query string) (*sql.Stmt, error) {
	return t.tx.PrepareContext(ctx, t.p.q(query))
}

// dialectSQL picks the text of a statement that differs between engines.
func (db *DB) dialectSQL(sqliteText, postgresText string) string {
	if db.dialect == Postgres {
		return postgresText
	}
	return sqliteText
}

// Dialect reports the engine behind db.
func (db *DB) Dialect() Dialect { return db.dialect }

// isUniqueViolation tells a unique or primary key refusal by the driver's
// error code.
func isUniqueViolation(err error) bool {
	if err == nil {
		return false
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		code := se.Code()
		return code == sqlite3.SQLITE_CONSTRAINT_UNIQUE || code == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY
	}
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23505" // unique_violation
}

// isRetryable is a PostgreSQL transaction the engine aborted so that
// concurrent ones stay serializable; running it again is the cure.
func isRetryable(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "40001" || pe.Code == "40P01") // serialization_failure, deadlock_detected
}

// maxTxAttempts bounds the retries of a transaction PostgreSQL aborted for
// a conflict; each waits a little longer, with jitter so the same rivals do
// not meet again.
const maxTxAttempts = 12

// tx runs fn in one write transaction; any error rolls everything back.
//
// SQLite has one writer, so a transaction sees nothing change under it.
// PostgreSQL transactions run SERIALIZABLE to keep that promise with many
// writers (check-then-insert, such as one deployment per service, holds
// without a lock per case), and one the engine aborts for a conflict runs
// again: fn must only touch the database and variables it sets afresh.
func (db *DB) tx(ctx context.Context, fn func(*Tx) error) error {
	opts := (*sql.TxOptions)(nil)
	if db.dialect == Postgres {
		opts = &sql.TxOptions{Isolation: sql.LevelSerializable}
	}
	for attempt := 1; ; attempt++ {
		err := db.tx1(ctx, opts, fn)
		if err == nil || !isRetryable(err) || attempt == maxTxAttempts {
			return err
		}
		wait := time.Duration(attempt) * time.Millisecond * time.Duration(1+rand.IntN(4))
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
	}
}

func (db *DB) tx1(ctx context.Context, opts *sql.TxOptions, fn func(*Tx) error) error {
	stx, err := db.write.db.BeginTx(ctx, opts)
	if err != nil {
		return fmt.Errorf("begin transaction: %w", err)
	}
	if err := fn(&Tx{tx: stx, p: db.write}); err != nil {
		_ = stx.Rollback()
		return err
	}
	if err := stx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// insertRows inserts rows into table in multi-row statements of up to
// rowsPerInsert rows: one round trip per chunk instead of one per row,
// which is what keeps a 100 000-line build log cheap on PostgreSQL.
func insertRows(ctx context.Context, tx *Tx, table string, cols []string, rows [][]any) error {
	for len(rows) > 0 {
		n := min(len(rows), rowsPerInsert)
		var b strings.Builder
		b.WriteString("INSERT INTO " + table + "(" + strings.Join(cols, ", ") + ") VALUES ")
		place := "(" + strings.TrimSuffix(strings.Repeat("?, ", len(cols)), ", ") + ")"
		args := make([]any, 0, n*len(cols))
		for i, r := range rows[:n] {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(place)
			args = append(args, r...)
		}
		if _, err := tx.ExecContext(ctx, b.String(), args...); err != nil {
			return err
		}
		rows = rows[n:]
	}
	return nil
}

// rowsPerInsert keeps a statement's parameters well inside both engines'
// limits (SQLite 32766, PostgreSQL 65535) for tables of up to 10 columns,
// and the statement texts few, since each distinct one is rebound once.
const rowsPerInsert = 500
