// Package datadir holds what the processes sharing one Slipway data
// directory agree on: which of them may run.
package datadir

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// ErrLocked is a lock another process (or another open of the file) holds.
var ErrLocked = errors.New("locked by another process")

// TryLock takes an exclusive lock on the file at path, creating it, without
// waiting: ErrLocked when someone holds it. The kernel drops the lock when
// the file is closed or the process ends, however it ends.
func TryLock(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	if err := lockFile(f); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// Owner is the process that holds a lock taken by Hold: the server of a
// data directory, say.
type Owner struct{ f *os.File }

// Hold takes the lock on name in dir for this process's lifetime (until
// Release) and writes the process id into it, so whoever is refused can be
// told who holds it; what names the holder in messages ("slipway server").
func Hold(dir, name, what string) (*Owner, error) {
	path := filepath.Join(dir, name)
	f, err := TryLock(path)
	if errors.Is(err, ErrLocked) {
		holder := "another process"
		if b, rerr := os.ReadFile(path); rerr == nil {
			if pid, perr := strconv.Atoi(strings.TrimSpace(string(b))); perr == nil && pid > 0 {
				holder = fmt.Sprintf("process %d", pid)
			}
		}
		return nil, fmt.Errorf("another %s (%s) uses the data directory %s; stop it or choose another --data: %w", what, holder, dir, err)
	}
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return &Owner{f: f}, nil
}

// Release lets another process take the lock.
func (o *Owner) Release() {
	if o != nil && o.f != nil {
		o.f.Close()
		o.f = nil
	}
}
