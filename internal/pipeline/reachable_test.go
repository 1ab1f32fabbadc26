package pipeline

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/slipway-dev/slipway/internal/store"
)

func TestWhenReachable(t *testing.T) {
	saved := storeRetryFor
	t.Cleanup(func() { storeRetryFor = saved })
	storeRetryFor = 400 * time.Millisecond
	refused := errors.New("refused")
	cases := []struct {
		name      string
		failures  int   // calls that fail before one succeeds (-1: all)
		err       error // what they fail with
		wantCalls int
		wantErr   error
	}{
		{"succeeds at once", 0, nil, 1, nil},
		{"rides out an outage", 2, store.ErrUnavailable, 3, nil},
		{"other errors are not retried", 3, refused, 1, refused},
		{"gives up after a while", -1, store.ErrUnavailable, 0, store.ErrUnavailable},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			calls := 0
			err := whenReachable(context.Background(), slog.New(slog.NewTextHandler(io.Discard, nil)), func() error {
				calls++
				if c.failures < 0 || calls <= c.failures {
					return c.err
				}
				return nil
			})
			if !errors.Is(err, c.wantErr) || (c.wantErr == nil && err != nil) {
				t.Errorf("err %v, want %v", err, c.wantErr)
			}
			if c.wantCalls > 0 && calls != c.wantCalls {
				t.Errorf("%d calls, want %d", calls, c.wantCalls)
			}
			if c.wantCalls == 0 && calls < 2 {
				t.Errorf("%d calls: it did not try again", calls)
			}
		})
	}
}
