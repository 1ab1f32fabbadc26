package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

func TestLeases(t *testing.T) {
	eachStore(t, func(t *testing.T, s testStore) {
		ctx := context.Background()
		db := s.open(t)
		l, ok, err := db.AcquireLease(ctx, "control", "a", time.Minute)
		if err != nil || !ok || l.Holder != "a" || l.ExpiresAt.Sub(l.RenewedAt) != time.Minute {
			t.Fatalf("a free lease: %+v %v %v", l, ok, err)
		}
		if cur, ok, err := db.AcquireLease(ctx, "control", "b", time.Minute); err != nil || ok || cur.Holder != "a" {
			t.Fatalf("a held lease went to b: %+v %v %v", cur, ok, err)
		}
		time.Sleep(2 * time.Millisecond)
		renewed, ok, err := db.AcquireLease(ctx, "control", "a", time.Minute)
		if err != nil || !ok || !renewed.AcquiredAt.Equal(l.AcquiredAt) || !renewed.RenewedAt.After(l.RenewedAt) {
			t.Fatalf("renewal: %+v (was %+v) %v %v", renewed, l, ok, err)
		}
		// A lease left to expire goes to the next asker.
		if _, ok, err := db.AcquireLease(ctx, "short", "a", 20*time.Millisecond); err != nil || !ok {
			t.Fatal(ok, err)
		}
		time.Sleep(40 * time.Millisecond)
		taken, ok, err := db.AcquireLease(ctx, "short", "b", time.Minute)
		if err != nil || !ok || taken.Holder != "b" {
			t.Fatalf("an expired lease: %+v %v %v", taken, ok, err)
		}
		// The old holder cannot renew what it lost.
		if cur, ok, err := db.AcquireLease(ctx, "short", "a", time.Minute); err != nil || ok || cur.Holder != "b" {
			t.Fatalf("renewal of a lost lease: %+v %v %v", cur, ok, err)
		}
		if err := db.ReleaseLease(ctx, "short", "a"); err != nil {
			t.Fatal(err)
		}
		if ls, err := db.ListLeases(ctx); err != nil || len(ls) != 2 || ls[0].Name != "control" || ls[1].Holder != "b" {
			t.Fatalf("leases after a release by a non-holder: %+v %v", ls, err)
		}
		if err := db.ReleaseLease(ctx, "short", "b"); err != nil {
			t.Fatal(err)
		}
		if l, ok, err := db.AcquireLease(ctx, "short", "a", time.Minute); err != nil || !ok || l.Holder != "a" {
			t.Fatalf("a released lease: %+v %v %v", l, ok, err)
		}
	})
}

func TestLeaseRaceHasOneWinner(t *testing.T) {
	eachStore(t, func(t *testing.T, s testStore) {
		ctx := context.Background()
		db := s.open(t)
		const n = 12
		var wg sync.WaitGroup
		wins := make(chan string, n)
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				holder := fmt.Sprintf("s%d", i)
				if _, ok, err := db.AcquireLease(ctx, "control", holder, time.Minute); err != nil {
					t.Error(err)
				} else if ok {
					wins <- holder
				}
			}()
		}
		wg.Wait()
		close(wins)
		var winners []string
		for w := range wins {
			winners = append(winners, w)
		}
		if len(winners) != 1 {
			t.Fatalf("winners %v, want exactly one", winners)
		}
		if ls, err := db.ListLeases(ctx); err != nil || len(ls) != 1 || ls[0].Holder != winners[0] {
			t.Fatalf("stored %+v %v, want held by %s", ls, err, winners[0])
		}
	})
}

func TestServersRegistry(t *testing.T) {
	eachStore(t, func(t *testing.T, s testStore) {
		ctx := context.Background()
		db := s.open(t)
		if err := db.Heartbeat(ctx, "nobody"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("heartbeat of an unknown server: %v", err)
		}
		a, err := db.RegisterServer(ctx, Server{ID: "srv_a", Host: "h1", URL: "http://127.0.0.1:1", Version: "v1"})
		if err != nil || a.StartedAt.IsZero() {
			t.Fatal(a, err)
		}
		if _, err := db.RegisterServer(ctx, Server{ID: "srv_a", Host: "h1"}); !isUniqueViolation(err) {
			t.Fatalf("a server id registered twice: %v", err)
		}
		if _, err := db.RegisterServer(ctx, Server{ID: "srv_b", Host: "h2", URL: "http://127.0.0.1:2", Version: "v1"}); err != nil {
			t.Fatal(err)
		}
		if _, ok, err := db.AcquireLease(ctx, "control", "srv_a", time.Minute); err != nil || !ok {
			t.Fatal(ok, err)
		}
		time.Sleep(2 * time.Millisecond)
		if err := db.Heartbeat(ctx, "srv_a"); err != nil {
			t.Fatal(err)
		}
		list, err := db.ListServers(ctx, 0)
		if err != nil || len(list) != 2 {
			t.Fatal(list, err)
		}
		byID := map[string]Server{}
		for _, sv := range list {
			byID[sv.ID] = sv
		}
		if got := byID["srv_a"]; len(got.Leases) != 1 || got.Leases[0].Name != "control" || !got.HeartbeatAt.After(got.StartedAt) || got.URL != "http://127.0.0.1:1" {
			t.Errorf("srv_a: %+v", got)
		}
		if got := byID["srv_b"]; got.Leases == nil || len(got.Leases) != 0 {
			t.Errorf("srv_b holds %+v", got.Leases)
		}
		// A clean stop gives the leases up at once.
		if err := db.StopServer(ctx, "srv_a"); err != nil {
			t.Fatal(err)
		}
		if err := db.Heartbeat(ctx, "srv_a"); !errors.Is(err, ErrNotFound) {
			t.Errorf("heartbeat after a stop: %v", err)
		}
		if l, ok, err := db.AcquireLease(ctx, "control", "srv_b", time.Minute); err != nil || !ok || l.Holder != "srv_b" {
			t.Fatalf("the lease of a stopped server: %+v %v %v", l, ok, err)
		}
		if list, err := db.ListServers(ctx, time.Hour); err != nil || len(list) != 2 || list[0].StoppedAt == nil && list[1].StoppedAt == nil {
			t.Fatalf("after a stop: %+v %v", list, err)
		}
	})
}

// A signal from one server's pool reaches another's listener at once on
// PostgreSQL; on SQLite, with one server, Listen returns and Signal does
// nothing.
func TestSignalReachesListeners(t *testing.T) {
	eachStore(t, func(t *testing.T, s testStore) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		listener, signaller := s.open(t), s.open(t)
		heard := make(chan struct{}, 16)
		done := make(chan struct{})
		go func() {
			defer close(done)
			listener.Listen(ctx, "slipway_test", func() { heard <- struct{}{} })
		}()
		if s.dialect == SQLite {
			select {
			case <-done:
			case <-time.After(time.Second):
				t.Fatal("Listen on SQLite did not return")
			}
			if err := signaller.Signal(ctx, "slipway_test"); err != nil {
				t.Fatal(err)
			}
			return
		}
		// Signals sent before the listener's LISTEN are lost: repeat.
		deadline := time.Now().Add(5 * time.Second)
		for {
			if err := signaller.Signal(ctx, "slipway_test"); err != nil {
				t.Fatal(err)
			}
			select {
			case <-heard:
				return
			case <-time.After(200 * time.Millisecond):
			}
			if time.Now().After(deadline) {
				t.Fatal("no signal reached the listener")
			}
		}
	})
}
