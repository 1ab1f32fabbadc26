package store

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"sync"
	"testing"

	"github.com/slipway-dev/slipway/internal/testtool/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.RunMain(m)) }

// The store's tests are its conformance suite: every test that goes
// through eachStore runs against SQLite and against a real PostgreSQL
// (pgtest starts one from Debian's packages; without them, those subtests
// skip and say so).

// testStore is one fresh database of one engine. open connects to it,
// again after a Close for tests of a restart, and closes at the end.
type testStore struct {
	dialect Dialect
	dir     string // SQLite: the data directory
	dsn     string // PostgreSQL: the database's URL
}

func (s testStore) open(t testing.TB) *DB {
	t.Helper()
	db, err := OpenDatabase(context.Background(), s.dir, s.dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// reopen opens the database again, as a restarted server would.
func (s testStore) reopen(ctx context.Context) (*DB, error) {
	return OpenDatabase(ctx, s.dir, s.dsn)
}

// fresh is another new database of the same engine, for each case of a
// table-driven test.
func (s testStore) fresh(t testing.TB) testStore {
	if s.dialect == Postgres {
		return testStore{dialect: Postgres, dsn: pgtest.New(t)}
	}
	return testStore{dialect: SQLite, dir: t.TempDir()}
}

// eachStore runs fn once per engine, as subtests named by the engine.
func eachStore(t *testing.T, fn func(t *testing.T, s testStore)) {
	t.Run(string(SQLite), func(t *testing.T) {
		fn(t, testStore{dialect: SQLite, dir: t.TempDir()})
	})
	t.Run(string(Postgres), func(t *testing.T) {
		fn(t, testStore{dialect: Postgres, dsn: pgtest.New(t)})
	})
}

// racers is how many goroutines a concurrency test sets on one row: more
// than one round of PostgreSQL's serialization retries, fewer than its
// pool's connections.
const racers = 8

// race runs fn(0) … fn(racers-1) on db in goroutines released at once and
// returns their errors by index.
func race(t *testing.T, db *DB, fn func(i int) error) []error {
	t.Helper()
	warm(t, db)
	errs := make([]error, racers)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range racers {
		wg.Go(func() {
			<-start
			errs[i] = fn(i)
		})
	}
	close(start)
	wg.Wait()
	return errs
}

// warm opens the pool's connections before a race, so that the racers
// meet inside the database rather than queue for connections.
func warm(t *testing.T, db *DB) {
	t.Helper()
	if db.dialect != Postgres {
		return // SQLite has one writer connection: its racers queue in Go
	}
	ctx := context.Background()
	var conns []*sql.Conn
	for range racers {
		conn, err := db.write.db.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, conn)
	}
	for _, conn := range conns {
		conn.Close()
	}
}

// oneWinner fails unless exactly one error is nil and every other is want
// (and none is any of butNot); it returns the winner's index.
func oneWinner(t *testing.T, errs []error, want error, butNot ...error) int {
	t.Helper()
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil && winner >= 0:
			t.Fatalf("racers %d and %d both won", winner, i)
		case err == nil:
			winner = i
		case !errors.Is(err, want):
			t.Fatalf("racer %d: %v, want %v", i, err, want)
		}
		for _, no := range butNot {
			if errors.Is(err, no) {
				t.Fatalf("racer %d: %v, want %v but not %v", i, err, want, no)
			}
		}
	}
	if winner < 0 {
		t.Fatalf("no racer won: %v", errs)
	}
	return winner
}
