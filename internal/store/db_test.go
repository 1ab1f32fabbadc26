//go:build unix

package store

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// The database holds token hashes and sealed secrets: only the server's
// user may read it, whatever the directory's mode or the process umask.
func TestDatabaseFilesAreOwnerOnly(t *testing.T) {
	cases := []struct {
		name     string
		existing os.FileMode // mode of a slipway.db left by an older version; 0 = none
	}{
		{"new database", 0},
		{"existing world-readable database", 0o644},
	}
	old := syscall.Umask(0o022)
	defer syscall.Umask(old)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.Chmod(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			if c.existing != 0 {
				seed, err := Open(context.Background(), dir)
				if err != nil {
					t.Fatal(err)
				}
				seed.Close()
				for _, suffix := range []string{"", "-wal", "-shm"} {
					if err := os.Chmod(filepath.Join(dir, "slipway.db"+suffix), c.existing); err != nil && !os.IsNotExist(err) {
						t.Fatal(err)
					}
				}
			}
			db, err := Open(context.Background(), dir)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			if _, err := db.CreateApp(context.Background(), App{Name: "hello"}); err != nil {
				t.Fatal(err)
			}
			for _, suffix := range []string{"", "-wal", "-shm"} {
				fi, err := os.Stat(db.Path + suffix)
				if err != nil {
					t.Fatal(err)
				}
				if got := fi.Mode().Perm(); got != 0o600 {
					t.Errorf("%s has mode %#o, want 0600", filepath.Base(db.Path+suffix), got)
				}
			}
		})
	}
}

// A data directory whose name has characters a URI gives meaning to opens
// the database inside it, not a file named after their decoding.
func TestDataDirWithURICharacters(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a%41b?c#d")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	db, err := Open(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	if _, err := os.Stat(filepath.Join(dir, "slipway.db")); err != nil {
		t.Fatal(err)
	}
}
