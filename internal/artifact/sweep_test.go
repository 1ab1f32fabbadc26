package artifact

import (
	"context"
	"errors"
	"io/fs"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/slipway-dev/slipway/internal/blob"
)

// A blob that PutRecorded found already stored is not deleted before the
// caller has recorded it: DeleteUnnamed waits, then sees the record.
func TestDeleteUnnamedWaitsForARecordInProgress(t *testing.T) {
	ctx := context.Background()
	d, err := blob.Open(ctx, blob.Config{}, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	s := &Store{Driver: d}
	sum, size, err := s.Put(ctx, strings.NewReader("shared content"))
	if err != nil {
		t.Fatal(err)
	}
	var recorded atomic.Bool
	entered, release := make(chan struct{}), make(chan struct{})
	putDone := make(chan error, 1)
	go func() {
		_, _, err := s.PutRecorded(ctx, strings.NewReader("shared content"), func(string, int64) error {
			close(entered)
			<-release
			recorded.Store(true)
			return nil
		})
		putDone <- err
	}()
	<-entered
	type result struct {
		freed int64
		err   error
	}
	deleted := make(chan result, 1)
	go func() {
		freed, err := s.DeleteUnnamed(ctx, sum, func(context.Context) (bool, error) { return recorded.Load(), nil })
		deleted <- result{freed, err}
	}()
	select {
	case r := <-deleted:
		t.Fatalf("DeleteUnnamed returned (%d, %v) while a record was in progress", r.freed, r.err)
	case <-time.After(100 * time.Millisecond):
	}
	close(release)
	if err := <-putDone; err != nil {
		t.Fatal(err)
	}
	if r := <-deleted; r.err != nil || r.freed != 0 {
		t.Fatalf("DeleteUnnamed of a recorded blob: %d %v", r.freed, r.err)
	}
	if rc, err := s.Open(ctx, sum); err != nil {
		t.Fatalf("the recorded blob is gone: %v", err)
	} else {
		rc.Close()
	}
	// Once nothing names it, it goes, and its size is reported; again, nothing.
	unnamed := func(context.Context) (bool, error) { return false, nil }
	if freed, err := s.DeleteUnnamed(ctx, sum, unnamed); err != nil || freed != size {
		t.Fatalf("DeleteUnnamed: %d %v, want %d", freed, err, size)
	}
	if _, err := s.Open(ctx, sum); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Open after the delete: %v", err)
	}
	if freed, err := s.DeleteUnnamed(ctx, sum, unnamed); err != nil || freed != 0 {
		t.Fatalf("DeleteUnnamed of a missing blob: %d %v", freed, err)
	}
	if _, err := s.DeleteUnnamed(ctx, "../etc", unnamed); err == nil {
		t.Fatal("DeleteUnnamed accepted a digest that is not one")
	}
}
