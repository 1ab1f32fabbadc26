package pipeline

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/slipway-dev/slipway/internal/store"
)

func TestLogMasking(t *testing.T) {
	ctx := context.Background()
	db, err := store.Open(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.CreateApp(ctx, store.App{Name: "a", RegistryRepo: "a"}); err != nil {
		t.Fatal(err)
	}
	run, err := db.CreateRun(ctx, store.Run{App: "a", Trigger: "t", Ref: "r", Commit: "c"})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.StartRun(ctx, run.ID, ModeParallel, []store.Action{{Stage: "s", Name: "x", Type: "build", RunOrder: 1}}); err != nil {
		t.Fatal(err)
	}
	acts, _ := db.ListActions(ctx, run.ID)
	secrets := []string{"hunter2-password", "-----BEGIN KEY-----\nAAAABBBBCCCC\nDDDDEEEE\n-----END KEY-----", "sec"}
	w := newLogWriter(db, acts[0].ID, slog.New(slog.NewTextHandler(io.Discard, nil)), secrets)
	for _, chunk := range []string{
		"plain line\n",
		"the password is hunt", "er2-password, split across writes\n", // one secret in two writes
		"-----BEGIN KEY-----\nAAAABBBBCCCC\nDDDDEEEE\n-----END KEY-----\n", // a multi-line secret
		"short sec stays: too short to mask safely\n",
		"no newline at the end hunter2-password",
	} {
		if _, err := w.Write([]byte(chunk)); err != nil {
			t.Fatal(err)
		}
	}
	w.Close()
	lines, err := db.ListLog(ctx, run.ID, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, l := range lines {
		got = append(got, l.Line)
	}
	want := []string{
		"plain line",
		"the password is ***, split across writes",
		"***", "***", "***", "***",
		"short sec stays: too short to mask safely",
		"no newline at the end ***",
	}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("stored lines:\n%q\nwant:\n%q", got, want)
	}
}
