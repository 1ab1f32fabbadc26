package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// Helpers of the conformance tests of runs, actions, approvals, variables,
// secrets, tokens and sessions (the *_suite_test.go files).

// conformOpen opens the test's database with apps that each have a
// "staging" environment (openWithApps, without another database).
func conformOpen(t *testing.T, s testStore, apps ...string) *DB {
	t.Helper()
	db := s.open(t)
	for _, app := range apps {
		if _, err := db.CreateApp(context.Background(), App{Name: app, RegistryRepo: app, Environments: []string{"staging"}}); err != nil {
			t.Fatal(err)
		}
	}
	return db
}

// conformRun creates a queued run of app.
func conformRun(t *testing.T, db *DB, app string) Run {
	t.Helper()
	r, err := db.CreateRun(context.Background(), Run{App: app, Trigger: "manual", Ref: "refs/heads/main", Commit: "c0ffee"})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// conformStarted creates a run of app and starts it with actions; it
// returns the run as stored and its actions in their listed order.
func conformStarted(t *testing.T, db *DB, app, mode string, actions ...Action) (Run, []Action) {
	t.Helper()
	ctx := context.Background()
	r := conformRun(t, db, app)
	if err := db.StartRun(ctx, r.ID, mode, actions); err != nil {
		t.Fatal(err)
	}
	got, err := db.GetRun(ctx, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	as, err := db.ListActions(ctx, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	return got, as
}

// nanoTime has digits below the microsecond and a zone other than UTC: the
// store keeps it to the microsecond and gives it back in UTC.
var nanoTime = time.Date(2031, 5, 6, 7, 8, 9, 123456789, time.FixedZone("CET", 3600))

// checkStoredTime fails unless got is want to the microsecond, in UTC.
func checkStoredTime(t *testing.T, what string, got, want time.Time) {
	t.Helper()
	if !got.Equal(want.Truncate(time.Microsecond)) || got.Location() != time.UTC {
		t.Errorf("%s = %v, want %v in UTC", what, got, want.Truncate(time.Microsecond))
	}
}

// checkRecent fails unless at is a stored now(): between before and after,
// whole microseconds, in UTC.
func checkRecent(t *testing.T, what string, at, before, after time.Time) {
	t.Helper()
	if at.Before(before.Truncate(time.Microsecond)) || at.After(after) || !at.Equal(at.Truncate(time.Microsecond)) || at.Location() != time.UTC {
		t.Errorf("%s = %v, want a microsecond time in UTC between %v and %v", what, at, before, after)
	}
}

func runIDs(rs []Run) []int64 {
	ids := []int64{}
	for _, r := range rs {
		ids = append(ids, r.ID)
	}
	return ids
}

func TestConformCreateAndGetRun(t *testing.T) {
	eachStore(t, func(t *testing.T, s testStore) {
		ctx := context.Background()
		db := conformOpen(t, s, "a")
		before := time.Now()
		r, err := db.CreateRun(ctx, Run{App: "a", Trigger: "push", Ref: "refs/heads/main", Commit: strings.Repeat("f", 40), Reason: "why not"})
		if err != nil {
			t.Fatal(err)
		}
		if r.ID == 0 || r.State != RunQueued {
			t.Fatalf("created %+v: want an id and state queued", r)
		}
		checkRecent(t, "CreatedAt", r.CreatedAt, before, time.Now())
		got, err := db.GetRun(ctx, r.ID)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, r) {
			t.Fatalf("GetRun = %+v\nCreateRun returned %+v", got, r)
		}
		if got.EventID != 0 || got.StartedAt != nil || got.EndedAt != nil || got.ExpiredAt != nil || got.Mode != "" {
			t.Fatalf("a new run has %+v", got)
		}

		// A state given is kept.
		w, err := db.CreateRun(ctx, Run{App: "a", State: RunWaiting, Trigger: "manual", Ref: "r", Commit: "c"})
		if err != nil {
			t.Fatal(err)
		}
		if got, _ := db.GetRun(ctx, w.ID); got.State != RunWaiting || w.ID <= r.ID {
			t.Fatalf("run created waiting: %+v (first id %d)", got, r.ID)
		}

		if _, err := db.GetRun(ctx, w.ID+100); !errors.Is(err, ErrNotFound) {
			t.Fatalf("GetRun of no run: %v, want ErrNotFound", err)
		}
		if _, err := db.CreateRun(ctx, Run{App: "nope", Trigger: "manual", Ref: "r", Commit: "c"}); err == nil {
			t.Fatal("a run of an app that does not exist was created")
		}
	})
}

// A run of a workflow file, with its workflow_dispatch inputs, reads back
// the same wherever it is read.
func TestConformRunWorkflowAndInputs(t *testing.T) {
	eachStore(t, func(t *testing.T, s testStore) {
		ctx := context.Background()
		db := conformOpen(t, s, "a")
		plain := conformRun(t, db, "a")
		wf, err := db.CreateRun(ctx, Run{App: "a", Trigger: "manual", Ref: "refs/heads/main", Commit: "c0ffee",
			Workflow: ".github/workflows/deploy.yml",
			Inputs:   map[string]string{"environment": "prod", "dry_run": "false", "empty": "", "quoted": `"a" \ 'b'` + "\nnext ✓"}})
		if err != nil {
			t.Fatal(err)
		}
		workflowOnly, err := db.CreateRun(ctx, Run{App: "a", Trigger: "push", Ref: "refs/heads/main", Commit: "c0ffee",
			Workflow: ".github/workflows/ci.yml", Inputs: map[string]string{}})
		if err != nil {
			t.Fatal(err)
		}
		if plain.Workflow != "" || plain.Inputs != nil || workflowOnly.Inputs != nil {
			t.Fatalf("runs without inputs: %+v, %+v", plain, workflowOnly)
		}
		want := []Run{plain, wf, workflowOnly}
		for _, r := range want {
			got, err := db.GetRun(ctx, r.ID)
			if err != nil || !reflect.DeepEqual(got, r) {
				t.Fatalf("GetRun = %+v, %v\nwant %+v", got, err, r)
			}
		}
		listed, err := db.ListRuns(ctx, "a", Page{})
		if err != nil || !reflect.DeepEqual(listed, []Run{workflowOnly, wf, plain}) {
			t.Fatalf("ListRuns = %+v, %v\nwant %+v", listed, err, want)
		}
		listed, err = db.ListRuns(ctx, "", Page{})
		if err != nil || !reflect.DeepEqual(listed, []Run{workflowOnly, wf, plain}) {
			t.Fatalf("ListRuns of every app = %+v, %v", listed, err)
		}
		queued, err := db.RunsInState(ctx, RunQueued)
		if err != nil || !reflect.DeepEqual(queued, want) {
			t.Fatalf("RunsInState = %+v, %v\nwant %+v", queued, err, want)
		}
		latest, err := db.LatestRuns(ctx)
		if err != nil || !reflect.DeepEqual(latest["a"], workflowOnly) {
			t.Fatalf("LatestRuns = %+v, %v", latest, err)
		}
		// No inputs are stored as nothing.
		var stored string
		if err := db.read.QueryRowContext(ctx, `SELECT inputs FROM runs WHERE id = ?`, workflowOnly.ID).Scan(&stored); err != nil || stored != "" {
			t.Fatalf("inputs stored of a run without any: %q, %v", stored, err)
		}
		// A started run keeps them.
		if err := db.StartRun(ctx, wf.ID, "queued", nil); err != nil {
			t.Fatal(err)
		}
		if got, _ := db.GetRun(ctx, wf.ID); got.Workflow != wf.Workflow || !reflect.DeepEqual(got.Inputs, wf.Inputs) || got.State != RunRunning {
			t.Fatalf("started run %+v", got)
		}
		// In the API, a run of slipway.yaml says nothing of either.
		b, _ := json.Marshal(plain)
		if strings.Contains(string(b), "workflow") || strings.Contains(string(b), "inputs") {
			t.Fatalf("run of slipway.yaml as JSON: %s", b)
		}
		b, _ = json.Marshal(wf)
		if !strings.Contains(string(b), `"workflow":".github/workflows/deploy.yml"`) || !strings.Contains(string(b), `"inputs":{"dry_run":"false","empty":"",`) {
			t.Fatalf("run of a workflow as JSON: %s", b)
		}
	})
}

func TestConformListRunsPages(t *testing.T) {
	eachStore(t, func(t *testing.T, s testStore) {
		ctx := context.Background()
		db := conformOpen(t, s, "a", "b")
		var a, all []int64 // newest first
		for i := range 60 {
			app := "a"
			if i%3 == 2 {
				app = "b"
			}
			r := conformRun(t, db, app)
			all = append([]int64{r.ID}, all...)
			if app == "a" {
				a = append([]int64{r.ID}, a...)
			}
		}
		cases := []struct {
			name string
			app  string
			page Page
			want []int64
		}{
			{"every app, default limit of 50", "", Page{}, all[:50]},
			{"one app", "a", Page{Limit: 100}, a},
			{"limit", "a", Page{Limit: 3}, a[:3]},
			{"before", "a", Page{Limit: 2, Before: a[4]}, a[5:7]},
			{"before, every app", "", Page{Limit: 500, Before: all[10]}, all[11:]},
			{"negative limit is the default", "", Page{Limit: -1}, all[:50]},
			{"before the first", "a", Page{Before: a[len(a)-1]}, []int64{}},
			{"no such app", "zz", Page{}, []int64{}},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				got, err := db.ListRuns(ctx, c.app, c.page)
				if err != nil {
					t.Fatal(err)
				}
				if got == nil || !slices.Equal(runIDs(got), c.want) {
					t.Fatalf("ListRuns(%q, %+v) = %v, want %v", c.app, c.page, runIDs(got), c.want)
				}
				for _, r := range got {
					if c.app != "" && r.App != c.app {
						t.Fatalf("run %d of app %s listed for %s", r.ID, r.App, c.app)
					}
				}
			})
		}
		// Following Before from page to page lists each run once.
		var seen []int64
		for p := (Page{Limit: 7}); ; {
			got, err := db.ListRuns(ctx, "", p)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) == 0 {
				break
			}
			seen = append(seen, runIDs(got)...)
			p.Before = got[len(got)-1].ID
		}
		if !slices.Equal(seen, all) {
			t.Fatalf("paging listed %v, want %v", seen, all)
		}
		// A page holds 500 runs at most.
		err := db.tx(ctx, func(tx *Tx) error {
			for range 450 {
				if _, err := tx.ExecContext(ctx, `INSERT INTO runs(app, state, trigger, ref, commit_sha, created_at) VALUES ('b', 'queued', 'manual', 'r', 'c', ?)`, toDB(now())); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if got, err := db.ListRuns(ctx, "", Page{Limit: 10000}); err != nil || len(got) != 500 {
			t.Fatalf("ListRuns with a limit of 10000: %d runs, %v; want 500", len(got), err)
		}
	})
}

func TestConformLatestRuns(t *testing.T) {
	eachStore(t, func(t *testing.T, s testStore) {
		ctx := context.Background()
		db := conformOpen(t, s, "a", "b", "c")
		got, err := db.LatestRuns(ctx)
		if err != nil || got == nil || len(got) != 0 {
			t.Fatalf("LatestRuns of no runs = %v, %v; want an empty map", got, err)
		}
		conformRun(t, db, "a")
		b := conformRun(t, db, "b")
		a := conformRun(t, db, "a")
		got, err = db.LatestRuns(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 2 || !reflect.DeepEqual(got["a"], a) || !reflect.DeepEqual(got["b"], b) {
			t.Fatalf("LatestRuns = %+v, want a:%d b:%d", got, a.ID, b.ID)
		}
	})
}

func conformPush(app, delivery string, payload []byte) PushEvent {
	return PushEvent{App: app, Source: "github", Ref: "refs/heads/main", OldSHA: strings.Repeat("0", 40), NewSHA: strings.Repeat("a", 40),
		PushedBy: "octo", DeliveryID: delivery, Outcome: OutcomeRun, PayloadSHA256: payload}
}

func conformDigest(s string) []byte { d := sha256.Sum256([]byte(s)); return d[:] }

func TestConformRecordPush(t *testing.T) {
	eachStore(t, func(t *testing.T, s testStore) {
		ctx := context.Background()
		type step struct {
			ev      PushEvent
			run     bool   // with a run of ev.App
			runApp  string // the run's app when not ev.App
			wantErr error  // errors.Is; nil: recorded
			replay  bool   // the error is a *ReplayedPayloadError
		}
		cases := []struct {
			name      string
			steps     []step
			events    map[string]int // events recorded per app
			runs      map[string]int // runs per app
			delivered []string       // delivery ids seen
			unseen    []string       // delivery ids not seen
		}{
			{name: "push without a run",
				steps:  []step{{ev: conformPush("a", "", nil)}},
				events: map[string]int{"a": 1}, runs: map[string]int{}},
			{name: "push with its run",
				steps:  []step{{ev: conformPush("a", "d1", nil), run: true}},
				events: map[string]int{"a": 1}, runs: map[string]int{"a": 1}, delivered: []string{"d1"}},
			{name: "pushes without delivery ids are all kept",
				steps:  []step{{ev: conformPush("a", "", nil)}, {ev: conformPush("a", "", nil), run: true}},
				events: map[string]int{"a": 2}, runs: map[string]int{"a": 1}},
			{name: "a delivery again is refused, with its run",
				steps: []step{{ev: conformPush("a", "d1", nil), run: true},
					{ev: conformPush("a", "d1", nil), run: true, wantErr: ErrExists},
					{ev: conformPush("b", "d1", nil), wantErr: ErrExists}},
				events: map[string]int{"a": 1}, runs: map[string]int{"a": 1}, delivered: []string{"d1"}},
			{name: "a payload again is refused for its app only",
				steps: []step{{ev: conformPush("a", "d1", conformDigest("p")), run: true},
					{ev: conformPush("a", "d2", conformDigest("p")), run: true, wantErr: ErrConflict, replay: true},
					{ev: conformPush("b", "d3", conformDigest("p")), run: true}},
				events: map[string]int{"a": 1, "b": 1}, runs: map[string]int{"a": 1, "b": 1},
				delivered: []string{"d1", "d3"}, unseen: []string{"d2"}},
			{name: "a refused payload leaves its delivery id unseen",
				steps: []step{{ev: conformPush("a", "", conformDigest("p"))},
					{ev: conformPush("a", "d9", conformDigest("p")), wantErr: ErrConflict, replay: true},
					{ev: conformPush("a", "d9", conformDigest("q"))}},
				events: map[string]int{"a": 2}, runs: map[string]int{}, delivered: []string{"d9"}},
			{name: "a run that cannot be stored takes its event, delivery and payload with it",
				steps:  []step{{ev: conformPush("a", "d1", conformDigest("p")), run: true, runApp: "nope", wantErr: errAny}},
				events: map[string]int{}, runs: map[string]int{}, unseen: []string{"d1"}},
		}
		// One database: each case has apps and delivery ids of its own.
		db := s.open(t)
		for ci, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				p := fmt.Sprintf("c%d-", ci)
				for _, app := range []string{"a", "b"} {
					if _, err := db.CreateApp(ctx, App{Name: p + app, RegistryRepo: p + app}); err != nil {
						t.Fatal(err)
					}
				}
				var recorded []PushEvent
				for i, st := range c.steps {
					in := st.ev
					in.App = p + in.App
					if in.DeliveryID != "" {
						in.DeliveryID = p + in.DeliveryID
					}
					var run *Run
					if st.run {
						app := in.App
						if st.runApp != "" {
							app = st.runApp
						}
						run = &Run{App: app, Trigger: "push", Ref: in.Ref, Commit: in.NewSHA}
					}
					before := time.Now()
					ev, err := db.RecordPush(ctx, in, run)
					if st.wantErr == nil {
						if err != nil {
							t.Fatalf("step %d: %v", i, err)
						}
					} else if st.wantErr == errAny {
						if err == nil {
							t.Fatalf("step %d: recorded, want an error", i)
						}
						continue
					} else if !errors.Is(err, st.wantErr) || !errors.Is(err, ErrConflict) {
						t.Fatalf("step %d: %v, want %v", i, err, st.wantErr)
					}
					var replayed *ReplayedPayloadError
					if errors.As(err, &replayed) != st.replay {
						t.Fatalf("step %d: %v: a replay refusal is %v, want %v", i, err, !st.replay, st.replay)
					}
					if st.replay && (replayed.App != in.App || !bytes.Equal(replayed.SHA256, in.PayloadSHA256) ||
						!strings.Contains(err.Error(), fmt.Sprintf("%x", in.PayloadSHA256)) || !strings.Contains(err.Error(), "app "+in.App)) {
						t.Fatalf("step %d: refusal %+v", i, replayed)
					}
					if err != nil {
						continue
					}
					checkRecent(t, "event CreatedAt", ev.CreatedAt, before, time.Now())
					if run != nil {
						stored, err := db.GetRun(ctx, ev.RunID)
						if err != nil || ev.RunID != run.ID || stored.EventID != ev.ID || run.EventID != ev.ID || !reflect.DeepEqual(stored, *run) {
							t.Fatalf("step %d: event %+v, run %+v, stored %+v (%v)", i, ev, run, stored, err)
						}
					} else if ev.RunID != 0 {
						t.Fatalf("step %d: event without a run has run %d", i, ev.RunID)
					}
					if len(in.PayloadSHA256) > 0 {
						if ok, err := db.PayloadAccepted(ctx, in.App, in.PayloadSHA256); !ok || err != nil {
							t.Fatalf("step %d: PayloadAccepted = %v, %v after recording", i, ok, err)
						}
					}
					ev.PayloadSHA256 = nil // not read back
					recorded = append(recorded, ev)
				}
				for _, short := range []string{"a", "b"} {
					app := p + short
					evs, err := db.ListPushEvents(ctx, app, Page{})
					if err != nil || evs == nil || len(evs) != c.events[short] {
						t.Fatalf("events of %s: %d (%v), want %d", app, len(evs), err, c.events[short])
					}
					var want []PushEvent
					for _, ev := range slices.Backward(recorded) {
						if ev.App == app {
							want = append(want, ev)
						}
					}
					if len(want) > 0 && !reflect.DeepEqual(evs, want) {
						t.Fatalf("events of %s:\n got %+v\nwant %+v", app, evs, want)
					}
					runs, err := db.ListRuns(ctx, app, Page{})
					if err != nil || len(runs) != c.runs[short] {
						t.Fatalf("runs of %s: %d (%v), want %d", app, len(runs), err, c.runs[short])
					}
				}
				for _, id := range c.delivered {
					if ok, err := db.DeliverySeen(ctx, p+id); !ok || err != nil {
						t.Errorf("DeliverySeen(%q) = %v, %v; want true", id, ok, err)
					}
				}
				for _, id := range append(c.unseen, "never") {
					if ok, err := db.DeliverySeen(ctx, p+id); ok || err != nil {
						t.Errorf("DeliverySeen(%q) = %v, %v; want false", id, ok, err)
					}
				}
				if ok, err := db.PayloadAccepted(ctx, p+"a", conformDigest("never")); ok || err != nil {
					t.Errorf("PayloadAccepted of a payload never seen = %v, %v", ok, err)
				}
			})
		}
	})
}

// One push can start a run per workflow: they are stored with the event,
// each with its id, or none is.
func TestConformRecordPushSeveralRuns(t *testing.T) {
	eachStore(t, func(t *testing.T, s testStore) {
		ctx := context.Background()
		db := conformOpen(t, s, "a", "b")
		wfRun := func(app, workflow string) *Run {
			return &Run{App: app, Trigger: "push", Ref: "refs/heads/main", Commit: strings.Repeat("a", 40), Workflow: workflow}
		}
		ci, lint := wfRun("a", ".github/workflows/ci.yml"), wfRun("a", ".github/workflows/lint.yml")
		ev, err := db.RecordPush(ctx, conformPush("a", "d1", conformDigest("p1")), ci, nil, lint)
		if err != nil {
			t.Fatal(err)
		}
		if ci.ID == 0 || lint.ID <= ci.ID || ev.RunID != ci.ID || !slices.Equal(ev.RunIDs, []int64{ci.ID, lint.ID}) {
			t.Fatalf("event %+v, runs %d and %d", ev, ci.ID, lint.ID)
		}
		for _, r := range []*Run{ci, lint} {
			got, err := db.GetRun(ctx, r.ID)
			if err != nil || got.EventID != ev.ID || r.EventID != ev.ID || !reflect.DeepEqual(got, *r) {
				t.Fatalf("run stored %+v (%v), returned %+v, event %d", got, err, *r, ev.ID)
			}
		}

		// Events and runs of another app between them, and events that
		// started none or one.
		other, err := db.RecordPush(ctx, conformPush("b", "d2", nil), wfRun("b", ""), wfRun("b", ".github/workflows/x.yml"))
		if err != nil {
			t.Fatal(err)
		}
		none, err := db.RecordPush(ctx, conformPush("a", "d3", nil), nil)
		if err != nil {
			t.Fatal(err)
		}
		noArgs, err := db.RecordPush(ctx, conformPush("a", "d4", nil))
		if err != nil {
			t.Fatal(err)
		}
		if none.RunID != 0 || none.RunIDs != nil || noArgs.RunID != 0 || noArgs.RunIDs != nil {
			t.Fatalf("events without runs: %+v, %+v", none, noArgs)
		}
		one := wfRun("a", "")
		single, err := db.RecordPush(ctx, conformPush("a", "d5", nil), one)
		if err != nil {
			t.Fatal(err)
		}
		if single.RunID != one.ID || !slices.Equal(single.RunIDs, []int64{one.ID}) {
			t.Fatalf("event of one run: %+v, run %d", single, one.ID)
		}

		evs, err := db.ListPushEvents(ctx, "a", Page{})
		if err != nil {
			t.Fatal(err)
		}
		ev.PayloadSHA256 = nil // not read back
		if want := []PushEvent{single, noArgs, none, ev}; !reflect.DeepEqual(evs, want) {
			t.Fatalf("events of a:\n got %+v\nwant %+v", evs, want)
		}
		if evs, err := db.ListPushEvents(ctx, "b", Page{}); err != nil || len(evs) != 1 || !reflect.DeepEqual(evs[0], other) || len(other.RunIDs) != 2 {
			t.Fatalf("events of b: %+v, %v; want %+v", evs, err, other)
		}
		// A page has its events' runs only.
		if evs, err := db.ListPushEvents(ctx, "a", Page{Limit: 2, Before: single.ID}); err != nil || !reflect.DeepEqual(evs, []PushEvent{noArgs, none}) {
			t.Fatalf("a page of events without runs: %+v, %v", evs, err)
		}
		if evs, err := db.ListPushEvents(ctx, "a", Page{Limit: 1, Before: none.ID}); err != nil || !reflect.DeepEqual(evs, []PushEvent{ev}) {
			t.Fatalf("the page of the first event: %+v, %v", evs, err)
		}
		b, _ := json.Marshal(ev)
		if !strings.Contains(string(b), fmt.Sprintf(`"run_ids":[%d,%d]`, ci.ID, lint.ID)) {
			t.Fatalf("event as JSON: %s", b)
		}
		if b, _ := json.Marshal(none); strings.Contains(string(b), "run_id") {
			t.Fatalf("event without runs as JSON: %s", b)
		}

		// A run that cannot be stored takes the others and the event with it.
		before, _ := db.ListRuns(ctx, "", Page{})
		if _, err := db.RecordPush(ctx, conformPush("a", "d6", conformDigest("p6")), wfRun("a", "x.yml"), wfRun("nope", "y.yml")); err == nil {
			t.Fatal("a push with a run of no app was recorded")
		}
		after, _ := db.ListRuns(ctx, "", Page{})
		if evs, _ := db.ListPushEvents(ctx, "a", Page{}); len(evs) != 4 || !slices.Equal(runIDs(after), runIDs(before)) {
			t.Fatalf("after a failed push: %d events, runs %v (were %v)", len(evs), runIDs(after), runIDs(before))
		}
		if seen, _ := db.DeliverySeen(ctx, "d6"); seen {
			t.Fatal("the failed push's delivery id was kept")
		}
	})
}

// errAny is a wanted error of any kind.
var errAny = errors.New("any error")

func TestConformListPushEventsPages(t *testing.T) {
	eachStore(t, func(t *testing.T, s testStore) {
		ctx := context.Background()
		db := conformOpen(t, s, "a", "b")
		var ids []int64 // newest first
		for i := range 12 {
			ev := conformPush("a", fmt.Sprintf("d%d", i), nil)
			ev.Outcome, ev.Reason = OutcomeFiltered, fmt.Sprintf("reason %d", i)
			got, err := db.RecordPush(ctx, ev, nil)
			if err != nil {
				t.Fatal(err)
			}
			ids = append([]int64{got.ID}, ids...)
		}
		cases := []struct {
			app  string
			page Page
			want []int64
		}{
			{"a", Page{}, ids},
			{"a", Page{Limit: 5}, ids[:5]},
			{"a", Page{Limit: 5, Before: ids[4]}, ids[5:10]},
			{"a", Page{Before: ids[len(ids)-1]}, []int64{}},
			{"b", Page{}, []int64{}},
		}
		for _, c := range cases {
			evs, err := db.ListPushEvents(ctx, c.app, c.page)
			if err != nil {
				t.Fatal(err)
			}
			got := []int64{}
			for _, e := range evs {
				got = append(got, e.ID)
				if e.Reason != fmt.Sprintf("reason %d", len(ids)-1-slices.Index(ids, e.ID)) || e.Outcome != OutcomeFiltered {
					t.Fatalf("event %d read back as %+v", e.ID, e)
				}
			}
			if evs == nil || !slices.Equal(got, c.want) {
				t.Fatalf("ListPushEvents(%q, %+v) = %v, want %v", c.app, c.page, got, c.want)
			}
		}
	})
}

// One webhook delivery or payload starts one run, however many servers
// receive it at once.
func TestConformRecordPushConcurrently(t *testing.T) {
	eachStore(t, func(t *testing.T, s testStore) {
		ctx := context.Background()
		cases := []struct {
			name   string
			app    string
			ev     func(i int) PushEvent
			refuse func(err error) bool
		}{
			{"same delivery id", "a", func(i int) PushEvent { return conformPush("a", "d-1", nil) },
				func(err error) bool { return errors.Is(err, ErrExists) }},
			{"same payload", "b", func(i int) PushEvent { return conformPush("b", fmt.Sprintf("b-%d", i), conformDigest("p")) },
				func(err error) bool { var r *ReplayedPayloadError; return errors.As(err, &r) }},
		}
		db := conformOpen(t, s, "a", "b")
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				errs := race(t, db, func(i int) error {
					_, err := db.RecordPush(ctx, c.ev(i), &Run{App: c.app, Trigger: "push", Ref: "refs/heads/main", Commit: "c"})
					return err
				})
				ok := 0
				for _, err := range errs {
					switch {
					case err == nil:
						ok++
					case !c.refuse(err):
						t.Errorf("unexpected error: %v", err)
					}
				}
				evs, _ := db.ListPushEvents(ctx, c.app, Page{})
				runs, _ := db.ListRuns(ctx, c.app, Page{})
				if ok != 1 || len(evs) != 1 || len(runs) != 1 || evs[0].RunID != runs[0].ID {
					t.Fatalf("%d pushes recorded, %d events, %d runs; want one each", ok, len(evs), len(runs))
				}
			})
		}
	})
}

// Runs, events and actions stored before migration 22 read back as runs of
// slipway.yaml without inputs, events with their one run, actions without
// a report.
func TestConformMigrationToWorkflows(t *testing.T) {
	eachStore(t, func(t *testing.T, s testStore) {
		ctx := context.Background()
		t.Cleanup(func() { migrateTo = 0 })
		migrateTo = 21 // the schema before migration 22
		old := conformOpen(t, s, "a")
		migrateTo = 0
		for _, q := range []string{
			`INSERT INTO push_events(id, app, source, ref, old_sha, new_sha, pushed_by, outcome, run_id, created_at) VALUES (7, 'a', 'git', 'refs/heads/main', 'o', 'n', 'me', 'run', 9, 1)`,
			`INSERT INTO runs(id, app, state, trigger, ref, commit_sha, event_id, created_at) VALUES (9, 'a', 'running', 'push', 'refs/heads/main', 'n', 7, 1)`,
			`INSERT INTO actions(id, run_id, stage_index, stage, name, type, run_order, state) VALUES (11, 9, 0, 'Build', 'image', 'build', 1, 'running')`,
		} {
			if _, err := old.write.ExecContext(ctx, q); err != nil {
				t.Fatal(err)
			}
		}
		old.Close()
		db := s.open(t)
		if v, err := db.SchemaVersion(ctx); err != nil || v < 22 {
			t.Fatalf("schema version %d, %v", v, err)
		}
		r, err := db.GetRun(ctx, 9)
		if err != nil || r.Workflow != "" || r.Inputs != nil || r.EventID != 7 {
			t.Fatalf("run from before: %+v, %v", r, err)
		}
		evs, err := db.ListPushEvents(ctx, "a", Page{})
		if err != nil || len(evs) != 1 || evs[0].RunID != 9 || !slices.Equal(evs[0].RunIDs, []int64{9}) {
			t.Fatalf("events from before: %+v, %v", evs, err)
		}
		a, err := db.GetAction(ctx, 11)
		if err != nil || a.Summary != "" || a.Annotations != nil {
			t.Fatalf("action from before: %+v, %v", a, err)
		}
	})
}
