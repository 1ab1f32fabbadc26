package pipeline

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/slipway-dev/slipway/internal/store"
)

// oneAction opens a store holding one run with one action.
func oneAction(t *testing.T) (*store.DB, store.Run, store.Action) {
	t.Helper()
	ctx := context.Background()
	db, err := store.Open(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
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
	return db, run, acts[0]
}

// countingStore counts the writes a log writer makes.
type countingStore struct {
	*store.DB
	writes atomic.Int32
}

func (c *countingStore) AppendLog(ctx context.Context, actionID int64, lines []store.LogLine) error {
	c.writes.Add(1)
	return c.DB.AppendLog(ctx, actionID, lines)
}

// TestLogLinesAreStoredWhileTheActionRuns: a lone line reaches the store
// (and rings its bell for followers) before the action ends, and a burst of
// lines is stored in a few writes, not one per line.
func TestLogLinesAreStoredWhileTheActionRuns(t *testing.T) {
	db, run, act := oneAction(t)
	cs := &countingStore{DB: db}
	w := newLogWriter(cs, act.ID, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	bell := db.LogAppended()
	fmt.Fprintln(w, "first")
	select {
	case <-bell:
	case <-time.After(5 * time.Second):
		t.Fatal("a lone line was not stored while the action ran")
	}
	if lines, _ := db.ListLog(context.Background(), run.ID, 0, 10); len(lines) != 1 || lines[0].Line != "first" {
		t.Fatalf("stored %+v", lines)
	}
	before := cs.writes.Load()
	var burst strings.Builder
	for i := range 2000 {
		fmt.Fprintf(&burst, "line %d\n", i)
	}
	if _, err := io.WriteString(w, burst.String()); err != nil {
		t.Fatal(err)
	}
	w.Close()
	lines, _ := db.ListLog(context.Background(), run.ID, 0, 5000)
	if len(lines) != 2001 || lines[2000].Line != "line 1999" {
		t.Fatalf("stored %d lines, the last %+v", len(lines), lines[len(lines)-1])
	}
	if n := cs.writes.Load() - before; n > 2 {
		t.Fatalf("a burst of 2000 lines took %d writes", n)
	}
}

func TestLogMasking(t *testing.T) {
	ctx := context.Background()
	db, run, act := oneAction(t)
	acts := []store.Action{act}
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
