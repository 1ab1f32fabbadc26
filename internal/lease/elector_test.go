package lease

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/slipway-dev/slipway/internal/store"
	"github.com/slipway-dev/slipway/internal/testtool/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.RunMain(m)) }

// eachEngine gives fn two connections (two servers' pools) to one fresh
// database, on SQLite and on a real PostgreSQL.
func eachEngine(t *testing.T, fn func(t *testing.T, open func() *store.DB)) {
	t.Run("sqlite", func(t *testing.T) {
		dir := t.TempDir()
		fn(t, func() *store.DB { return openDB(t, dir, "") })
	})
	t.Run("postgres", func(t *testing.T) {
		dsn := pgtest.New(t)
		fn(t, func() *store.DB { return openDB(t, "", dsn) })
	})
}

func openDB(t *testing.T, dir, dsn string) *store.DB {
	t.Helper()
	db, err := store.OpenDatabase(context.Background(), dir, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

const ttl = 600 * time.Millisecond

func TestOneHolderAndHandOver(t *testing.T) {
	eachEngine(t, func(t *testing.T, open func() *store.DB) {
		ctx := context.Background()
		a := &Elector{Store: open(), Holder: "a", TTL: ttl}
		b := &Elector{Store: open(), Holder: "b", TTL: ttl}
		heldA, releaseA, ok, err := a.TryHold(ctx, "control")
		if err != nil || !ok {
			t.Fatal(ok, err)
		}
		// Renewals keep it past several lifetimes.
		time.Sleep(3 * ttl)
		if heldA.Err() != nil {
			t.Fatalf("a lost a lease it renews: %v", context.Cause(heldA))
		}
		if _, _, ok, err := b.TryHold(ctx, "control"); err != nil || ok {
			t.Fatalf("b took a held lease: %v %v", ok, err)
		}
		// A release hands over at once.
		releaseA()
		if heldA.Err() == nil {
			t.Fatal("a's context outlived its release")
		}
		start := time.Now()
		heldB, releaseB, err := b.Hold(ctx, "control")
		if err != nil {
			t.Fatal(err)
		}
		defer releaseB()
		if took := time.Since(start); took > ttl/2 {
			t.Errorf("b waited %v for a released lease", took)
		}
		if heldB.Err() != nil {
			t.Fatal(heldB.Err())
		}
	})
}

// A holder cut off from the database stops its work before the lease
// expires, and another server takes over soon after it does.
func TestCutOffHolderStopsBeforeTakeover(t *testing.T) {
	eachEngine(t, func(t *testing.T, open func() *store.DB) {
		ctx := context.Background()
		dbA := open()
		a := &Elector{Store: dbA, Holder: "a", TTL: ttl}
		b := &Elector{Store: open(), Holder: "b", TTL: ttl}
		heldA, releaseA, ok, err := a.TryHold(ctx, "control")
		if err != nil || !ok {
			t.Fatal(ok, err)
		}
		defer releaseA()
		cut := time.Now()
		dbA.Close() // every renewal fails from now on, as in a partition
		gotB := make(chan time.Time, 1)
		go func() {
			_, release, err := b.Hold(ctx, "control")
			if err == nil {
				gotB <- time.Now()
				t.Cleanup(release)
			}
		}()
		select {
		case <-heldA.Done():
		case <-time.After(2 * ttl):
			t.Fatal("a kept working without its lease")
		}
		stoppedA := time.Now()
		if !errors.Is(context.Cause(heldA), ErrLost) {
			t.Errorf("cause %v, want ErrLost", context.Cause(heldA))
		}
		select {
		case at := <-gotB:
			if !at.After(stoppedA) {
				t.Errorf("b took over at %v, before a stopped at %v", at.Sub(cut), stoppedA.Sub(cut))
			}
			if took := at.Sub(cut); took > ttl+ttl/2 {
				t.Errorf("takeover %v after the cut, want within %v", took, ttl+ttl/2)
			}
			t.Logf("a stopped %v and b took over %v after the cut", stoppedA.Sub(cut).Round(time.Millisecond), at.Sub(cut).Round(time.Millisecond))
		case <-time.After(3 * ttl):
			t.Fatal("b never took over")
		}
	})
}

// A holder whose lease was taken (it could not renew in time and another
// server won it) ends its work when its next renewal is refused.
func TestRefusedRenewalEndsTheWork(t *testing.T) {
	eachEngine(t, func(t *testing.T, open func() *store.DB) {
		ctx := context.Background()
		db := open()
		a := &Elector{Store: db, Holder: "a", TTL: ttl}
		heldA, releaseA, ok, err := a.TryHold(ctx, "control")
		if err != nil || !ok {
			t.Fatal(ok, err)
		}
		defer releaseA()
		// Another server's lease replaces a's in the store (as after a's
		// lease expired unrenewed); a learns at its next renewal.
		if err := db.ReleaseLease(ctx, "control", "a"); err != nil {
			t.Fatal(err)
		}
		if _, ok, err := db.AcquireLease(ctx, "control", "b", time.Minute); err != nil || !ok {
			t.Fatal(ok, err)
		}
		select {
		case <-heldA.Done():
			if !errors.Is(context.Cause(heldA), ErrLost) {
				t.Errorf("cause %v", context.Cause(heldA))
			}
		case <-time.After(ttl):
			t.Fatal("a kept working after its renewal was refused")
		}
	})
}
