package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestAutoScaleIsACompareAndSetThatDeploymentsHold(t *testing.T) {
	eachStore(t, func(t *testing.T, s testStore) {
		ctx := context.Background()
		db := openWithApps(t, s, "a")
		svc, err := db.CreateService(ctx, Service{App: "a", Env: "staging", Name: "web", Family: "web", Revision: 2, Desired: 2})
		if err != nil {
			t.Fatal(err)
		}
		// A blue/green deployment's kept blue set carries no traffic: only the
		// serving set follows the count.
		svc.Layout = &Layout{Sets: []TaskSet{{Group: "tg2", Family: "web", Revision: 2, Desired: 2}, {Group: "tg1", Family: "web", Revision: 1, Desired: 2}},
			Prod: []Weight{{Group: "tg2", Weight: 100}, {Group: "tg1", Weight: 0}}, Test: "tg2"}
		if _, err := db.UpdateService(ctx, svc); err != nil {
			t.Fatal(err)
		}
		a := &Autoscaling{MinCount: 1, MaxCount: 5, TargetRequestsPerSecond: 10, Window: "10s"}
		if err := db.SetAutoscaling(ctx, "a", "staging", "web", a); err != nil {
			t.Fatal(err)
		}
		if err := db.AutoScale(ctx, "a", "staging", "web", 2, 4); err != nil {
			t.Fatal(err)
		}
		got, _ := db.GetService(ctx, "a", "staging", "web")
		if got.Desired != 4 || got.Layout.Sets[0].Desired != 4 || got.Layout.Sets[1].Desired != 2 {
			t.Fatalf("after scaling 2 → 4: desired %d, sets %+v", got.Desired, got.Layout.Sets)
		}
		if got.Autoscaling == nil || *got.Autoscaling != *a {
			t.Fatalf("autoscaling settings: %+v", got.Autoscaling)
		}
		// A whole-service update (what a deployment writes) leaves auto scaling alone.
		if _, err := db.UpdateService(ctx, got); err != nil {
			t.Fatal(err)
		}
		if got, _ := db.GetService(ctx, "a", "staging", "web"); got.Autoscaling == nil {
			t.Fatal("a service update dropped its auto scaling")
		}
		// Each direction keeps its own time, which a service update leaves alone.
		if got.AutoscaledOutAt.IsZero() || !got.AutoscaledInAt.IsZero() {
			t.Fatalf("after a scale-out: out %v, in %v", got.AutoscaledOutAt, got.AutoscaledInAt)
		}
		if err := db.AutoScale(ctx, "a", "staging", "web", 4, 3); err != nil {
			t.Fatal(err)
		}
		if err := db.AutoScale(ctx, "a", "staging", "web", 3, 4); err != nil {
			t.Fatal(err)
		}
		again, _ := db.GetService(ctx, "a", "staging", "web")
		if again.AutoscaledInAt.IsZero() || !again.AutoscaledOutAt.After(got.AutoscaledOutAt) || again.AutoscaledInAt.After(again.AutoscaledOutAt) {
			t.Fatalf("after scaling in and out again: out %v (was %v), in %v", again.AutoscaledOutAt, got.AutoscaledOutAt, again.AutoscaledInAt)
		}
		// The count moved since it was read: refused.
		if err := db.AutoScale(ctx, "a", "staging", "web", 2, 3); !errors.Is(err, ErrConflict) {
			t.Fatalf("scale from a stale count: %v", err)
		}
		// A deployment in progress owns the count.
		if _, err := db.CreateDeployment(ctx, Deployment{App: "a", Env: "staging", Service: "web", Strategy: "rolling", FromFamily: "web", FromRevision: 2, ToFamily: "web", ToRevision: 3, Settings: []byte("{}"), Phase: "Created"}); err != nil {
			t.Fatal(err)
		}
		if err := db.AutoScale(ctx, "a", "staging", "web", 4, 5); !errors.Is(err, ErrConflict) {
			t.Fatalf("scale during a deployment: %v", err)
		}
		// So does a whole-service update that changes the count; one that keeps
		// it (what the deployment itself writes) goes through.
		cur, _ := db.GetService(ctx, "a", "staging", "web")
		cur.Desired = 5
		if _, err := db.UpdateService(ctx, cur); !errors.Is(err, ErrConflict) {
			t.Fatalf("update the count during a deployment: %v", err)
		}
		cur.Desired = 4
		if _, err := db.UpdateService(ctx, cur); err != nil {
			t.Fatalf("update keeping the count during a deployment: %v", err)
		}
		if _, err := db.UpdateService(ctx, Service{App: "a", Env: "staging", Name: "nope"}); !errors.Is(err, ErrNotFound) {
			t.Fatalf("update an unknown service: %v", err)
		}
		if err := db.AutoScale(ctx, "a", "staging", "nope", 1, 2); !errors.Is(err, ErrNotFound) {
			t.Fatalf("scale an unknown service: %v", err)
		}
		if err := db.SetAutoscaling(ctx, "a", "staging", "web", nil); err != nil {
			t.Fatal(err)
		}
		if got, _ := db.GetService(ctx, "a", "staging", "web"); got.Autoscaling != nil {
			t.Fatalf("auto scaling still set: %+v", got.Autoscaling)
		}
	})
}

// A database made before the scaling times existed upgrades with its
// services intact and no cooldown to honour.
func TestUpgradeAddsScalingTimesToExistingServices(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	t.Cleanup(func() { migrateTo = 0 })
	migrateTo = 10 // the schema before migration 11
	db, err := Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.CreateApp(ctx, App{Name: "a", RegistryRepo: "a", Environments: []string{"staging"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.CreateService(ctx, Service{App: "a", Env: "staging", Name: "web", Family: "web", Revision: 1, Desired: 2}); err != nil {
		t.Fatal(err)
	}
	db.Close()

	migrateTo = 0
	if db, err = Open(ctx, dir); err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	svc, err := db.GetService(ctx, "a", "staging", "web")
	if err != nil || svc.Desired != 2 || !svc.AutoscaledOutAt.IsZero() || !svc.AutoscaledInAt.IsZero() {
		t.Fatalf("after the upgrade: %+v, %v", svc, err)
	}
	if err := db.AutoScale(ctx, "a", "staging", "web", 2, 1); err != nil {
		t.Fatal(err)
	}
	if svc, _ := db.GetService(ctx, "a", "staging", "web"); svc.Desired != 1 || svc.AutoscaledInAt.IsZero() {
		t.Fatalf("auto scaled after the upgrade: %+v", svc)
	}
}

func TestAServiceMadeAgainStartsWithoutTheOldOnesEvents(t *testing.T) {
	eachStore(t, func(t *testing.T, s testStore) {
		ctx := context.Background()
		db := openWithApps(t, s, "a")
		svc := Service{App: "a", Env: "staging", Name: "web", Family: "web", Revision: 1, Desired: 1}
		if _, err := db.CreateService(ctx, svc); err != nil {
			t.Fatal(err)
		}
		for _, m := range []string{"(service web) started 1 task", "(service web) has reached a steady state"} {
			if err := db.AddServiceEvent(ctx, "a", "staging", "web", m); err != nil {
				t.Fatal(err)
			}
		}
		// Another environment's service of the same name keeps its events.
		if err := db.AddServiceEvent(ctx, "a", "production", "web", "(service web) has reached a steady state"); err != nil {
			t.Fatal(err)
		}
		if err := db.DeleteService(ctx, "a", "staging", "web"); err != nil {
			t.Fatal(err)
		}
		if _, err := db.CreateService(ctx, svc); err != nil {
			t.Fatal(err)
		}
		if evs, err := db.ListServiceEvents(ctx, "a", "staging", "web", 50); err != nil || len(evs) != 0 {
			t.Fatalf("events of the new service: %v, %v", evs, err)
		}
		if evs, err := db.ListServiceEvents(ctx, "a", "production", "web", 50); err != nil || len(evs) != 1 {
			t.Fatalf("events of the other environment's service: %v, %v", evs, err)
		}
	})
}

// A service event that repeats the service's newest one word for word is
// counted on it, as ECS does "unable to place a task", so a crash loop is
// one line; anything in between starts a new row.
func TestRepeatedServiceEventsAreCounted(t *testing.T) {
	eachStore(t, func(t *testing.T, s testStore) {
		const (
			fail    = "(service web) unable to start a task: image not found: 127.0.0.1:1/a:1"
			started = "(service web) started 1 task (3f2a) of web:1"
			steady  = "(service web) has reached a steady state"
		)
		// A step adds msg to a service ("env/name"); an empty msg deletes the
		// service and makes it again.
		type step struct{ svc, msg string }
		type row struct {
			msg   string
			count int
		}
		cases := []struct {
			name  string
			steps []step
			want  map[string][]row // oldest first
		}{
			{"one event happens once",
				[]step{{"staging/web", steady}},
				map[string][]row{"staging/web": {{steady, 1}}}},
			{"identical messages collapse",
				[]step{{"staging/web", fail}, {"staging/web", fail}, {"staging/web", fail}},
				map[string][]row{"staging/web": {{fail, 3}}}},
			{"a different message in between breaks the run",
				[]step{{"staging/web", fail}, {"staging/web", fail}, {"staging/web", started}, {"staging/web", fail}, {"staging/web", fail}, {"staging/web", steady}},
				map[string][]row{"staging/web": {{fail, 2}, {started, 1}, {fail, 2}, {steady, 1}}}},
			{"only the very same words repeat",
				[]step{{"staging/web", fail}, {"staging/web", fail + " "}, {"staging/web", strings.ToUpper(fail)}},
				map[string][]row{"staging/web": {{fail, 1}, {fail + " ", 1}, {strings.ToUpper(fail), 1}}}},
			{"other services' events are separate",
				[]step{{"staging/web", fail}, {"staging/api", fail}, {"staging/web", fail}, {"production/web", fail}, {"staging/api", fail}, {"staging/web", fail}},
				map[string][]row{"staging/web": {{fail, 3}}, "staging/api": {{fail, 2}}, "production/web": {{fail, 1}}}},
			{"deleting a service clears its events and their count",
				[]step{{"staging/web", fail}, {"staging/web", fail}, {"staging/web", ""}, {"staging/web", fail}, {"staging/api", steady}},
				map[string][]row{"staging/web": {{fail, 1}}, "staging/api": {{steady, 1}}}},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				ctx := context.Background()
				db := openWithApps(t, s, "a")
				svc := func(key string) Service {
					env, name, _ := strings.Cut(key, "/")
					return Service{App: "a", Env: env, Name: name, Family: name, Revision: 1, Desired: 1}
				}
				for key := range c.want {
					if _, err := db.CreateService(ctx, svc(key)); err != nil {
						t.Fatal(err)
					}
				}
				// When each service's surviving adds happened, to check At
				// and LastAt against.
				type span struct{ from, to time.Time }
				adds := map[string][]span{}
				for _, st := range c.steps {
					s := svc(st.svc)
					if st.msg == "" {
						if err := db.DeleteService(ctx, s.App, s.Env, s.Name); err != nil {
							t.Fatal(err)
						}
						if _, err := db.CreateService(ctx, s); err != nil {
							t.Fatal(err)
						}
						delete(adds, st.svc)
						continue
					}
					from := now()
					if err := db.AddServiceEvent(ctx, s.App, s.Env, s.Name, st.msg); err != nil {
						t.Fatal(err)
					}
					adds[st.svc] = append(adds[st.svc], span{from, now()})
				}
				for key, want := range c.want {
					s := svc(key)
					evs, err := db.ListServiceEvents(ctx, s.App, s.Env, s.Name, 50)
					if err != nil {
						t.Fatal(err)
					}
					var got []row
					for i := len(evs) - 1; i >= 0; i-- { // listed newest first
						got = append(got, row{evs[i].Message, evs[i].Count})
					}
					if fmt.Sprint(got) != fmt.Sprint(want) {
						t.Fatalf("%s: events %+v, want %+v", key, got, want)
					}
					// Each row took the next Count adds: At is the first's
					// time, LastAt the last's.
					next := 0
					for i := len(evs) - 1; i >= 0; i-- {
						e := evs[i]
						first, last := adds[key][next], adds[key][next+e.Count-1]
						next += e.Count
						if e.At.Before(first.from) || e.At.After(first.to) || e.LastAt.Before(last.from) || e.LastAt.After(last.to) {
							t.Errorf("%s: %q at %v, last %v; want at in [%v, %v], last in [%v, %v]", key, e.Message, e.At, e.LastAt, first.from, first.to, last.from, last.to)
						}
						if e.Count == 1 && !e.LastAt.Equal(e.At) {
							t.Errorf("%s: %q happened once, yet at %v and last at %v", key, e.Message, e.At, e.LastAt)
						}
					}
				}
			})
		}
	})
}

// Events stored before repeats were counted read as having happened once,
// and the newest counts a repeat from then on.
func TestUpgradeCountsStoredEventsOnce(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	t.Cleanup(func() { migrateTo = 0 })
	migrateTo = 15 // the schema before migration 16
	db, err := Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	at := now().Add(-time.Hour)
	for i, m := range []string{"(service web) started 1 task (3f2a) of web:1", "(service web) has reached a steady state"} {
		if _, err := db.write.ExecContext(ctx, `INSERT INTO service_events(app, env, service, at, message) VALUES ('a', 'staging', 'web', ?, ?)`, toDB(at.Add(time.Duration(i)*time.Second)), m); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()

	migrateTo = 0
	if db, err = Open(ctx, dir); err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	evs, err := db.ListServiceEvents(ctx, "a", "staging", "web", 50)
	if err != nil || len(evs) != 2 {
		t.Fatalf("after the upgrade: %+v, %v", evs, err)
	}
	for _, e := range evs {
		if e.Count != 1 || !e.LastAt.Equal(e.At) {
			t.Fatalf("an event stored before the upgrade: %+v", e)
		}
	}
	if err := db.AddServiceEvent(ctx, "a", "staging", "web", "(service web) has reached a steady state"); err != nil {
		t.Fatal(err)
	}
	evs, _ = db.ListServiceEvents(ctx, "a", "staging", "web", 50)
	if len(evs) != 2 || evs[0].Count != 2 || !evs[0].At.Equal(at.Add(time.Second)) || !evs[0].LastAt.After(evs[0].At) {
		t.Fatalf("a repeat of the newest after the upgrade: %+v", evs)
	}
}

func TestConflictsAreToldApartFromTakenNames(t *testing.T) {
	state := Conflictf("run %d is not waiting for an approval", 7)
	taken := fmt.Errorf("app %q: %w", "shop", ErrExists)
	cases := []struct {
		err                 error
		msg                 string
		conflict, nameTaken bool
	}{
		{state, "run 7 is not waiting for an approval", true, false},
		{fmt.Errorf("approve: %w", state), "approve: run 7 is not waiting for an approval", true, false},
		{taken, `app "shop": already exists`, true, true},
		{ErrNotFound, "not found", false, false},
	}
	for _, c := range cases {
		if c.err.Error() != c.msg || errors.Is(c.err, ErrConflict) != c.conflict || errors.Is(c.err, ErrExists) != c.nameTaken {
			t.Errorf("%q: conflict %v, name taken %v; want %q, %v, %v", c.err, errors.Is(c.err, ErrConflict), errors.Is(c.err, ErrExists), c.msg, c.conflict, c.nameTaken)
		}
	}
}

func TestAnAppMadeAgainStartsAfresh(t *testing.T) {
	eachStore(t, func(t *testing.T, s testStore) {
		ctx := context.Background()
		db := openWithApps(t, s, "shop", "blog")
		for _, app := range []string{"shop", "blog"} {
			if _, err := db.CreateService(ctx, Service{App: app, Env: "staging", Name: "web", Family: "web", Revision: 1, Desired: 1}); err != nil {
				t.Fatal(err)
			}
			if err := db.AddServiceEvent(ctx, app, "staging", "web", "(service web) has reached a steady state"); err != nil {
				t.Fatal(err)
			}
			d, err := db.CreateDeployment(ctx, Deployment{App: app, Env: "staging", Service: "web", Strategy: "rolling", FromFamily: "web", FromRevision: 1, ToFamily: "web", ToRevision: 2})
			if err != nil {
				t.Fatal(err)
			}
			d.State = DeployCompleted // an app with a deployment in progress is not deleted
			if err := db.UpdateDeployment(ctx, d, "completed"); err != nil {
				t.Fatal(err)
			}
			if _, err := db.PutSecret(ctx, Secret{Name: "db", App: app, UpdatedBy: "t"}, []byte("sealed")); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := db.PutSecret(ctx, Secret{Name: "global", UpdatedBy: "t"}, []byte("sealed")); err != nil {
			t.Fatal(err)
		}
		if err := db.DeleteApp(ctx, "shop"); err != nil {
			t.Fatal(err)
		}
		if _, err := db.CreateApp(ctx, App{Name: "shop", RegistryRepo: "shop", Environments: []string{"staging"}}); err != nil {
			t.Fatal(err)
		}
		count := func(app string) (events, deployments, secrets int) {
			evs, _ := db.ListServiceEvents(ctx, app, "staging", "web", 50)
			ds, _ := db.ListDeployments(ctx, app, "staging", "web", 50)
			ss, _ := db.ListSecrets(ctx, app)
			for _, s := range ss {
				if s.App == app {
					secrets++
				}
			}
			return len(evs), len(ds), secrets
		}
		if e, d, s := count("shop"); e != 0 || d != 0 || s != 0 {
			t.Fatalf("the app made again has %d events, %d deployments, %d secrets of the deleted one", e, d, s)
		}
		if e, d, s := count("blog"); e != 1 || d != 1 || s != 1 {
			t.Fatalf("another app lost its own: %d events, %d deployments, %d secrets", e, d, s)
		}
		if ss, _ := db.ListSecrets(ctx, ""); len(ss) != 2 { // blog's and the global one
			t.Fatalf("secrets left: %+v", ss)
		}
	})
}

// openWithApps opens a fresh database of s's engine, closed when the test
// ends, holding apps with a staging environment each.
func openWithApps(t *testing.T, s testStore, apps ...string) *DB {
	t.Helper()
	db := s.fresh(t).open(t)
	for _, app := range apps {
		if _, err := db.CreateApp(context.Background(), App{Name: app, RegistryRepo: app, Environments: []string{"staging"}}); err != nil {
			t.Fatal(err)
		}
	}
	return db
}
