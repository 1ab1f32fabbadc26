package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// onBoth runs measure against a server on SQLite (e) and then against one
// on a fresh database of the bench's PostgreSQL server, and merges the
// figures: SQLite's keep their names (the fields the benchmark always had),
// PostgreSQL's are prefixed postgres_; the headline figures are also given
// as sqlite_NAME beside postgres_NAME. Goals (goal*) apply to both and
// appear once.
func onBoth(e *env, name string, measure func(*env) (map[string]any, string, error), headline []string) (map[string]any, string, error) {
	f, summary, err := measure(e)
	e.stop()
	if err != nil {
		return nil, "", fmt.Errorf("on SQLite: %w", err)
	}
	dsn, err := postgresDatabase(name)
	if err != nil {
		return nil, "", fmt.Errorf("PostgreSQL: %w", err)
	}
	settle()
	pe := &env{bin: e.bin, dir: filepath.Join(e.dir, "postgres"), database: dsn, log: filepath.Join(e.dir, "postgres", "server.log")}
	pf, psummary, err := measure(pe)
	pe.stop()
	if err != nil {
		return nil, "", fmt.Errorf("on PostgreSQL: %w", err)
	}
	for k, v := range pf {
		if strings.HasPrefix(k, "goal") {
			continue
		}
		if n, ok := v.(int); ok && f[k] == n { // the same configuration, such as rows
			continue
		}
		f["postgres_"+k] = v
	}
	for _, k := range headline {
		f["sqlite_"+k] = f[k]
	}
	f["databases"] = []string{"sqlite", "postgres"}
	f["postgres"] = pgSettings
	return f, "SQLite: " + summary + "; PostgreSQL: " + psummary, nil
}

// seedPostgresRuns inserts rows runs of app bench straight into the
// server's PostgreSQL database with one COPY, then has PostgreSQL analyse
// the table (as autovacuum would soon) so the planner knows its size.
func seedPostgresRuns(dsn string, rows int) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	now := time.Now().UnixMicro()
	n, err := conn.CopyFrom(ctx, pgx.Identifier{"runs"}, []string{"app", "state", "trigger", "ref", "commit_sha", "created_at"},
		pgx.CopyFromSlice(rows, func(i int) ([]any, error) {
			return []any{"bench", "succeeded", "git-push", "refs/heads/main", fmt.Sprintf("%040x", i), now + int64(i)}, nil
		}))
	if err != nil {
		return fmt.Errorf("copy runs: %w", err)
	}
	if n != int64(rows) {
		return fmt.Errorf("copied %d runs, want %d", n, rows)
	}
	if _, err := conn.Exec(ctx, "ANALYZE runs"); err != nil {
		return fmt.Errorf("analyze runs: %w", err)
	}
	fmt.Fprintf(os.Stderr, "  seeded %d runs into PostgreSQL\n", rows)
	return nil
}
