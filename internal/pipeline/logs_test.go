package pipeline

import (
	"context"
	"encoding/base64"
	"fmt"
	"github.com/slipway-dev/slipway/internal/slipwayfile"
	"io"
	"log/slog"
	"net/url"
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
	if err := db.StartRun(ctx, run.ID, slipwayfile.ModeParallel, []store.Action{{Stage: "s", Name: "x", Type: "build", RunOrder: 1}}); err != nil {
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

// storedLines closes w and returns the action's stored lines.
func storedLines(t *testing.T, db *store.DB, w *logWriter, runID int64) []string {
	t.Helper()
	w.Close()
	lines, err := db.ListLog(context.Background(), runID, 0, 100000)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, l := range lines {
		got = append(got, l.Line)
	}
	return got
}

// TestLogMaskingPiecesAndEncodings: a secret, its base64 and its escaped
// form are masked however the build's writes cut them.
func TestLogMaskingPiecesAndEncodings(t *testing.T) {
	const pw = "hunter2-password/+?"
	b64 := base64.StdEncoding.EncodeToString([]byte(pw))
	cases := []struct {
		name   string
		writes []string
		want   []string
	}{
		{"byte by byte", strings.Split("pw="+pw+"!\n", ""), []string{"pw=***!"}},
		{"base64 in two writes", []string{"Authorization: Basic " + b64[:5], b64[5:] + "\n"}, []string{"Authorization: Basic ***"}},
		{"unpadded URL base64", []string{"token=" + base64.RawURLEncoding.EncodeToString([]byte(pw)) + "\n"}, []string{"token=***"}},
		{"query escaped", []string{"GET /?p=" + url.QueryEscape(pw) + " 200\n"}, []string{"GET /?p=*** 200"}},
		{"path escaped, no newline at the end", []string{"GET /u/" + url.PathEscape(pw)[:4], url.PathEscape(pw)[4:]}, []string{"GET /u/***"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			db, run, act := oneAction(t)
			w := newLogWriter(db, act.ID, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
			w.AddSecrets(pw) // as an action does once it has resolved its secrets
			for _, p := range c.writes {
				if _, err := io.WriteString(w, p); err != nil {
					t.Fatal(err)
				}
			}
			if got := storedLines(t, db, w, run.ID); strings.Join(got, "|") != strings.Join(c.want, "|") {
				t.Fatalf("stored %q, want %q", got, c.want)
			}
		})
	}
}

// TestLogMaskingLongLine: a 1 MiB line is stored in pieces of at most
// maxLineBytes, and no secret is split between two pieces (where neither
// half would match), whether the line comes in one write or in many.
func TestLogMaskingLongLine(t *testing.T) {
	const pw = "hunter2-password"
	b64 := base64.StdEncoding.EncodeToString([]byte(pw))
	var line strings.Builder
	for i := 0; line.Len() < 1<<20; i++ {
		line.WriteString(strings.Repeat("x", i%97+1))
		if i%5 == 0 {
			line.WriteString(b64)
		} else {
			line.WriteString(pw)
		}
	}
	// "hunter2" is a secret too: a cut right after it must not mask it
	// alone and leave "-password" for the next piece.
	secrets := []string{pw, "hunter2"}
	want := strings.NewReplacer(b64, Mask, pw, Mask, "hunter2", Mask).Replace(line.String())
	for _, piece := range []int{1 << 21, 4093, 16 << 10, 1000} {
		t.Run(fmt.Sprintf("writes of %d bytes", piece), func(t *testing.T) {
			db, run, act := oneAction(t)
			w := newLogWriter(db, act.ID, slog.New(slog.NewTextHandler(io.Discard, nil)), secrets)
			s := line.String() + "\n"
			for len(s) > 0 {
				n := min(piece, len(s))
				if _, err := io.WriteString(w, s[:n]); err != nil {
					t.Fatal(err)
				}
				s = s[n:]
			}
			got := storedLines(t, db, w, run.ID)
			if strings.Contains(strings.Join(got, "\n"), "password") {
				t.Fatal("part of a secret was stored")
			}
			if len(got) < 2 {
				t.Fatalf("a 1 MiB line stored as %d lines", len(got))
			}
			for i, l := range got {
				if len(l) > maxLineBytes {
					t.Fatalf("piece %d has %d bytes, more than %d", i, len(l), maxLineBytes)
				}
			}
			if joined := strings.Join(got, ""); joined != want {
				i := 0
				for i < min(len(joined), len(want)) && joined[i] == want[i] {
					i++
				}
				t.Fatalf("pieces joined differ from the masked line at byte %d: %q", i, joined[max(i-40, 0):min(i+40, len(joined))])
			}
		})
	}
}

// TestLogIsCapped: an action printing far more than the limit keeps the
// first part and a line saying the rest was not kept.
func TestLogIsCapped(t *testing.T) {
	db, run, act := oneAction(t)
	w := newLogWriter(db, act.ID, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	w.limit = 1 << 20
	line := strings.Repeat("x", 1023) + "\n"
	for range 20 << 10 { // 20 MiB in 1 KiB lines
		if _, err := io.WriteString(w, line); err != nil {
			t.Fatal(err)
		}
	}
	got := storedLines(t, db, w, run.ID)
	if n := len(got); n < 1000 || n > 1100 {
		t.Fatalf("kept %d lines of 1 KiB under a 1 MiB limit", n)
	}
	if last := got[len(got)-1]; !strings.Contains(last, "The log reached 1 MiB") {
		t.Fatalf("last line %q", last)
	}
}

// outageStore refuses writes as an unreachable database does until
// healthy is set.
type outageStore struct {
	*store.DB
	healthy atomic.Bool
	refused atomic.Int32
}

func (o *outageStore) AppendLog(ctx context.Context, actionID int64, lines []store.LogLine) error {
	if !o.healthy.Load() {
		o.refused.Add(1)
		return fmt.Errorf("append: %w", store.ErrUnavailable)
	}
	return o.DB.AppendLog(ctx, actionID, lines)
}

// Lines written while the database does not answer are kept and stored,
// in order, once it does; none is lost, also when the action ends first.
func TestLogLinesOutliveADatabaseOutage(t *testing.T) {
	db, run, act := oneAction(t)
	st := &outageStore{DB: db}
	w := newLogWriter(st, act.ID, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	for i := range 5 {
		fmt.Fprintf(w, "during %d\n", i)
	}
	deadline := time.Now().Add(5 * time.Second)
	for st.refused.Load() < 2 {
		if time.Now().After(deadline) {
			t.Fatal("the writer did not try again while the database was down")
		}
		time.Sleep(10 * time.Millisecond)
	}
	fmt.Fprintln(w, "last")
	closed := make(chan struct{})
	go func() { w.Close(); close(closed) }()
	time.Sleep(50 * time.Millisecond)
	st.healthy.Store(true)
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not return once the database answered")
	}
	lines, err := db.ListLog(context.Background(), run.ID, 0, 100)
	var got []string
	for _, l := range lines {
		got = append(got, l.Line)
	}
	if want := "during 0,during 1,during 2,during 3,during 4,last"; err != nil || strings.Join(got, ",") != want {
		t.Fatalf("stored %q %v, want %s", got, err, want)
	}
}
