package pgtest_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/slipway-dev/slipway/internal/testtool/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.RunMain(m)) }

func connect(t *testing.T, dsn string) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("connect %s: %v", dsn, err)
	}
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	return conn
}

func exec(t *testing.T, conn *pgx.Conn, sql string, args ...any) {
	t.Helper()
	if _, err := conn.Exec(context.Background(), sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// Each New is a database of its own: a table made in one is not in another.
func TestNewIsolates(t *testing.T) {
	ctx := context.Background()
	a, b := connect(t, pgtest.New(t)), connect(t, pgtest.New(t))
	exec(t, a, "CREATE TABLE apps (name text PRIMARY KEY)")
	exec(t, a, "INSERT INTO apps VALUES ($1)", "web")

	var n int
	if err := a.QueryRow(ctx, "SELECT count(*) FROM apps").Scan(&n); err != nil || n != 1 {
		t.Fatalf("first database: %d rows, %v; want 1", n, err)
	}
	err := b.QueryRow(ctx, "SELECT count(*) FROM apps").Scan(&n)
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "42P01" { // undefined_table
		t.Fatalf("second database sees the first's table: %v", err)
	}
	var da, db string
	_ = a.QueryRow(ctx, "SELECT current_database()").Scan(&da)
	_ = b.QueryRow(ctx, "SELECT current_database()").Scan(&db)
	if da == db {
		t.Fatalf("both DSNs name database %q", da)
	}
}

// Parallel tests each get a database, and it is dropped when they end.
func TestNewParallelAndDropped(t *testing.T) {
	names := make(chan string, 4)
	t.Run("group", func(t *testing.T) {
		for i := range 4 {
			t.Run(fmt.Sprint(i), func(t *testing.T) {
				t.Parallel()
				conn := connect(t, pgtest.New(t))
				exec(t, conn, "CREATE TABLE t (v int)")
				var name string
				if err := conn.QueryRow(context.Background(), "SELECT current_database()").Scan(&name); err != nil {
					t.Fatal(err)
				}
				names <- name
			})
		}
	})
	close(names)

	admin := connect(t, pgtest.Server(t).DSN("postgres"))
	for name := range names {
		var n int
		err := admin.QueryRow(context.Background(), "SELECT count(*) FROM pg_database WHERE datname = $1", name).Scan(&n)
		if err != nil || n != 0 {
			t.Errorf("database %s after its test: %d, %v; want dropped", name, n, err)
		}
	}
}

// Stop and Start keep the data; while stopped, connections fail.
func TestStopStart(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.New(t)
	conn := connect(t, dsn)
	exec(t, conn, "CREATE TABLE apps (name text)")
	exec(t, conn, "INSERT INTO apps VALUES ('web')")

	pg := pgtest.Server(t)
	begin := time.Now()
	pg.Stop(t)
	t.Logf("stop took %v", time.Since(begin).Round(time.Millisecond))

	if err := conn.Ping(ctx); err == nil {
		t.Fatal("an open connection still works after Stop")
	}
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if c, err := pgx.Connect(cctx, dsn); err == nil {
		_ = c.Close(ctx)
		t.Fatal("connected to a stopped server")
	}

	begin = time.Now()
	pg.Start(t)
	t.Logf("start took %v", time.Since(begin).Round(time.Millisecond))
	var name string
	if err := connect(t, dsn).QueryRow(ctx, "SELECT name FROM apps").Scan(&name); err != nil || name != "web" {
		t.Fatalf("after restart: %q, %v; want web", name, err)
	}
}

// A test that leaves the server stopped finds it started for the next.
func TestLeftStopped(t *testing.T) {
	t.Run("stops", func(t *testing.T) { pgtest.Server(t).Stop(t) })
	connect(t, pgtest.New(t))
}
