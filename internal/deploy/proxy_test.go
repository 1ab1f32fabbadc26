package deploy

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/slipway-dev/slipway/internal/lb"
	"github.com/slipway-dev/slipway/internal/secret"
)

// TestProxyCallsStartAProxyOnlyWhenNoneAnswers: with a proxy answering, a
// call goes straight to it; with none, the call turns to starting one (here
// from a binary that does not exist, so the attempt shows in the error).
func TestProxyCallsStartAProxyOnlyWhenNoneAnswers(t *testing.T) {
	dir := t.TempDir()
	p := NewProxy(dir, filepath.Join(dir, "no-such-slipway"))
	ctx := context.Background()

	err := p.Apply(ctx, lb.Config{})
	if err == nil || !strings.Contains(err.Error(), "start the load balancer ("+filepath.Join(dir, "no-such-slipway")) {
		t.Fatalf("apply with no proxy: %v, want an attempt to start one", err)
	}
	if _, err := p.State(ctx, time.Second); err == nil || !strings.Contains(err.Error(), "start the load balancer") {
		t.Fatalf("state with no proxy: %v, want an attempt to start one", err)
	}

	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- lb.Run(runCtx, filepath.Join(dir, "proxy.sock"), filepath.Join(dir, "proxy.json"), mustKeyring(t, dir), slog.New(slog.NewTextHandler(io.Discard, nil)))
	}()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("proxy: %v", err)
		}
	})
	for deadline := time.Now().Add(5 * time.Second); !p.Running(ctx); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the in-test proxy does not answer")
		}
	}
	cfg := lb.Config{TargetGroups: map[string]lb.TargetGroup{"web.tg1": {Targets: []string{"127.0.0.1:9"}}}}
	if err := p.Apply(ctx, cfg); err != nil {
		t.Fatalf("apply to a running proxy: %v", err)
	}
	if st, err := p.State(ctx, time.Second); err != nil || len(st.TargetGroups) != 1 {
		t.Fatalf("state of a running proxy: %+v %v", st, err)
	}
	// A table the proxy refuses is its answer, not a reason to start another.
	bad := lb.Config{Listeners: map[string]lb.Listener{"web": {Addr: "127.0.0.1:1", Routes: []lb.Route{{TargetGroup: "missing", Weight: 100}}}}}
	err = p.Apply(ctx, bad)
	if err == nil || errors.Is(err, lb.ErrNotAnswering) || !strings.Contains(err.Error(), "missing") {
		t.Fatalf("apply of a refused table: %v, want the proxy's refusal naming the missing target group", err)
	}
}

func mustKeyring(t *testing.T, dir string) *secret.Keyring {
	t.Helper()
	k, err := secret.LoadOrCreate(dir)
	if err != nil {
		t.Fatal(err)
	}
	return k
}
