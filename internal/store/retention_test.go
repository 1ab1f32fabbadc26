package store

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// retentionFixture builds runs for the retention tests, named for the
// cases and ended a number of days before the test's now.
type retentionFixture struct {
	t    *testing.T
	db   *DB
	now  time.Time
	runs map[string]int64
}

// run makes a run of app in state that ended daysAgo days ago (daysAgo < 0:
// a run that has not ended).
func (f *retentionFixture) run(name, app, state string, daysAgo int) int64 {
	f.t.Helper()
	ctx := context.Background()
	r, err := f.db.CreateRun(ctx, Run{App: app, Trigger: "manual", Ref: "refs/heads/main", Commit: "c0ffee"})
	if err != nil {
		f.t.Fatal(err)
	}
	var ended any
	if daysAgo >= 0 {
		ended = toDB(f.now.Add(-time.Duration(daysAgo) * 24 * time.Hour))
	}
	if _, err := f.db.write.ExecContext(ctx, `UPDATE runs SET state = ?, started_at = created_at, ended_at = ? WHERE id = ?`, state, ended, r.ID); err != nil {
		f.t.Fatal(err)
	}
	f.runs[name] = r.ID
	return r.ID
}

// deployRun is run that registered the next revision of family web, as a
// deploy action does.
func (f *retentionFixture) deployRun(name string, daysAgo int) int {
	f.t.Helper()
	id := f.run(name, "a", RunFailed, daysAgo)
	rev, err := f.db.RegisterRunTaskDef(context.Background(), "web", []byte(`{"family":"web"}`), id)
	if err != nil {
		f.t.Fatal(err)
	}
	return rev.Revision
}

func (f *retentionFixture) service(revision int, layout *Layout) {
	f.t.Helper()
	ctx := context.Background()
	s, err := f.db.CreateService(ctx, Service{App: "a", Env: "staging", Name: "web", Family: "web", Revision: revision, Desired: 1})
	if err != nil {
		f.t.Fatal(err)
	}
	s.Layout = layout
	if _, err := f.db.UpdateService(ctx, s); err != nil {
		f.t.Fatal(err)
	}
}

func (f *retentionFixture) deployment(from, to int, state, phase string) {
	f.t.Helper()
	ctx := context.Background()
	d, err := f.db.CreateDeployment(ctx, Deployment{App: "a", Env: "staging", Service: "web", Strategy: "blue-green", Config: "c", Settings: []byte(`{}`),
		FromFamily: "web", FromRevision: from, ToFamily: "web", ToRevision: to, Phase: "Created", CreatedBy: "test"})
	if err != nil {
		f.t.Fatal(err)
	}
	d.State, d.Phase = state, phase
	if err := f.db.UpdateDeployment(ctx, d, ""); err != nil {
		f.t.Fatal(err)
	}
}

func TestExpireRunsSelection(t *testing.T) {
	eachStore(t, func(t *testing.T, s testStore) {
		const keepDays = 30
		cases := []struct {
			name  string
			setup func(f *retentionFixture)
			want  []string // the runs expired
		}{
			{"ended before the retention expires, after stays", func(f *retentionFixture) {
				f.run("old", "a", RunFailed, 40)
				f.run("cancelled", "a", RunCancelled, 31)
				f.run("recent", "a", RunFailed, 29)
			}, []string{"old", "cancelled"}},
			{"runs not ended stay however old", func(f *retentionFixture) {
				f.run("queued", "a", RunQueued, -1)
				f.run("running", "a", RunRunning, -1)
				f.run("waiting", "a", RunWaiting, -1)
				if _, err := f.db.write.ExecContext(context.Background(), `UPDATE runs SET created_at = ?`, toDB(f.now.AddDate(-1, 0, 0))); err != nil {
					t.Fatal(err)
				}
			}, nil},
			{"each app's newest success stays", func(f *retentionFixture) {
				f.run("a-success-old", "a", RunSucceeded, 200)
				f.run("a-success-newest", "a", RunSucceeded, 100)
				f.run("a-failed-later", "a", RunFailed, 50)
				f.run("b-success-only", "b", RunSucceeded, 300)
				f.run("b-superseded", "b", RunSuperseded, 40)
			}, []string{"a-success-old", "a-failed-later", "b-superseded"}},
			{"the revision a service runs keeps its run", func(f *retentionFixture) {
				f.deployRun("registered-1", 100)
				rev := f.deployRun("registered-2", 90)
				f.service(rev, nil)
			}, []string{"registered-1"}},
			{"a blue/green layout's kept blue keeps its run", func(f *retentionFixture) {
				f.deployRun("unused-1", 120)
				blue := f.deployRun("blue-2", 110)
				green := f.deployRun("green-3", 100)
				f.service(green, &Layout{Sets: []TaskSet{{Group: "tg1", Family: "web", Revision: blue, Desired: 1}, {Group: "tg2", Family: "web", Revision: green, Desired: 1}},
					Prod: []Weight{{Group: "tg2", Weight: 100}}, Test: "tg2"})
			}, []string{"unused-1"}},
			{"the rollback target keeps its run", func(f *retentionFixture) {
				r1 := f.deployRun("first-1", 130)
				r2 := f.deployRun("rollback-target-2", 120)
				r3 := f.deployRun("running-3", 110)
				f.service(r1, nil)
				f.deployment(r1, r2, DeployCompleted, "Done")
				f.deployment(r2, r3, DeployCompleted, "Done")
				f.deployment(r3, r3, DeployCompleted, "Done") // a redeployment: the rollback still returns to 2
				if _, err := f.db.write.ExecContext(context.Background(), `UPDATE services SET revision = ?`, r3); err != nil {
					t.Fatal(err)
				}
			}, []string{"first-1"}},
			{"an in-progress deployment keeps both ends", func(f *retentionFixture) {
				f.deployRun("unused-1", 130)
				from := f.deployRun("from-2", 120)
				to := f.deployRun("to-3", 110)
				f.service(from, nil)
				f.deployment(from, to, DeployInProgress, "Deploying")
			}, []string{"unused-1"}},
			{"a revision registered through the API names no run", func(f *retentionFixture) {
				f.run("old", "a", RunFailed, 100)
				rev, err := f.db.RegisterTaskDef(context.Background(), "web", []byte(`{"family":"web"}`), fmt.Sprintf("run %d", f.runs["old"]))
				if err != nil {
					t.Fatal(err)
				}
				f.service(rev.Revision, nil)
			}, []string{"old"}},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				db := openWithApps(t, s, "a", "b")
				f := &retentionFixture{t: t, db: db, now: time.Now(), runs: map[string]int64{}}
				c.setup(f)
				ctx := context.Background()
				got, err := db.ExpireRuns(ctx, f.now.Add(-keepDays*24*time.Hour), 100)
				if err != nil {
					t.Fatal(err)
				}
				names := map[int64]string{}
				for n, id := range f.runs {
					names[id] = n
				}
				var gotNames []string
				for _, id := range got {
					gotNames = append(gotNames, names[id])
				}
				slices.Sort(gotNames)
				want := slices.Clone(c.want)
				slices.Sort(want)
				if !slices.Equal(gotNames, want) {
					t.Fatalf("expired %v, want %v", gotNames, want)
				}
				for n, id := range f.runs {
					r, err := db.GetRun(ctx, id)
					if err != nil {
						t.Fatal(err)
					}
					if (r.ExpiredAt != nil) != slices.Contains(want, n) {
						t.Errorf("run %s: expired_at %v", n, r.ExpiredAt)
					}
				}
				// Marking is once: a second pass finds nothing new.
				if again, err := db.ExpireRuns(ctx, f.now.Add(-keepDays*24*time.Hour), 100); err != nil || len(again) != 0 {
					t.Errorf("second pass: %v %v", again, err)
				}
			})
		}
	})
}

func TestExpireRunsBatches(t *testing.T) {
	eachStore(t, func(t *testing.T, s testStore) {
		db := openWithApps(t, s, "a")
		f := &retentionFixture{t: t, db: db, now: time.Now(), runs: map[string]int64{}}
		for i := range 5 {
			f.run(fmt.Sprint(i), "a", RunFailed, 100)
		}
		ctx := context.Background()
		first, err := db.ExpireRuns(ctx, f.now, 3)
		if err != nil || len(first) != 3 {
			t.Fatalf("first batch: %v %v", first, err)
		}
		rest, err := db.ExpireRuns(ctx, f.now, 3)
		if err != nil || len(rest) != 2 || slices.ContainsFunc(rest, func(id int64) bool { return slices.Contains(first, id) }) {
			t.Fatalf("second batch: %v %v (first %v)", rest, err, first)
		}
	})
}

// An expired run's logs go a batch at a time, its artifact rows after; a
// blob another run's artifact names is reported as named elsewhere until
// that run's rows go too.
func TestPurgeExpiredRun(t *testing.T) {
	eachStore(t, func(t *testing.T, s testStore) {
		db := openWithApps(t, s, "a")
		ctx := context.Background()
		f := &retentionFixture{t: t, db: db, now: time.Now(), runs: map[string]int64{}}
		old := f.run("old", "a", RunQueued, -1)
		other := f.run("other", "a", RunQueued, -1)
		shared, own := strings.Repeat("a", 64), strings.Repeat("b", 64)
		for _, id := range []int64{old, other} {
			if err := db.StartRun(ctx, id, "", []Action{{Stage: "Build", Name: "compile", Type: "build", RunOrder: 1}}); err != nil {
				t.Fatal(err)
			}
			acts, err := db.ListActions(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			n := 3
			if id == old {
				n = runLogDeleteBatch*2 + 7 // three transactions
			}
			lines := make([]LogLine, n)
			for i := range lines {
				lines[i] = LogLine{At: f.now, Line: "héllo"} // 6 bytes
			}
			if err := db.AppendLog(ctx, acts[0].ID, lines); err != nil {
				t.Fatal(err)
			}
			if err := db.PutArtifact(ctx, Artifact{RunID: id, Name: "SourceArtifact", SHA256: shared, Size: 10}); err != nil {
				t.Fatal(err)
			}
			if err := db.FinishRun(ctx, id, RunFailed, ""); err != nil {
				t.Fatal(err)
			}
		}
		if err := db.PutArtifact(ctx, Artifact{RunID: old, Name: "BuildOut", SHA256: own, Size: 20}); err != nil {
			t.Fatal(err)
		}
		if _, err := db.write.ExecContext(context.Background(), `UPDATE runs SET ended_at = ? WHERE id = ?`, toDB(f.now.AddDate(0, 0, -100)), old); err != nil {
			t.Fatal(err)
		}
		if ids, err := db.ExpireRuns(ctx, f.now.AddDate(0, 0, -30), 100); err != nil || !slices.Equal(ids, []int64{old}) {
			t.Fatalf("expire: %v %v", ids, err)
		}
		if ids, err := db.ExpiredRunsHolding(ctx, 0, 100); err != nil || !slices.Equal(ids, []int64{old}) {
			t.Fatalf("holding: %v %v", ids, err)
		}
		lines, bytes, err := db.DeleteRunLogs(ctx, old)
		if want := int64(runLogDeleteBatch*2 + 7); err != nil || lines != want || bytes != want*6 {
			t.Fatalf("delete logs: %d lines, %d bytes, %v; want %d lines", lines, bytes, err, want)
		}
		if l, err := db.ListLog(ctx, old, 0, 10); err != nil || len(l) != 0 {
			t.Errorf("old run's log after: %v %v", l, err)
		}
		if l, err := db.ListLog(ctx, other, 0, 10); err != nil || len(l) != 3 {
			t.Errorf("other run's log after: %d lines %v", len(l), err)
		}
		for _, c := range []struct {
			sum  string
			want bool
		}{{shared, true}, {own, false}} {
			if got, err := db.ArtifactNamedElsewhere(ctx, c.sum, old); err != nil || got != c.want {
				t.Errorf("%s… named elsewhere: %v %v, want %v", c.sum[:4], got, err, c.want)
			}
		}
		if n, err := db.DeleteRunArtifacts(ctx, old); err != nil || n != 2 {
			t.Fatalf("delete artifacts: %d %v", n, err)
		}
		if ids, err := db.ExpiredRunsHolding(ctx, 0, 100); err != nil || len(ids) != 0 {
			t.Errorf("holding after the purge: %v %v", ids, err)
		}
		if arts, err := db.ListArtifacts(ctx, other); err != nil || len(arts) != 1 {
			t.Errorf("other run's artifacts: %v %v", arts, err)
		}
		// The other run's row was the last to name the shared blob.
		if got, err := db.ArtifactNamedElsewhere(ctx, shared, other); err != nil || got {
			t.Errorf("shared blob named besides the other run: %v %v", got, err)
		}
		// An expired run is not retried: its later stages' inputs are gone.
		if err := db.RetryRun(ctx, old, 0); err == nil || !strings.Contains(err.Error(), "expired") {
			t.Errorf("retry of an expired run: %v", err)
		}
	})
}

// Migration 18 links the revisions deploy actions registered before it
// to their runs, from registered_by "run N".
func TestMigrationLinksTaskDefsToRuns(t *testing.T) {
	dir := t.TempDir()
	migrateTo = 17
	db, err := Open(context.Background(), dir)
	migrateTo = 0
	if err != nil {
		t.Fatal(err)
	}
	for i, by := range []string{"run 12", "admin", "run 7x", "run 0", "run 3"} {
		if _, err := db.write.ExecContext(context.Background(), `INSERT INTO taskdefs(family, revision, body, status, registered_at, registered_by) VALUES ('web', ?, '{}', 'ACTIVE', 0, ?)`, i+1, by); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()
	db, err = Open(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	revs, err := db.ListTaskDefs(context.Background(), "web")
	if err != nil {
		t.Fatal(err)
	}
	var got []int64
	for _, r := range revs {
		got = append(got, r.RunID)
	}
	if want := []int64{12, 0, 0, 0, 3}; !slices.Equal(got, want) {
		t.Errorf("run ids %v, want %v", got, want)
	}
}
