// Package pgtest runs a real PostgreSQL server for tests, so that code
// written for PostgreSQL is tested against PostgreSQL: its SQL dialect,
// its locking, its errors and its behaviour when the server goes away,
// none of which a mock or another database reproduces. It is a
// testing.TB wrapper over pgserver, which says where the server comes
// from and how it runs.
//
// One server is started per test binary, on first use; New gives each
// test a fresh database of its own on it. A test skips, saying so, where
// PostgreSQL is not installed (`apt-get install postgresql`).
//
// A package that uses pgtest must run its tests through RunMain, which
// stops the server and removes its files when they end:
//
//	func TestMain(m *testing.M) { os.Exit(pgtest.RunMain(m)) }
//
// If the test binary dies first, the kernel kills the server.
package pgtest

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/slipway-dev/slipway/internal/testtool"
	"github.com/slipway-dev/slipway/internal/testtool/pgserver"
)

// User is the superuser the server is initialised with; it connects with
// no password.
const User = pgserver.User

// PG is the test binary's PostgreSQL server.
type PG struct {
	// Dir is the data directory.
	Dir string
	// Socket is the directory that holds the server's Unix socket.
	Socket string
	// Port is the port in the socket's name; clients need it with Socket.
	Port int

	srv *pgserver.Server
}

var shared struct {
	mu      sync.Mutex
	inMain  bool   // RunMain is running the tests
	started bool   // the first start was tried
	skip    string // why every test that needs the server skips
	err     error  // why the first start failed
	pg      *PG
}

var dbSeq atomic.Int64

// RunMain runs the tests, then stops the server if one was started and
// removes its files. Call it from TestMain: os.Exit(pgtest.RunMain(m)).
func RunMain(m testtool.Runner) int {
	shared.mu.Lock()
	shared.inMain = true
	shared.mu.Unlock()
	code := m.Run()
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if pg := shared.pg; pg != nil {
		if err := pg.srv.Close(); err != nil {
			fmt.Fprintf(os.Stderr, "pgtest: %v\n", err)
			if code == 0 {
				code = 1
			}
		}
		shared.pg = nil
	}
	return code
}

// Server returns the running server, starting it on first use. It skips
// the test if PostgreSQL is not installed and fails it if the server
// cannot start. A test that stops the server finds it started again at
// its end, for the tests after it; such a test must not run in parallel
// with others that use the server.
func Server(t testing.TB) *PG {
	t.Helper()
	pg := server(t)
	t.Cleanup(func() {
		if err := pg.srv.Start(); err != nil {
			t.Errorf("pgtest: start the server again after the test: %v", err)
		}
	})
	return pg
}

// New creates an empty database for this test and returns its DSN, a URL
// that pgx and lib/pq accept:
//
//	postgres://slipway@/NAME?host=SOCKETDIR&port=PORT&sslmode=disable
//
// The database is dropped when the test ends, its open connections
// closed by force. New skips the test if PostgreSQL is not installed.
func New(t testing.TB) string {
	t.Helper()
	pg := server(t)
	name := dbName(t.Name())
	if err := pg.srv.CreateDatabase(name); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	t.Cleanup(func() {
		err := pg.srv.Start()
		if err == nil {
			err = pg.srv.DropDatabase(name)
		}
		if err != nil {
			t.Errorf("pgtest: %v", err)
		}
	})
	return pg.DSN(name)
}

// DSN is the URL of database dbname on this server.
func (pg *PG) DSN(dbname string) string { return pg.srv.DSN(dbname) }

// Stop shuts the server down (a fast shutdown: open connections are
// closed and their transactions rolled back) and waits for it to exit,
// to see how clients fare when PostgreSQL goes away. The data stays for
// Start. Stopping a stopped server does nothing.
func (pg *PG) Stop(t testing.TB) {
	t.Helper()
	if err := pg.srv.Stop(); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
}

// Start starts a stopped server again on the same data, socket and port,
// and waits until it accepts connections. Starting a running server does
// nothing.
func (pg *PG) Start(t testing.TB) {
	t.Helper()
	if err := pg.srv.Start(); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
}

// server returns the shared server, starting it on the first call.
func server(t testing.TB) *PG {
	t.Helper()
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if !shared.inMain {
		t.Fatal("pgtest: the package's TestMain must run its tests with pgtest.RunMain, which stops the server")
	}
	if !shared.started {
		shared.started = true
		begin := time.Now()
		srv, err := pgserver.Start()
		switch {
		case errors.Is(err, pgserver.ErrUnavailable):
			shared.skip = "pgtest: " + err.Error()
		case err != nil:
			shared.err = err
		default:
			shared.pg = &PG{Dir: srv.Dir, Socket: srv.Socket, Port: srv.Port, srv: srv}
			t.Logf("pgtest: PostgreSQL from %s started in %v", srv.Bin, time.Since(begin).Round(time.Millisecond))
		}
	}
	if shared.skip != "" {
		t.Skip(shared.skip)
	}
	if shared.err != nil {
		t.Fatalf("pgtest: %v", shared.err)
	}
	return shared.pg
}

// dbName is a unique database name that says which test it belongs to.
func dbName(test string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(test) {
		if 'a' <= r && r <= 'z' || '0' <= r && r <= '9' {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	name := b.String()
	if len(name) > 45 {
		name = name[:45]
	}
	return fmt.Sprintf("t%d_%s", dbSeq.Add(1), name) // at most 63 bytes
}
