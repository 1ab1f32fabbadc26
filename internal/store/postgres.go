package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"net"
	"net/url"
	"reflect"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
)

// OpenDatabase opens the store a server is configured with: the PostgreSQL
// database at databaseURL, or, when it is empty, the SQLite file in dir.
func OpenDatabase(ctx context.Context, dir, databaseURL string) (*DB, error) {
	if databaseURL == "" {
		return Open(ctx, dir)
	}
	return OpenPostgres(ctx, databaseURL)
}

// postgresPoolSize bounds one server's connections: enough for the API,
// the runners and the loops at once, and few enough that several servers
// stay inside PostgreSQL's default limit of 100.
const postgresPoolSize = 16

// OpenPostgres connects to the PostgreSQL database at databaseURL
// (postgres://user:password@host:port/db?sslmode=…, or host=/socket/dir
// for a Unix socket) and applies migrations. Errors name the URL without
// its password.
func OpenPostgres(ctx context.Context, databaseURL string) (*DB, error) {
	shown, err := RedactURL(databaseURL)
	if err != nil {
		return nil, err
	}
	cfg, err := pgx.ParseConfig(databaseURL)
	if err != nil {
		return nil, fmt.Errorf("database %s: %w", shown, err)
	}
	sdb := stdlib.OpenDB(*cfg)
	sdb.SetMaxOpenConns(postgresPoolSize)
	sdb.SetMaxIdleConns(postgresPoolSize)
	sdb.SetConnMaxIdleTime(5 * time.Minute)
	pingCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := sdb.PingContext(pingCtx); err != nil {
		sdb.Close()
		return nil, fmt.Errorf("database %s is unreachable: %w", shown, redactErr(err, databaseURL))
	}
	p := &pool{db: sdb, dialect: Postgres}
	// Lease renewals and heartbeats get connections of their own: with the
	// main pool busy, a late renewal would stop the control loops.
	ldb := stdlib.OpenDB(*cfg)
	ldb.SetMaxOpenConns(2)
	db := &DB{write: p, read: p, control: &pool{db: ldb, dialect: Postgres}, dialect: Postgres, Path: shown, dsn: databaseURL, logBell: make(chan struct{})}
	if err := db.migrate(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("database %s: %w", shown, err)
	}
	return db, nil
}

// RedactURL checks that databaseURL is a PostgreSQL URL and returns it
// with any password replaced by xxxxx, for messages and status pages: the
// user's and those pgx takes from the query (password, sslpassword).
func RedactURL(databaseURL string) (string, error) {
	u, err := url.Parse(databaseURL)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return "", errors.New("database: want a URL such as postgres://user:password@host:5432/slipway (or postgres:///slipway?host=/run/postgresql for a Unix socket)")
	}
	q := u.Query()
	for k := range q {
		if strings.Contains(strings.ToLower(k), "password") {
			q.Set(k, "xxxxx")
		}
	}
	u.RawQuery = q.Encode()
	return u.Redacted(), nil
}

// passwords are the secrets databaseURL holds.
func passwords(databaseURL string) []string {
	u, err := url.Parse(databaseURL)
	if err != nil {
		return nil
	}
	var out []string
	if pw, ok := u.User.Password(); ok && pw != "" {
		out = append(out, pw)
	}
	for k, vs := range u.Query() {
		if strings.Contains(strings.ToLower(k), "password") {
			for _, v := range vs {
				if v != "" {
					out = append(out, v)
				}
			}
		}
	}
	return out
}

// redactErr keeps a driver's message from repeating a password.
func redactErr(err error, databaseURL string) error {
	msg := err.Error()
	for _, pw := range passwords(databaseURL) {
		msg = strings.ReplaceAll(msg, pw, "xxxxx")
	}
	if msg == err.Error() {
		return err
	}
	return errors.New(msg)
}

// ErrUnavailable is the database not answering: the server cannot reach
// PostgreSQL, or PostgreSQL is shutting down or starting. A request that
// meets it may succeed later (HTTP 503).
var ErrUnavailable = errors.New("the database is unreachable")

// Unavailable tells whether err is the database not answering rather than
// a refusal of the request.
func Unavailable(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, ErrUnavailable) || errors.Is(err, driver.ErrBadConn) {
		return true
	}
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) {
		return true
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		// Class 08 is connection exceptions; 57P01–57P03 a server shutting
		// down or not yet accepting connections.
		return strings.HasPrefix(pe.Code, "08") || pe.Code == "57P01" || pe.Code == "57P02" || pe.Code == "57P03"
	}
	// A connection that broke mid-query: pgx says so, and database/sql
	// says a closed or dead connection; a network error or timeout from
	// anything else (the Docker engine, a webhook) is not the database's.
	return pgconn.SafeToRetry(err) || errors.Is(err, sql.ErrConnDone) || isPgNetError(err)
}

// isPgNetError is a network error pgx met talking to PostgreSQL: pgx wraps
// those in (unexported) error types of its pgconn package, so the package
// of an error in the chain tells them apart from anyone else's.
func isPgNetError(err error) bool {
	var ne net.Error
	if !errors.As(err, &ne) {
		return false
	}
	for e := err; e != nil; e = errors.Unwrap(e) {
		t := reflect.TypeOf(e)
		if t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		if t.PkgPath() == pgconnPkg {
			return true
		}
	}
	return false
}

var pgconnPkg = reflect.TypeOf(pgconn.PgError{}).PkgPath()

// Signal tells the other servers sharing the database that something on
// channel changed, so one waiting for it acts at once rather than at its
// next poll. On SQLite, with one server, it does nothing.
func (db *DB) Signal(ctx context.Context, channel string) error {
	if db.dialect != Postgres {
		return nil
	}
	_, err := db.write.ExecContext(ctx, `SELECT pg_notify(?, '')`, channel)
	return err
}

// Listen calls fn each time a server signals channel, until ctx ends, on a
// connection of its own that it makes again after a failure. On SQLite it
// returns at once: there is no other server to hear from.
func (db *DB) Listen(ctx context.Context, channel string, fn func()) {
	if db.dialect != Postgres {
		return
	}
	wait := 100 * time.Millisecond
	for ctx.Err() == nil {
		err := db.listenOnce(ctx, channel, fn)
		if ctx.Err() != nil {
			return
		}
		// Signals sent while no connection listened are lost: a caller's
		// own poll catches up, and fn runs once now for the same reason.
		fn()
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		if err != nil {
			wait = min(2*wait, 5*time.Second)
		}
	}
}

func (db *DB) listenOnce(ctx context.Context, channel string, fn func()) error {
	conn, err := pgx.Connect(ctx, db.dsn)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{channel}.Sanitize()); err != nil {
		return err
	}
	for {
		if _, err := conn.WaitForNotification(ctx); err != nil {
			return err
		}
		fn()
	}
}
