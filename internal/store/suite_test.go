package store

import (
	"context"
	"os"
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
