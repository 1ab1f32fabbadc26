package main

import (
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/slipway-dev/slipway/internal/testtool/pgserver"
)

// pgSettings is what the JSON lines say about the bench's PostgreSQL
// server (see pgserver): the benchmarks that compare the server on SQLite
// with the server on PostgreSQL use it.
const pgSettings = "PostgreSQL started by the bench: Unix socket, fsync=off, synchronous_commit=off, full_page_writes=off"

var pg struct {
	sync.Mutex
	srv *pgserver.Server
	err error
	seq int
}

// postgresDatabase creates a fresh database on the bench's PostgreSQL
// server, starting the server on first use, and returns its URL.
func postgresDatabase(name string) (string, error) {
	pg.Lock()
	defer pg.Unlock()
	if pg.srv == nil && pg.err == nil {
		begin := time.Now()
		pg.srv, pg.err = pgserver.Start()
		if pg.err == nil {
			fmt.Fprintf(os.Stderr, "bench: PostgreSQL from %s started in %v\n", pg.srv.Bin, time.Since(begin).Round(time.Millisecond))
		}
	}
	if pg.err != nil {
		return "", pg.err
	}
	pg.seq++
	db := fmt.Sprintf("bench_%d_%s", pg.seq, strings.NewReplacer("-", "_").Replace(name))
	if err := pg.srv.CreateDatabase(db); err != nil {
		return "", err
	}
	return pg.srv.DSN(db), nil
}

// stopPostgres stops the bench's PostgreSQL server, if it started one,
// and removes its files.
func stopPostgres() {
	pg.Lock()
	defer pg.Unlock()
	if pg.srv != nil {
		if err := pg.srv.Close(); err != nil {
			fmt.Fprintln(os.Stderr, "bench: stop PostgreSQL:", err)
		}
		pg.srv = nil
	}
}
