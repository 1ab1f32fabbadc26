package pgserver_test

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/slipway-dev/slipway/internal/testtool/pgserver"
)

// A server's databases survive Stop and Start; Close removes its files.
func TestLifecycle(t *testing.T) {
	s, err := pgserver.Start()
	if errors.Is(err, pgserver.ErrUnavailable) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	t.Cleanup(func() {
		if !closed {
			_ = s.Close()
		}
	})
	dsn := s.DSN("app")
	if want := "postgres://slipway@/app?host=" + s.Socket + "&port=5432&sslmode=disable"; dsn != want {
		t.Errorf("DSN %q, want %q", dsn, want)
	}
	if err := s.CreateDatabase("app"); err != nil {
		t.Fatal(err)
	}
	query := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			return err
		}
		defer conn.Close(ctx)
		_, err = conn.Exec(ctx, "CREATE TABLE IF NOT EXISTS t (v int)")
		return err
	}
	if err := query(); err != nil {
		t.Fatal(err)
	}
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	if query() == nil {
		t.Fatal("connected to a stopped server")
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	if err := query(); err != nil {
		t.Fatal("after Start:", err)
	}
	if err := s.DropDatabase("app"); err != nil {
		t.Fatal(err)
	}
	err = s.CreateDatabase("postgres")
	if err == nil || !strings.Contains(err.Error(), "last words") {
		t.Errorf("create an existing database: %v; want an error with the log's tail", err)
	}
	closed = true
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(s.Dir); !os.IsNotExist(err) {
		t.Errorf("data directory after Close: %v", err)
	}
}
