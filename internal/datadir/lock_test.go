package datadir

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestHoldIsExclusiveUntilReleased(t *testing.T) {
	dir := t.TempDir()
	first, err := Hold(dir, "server.lock", "slipway server")
	if err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "server.lock")); err != nil || strings.TrimSpace(string(b)) != fmt.Sprint(os.Getpid()) {
		t.Fatalf("lock file holds %q, %v; want this process's id", b, err)
	}
	// A second holder, even in this process, is refused with who holds it.
	_, err = Hold(dir, "server.lock", "slipway server")
	if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), fmt.Sprintf("another slipway server (process %d) uses the data directory %s", os.Getpid(), dir)) {
		t.Fatalf("second hold: %v", err)
	}
	// Another name in the same directory is another lock.
	other, err := Hold(dir, "proxy.lock", "slipway proxy")
	if err != nil {
		t.Fatalf("another lock in the directory: %v", err)
	}
	other.Release()
	first.Release()
	first.Release() // twice is harmless
	again, err := Hold(dir, "server.lock", "slipway server")
	if err != nil {
		t.Fatalf("hold after release: %v", err)
	}
	again.Release()
	var none *Owner
	none.Release() // nil is harmless: a server that never took the lock
}

func TestTryLockOfAMissingDirectory(t *testing.T) {
	if _, err := TryLock(filepath.Join(t.TempDir(), "missing", "x.lock")); err == nil || errors.Is(err, ErrLocked) {
		t.Fatalf("lock in a missing directory: %v", err)
	}
}
