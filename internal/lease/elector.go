// Package lease gives work to one server at a time among several sharing a
// database: a server holds a named lease while it renews it, and another
// takes it over once it expires unrenewed. The database's clock times the
// lease; the holder's own clock only ever shortens it, so a holder cut off
// from the database stops before anyone else can start.
package lease

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/slipway-dev/slipway/internal/store"
)

// Store is where leases are kept.
type Store interface {
	AcquireLease(ctx context.Context, name, holder string, ttl time.Duration) (store.Lease, bool, error)
	ReleaseLease(ctx context.Context, name, holder string) error
}

// DefaultTTL is how long a lease outlives its holder's last renewal: the
// longest another server waits to take over from one that died.
const DefaultTTL = 10 * time.Second

// ErrLost is the cause of a held context's end when the lease was lost.
var ErrLost = errors.New("lease lost")

// Elector acquires and renews leases for one holder.
type Elector struct {
	Store  Store
	Holder string
	// TTL is the lease's lifetime per renewal (default DefaultTTL); it is
	// renewed every third of it and tried for every fifth while another
	// server has it.
	TTL time.Duration
	Log *slog.Logger
}

func (e *Elector) ttl() time.Duration {
	if e.TTL > 0 {
		return e.TTL
	}
	return DefaultTTL
}

// TryHold makes one attempt at the lease. When it is won, the returned
// context lasts while the lease is held: it ends, with cause ErrLost, when
// a renewal is refused or no renewal succeeds in time, and release gives
// the lease up and ends it. When it is held by another server, ok is false.
func (e *Elector) TryHold(ctx context.Context, name string) (held context.Context, release func(), ok bool, err error) {
	sent := time.Now()
	_, ok, err = e.Store.AcquireLease(ctx, name, e.Holder, e.ttl())
	if err != nil || !ok {
		return nil, nil, false, err
	}
	held, cancel := context.WithCancelCause(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() {
		defer close(done)
		e.renew(held, cancel, name, sent)
	}()
	release = func() {
		cancel(context.Canceled)
		<-done
		rctx, stop := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer stop()
		if err := e.Store.ReleaseLease(rctx, name, e.Holder); err != nil && e.Log != nil {
			e.Log.Warn("give up lease", "lease", name, "err", err)
		}
	}
	return held, release, true, nil
}

// Hold waits until the lease is won or ctx ends; see TryHold.
func (e *Elector) Hold(ctx context.Context, name string) (context.Context, func(), error) {
	for {
		held, release, ok, err := e.TryHold(ctx, name)
		if ok {
			return held, release, nil
		}
		if err != nil && e.Log != nil {
			e.Log.Warn("acquire lease", "lease", name, "err", err)
		}
		select {
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		case <-time.After(e.ttl() / 5):
		}
	}
}

// renew keeps the lease until held ends. The lease is surely valid until
// the last successful renewal was sent plus the TTL (the database counts
// from when it received it, later); a tenth is kept back for clocks that
// run at slightly different rates.
func (e *Elector) renew(held context.Context, cancel context.CancelCauseFunc, name string, sent time.Time) {
	ttl := e.ttl()
	validUntil := sent.Add(ttl - ttl/10)
	for {
		wait := min(ttl/3, time.Until(validUntil))
		select {
		case <-held.Done():
			return
		case <-time.After(wait):
		}
		if !time.Now().Before(validUntil) {
			cancel(ErrLost)
			e.lost(name, "no renewal reached the database in time")
			return
		}
		sent := time.Now()
		rctx, stop := context.WithDeadline(held, validUntil)
		l, ok, err := e.Store.AcquireLease(rctx, name, e.Holder, ttl)
		stop()
		switch {
		case err != nil:
			if e.Log != nil && held.Err() == nil {
				e.Log.Warn("renew lease", "lease", name, "err", err, "valid_for", time.Until(validUntil).Round(time.Millisecond))
			}
		case !ok:
			cancel(ErrLost)
			e.lost(name, "now held by "+l.Holder)
			return
		default:
			validUntil = sent.Add(ttl - ttl/10)
		}
	}
}

func (e *Elector) lost(name, why string) {
	if e.Log != nil {
		e.Log.Error("lease lost; stopping the work it gave", "lease", name, "holder", e.Holder, "why", why)
	}
}
