package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// conformActions is a pipeline of three stages, listed out of order.
var conformActions = []Action{
	{StageIndex: 1, Stage: "Test", Name: "unit", Type: "build", RunOrder: 1},
	{StageIndex: 0, Stage: "Build", Name: "image", Type: "build", RunOrder: 2},
	{StageIndex: 0, Stage: "Build", Name: "compile", Type: "build", RunOrder: 1},
	{StageIndex: 2, Stage: "Deploy", Name: "approve", Type: "approval", RunOrder: 1},
	{StageIndex: 2, Stage: "Deploy", Name: "deploy", Type: "deploy", RunOrder: 2},
	{StageIndex: 1, Stage: "Test", Name: "lint", Type: "build", RunOrder: 1},
}

func actionNames(as []Action) []string {
	names := []string{}
	for _, a := range as {
		names = append(names, a.Stage+"/"+a.Name+":"+a.State)
	}
	return names
}

// setAction stores an action's state as the engine does.
func setAction(t *testing.T, db *DB, a Action, state string) Action {
	t.Helper()
	at := now()
	a.State = state
	a.StartedAt = &at
	if state != RunRunning && state != RunWaiting {
		a.EndedAt = &at
	}
	if err := db.UpdateAction(context.Background(), a); err != nil {
		t.Fatal(err)
	}
	return a
}

func TestConformStartRun(t *testing.T) {
	eachStore(t, func(t *testing.T, s testStore) {
		ctx := context.Background()
		db := conformOpen(t, s, "a")
		r := conformRun(t, db, "a")
		before := time.Now()
		if err := db.StartRun(ctx, r.ID, "superseded", conformActions); err != nil {
			t.Fatal(err)
		}
		got, err := db.GetRun(ctx, r.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.State != RunRunning || got.Mode != "superseded" || got.StartedAt == nil || got.EndedAt != nil {
			t.Fatalf("started run: %+v", got)
		}
		checkRecent(t, "StartedAt", *got.StartedAt, before, time.Now())
		as, err := db.ListActions(ctx, r.ID)
		if err != nil {
			t.Fatal(err)
		}
		want := []string{"Build/compile:queued", "Build/image:queued", "Test/unit:queued", "Test/lint:queued", "Deploy/approve:queued", "Deploy/deploy:queued"}
		if !slices.Equal(actionNames(as), want) {
			t.Fatalf("actions in order %v, want %v (stage, run order, then id)", actionNames(as), want)
		}
		for _, a := range as {
			if a.RunID != r.ID || a.ExitCode != nil || a.StartedAt != nil || a.EndedAt != nil || a.Reason != "" {
				t.Fatalf("new action %+v", a)
			}
			one, err := db.GetAction(ctx, a.ID)
			if err != nil || !reflect.DeepEqual(one, a) {
				t.Fatalf("GetAction(%d) = %+v, %v; listed %+v", a.ID, one, err, a)
			}
		}
		if _, err := db.GetAction(ctx, as[len(as)-1].ID+100); !errors.Is(err, ErrNotFound) {
			t.Fatalf("GetAction of no action: %v", err)
		}

		// Only a queued run starts.
		if err := db.StartRun(ctx, r.ID, "queued", nil); !errors.Is(err, ErrConflict) {
			t.Fatalf("StartRun of a running run: %v, want ErrConflict", err)
		}
		if err := db.StartRun(ctx, r.ID+100, "queued", nil); !errors.Is(err, ErrConflict) {
			t.Fatalf("StartRun of no run: %v, want ErrConflict", err)
		}

		// A retried run keeps its actions, its first start and its new mode.
		setAction(t, db, as[0], RunFailed)
		if err := db.FinishRun(ctx, r.ID, RunFailed, "compile failed"); err != nil {
			t.Fatal(err)
		}
		if err := db.RetryRun(ctx, r.ID, 0); err != nil {
			t.Fatal(err)
		}
		if err := db.StartRun(ctx, r.ID, "parallel", []Action{{Stage: "Other", Name: "x", Type: "build"}}); err != nil {
			t.Fatal(err)
		}
		again, _ := db.GetRun(ctx, r.ID)
		if again.State != RunRunning || again.Mode != "parallel" || !again.StartedAt.Equal(*got.StartedAt) {
			t.Fatalf("restarted run %+v, first started %v", again, got.StartedAt)
		}
		if as2, _ := db.ListActions(ctx, r.ID); len(as2) != len(as) || as2[0].ID != as[0].ID {
			t.Fatalf("a retried run's actions: %v", actionNames(as2))
		}

		// An action the store refuses leaves the run queued.
		q := conformRun(t, db, "a")
		dup := []Action{{Stage: "S", Name: "x", Type: "build"}, {Stage: "S", Name: "x", Type: "build"}}
		if err := db.StartRun(ctx, q.ID, "queued", dup); err == nil {
			t.Fatal("two actions of one name in a stage were stored")
		}
		if got, _ := db.GetRun(ctx, q.ID); got.State != RunQueued || got.StartedAt != nil || got.Mode != "" {
			t.Fatalf("a run that failed to start: %+v", got)
		}
		if as, err := db.ListActions(ctx, q.ID); err != nil || as == nil || len(as) != 0 {
			t.Fatalf("actions of a run that failed to start: %v, %v; want an empty list", as, err)
		}
	})
}

func TestConformSetRunModeAndState(t *testing.T) {
	eachStore(t, func(t *testing.T, s testStore) {
		ctx := context.Background()
		db := conformOpen(t, s, "a")
		r, _ := conformStarted(t, db, "a", "queued")
		if err := db.SetRunMode(ctx, r.ID, "superseded"); err != nil {
			t.Fatal(err)
		}
		if got, _ := db.GetRun(ctx, r.ID); got.Mode != "superseded" || got.State != RunRunning {
			t.Fatalf("after SetRunMode: %+v", got)
		}
		if err := db.SetRunState(ctx, r.ID, RunWaiting, "transition to Deploy disabled"); err != nil {
			t.Fatal(err)
		}
		if got, _ := db.GetRun(ctx, r.ID); got.State != RunWaiting || got.Reason != "transition to Deploy disabled" {
			t.Fatalf("after SetRunState waiting: %+v", got)
		}
		if err := db.SetRunState(ctx, r.ID, RunRunning, ""); err != nil {
			t.Fatal(err)
		}
		if got, _ := db.GetRun(ctx, r.ID); got.State != RunRunning || got.Reason != "" {
			t.Fatalf("after SetRunState running: %+v", got)
		}
		// An ended run keeps its end.
		if err := db.FinishRun(ctx, r.ID, RunSucceeded, ""); err != nil {
			t.Fatal(err)
		}
		if err := db.SetRunState(ctx, r.ID, RunWaiting, "late"); err != nil {
			t.Fatal(err)
		}
		if got, _ := db.GetRun(ctx, r.ID); got.State != RunSucceeded || got.Reason != "" {
			t.Fatalf("SetRunState moved an ended run: %+v", got)
		}
	})
}

func TestConformFinishRun(t *testing.T) {
	eachStore(t, func(t *testing.T, s testStore) {
		ctx := context.Background()
		cases := []struct {
			state       string
			started     bool
			queuedEnd   string // what the queued actions become
			unfinishedA string // the running action is left alone
		}{
			{RunSucceeded, true, RunCancelled, RunRunning},
			{RunFailed, true, RunCancelled, RunRunning},
			{RunCancelled, true, RunCancelled, RunRunning},
			{RunSuperseded, true, RunSuperseded, RunRunning},
			{RunSuperseded, false, RunSuperseded, ""},
			{RunCancelled, false, RunCancelled, ""},
		}
		db := conformOpen(t, s, "a")
		for _, c := range cases {
			t.Run(fmt.Sprintf("%s, started %v", c.state, c.started), func(t *testing.T) {
				var r Run
				var as []Action
				if c.started {
					r, as = conformStarted(t, db, "a", "superseded", conformActions...)
					setAction(t, db, as[0], RunSucceeded)
					setAction(t, db, as[1], RunRunning)
				} else {
					r = conformRun(t, db, "a")
				}
				before := time.Now()
				if err := db.FinishRun(ctx, r.ID, c.state, "the reason"); err != nil {
					t.Fatal(err)
				}
				got, err := db.GetRun(ctx, r.ID)
				if err != nil {
					t.Fatal(err)
				}
				if got.State != c.state || got.Reason != "the reason" || got.EndedAt == nil || got.StartedAt == nil {
					t.Fatalf("finished run: %+v", got)
				}
				checkRecent(t, "EndedAt", *got.EndedAt, before, time.Now())
				if !c.started && !got.StartedAt.Equal(*got.EndedAt) {
					t.Fatalf("a run that never started: started %v, ended %v", got.StartedAt, got.EndedAt)
				}
				if c.started && !got.StartedAt.Equal(*r.StartedAt) {
					t.Fatalf("started at %v, then %v", r.StartedAt, got.StartedAt)
				}
				after, _ := db.ListActions(ctx, r.ID)
				for i, a := range after {
					switch {
					case i == 0:
						if a.State != RunSucceeded {
							t.Errorf("a succeeded action became %s", a.State)
						}
					case i == 1:
						if a.State != c.unfinishedA || a.EndedAt != nil {
							t.Errorf("a running action became %s", a.State)
						}
					default:
						if a.State != c.queuedEnd || a.Reason != "not started: run ended" || a.EndedAt == nil || !a.EndedAt.Equal(*got.EndedAt) {
							t.Errorf("a queued action became %+v", a)
						}
					}
				}
				// A run ends once.
				if err := db.FinishRun(ctx, r.ID, RunFailed, "again"); !errors.Is(err, ErrConflict) {
					t.Fatalf("FinishRun of an ended run: %v, want ErrConflict", err)
				}
				if again, _ := db.GetRun(ctx, r.ID); !reflect.DeepEqual(again, got) {
					t.Fatalf("a second FinishRun changed the run: %+v", again)
				}
			})
		}
		if err := db.FinishRun(ctx, 12345, RunFailed, ""); !errors.Is(err, ErrConflict) {
			t.Fatalf("FinishRun of no run: %v, want ErrConflict", err)
		}
	})
}

// The scheduler of an app in superseded mode ends the older queued runs and
// starts the newest: the store lists what is left queued.
func TestConformSupersededRunsLeaveTheNewest(t *testing.T) {
	eachStore(t, func(t *testing.T, s testStore) {
		ctx := context.Background()
		db := conformOpen(t, s, "a", "b")
		var queued []Run
		for range 3 {
			queued = append(queued, conformRun(t, db, "a"))
		}
		other := conformRun(t, db, "b")
		newest := queued[len(queued)-1]
		for _, r := range queued[:len(queued)-1] {
			if err := db.FinishRun(ctx, r.ID, RunSuperseded, fmt.Sprintf("superseded by run %d", newest.ID)); err != nil {
				t.Fatal(err)
			}
		}
		got, err := db.RunsInState(ctx, RunQueued)
		if err != nil || !slices.Equal(runIDs(got), []int64{newest.ID, other.ID}) {
			t.Fatalf("queued after superseding: %v, %v", runIDs(got), err)
		}
		if err := db.StartRun(ctx, newest.ID, "superseded", conformActions); err != nil {
			t.Fatal(err)
		}
		sup, _ := db.RunsInState(ctx, RunSuperseded)
		if !slices.Equal(runIDs(sup), runIDs(queued[:2])) || sup[0].Reason != fmt.Sprintf("superseded by run %d", newest.ID) {
			t.Fatalf("superseded runs: %+v", sup)
		}
	})
}

func TestConformRunsInState(t *testing.T) {
	eachStore(t, func(t *testing.T, s testStore) {
		ctx := context.Background()
		db := conformOpen(t, s, "a", "b")
		q1 := conformRun(t, db, "a")
		r1, _ := conformStarted(t, db, "b", "queued")
		q2 := conformRun(t, db, "b")
		w1, _ := conformStarted(t, db, "a", "queued")
		if err := db.SetRunState(ctx, w1.ID, RunWaiting, ""); err != nil {
			t.Fatal(err)
		}
		f1 := conformRun(t, db, "a")
		if err := db.FinishRun(ctx, f1.ID, RunFailed, ""); err != nil {
			t.Fatal(err)
		}
		cases := []struct {
			states []string
			want   []int64
		}{
			{[]string{RunQueued}, []int64{q1.ID, q2.ID}},
			{[]string{RunQueued, RunRunning, RunWaiting}, []int64{q1.ID, r1.ID, q2.ID, w1.ID}},
			{[]string{RunWaiting, RunFailed}, []int64{w1.ID, f1.ID}},
			{[]string{RunSucceeded}, []int64{}},
			{nil, []int64{}},
		}
		for _, c := range cases {
			got, err := db.RunsInState(ctx, c.states...)
			if err != nil || got == nil || !slices.Equal(runIDs(got), c.want) {
				t.Errorf("RunsInState(%v) = %v, %v; want %v", c.states, runIDs(got), err, c.want)
			}
		}
	})
}

func TestConformUpdateAction(t *testing.T) {
	eachStore(t, func(t *testing.T, s testStore) {
		ctx := context.Background()
		db := conformOpen(t, s, "a")
		_, as := conformStarted(t, db, "a", "queued", conformActions...)
		a := as[0]
		zero, started, ended := 0, nanoTime, nanoTime.Add(1500*time.Nanosecond)
		cases := []struct {
			name string
			set  func(a *Action)
		}{
			{"running", func(a *Action) { a.State, a.StartedAt = RunRunning, &started }},
			{"succeeded with exit code 0", func(a *Action) { a.State, a.ExitCode, a.EndedAt = RunSucceeded, &zero, &ended }},
			{"failed with a reason", func(a *Action) { code := 137; a.State, a.ExitCode, a.Reason = RunFailed, &code, "killed" }},
			{"back to queued", func(a *Action) { a.State, a.ExitCode, a.Reason, a.StartedAt, a.EndedAt = RunQueued, nil, "", nil, nil }},
		}
		for _, c := range cases {
			c.set(&a)
			if err := db.UpdateAction(ctx, a); err != nil {
				t.Fatal(err)
			}
			got, err := db.GetAction(ctx, a.ID)
			if err != nil {
				t.Fatal(err)
			}
			if got.State != a.State || got.Reason != a.Reason || (got.ExitCode == nil) != (a.ExitCode == nil) || (a.ExitCode != nil && *got.ExitCode != *a.ExitCode) {
				t.Fatalf("%s: stored %+v, want %+v", c.name, got, a)
			}
			for _, tm := range []struct {
				what      string
				got, want *time.Time
			}{{"StartedAt", got.StartedAt, a.StartedAt}, {"EndedAt", got.EndedAt, a.EndedAt}} {
				if (tm.got == nil) != (tm.want == nil) {
					t.Fatalf("%s: %s = %v, want %v", c.name, tm.what, tm.got, tm.want)
				}
				if tm.want != nil {
					checkStoredTime(t, c.name+": "+tm.what, *tm.got, *tm.want)
				}
			}
			// The other actions are left alone.
			if other, _ := db.GetAction(ctx, as[1].ID); !reflect.DeepEqual(other, as[1]) {
				t.Fatalf("%s: another action changed: %+v", c.name, other)
			}
		}
		// An action that is not there is no error.
		if err := db.UpdateAction(ctx, Action{ID: 98765, State: RunFailed}); err != nil {
			t.Fatal(err)
		}
	})
}

func TestConformRetryRun(t *testing.T) {
	eachStore(t, func(t *testing.T, s testStore) {
		ctx := context.Background()
		cases := []struct {
			name    string
			state   string // the run's state before the retry
			expired bool
			stage   int
			want    []string // action states after, in listed order; nil: refused
			refusal string   // in the refusal's message
		}{
			{name: "failed run from its failed stage", state: RunFailed, stage: 1,
				want: []string{"succeeded", "succeeded", "succeeded", "queued", "queued", "queued"}},
			{name: "cancelled run from the first stage", state: RunCancelled, stage: 0,
				want: []string{"succeeded", "succeeded", "queued", "queued", "queued", "queued"}},
			{name: "from the last stage", state: RunFailed, stage: 2,
				want: []string{"succeeded", "succeeded", "succeeded", "failed", "queued", "queued"}},
			{name: "succeeded run", state: RunSucceeded, stage: 0, refusal: "only those can be retried"},
			{name: "superseded run", state: RunSuperseded, stage: 0, refusal: "only those can be retried"},
			{name: "running run", state: RunRunning, stage: 0, refusal: "only those can be retried"},
			{name: "expired run", state: RunFailed, expired: true, stage: 0, refusal: "expired"},
		}
		db := conformOpen(t, s, "a")
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				r, as := conformStarted(t, db, "a", "queued", conformActions...)
				// Build succeeded; in Test, unit succeeded and lint failed.
				for i, st := range []string{RunSucceeded, RunSucceeded, RunSucceeded, RunFailed} {
					code := 0
					if st == RunFailed {
						code = 1
					}
					a := setAction(t, db, as[i], st)
					a.ExitCode = &code
					if err := db.UpdateAction(ctx, a); err != nil {
						t.Fatal(err)
					}
				}
				for _, a := range as {
					if err := db.SetActionReport(ctx, a.ID, "summary of "+a.Name, []Annotation{{Level: "notice", Message: a.Name}}); err != nil {
						t.Fatal(err)
					}
				}
				if c.state != RunRunning {
					if err := db.FinishRun(ctx, r.ID, c.state, "ended"); err != nil {
						t.Fatal(err)
					}
				}
				if c.expired {
					if _, err := db.write.ExecContext(ctx, `UPDATE runs SET expired_at = ? WHERE id = ?`, toDB(now()), r.ID); err != nil {
						t.Fatal(err)
					}
				}
				before, _ := db.GetRun(ctx, r.ID)
				beforeActions, _ := db.ListActions(ctx, r.ID)
				err := db.RetryRun(ctx, r.ID, c.stage)
				if c.want == nil {
					if !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), c.refusal) {
						t.Fatalf("RetryRun = %v, want a conflict saying %q", err, c.refusal)
					}
					after, _ := db.GetRun(ctx, r.ID)
					afterActions, _ := db.ListActions(ctx, r.ID)
					if !reflect.DeepEqual(after, before) || !reflect.DeepEqual(afterActions, beforeActions) {
						t.Fatal("a refused retry changed the run")
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				got, _ := db.GetRun(ctx, r.ID)
				if got.State != RunQueued || got.Reason != "" || got.EndedAt != nil || got.StartedAt == nil || !got.StartedAt.Equal(*r.StartedAt) {
					t.Fatalf("retried run %+v", got)
				}
				after, _ := db.ListActions(ctx, r.ID)
				var states []string
				for i, a := range after {
					states = append(states, a.State)
					if a.State == RunQueued && (a.ExitCode != nil || a.StartedAt != nil || a.EndedAt != nil || a.Reason != "" || a.Summary != "" || a.Annotations != nil) {
						t.Errorf("requeued action %+v", a)
					}
					if a.State != RunQueued && !reflect.DeepEqual(a, beforeActions[i]) {
						t.Errorf("action kept changed: %+v, was %+v", a, beforeActions[i])
					}
				}
				if !slices.Equal(states, c.want) {
					t.Fatalf("actions after retry: %v, want %v", states, c.want)
				}
				if got, _ := db.RunsInState(ctx, RunQueued); !slices.Contains(runIDs(got), r.ID) {
					t.Fatalf("queued runs after retry: %v, want %d among them", runIDs(got), r.ID)
				}
			})
		}
		if err := db.RetryRun(ctx, 4242, 0); !errors.Is(err, ErrConflict) {
			t.Fatalf("RetryRun of no run: %v, want ErrConflict", err)
		}
	})
}

func TestConformRecoverInterrupted(t *testing.T) {
	eachStore(t, func(t *testing.T, s testStore) {
		ctx := context.Background()
		db := conformOpen(t, s, "a")
		deadline := now().Add(time.Hour)
		approval := func(r Run, a Action) Approval {
			t.Helper()
			ap, _, err := db.OpenApproval(ctx, Approval{RunID: r.ID, ActionID: a.ID, Stage: a.Stage, Action: a.Name, Deadline: deadline}, false)
			if err != nil {
				t.Fatal(err)
			}
			return ap
		}
		// 1: running, an action running and others queued: fails.
		busy, busyActions := conformStarted(t, db, "a", "queued", conformActions...)
		setAction(t, db, busyActions[0], RunSucceeded)
		setAction(t, db, busyActions[1], RunRunning)
		// 2: running, only an approval waits: waits again.
		wait, waitActions := conformStarted(t, db, "a", "queued", conformActions...)
		setAction(t, db, waitActions[4], RunWaiting)
		waitApproval := approval(wait, waitActions[4])
		// 3: waiting for an approval already: stays waiting.
		still, stillActions := conformStarted(t, db, "a", "queued", conformActions...)
		setAction(t, db, stillActions[4], RunWaiting)
		stillApproval := approval(still, stillActions[4])
		if err := db.SetRunState(ctx, still.ID, RunWaiting, ""); err != nil {
			t.Fatal(err)
		}
		// 4: an approval waits but another action runs: fails, and its approval is cancelled.
		mixed, mixedActions := conformStarted(t, db, "a", "parallel", conformActions...)
		setAction(t, db, mixedActions[4], RunWaiting)
		setAction(t, db, mixedActions[5], RunRunning)
		mixedApproval := approval(mixed, mixedActions[4])
		// 5: waiting at a disabled transition, no action unfinished but queued ones: fails.
		gate, _ := conformStarted(t, db, "a", "queued", conformActions...)
		if err := db.SetRunState(ctx, gate.ID, RunWaiting, "transition disabled"); err != nil {
			t.Fatal(err)
		}
		// 6 and 7: queued and ended runs are left alone.
		queued := conformRun(t, db, "a")
		done, _ := conformStarted(t, db, "a", "queued", conformActions...)
		if err := db.FinishRun(ctx, done.ID, RunSucceeded, ""); err != nil {
			t.Fatal(err)
		}
		doneBefore, _ := db.GetRun(ctx, done.ID)
		byName := func(as []Action, name string) Action {
			for _, a := range as {
				if a.Name == name {
					return a
				}
			}
			t.Fatalf("no action %s", name)
			return Action{}
		}
		// 8: the deploy action runs and has recorded its deployment: stays
		// running, for the engine to follow the deployment again.
		follows, followsActions := conformStarted(t, db, "a", "queued", conformActions...)
		setAction(t, db, byName(followsActions, "deploy"), RunRunning)
		if err := db.SetActionDeployment(ctx, byName(followsActions, "deploy").ID, 42); err != nil {
			t.Fatal(err)
		}
		// 9: the deploy action runs but started no deployment yet: fails.
		early, earlyActions := conformStarted(t, db, "a", "queued", conformActions...)
		setAction(t, db, byName(earlyActions, "deploy"), RunRunning)
		// 10: a deployment is followed but a build runs beside it: fails.
		beside, besideActions := conformStarted(t, db, "a", "parallel", conformActions...)
		setAction(t, db, byName(besideActions, "deploy"), RunRunning)
		if err := db.SetActionDeployment(ctx, byName(besideActions, "deploy").ID, 43); err != nil {
			t.Fatal(err)
		}
		setAction(t, db, byName(besideActions, "lint"), RunRunning)

		before := time.Now()
		n, err := db.RecoverInterrupted(ctx, "control plane restarted")
		if err != nil {
			t.Fatal(err)
		}
		if n != 5 {
			t.Fatalf("RecoverInterrupted ended %d runs, want 5", n)
		}
		for _, c := range []struct {
			run    Run
			state  string
			deploy string
		}{{follows, RunRunning, RunRunning}, {early, RunFailed, RunFailed}, {beside, RunFailed, RunFailed}} {
			got, _ := db.GetRun(ctx, c.run.ID)
			as, _ := db.ListActions(ctx, c.run.ID)
			if d := byName(as, "deploy"); got.State != c.state || d.State != c.deploy {
				t.Errorf("run %d: %s, its deploy action %s; want %s, %s", got.ID, got.State, d.State, c.state, c.deploy)
			}
		}
		if as, _ := db.ListActions(ctx, follows.ID); byName(as, "deploy").DeploymentID != 42 {
			t.Errorf("the followed deployment is not kept: %+v", byName(as, "deploy"))
		}
		for _, c := range []struct {
			run     Run
			state   string
			actions []string
		}{
			{busy, RunFailed, []string{"succeeded", "failed", "cancelled", "cancelled", "cancelled", "cancelled"}},
			{wait, RunWaiting, []string{"queued", "queued", "queued", "queued", "waiting", "queued"}},
			{still, RunWaiting, []string{"queued", "queued", "queued", "queued", "waiting", "queued"}},
			{mixed, RunFailed, []string{"cancelled", "cancelled", "cancelled", "cancelled", "failed", "failed"}},
			{gate, RunFailed, []string{"cancelled", "cancelled", "cancelled", "cancelled", "cancelled", "cancelled"}},
			{queued, RunQueued, []string{}},
			{doneBefore, RunSucceeded, []string{"cancelled", "cancelled", "cancelled", "cancelled", "cancelled", "cancelled"}},
		} {
			got, _ := db.GetRun(ctx, c.run.ID)
			as, _ := db.ListActions(ctx, c.run.ID)
			states := []string{}
			for _, a := range as {
				states = append(states, a.State)
			}
			if got.State != c.state || !slices.Equal(states, c.actions) {
				t.Errorf("run %d: %s with actions %v; want %s with %v", got.ID, got.State, states, c.state, c.actions)
			}
			if c.state == RunFailed {
				if got.Reason != "control plane restarted" || got.EndedAt == nil {
					t.Errorf("run %d ended as %+v", got.ID, got)
				} else {
					checkRecent(t, "EndedAt", *got.EndedAt, before, time.Now())
				}
				for _, a := range as {
					if a.State == RunFailed && a.Reason != "control plane restarted" || a.EndedAt == nil {
						t.Errorf("action %+v", a)
					}
				}
			}
		}
		if got, _ := db.GetRun(ctx, done.ID); !reflect.DeepEqual(got, doneBefore) {
			t.Errorf("an ended run changed: %+v", got)
		}
		for _, c := range []struct {
			ap    Approval
			state string
		}{{waitApproval, ApprovalPending}, {stillApproval, ApprovalPending}, {mixedApproval, ApprovalCancelled}} {
			got, _ := db.GetApproval(ctx, c.ap.ID)
			if got.State != c.state {
				t.Errorf("approval %d: %s, want %s", c.ap.ID, got.State, c.state)
			}
			if c.state == ApprovalCancelled && (got.DecidedBy != "slipway" || got.Comment != "control plane restarted" || got.DecidedAt == nil) {
				t.Errorf("cancelled approval %+v", got)
			}
		}
		// Nothing is left to recover.
		if n, err := db.RecoverInterrupted(ctx, "again"); n != 0 || err != nil {
			t.Fatalf("second RecoverInterrupted = %d, %v", n, err)
		}
	})
}

func TestConformLogLines(t *testing.T) {
	eachStore(t, func(t *testing.T, s testStore) {
		ctx := context.Background()
		db := conformOpen(t, s, "a")
		r, as := conformStarted(t, db, "a", "queued", conformActions...)
		other, otherActions := conformStarted(t, db, "a", "queued", conformActions...)
		if got, err := db.ListLog(ctx, r.ID, 0, 0); err != nil || got == nil || len(got) != 0 {
			t.Fatalf("ListLog of no lines = %v, %v; want an empty list", got, err)
		}
		bell := db.LogAppended()
		var want []LogLine
		batch := func(a Action, n int) {
			t.Helper()
			var lines []LogLine
			for i := range n {
				lines = append(lines, LogLine{At: nanoTime.Add(time.Duration(len(want)+i) * time.Millisecond), Line: fmt.Sprintf("%s line %d ünïcödé\t'quoted' ?", a.Name, i)})
			}
			if err := db.AppendLog(ctx, a.ID, lines); err != nil {
				t.Fatal(err)
			}
			for _, l := range lines {
				want = append(want, LogLine{ActionID: a.ID, At: l.At.UTC().Truncate(time.Microsecond), Line: l.Line})
			}
		}
		batch(as[0], 5)
		select {
		case <-bell:
		default:
			t.Fatal("AppendLog did not ring the bell")
		}
		if err := db.AppendLog(ctx, otherActions[0].ID, []LogLine{{At: now(), Line: "another run"}}); err != nil {
			t.Fatal(err)
		}
		batch(as[1], 3)
		batch(as[0], 2)
		if err := db.AppendLog(ctx, as[2].ID, nil); err != nil {
			t.Fatalf("an empty batch: %v", err)
		}
		if err := db.AppendLog(ctx, 99999, []LogLine{{At: now(), Line: "x"}}); err == nil {
			t.Fatal("lines of no action were stored")
		}

		all, err := db.ListLog(ctx, r.ID, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(all) != len(want) {
			t.Fatalf("%d lines, want %d", len(all), len(want))
		}
		for i := range all {
			if i > 0 && all[i].ID <= all[i-1].ID {
				t.Fatalf("lines out of order: %d after %d", all[i].ID, all[i-1].ID)
			}
			w := want[i]
			w.ID = all[i].ID
			if !reflect.DeepEqual(all[i], w) {
				t.Fatalf("line %d = %+v, want %+v", i, all[i], w)
			}
		}
		cases := []struct {
			after int64
			limit int
			want  []LogLine
		}{
			{0, 3, all[:3]},
			{all[2].ID, 0, all[3:]},
			{all[2].ID, 4, all[3:7]},
			{all[len(all)-1].ID, 0, []LogLine{}},
			{0, 100000, all}, // more than the most is the most
		}
		for _, c := range cases {
			got, err := db.ListLog(ctx, r.ID, c.after, c.limit)
			if err != nil || !reflect.DeepEqual(got, c.want) {
				t.Errorf("ListLog(after %d, limit %d) = %d lines (%v), want %d", c.after, c.limit, len(got), err, len(c.want))
			}
		}
		if got, _ := db.ListLog(ctx, other.ID, 0, 0); len(got) != 1 || got[0].Line != "another run" {
			t.Fatalf("the other run's lines: %+v", got)
		}
		// One action's lines, through its own index.
		var first []LogLine
		for _, l := range all {
			if l.ActionID == as[0].ID {
				first = append(first, l)
			}
		}
		if got, err := db.ListActionLog(ctx, as[0].ID, 0, 0); err != nil || !reflect.DeepEqual(got, first) {
			t.Fatalf("ListActionLog = %d lines (%v), want %d", len(got), err, len(first))
		}
		if got, _ := db.ListActionLog(ctx, as[0].ID, first[4].ID, 1); !reflect.DeepEqual(got, first[5:6]) {
			t.Fatalf("ListActionLog after line 5 = %+v, want %+v", got, first[5:6])
		}
		tail, n, err := db.ActionLogTail(ctx, as[0].ID, 3)
		if err != nil || n != len(first) || !reflect.DeepEqual(tail, first[len(first)-3:]) {
			t.Fatalf("ActionLogTail = %+v, %d, %v; want the last 3 of %d", tail, n, err, len(first))
		}
		if tail, n, err := db.ActionLogTail(ctx, as[2].ID, 3); err != nil || n != 0 || len(tail) != 0 {
			t.Fatalf("ActionLogTail of no lines = %+v, %d, %v", tail, n, err)
		}
		// Earlier lines on demand: the n before a line, and how many precede them.
		for _, c := range []struct {
			name        string
			before      int64
			n           int
			want        []LogLine
			wantPreceed int
		}{
			{"two before line 5", first[4].ID, 2, first[2:4], 2},
			{"more than there are", first[2].ID, 10, first[:2], 0},
			{"none asked: the count", first[4].ID, 0, []LogLine{}, 4},
			{"before the first", first[0].ID, 3, []LogLine{}, 0},
		} {
			got, preceding, err := db.ActionLogBefore(ctx, as[0].ID, c.before, c.n)
			if err != nil || preceding != c.wantPreceed || !reflect.DeepEqual(got, c.want) {
				t.Errorf("ActionLogBefore %s = %d lines, %d preceding (%v); want %d, %d", c.name, len(got), preceding, err, len(c.want), c.wantPreceed)
			}
		}
	})
}

// Runners append at once; every line is kept, each batch in its order.
func TestConformAppendLogConcurrently(t *testing.T) {
	eachStore(t, func(t *testing.T, s testStore) {
		ctx := context.Background()
		db := conformOpen(t, s, "a")
		r, as := conformStarted(t, db, "a", "parallel", conformActions...)
		const batches, per = 4, 25
		errs := race(t, db, func(i int) error {
			a := as[i%len(as)]
			for b := range batches {
				var lines []LogLine
				for j := range per {
					lines = append(lines, LogLine{At: now(), Line: fmt.Sprintf("%d %d", i, b*per+j)})
				}
				if err := db.AppendLog(ctx, a.ID, lines); err != nil {
					return err
				}
			}
			return nil
		})
		for _, err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		all, err := db.ListLog(ctx, r.ID, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(all) != racers*batches*per {
			t.Fatalf("%d lines stored, want %d", len(all), racers*batches*per)
		}
		next := make([]int, racers)
		for _, l := range all {
			var i, n int
			if _, err := fmt.Sscanf(l.Line, "%d %d", &i, &n); err != nil {
				t.Fatal(err)
			}
			if n != next[i] || l.ActionID != as[i%len(as)].ID {
				t.Fatalf("writer %d's line %d (action %d) came where line %d was due", i, n, l.ActionID, next[i])
			}
			next[i]++
		}
	})
}

func TestConformArtifacts(t *testing.T) {
	eachStore(t, func(t *testing.T, s testStore) {
		ctx := context.Background()
		db := conformOpen(t, s, "a")
		r, as := conformStarted(t, db, "a", "queued", conformActions...)
		other := conformRun(t, db, "a")
		if got, err := db.ListArtifacts(ctx, r.ID); err != nil || got == nil || len(got) != 0 {
			t.Fatalf("ListArtifacts of none = %v, %v; want an empty list", got, err)
		}
		before := time.Now()
		put := func(a Artifact) {
			t.Helper()
			if err := db.PutArtifact(ctx, a); err != nil {
				t.Fatal(err)
			}
			time.Sleep(2 * time.Millisecond) // each its own created_at
		}
		put(Artifact{RunID: r.ID, Name: "b-image", ActionID: as[1].ID, SHA256: "sha-1", Size: 10})
		put(Artifact{RunID: r.ID, Name: "a-report", ActionID: as[0].ID, SHA256: "sha-2", Size: 1 << 40})
		put(Artifact{RunID: other.ID, Name: "b-image", SHA256: "sha-9", Size: 1})
		// Putting a name again replaces it, and its time: it lists last.
		put(Artifact{RunID: r.ID, Name: "b-image", SHA256: "sha-3", Size: 30})
		got, err := db.ListArtifacts(ctx, r.ID)
		if err != nil {
			t.Fatal(err)
		}
		want := []Artifact{{RunID: r.ID, Name: "a-report", ActionID: as[0].ID, SHA256: "sha-2", Size: 1 << 40}, {RunID: r.ID, Name: "b-image", SHA256: "sha-3", Size: 30}}
		if len(got) != len(want) {
			t.Fatalf("artifacts %+v, want %+v", got, want)
		}
		for i := range got {
			checkRecent(t, "artifact CreatedAt", got[i].CreatedAt, before, time.Now())
			want[i].CreatedAt = got[i].CreatedAt
		}
		if !reflect.DeepEqual(got, want) || !got[0].CreatedAt.Before(got[1].CreatedAt) {
			t.Fatalf("artifacts %+v\nwant %+v", got, want)
		}
		if o, _ := db.ListArtifacts(ctx, other.ID); len(o) != 1 || o[0].SHA256 != "sha-9" || o[0].ActionID != 0 {
			t.Fatalf("the other run's artifacts: %+v", o)
		}
		if err := db.PutArtifact(ctx, Artifact{RunID: 5555, Name: "x", SHA256: "s"}); err == nil {
			t.Fatal("an artifact of no run was stored")
		}
	})
}

// A run starts, ends and is retried once, however many servers try at once.
func TestConformRunTransitionsConcurrently(t *testing.T) {
	eachStore(t, func(t *testing.T, s testStore) {
		ctx := context.Background()
		db := conformOpen(t, s, "a")
		t.Run("start", func(t *testing.T) {
			r := conformRun(t, db, "a")
			errs := race(t, db, func(i int) error {
				return db.StartRun(ctx, r.ID, fmt.Sprintf("mode-%d", i), conformActions)
			})
			winner := oneWinner(t, errs, ErrConflict)
			got, _ := db.GetRun(ctx, r.ID)
			as, _ := db.ListActions(ctx, r.ID)
			if got.State != RunRunning || got.Mode != fmt.Sprintf("mode-%d", winner) || len(as) != len(conformActions) {
				t.Fatalf("run %+v with %d actions; want running in mode-%d with %d", got, len(as), winner, len(conformActions))
			}
		})
		t.Run("finish", func(t *testing.T) {
			r, _ := conformStarted(t, db, "a", "queued", conformActions...)
			states := []string{RunSucceeded, RunFailed, RunCancelled, RunSuperseded}
			errs := race(t, db, func(i int) error {
				return db.FinishRun(ctx, r.ID, states[i%len(states)], fmt.Sprint(i))
			})
			winner := oneWinner(t, errs, ErrConflict)
			got, _ := db.GetRun(ctx, r.ID)
			if got.State != states[winner%len(states)] || got.Reason != fmt.Sprint(winner) {
				t.Fatalf("run %+v; want the winner %d's end", got, winner)
			}
		})
		// Servers scheduling an app in superseded mode at once, as the
		// engine does: end the older queued runs, start the newest. One
		// run of the app runs; StartRun's compare-and-set is what holds it.
		t.Run("supersede", func(t *testing.T) {
			older := []Run{conformRun(t, db, "a"), conformRun(t, db, "a")}
			newest := conformRun(t, db, "a")
			errs := race(t, db, func(i int) error {
				for _, r := range older {
					if err := db.FinishRun(ctx, r.ID, RunSuperseded, fmt.Sprintf("superseded by run %d", newest.ID)); err != nil && !errors.Is(err, ErrConflict) {
						return fmt.Errorf("supersede: %w", err) // not a conflict: fails the test
					}
				}
				return db.StartRun(ctx, newest.ID, "superseded", conformActions)
			})
			oneWinner(t, errs, ErrConflict)
			for _, r := range older {
				if got, _ := db.GetRun(ctx, r.ID); got.State != RunSuperseded {
					t.Fatalf("older run %+v", got)
				}
			}
			got, _ := db.GetRun(ctx, newest.ID)
			as, _ := db.ListActions(ctx, newest.ID)
			if got.State != RunRunning || len(as) != len(conformActions) {
				t.Fatalf("newest run %+v with %d actions", got, len(as))
			}
		})
		t.Run("retry", func(t *testing.T) {
			r, _ := conformStarted(t, db, "a", "queued", conformActions...)
			if err := db.FinishRun(ctx, r.ID, RunFailed, ""); err != nil {
				t.Fatal(err)
			}
			errs := race(t, db, func(i int) error {
				if err := db.RetryRun(ctx, r.ID, 0); err != nil {
					return err
				}
				return db.StartRun(ctx, r.ID, "queued", nil)
			})
			oneWinner(t, errs, ErrConflict)
			if got, _ := db.GetRun(ctx, r.ID); got.State != RunRunning {
				t.Fatalf("run %+v, want running once", got)
			}
		})
	})
}

func TestConformVariables(t *testing.T) {
	eachStore(t, func(t *testing.T, s testStore) {
		ctx := context.Background()
		db := conformOpen(t, s, "a")
		r := conformRun(t, db, "a")
		other := conformRun(t, db, "a")
		if got, err := db.ListVariables(ctx, r.ID); err != nil || got == nil || len(got) != 0 {
			t.Fatalf("ListVariables of none = %v, %v; want an empty list", got, err)
		}
		steps := [][]Variable{
			{{"build", "TAG", "v1"}, {"build", "SHA", "abc"}},
			{{"test", "COVERAGE", "81%"}},
			{{"build", "TAG", "v2"}, {"deploy", "URL", "https://x?y='z'"}}, // TAG keeps its place
			{},
		}
		for _, vs := range steps {
			if err := db.PutVariables(ctx, r.ID, vs); err != nil {
				t.Fatal(err)
			}
		}
		if err := db.PutVariables(ctx, other.ID, []Variable{{"build", "TAG", "other"}}); err != nil {
			t.Fatal(err)
		}
		want := []Variable{{"build", "TAG", "v2"}, {"build", "SHA", "abc"}, {"test", "COVERAGE", "81%"}, {"deploy", "URL", "https://x?y='z'"}}
		if got, err := db.ListVariables(ctx, r.ID); err != nil || !reflect.DeepEqual(got, want) {
			t.Fatalf("ListVariables = %+v, %v\nwant %+v", got, err, want)
		}
		// A batch is stored whole or not at all.
		if err := db.PutVariables(ctx, 7777, []Variable{{"a", "B", "c"}}); err == nil {
			t.Fatal("variables of no run were stored")
		}
	})
}

func TestConformReports(t *testing.T) {
	eachStore(t, func(t *testing.T, s testStore) {
		ctx := context.Background()
		db := conformOpen(t, s, "a")
		r, as := conformStarted(t, db, "a", "queued", conformActions...)
		if got, err := db.ListReports(ctx, r.ID); err != nil || got == nil || len(got) != 0 {
			t.Fatalf("ListReports of none = %v, %v; want an empty list", got, err)
		}
		puts := []Report{
			{ActionID: as[1].ID, Group: "unit", Total: 3, Passed: 1, Failed: 2, FailedTests: []string{"TestA", "TestB"}},
			{ActionID: as[0].ID, Group: "z", Total: 1, Passed: 1},
			{ActionID: as[0].ID, Group: "a", Total: 2, Skipped: 2, FailedTests: []string{}},
			{ActionID: as[1].ID, Group: "unit", Total: 4, Passed: 4}, // replaces the first
		}
		for _, p := range puts {
			if err := db.PutReport(ctx, r.ID, p); err != nil {
				t.Fatal(err)
			}
		}
		want := []Report{
			{ActionID: as[0].ID, Group: "a", Total: 2, Skipped: 2, FailedTests: []string{}},
			{ActionID: as[0].ID, Group: "z", Total: 1, Passed: 1, FailedTests: []string{}},
			{ActionID: as[1].ID, Group: "unit", Total: 4, Passed: 4, FailedTests: []string{}},
		}
		if as[0].ID > as[1].ID { // ordered by action id
			want = slices.Concat(want[2:], want[:2])
		}
		got, err := db.ListReports(ctx, r.ID)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Fatalf("ListReports = %+v, %v\nwant %+v", got, err, want)
		}
		if err := db.PutReport(ctx, r.ID, Report{ActionID: as[2].ID, Group: "g", Failed: 1, FailedTests: []string{"TestC"}}); err != nil {
			t.Fatal(err)
		}
		got, _ = db.ListReports(ctx, r.ID)
		i := slices.IndexFunc(got, func(r Report) bool { return r.Group == "g" })
		if len(got) != 4 || i < 0 || !slices.Equal(got[i].FailedTests, []string{"TestC"}) || got[i].Failed != 1 {
			t.Fatalf("reports %+v", got)
		}
	})
}

func TestConformTransitions(t *testing.T) {
	eachStore(t, func(t *testing.T, s testStore) {
		ctx := context.Background()
		db := conformOpen(t, s, "a", "b")
		if got, err := db.ListTransitions(ctx, "a"); err != nil || got == nil || len(got) != 0 {
			t.Fatalf("ListTransitions of none = %v, %v; want an empty list", got, err)
		}
		if _, err := db.GetTransition(ctx, "a", "Deploy"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("GetTransition of an enabled one: %v, want ErrNotFound", err)
		}
		before := time.Now()
		for _, tr := range []Transition{
			{App: "a", Stage: "Test", Reason: "flaky", DisabledBy: "ann"},
			{App: "a", Stage: "Deploy", Reason: "freeze", DisabledBy: "bob", DisabledAt: nanoTime}, // the store's time wins
			{App: "b", Stage: "Deploy", Reason: "other app", DisabledBy: "cy"},
			{App: "a", Stage: "Test", Reason: "still flaky", DisabledBy: "dee"}, // replaces
		} {
			if err := db.DisableTransition(ctx, tr); err != nil {
				t.Fatal(err)
			}
		}
		got, err := db.ListTransitions(ctx, "a")
		if err != nil || len(got) != 2 {
			t.Fatalf("ListTransitions = %+v, %v", got, err)
		}
		for _, tr := range got {
			checkRecent(t, "DisabledAt", tr.DisabledAt, before, time.Now())
			one, err := db.GetTransition(ctx, "a", tr.Stage)
			if err != nil || !reflect.DeepEqual(one, tr) {
				t.Fatalf("GetTransition = %+v, %v; listed %+v", one, err, tr)
			}
		}
		if got[0].Stage != "Deploy" || got[0].Reason != "freeze" || got[0].DisabledBy != "bob" ||
			got[1].Stage != "Test" || got[1].Reason != "still flaky" || got[1].DisabledBy != "dee" {
			t.Fatalf("transitions %+v", got)
		}
		if err := db.EnableTransition(ctx, "a", "Deploy"); err != nil {
			t.Fatal(err)
		}
		if err := db.EnableTransition(ctx, "a", "Deploy"); err != nil {
			t.Fatalf("enabling an enabled transition: %v", err)
		}
		if _, err := db.GetTransition(ctx, "a", "Deploy"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("after EnableTransition: %v", err)
		}
		if b, err := db.GetTransition(ctx, "b", "Deploy"); err != nil || b.Reason != "other app" {
			t.Fatalf("the other app's transition: %+v, %v", b, err)
		}
		if err := db.DisableTransition(ctx, Transition{App: "nope", Stage: "x"}); err == nil {
			t.Fatal("a transition of no app was disabled")
		}
	})
}

// A build that prints a NUL or bytes that are not UTF-8 keeps its log on
// both engines (PostgreSQL's text refuses them), each shown as U+FFFD.
func TestConformLogLinesOfAnyBytes(t *testing.T) {
	eachStore(t, func(t *testing.T, s testStore) {
		ctx := context.Background()
		db := conformOpen(t, s, "a")
		r, as := conformStarted(t, db, "a", "queued", conformActions...)
		if err := db.AppendLog(ctx, as[0].ID, []LogLine{{At: now(), Line: "nul\x00here"}, {At: now(), Line: "latin1 caf\xe9"}, {At: now(), Line: "fine"}}); err != nil {
			t.Fatal(err)
		}
		got, err := db.ListLog(ctx, r.ID, 0, 0)
		if err != nil || len(got) != 3 || got[0].Line != "nul\uFFFDhere" || got[1].Line != "latin1 caf\uFFFD" || got[2].Line != "fine" {
			t.Fatalf("%+v %v", got, err)
		}
	})
}

func TestConformSetActionReport(t *testing.T) {
	eachStore(t, func(t *testing.T, s testStore) {
		ctx := context.Background()
		db := conformOpen(t, s, "a")
		_, as := conformStarted(t, db, "a", "queued", conformActions...)
		a, other := as[0], as[1]
		if a.Summary != "" || a.Annotations != nil {
			t.Fatalf("a new action has a report: %+v", a)
		}
		notes := []Annotation{
			{Level: "error", Message: "expected 2, got 3", Title: "TestAdd", File: "calc/add_test.go", Line: 12, Col: 4},
			{Level: "warning", Message: "deprecated: use \"x\"\nnext line"},
			{Level: "notice", Message: "ünïcödé ✓"},
		}
		summary := "## Results\n\n| test | ok |\n|---|---|\n| add | ❌ |\n"
		check := func(what, summary string, notes []Annotation) {
			t.Helper()
			got, err := db.GetAction(ctx, a.ID)
			if err != nil {
				t.Fatal(err)
			}
			listed, err := db.ListActions(ctx, a.RunID)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(listed[0], got) {
				t.Fatalf("%s: ListActions has %+v, GetAction %+v", what, listed[0], got)
			}
			if got.Summary != summary || !reflect.DeepEqual(got.Annotations, notes) {
				t.Fatalf("%s: summary %q (%d bytes), annotations %+v\nwant %q (%d bytes), %+v",
					what, limitText(got.Summary), len(got.Summary), got.Annotations, limitText(summary), len(summary), notes)
			}
			if o, _ := db.GetAction(ctx, other.ID); !reflect.DeepEqual(o, other) {
				t.Fatalf("%s: another action changed: %+v", what, o)
			}
		}

		if err := db.SetActionReport(ctx, a.ID, summary, notes); err != nil {
			t.Fatal(err)
		}
		check("set", summary, notes)

		// A state update, to the end and on a retry, leaves the report.
		a = setAction(t, db, a, RunRunning)
		check("running", summary, notes)
		code := 1
		a.ExitCode, a.Reason = &code, "exit 1"
		a = setAction(t, db, a, RunFailed)
		check("failed", summary, notes)

		// The report goes to the API as it is stored, and a missing one not at all.
		got, _ := db.GetAction(ctx, a.ID)
		b, err := json.Marshal(got)
		if err != nil || !strings.Contains(string(b), `"summary":"## Results`) || !strings.Contains(string(b), `"annotations":[{"level":"error","message":"expected 2, got 3","title":"TestAdd","file":"calc/add_test.go","line":12,"col":4},{"level":"warning"`) {
			t.Fatalf("action as JSON: %s (%v)", b, err)
		}
		if b, _ := json.Marshal(other); strings.Contains(string(b), "summary") || strings.Contains(string(b), "annotations") {
			t.Fatalf("action without a report as JSON: %s", b)
		}

		// A report replaces the last; the summary or the annotations alone.
		if err := db.SetActionReport(ctx, a.ID, "", notes[:1]); err != nil {
			t.Fatal(err)
		}
		check("annotations only", "", notes[:1])
		if err := db.SetActionReport(ctx, a.ID, "just text", nil); err != nil {
			t.Fatal(err)
		}
		check("summary only", "just text", nil)
		if err := db.SetActionReport(ctx, a.ID, "", []Annotation{}); err != nil {
			t.Fatal(err)
		}
		check("cleared", "", nil)

		// Bounds: 1 MiB of summary, cut at a character; the first 100 annotations.
		exact := strings.Repeat("x", MaxActionSummary)
		if err := db.SetActionReport(ctx, a.ID, exact, nil); err != nil {
			t.Fatal(err)
		}
		check("summary of exactly 1 MiB", exact, nil)
		long := strings.Repeat("y", MaxActionSummary-1) + "é" + strings.Repeat("z", 5000)
		many := make([]Annotation, 150)
		for i := range many {
			many[i] = Annotation{Level: "warning", Message: fmt.Sprintf("warning %d", i), Line: i + 1}
		}
		if err := db.SetActionReport(ctx, a.ID, long, many); err != nil {
			t.Fatal(err)
		}
		cut := strings.Repeat("y", MaxActionSummary-1) + "\n\n(summary truncated at 1 MiB)"
		check("too much", cut, many[:MaxActionAnnotations])
		if got, _ := db.GetAction(ctx, a.ID); !strings.HasSuffix(got.Summary, SummaryTruncatedNote) || len(got.Summary) > MaxActionSummary+len(SummaryTruncatedNote) {
			t.Fatalf("truncated summary of %d bytes", len(got.Summary))
		}
		a = setAction(t, db, a, RunSucceeded)
		check("too much, then a state update", cut, many[:MaxActionAnnotations])

		// Any bytes: both engines store what they can hold.
		if err := db.SetActionReport(ctx, a.ID, "nul\x00 and \xff", []Annotation{{Level: "error", Message: "nul\x00 and \xff"}}); err != nil {
			t.Fatal(err)
		}
		check("any bytes", "nul\uFFFD and \uFFFD", []Annotation{{Level: "error", Message: "nul\x00 and \uFFFD"}})

		// An action that is not there is no error, as for UpdateAction.
		if err := db.SetActionReport(ctx, 98765, "s", notes); err != nil {
			t.Fatal(err)
		}
	})
}

// limitText is the start of a long text, for a failure's message.
func limitText(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}
