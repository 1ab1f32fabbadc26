package store

import (
	"context"
	"io/fs"
	"strings"
	"testing"
	"testing/fstest"
)

// A migration that fails leaves the database at the version before it,
// with nothing of the failed migration applied, and the server refuses to
// start with the version named; a database migrated by a newer binary is
// refused, not written to.
func TestMigrationFailureAndNewerDatabase(t *testing.T) {
	eachStore(t, func(t *testing.T, s testStore) {
		ctx := context.Background()
		db := s.open(t)
		before, err := db.SchemaVersion(ctx)
		if err != nil {
			t.Fatal(err)
		}
		db.Close()

		real := migrationSource
		t.Cleanup(func() { migrationSource = real })
		migrationSource = func(d Dialect) (fs.FS, error) {
			files, err := real(d)
			if err != nil {
				return nil, err
			}
			m := fstest.MapFS{}
			if err := fs.WalkDir(files, ".", func(path string, e fs.DirEntry, err error) error {
				if err != nil || e.IsDir() {
					return err
				}
				data, err := fs.ReadFile(files, path)
				m[path] = &fstest.MapFile{Data: data}
				return err
			}); err != nil {
				return nil, err
			}
			m["00999_broken.sql"] = &fstest.MapFile{Data: []byte("-- +goose Up\nCREATE TABLE half_done (x INTEGER);\nINSERT INTO no_such_table VALUES (1);\n")}
			return m, nil
		}
		_, err = s.reopen(ctx)
		if err == nil || !strings.Contains(err.Error(), "apply migration 999") {
			t.Fatalf("a failing migration: %v", err)
		}
		migrationSource = real
		db, err = s.reopen(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		if v, err := db.SchemaVersion(ctx); err != nil || v != before {
			t.Errorf("version after a failed migration %d %v, want %d", v, err, before)
		}
		if _, err := db.read.ExecContext(ctx, `SELECT x FROM half_done`); err == nil {
			t.Error("the failed migration's first statement stayed applied")
		}

		// A newer binary's migration recorded: this one refuses the database.
		if _, err := db.write.ExecContext(ctx, `INSERT INTO schema_migrations(version, applied_at) VALUES (1000, 0)`); err != nil {
			t.Fatal(err)
		}
		db.Close()
		if _, err := s.reopen(ctx); err == nil || !strings.Contains(err.Error(), "newer than this binary") {
			t.Fatalf("a newer database: %v", err)
		}
	})
}
