package store

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// TestOpenKeepsSQLiteLocks: after Open, the process still holds SQLite's
// POSIX locks on the shared-memory file. Opening and closing the files to
// set their modes dropped them all (Linux drops a process's locks on a file
// when any of its descriptors of that file closes), and then another
// process opening the database took the server for gone and deleted the
// WAL it was writing.
func TestOpenKeepsSQLiteLocks(t *testing.T) {
	dir := t.TempDir()
	db, err := Open(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.SetMeta(context.Background(), "probe", "1"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.GetMeta(context.Background(), "probe"); err != nil {
		t.Fatal(err)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(filepath.Join(dir, "slipway.db-shm"), &st); err != nil {
		t.Fatal(err)
	}
	locks, err := os.ReadFile("/proc/locks")
	if err != nil {
		t.Skipf("no /proc/locks: %v", err)
	}
	pid, ino := strconv.Itoa(os.Getpid()), ":"+strconv.FormatUint(st.Ino, 10)+" "
	held := 0
	for _, l := range strings.Split(string(locks), "\n") {
		f := strings.Fields(l)
		// "1: POSIX ADVISORY READ 1234 08:01:5678 128 128"
		if len(f) >= 6 && f[1] == "POSIX" && f[4] == pid && strings.HasSuffix(f[5]+" ", ino) {
			held++
		}
	}
	if held == 0 {
		t.Fatalf("the process holds no lock on slipway.db-shm after Open:\n%s", locks)
	}
}
