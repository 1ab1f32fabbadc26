package store

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// within reports whether t is in [from, to] and at microsecond precision,
// as every stored time is.
func within(t, from, to time.Time) bool {
	return !t.Before(from.Truncate(time.Microsecond)) && !t.After(to) && t.Nanosecond()%1000 == 0 && t.Location() == time.UTC
}

func TestTaskDefinitionRevisions(t *testing.T) {
	eachStore(t, func(t *testing.T, s testStore) {
		ctx := context.Background()
		db := openWithApps(t, s, "a")
		if list, err := db.ListTaskDefs(ctx, ""); err != nil || list == nil || len(list) != 0 {
			t.Fatalf("ListTaskDefs of an empty store = %#v, %v", list, err)
		}
		run := mustRun(t, db, "a", RunRunning)
		from := time.Now()
		var registered []TaskDefRevision
		for i, r := range []struct {
			family string
			run    bool
		}{{"web", false}, {"web", true}, {"api", false}, {"web", false}, {"api", true}} {
			body := fmt.Appendf(nil, `{"family":%q,"containerDefinitions":[{"name":"app","image":"a:%d","environment":[{"name":"Ü","value":"\"q\""}]}]}`, r.family, i)
			var rev TaskDefRevision
			var err error
			if r.run {
				rev, err = db.RegisterRunTaskDef(ctx, r.family, body, run.ID)
			} else {
				rev, err = db.RegisterTaskDef(ctx, r.family, body, "alice")
			}
			if err != nil {
				t.Fatal(err)
			}
			registered = append(registered, rev)
		}
		to := time.Now()
		// Each family counts its own revisions from 1.
		var revs []string
		for _, r := range registered {
			revs = append(revs, fmt.Sprintf("%s:%d", r.Family, r.Revision))
			wantBy, wantRun := "alice", int64(0)
			if r.RunID != 0 {
				wantBy, wantRun = fmt.Sprintf("run %d", run.ID), run.ID
			}
			if r.Status != "ACTIVE" || r.RegisteredBy != wantBy || r.RunID != wantRun || !within(r.RegisteredAt, from, to) {
				t.Errorf("registered %+v", r)
			}
			got, err := db.GetTaskDef(ctx, r.Family, r.Revision)
			if err != nil || !reflect.DeepEqual(got, r) {
				t.Errorf("GetTaskDef(%s, %d):\n got %+v, %v\nwant %+v", r.Family, r.Revision, got, err, r)
			}
		}
		if fmt.Sprint(revs) != "[web:1 web:2 api:1 web:3 api:2]" {
			t.Fatalf("revisions %v", revs)
		}
		if registered[1].RunID != run.ID || registered[4].RunID != run.ID || registered[0].RunID != 0 {
			t.Fatalf("run links: %+v", registered)
		}

		all, err := db.ListTaskDefs(ctx, "")
		if err != nil {
			t.Fatal(err)
		}
		want := []TaskDefRevision{registered[2], registered[4], registered[0], registered[1], registered[3]} // by family, then revision
		if !reflect.DeepEqual(all, want) {
			t.Fatalf("ListTaskDefs:\n got %+v\nwant %+v", all, want)
		}
		if web, err := db.ListTaskDefs(ctx, "web"); err != nil || !reflect.DeepEqual(web, want[2:]) {
			t.Fatalf("ListTaskDefs(web) = %+v, %v", web, err)
		}
		if none, err := db.ListTaskDefs(ctx, "nope"); err != nil || none == nil || len(none) != 0 {
			t.Fatalf("ListTaskDefs(nope) = %#v, %v", none, err)
		}

		// Revision 0 is the latest active one; a deregistered revision stays
		// readable by its number.
		latest := func() string {
			r, err := db.GetTaskDef(ctx, "web", 0)
			if err != nil {
				return err.Error()
			}
			return fmt.Sprintf("%s:%d", r.Family, r.Revision)
		}
		steps := []struct {
			deregister int
			latest     string
		}{
			{0, "web:3"},
			{3, "web:2"},
			{1, "web:2"},
			{3, "web:2"}, // again: nothing changes
			{2, "task definition web has no active revision: not found"},
		}
		for _, st := range steps {
			if st.deregister != 0 {
				if err := db.DeregisterTaskDef(ctx, "web", st.deregister); err != nil {
					t.Fatalf("DeregisterTaskDef(web, %d): %v", st.deregister, err)
				}
				if r, err := db.GetTaskDef(ctx, "web", st.deregister); err != nil || r.Status != "INACTIVE" || string(r.Body) != string(registered[map[int]int{1: 0, 2: 1, 3: 3}[st.deregister]].Body) {
					t.Fatalf("deregistered web:%d: %+v, %v", st.deregister, r, err)
				}
			}
			if got := latest(); got != st.latest {
				t.Fatalf("after deregistering web:%d, the latest is %q; want %q", st.deregister, got, st.latest)
			}
		}
		if _, err := db.GetTaskDef(ctx, "web", 0); !errors.Is(err, ErrNotFound) {
			t.Fatalf("no active revision: %v, want ErrNotFound", err)
		}
		// A new revision after them all is the next number, not a reused one.
		if r, err := db.RegisterTaskDef(ctx, "web", []byte(`{}`), "bob"); err != nil || r.Revision != 4 || latest() != "web:4" {
			t.Fatalf("registered after deregistering all: %+v, %v, latest %s", r, err, latest())
		}
		for name, err := range map[string]error{
			"GetTaskDef of an unknown revision":        func() error { _, err := db.GetTaskDef(ctx, "web", 9); return err }(),
			"GetTaskDef of an unknown family":          func() error { _, err := db.GetTaskDef(ctx, "nope", 1); return err }(),
			"latest GetTaskDef of an unknown family":   func() error { _, err := db.GetTaskDef(ctx, "nope", 0); return err }(),
			"DeregisterTaskDef of an unknown revision": db.DeregisterTaskDef(ctx, "web", 9),
			"DeregisterTaskDef of an unknown family":   db.DeregisterTaskDef(ctx, "nope", 1),
		} {
			if !errors.Is(err, ErrNotFound) {
				t.Errorf("%s: %v, want ErrNotFound", name, err)
			}
		}
	})
}

// Revisions of one family registered at once each get their own number,
// with none skipped.
func TestConcurrentTaskDefinitionRevisions(t *testing.T) {
	eachStore(t, func(t *testing.T, s testStore) {
		ctx := context.Background()
		db := s.open(t)
		if _, err := db.RegisterTaskDef(ctx, "other", []byte(`{}`), "t"); err != nil {
			t.Fatal(err)
		}
		revs := make([]int, racers)
		errs := race(t, db, func(i int) error {
			r, err := db.RegisterTaskDef(ctx, "web", fmt.Appendf(nil, `{"i":%d}`, i), "t")
			revs[i] = r.Revision
			return err
		})
		for i, err := range errs {
			if err != nil {
				t.Fatalf("RegisterTaskDef %d: %v", i, err)
			}
		}
		got := slices.Sorted(slices.Values(revs))
		for i, r := range got {
			if r != i+1 {
				t.Fatalf("revisions %v; want 1 to %d, once each", got, racers)
			}
		}
		list, _ := db.ListTaskDefs(ctx, "web")
		if len(list) != racers {
			t.Fatalf("%d revisions stored, want %d", len(list), racers)
		}
		// Each goroutine's body is under the revision it was told.
		for i, r := range revs {
			if list[r-1].Revision != r || string(list[r-1].Body) != fmt.Sprintf(`{"i":%d}`, i) {
				t.Fatalf("revision %d holds %s, want goroutine %d's body", r, list[r-1].Body, i)
			}
		}
	})
}

func TestServicesAreCreatedUpdatedAndListed(t *testing.T) {
	eachStore(t, func(t *testing.T, s testStore) {
		ctx := context.Background()
		db := openWithApps(t, s, "a", "b")
		if list, err := db.ListServices(ctx, "", ""); err != nil || list == nil || len(list) != 0 {
			t.Fatalf("ListServices of no services = %#v, %v", list, err)
		}
		lb := &LoadBalancer{ContainerName: "app", ContainerPort: 8080, ListenerPort: 80, TestListenerPort: 8081, HealthCheckPath: "/healthz",
			HealthCheckInterval: "10s", HealthCheckTimeout: "5s", HealthyThreshold: 2, UnhealthyThreshold: 3, Matcher: "200-299",
			DeregistrationDelay: "30s", Host: "*.example.com", PathPrefix: "/api", Priority: 10, TestHost: "test.example.com",
			HTTPS: true, RedirectHTTPS: true, HSTS: true}
		from := time.Now()
		web, err := db.CreateService(ctx, Service{App: "a", Env: "staging", Name: "web", Family: "web", Revision: 3, Desired: 2, LoadBalancer: lb})
		if err != nil {
			t.Fatal(err)
		}
		if !within(web.CreatedAt, from, time.Now()) || !web.UpdatedAt.Equal(web.CreatedAt) {
			t.Fatalf("created at %v, updated at %v", web.CreatedAt, web.UpdatedAt)
		}
		got, err := db.GetService(ctx, "a", "staging", "web")
		if err != nil || !reflect.DeepEqual(got, web) {
			t.Fatalf("GetService:\n got %+v, %v\nwant %+v", got, err, web)
		}
		if *got.LoadBalancer != *lb {
			t.Fatalf("load balancer %+v, want %+v", got.LoadBalancer, lb)
		}
		// The copy read is the caller's own.
		got.LoadBalancer.Host = "changed"
		if again, _ := db.GetService(ctx, "a", "staging", "web"); again.LoadBalancer.Host != lb.Host {
			t.Fatal("a change to a read service's load balancer changed the next read")
		}

		// An update writes the revision, count, load balancer and layout.
		time.Sleep(time.Millisecond)
		upd := web
		upd.Family, upd.Revision, upd.Desired, upd.LoadBalancer = "web2", 4, 3, nil
		upd.Layout = &Layout{Sets: []TaskSet{{Group: "tg2", Family: "web2", Revision: 4, Desired: 3, Generation: 7}, {Group: "tg1", Family: "web", Revision: 3, Desired: 3}},
			Prod: []Weight{{Group: "tg1", Weight: 90}, {Group: "tg2", Weight: 10}}, Test: "tg2"}
		updated, err := db.UpdateService(ctx, upd)
		if err != nil {
			t.Fatal(err)
		}
		if !updated.UpdatedAt.After(web.UpdatedAt) || !updated.CreatedAt.Equal(web.CreatedAt) {
			t.Fatalf("updated at %v (was %v), created at %v", updated.UpdatedAt, web.UpdatedAt, updated.CreatedAt)
		}
		got, err = db.GetService(ctx, "a", "staging", "web")
		if err != nil || !reflect.DeepEqual(got, updated) {
			t.Fatalf("after UpdateService:\n got %+v, %v\nwant %+v", got, err, updated)
		}
		if got.EffectiveLayout().Sets[0].Key() != "tg2/web2:4@d7" {
			t.Fatalf("layout read back: %+v", got.Layout)
		}
		// Taking the layout away leaves the steady one.
		got.Layout = nil
		if _, err := db.UpdateService(ctx, got); err != nil {
			t.Fatal(err)
		}
		if again, _ := db.GetService(ctx, "a", "staging", "web"); again.Layout != nil || again.LoadBalancer != nil || again.EffectiveLayout().Sets[0].Key() != "tg1/web2:4" {
			t.Fatalf("without a layout: %+v", again)
		}

		for _, k := range []string{"a/production/web", "a/staging/api", "b/staging/web", "a/production/admin", "b/production/zeta"} {
			app, env, name := splitKey(k)
			if _, err := db.CreateService(ctx, Service{App: app, Env: env, Name: name, Family: name, Revision: 1, Desired: 1}); err != nil {
				t.Fatal(err)
			}
		}
		cases := []struct {
			app, env string
			want     string
		}{
			{"", "", "[a/production/admin a/production/web a/staging/api a/staging/web b/production/zeta b/staging/web]"},
			{"a", "", "[a/production/admin a/production/web a/staging/api a/staging/web]"},
			{"a", "staging", "[a/staging/api a/staging/web]"},
			{"", "production", "[a/production/admin a/production/web b/production/zeta]"},
			{"b", "staging", "[b/staging/web]"},
			{"nope", "", "[]"},
			{"a", "nope", "[]"},
		}
		for _, c := range cases {
			list, err := db.ListServices(ctx, c.app, c.env)
			if err != nil || list == nil {
				t.Fatalf("ListServices(%q, %q): %#v, %v", c.app, c.env, list, err)
			}
			var keys []string
			for _, s := range list {
				keys = append(keys, s.App+"/"+s.Env+"/"+s.Name)
			}
			if fmt.Sprint(keys) != c.want && !(c.want == "[]" && len(keys) == 0) {
				t.Errorf("ListServices(%q, %q) = %v, want %s", c.app, c.env, keys, c.want)
			}
		}
		// A service listed is the service read.
		list, _ := db.ListServices(ctx, "a", "staging")
		if read, _ := db.GetService(ctx, "a", "staging", "web"); len(list) != 2 || !reflect.DeepEqual(list[1], read) {
			t.Fatalf("listed %+v, read %+v", list, read)
		}
		if _, err := db.GetService(ctx, "a", "staging", "nope"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("GetService of an unknown service: %v", err)
		}
	})
}

// splitKey splits "app/env/name".
func splitKey(k string) (app, env, name string) {
	app, rest, _ := strings.Cut(k, "/")
	env, name, _ = strings.Cut(rest, "/")
	return app, env, name
}

func TestCreateServiceRefusesATakenName(t *testing.T) {
	eachStore(t, func(t *testing.T, s testStore) {
		cases := []struct {
			name  string
			svc   Service
			taken bool
		}{
			{"the same name", Service{App: "a", Env: "staging", Name: "web", Family: "other", Revision: 9, Desired: 9}, true},
			{"another environment", Service{App: "a", Env: "production", Name: "web", Family: "web", Revision: 1, Desired: 1}, false},
			{"another app", Service{App: "b", Env: "staging", Name: "web", Family: "web", Revision: 1, Desired: 1}, false},
			{"another name", Service{App: "a", Env: "staging", Name: "web2", Family: "web", Revision: 1, Desired: 1}, false},
		}
		// The cases share a database, each with apps of its own: a and b
		// stand for them.
		db := s.open(t)
		for i, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				ctx := context.Background()
				a, b := fmt.Sprintf("a%d", i), fmt.Sprintf("b%d", i)
				mustApps(t, db, a, b)
				c.svc.App = map[string]string{"a": a, "b": b}[c.svc.App]
				if _, err := db.CreateService(ctx, Service{App: a, Env: "staging", Name: "web", Family: "web", Revision: 1, Desired: 2}); err != nil {
					t.Fatal(err)
				}
				_, err := db.CreateService(ctx, c.svc)
				if c.taken != errors.Is(err, ErrExists) || (!c.taken && err != nil) {
					t.Fatalf("CreateService = %v; want taken: %v", err, c.taken)
				}
				if got, _ := db.GetService(ctx, a, "staging", "web"); got.Family != "web" || got.Desired != 2 {
					t.Fatalf("the first service after it: %+v", got)
				}
			})
		}
	})
}

// Services of one name made at once: one is made, the others are told the
// name is taken.
func TestConcurrentCreateServiceOfOneName(t *testing.T) {
	eachStore(t, func(t *testing.T, s testStore) {
		ctx := context.Background()
		db := openWithApps(t, s, "a")
		errs := race(t, db, func(i int) error {
			_, err := db.CreateService(ctx, Service{App: "a", Env: "staging", Name: "web", Family: "web", Revision: i + 1, Desired: 1})
			return err
		})
		won := oneWinner(t, errs, ErrExists)
		if svc, err := db.GetService(ctx, "a", "staging", "web"); err != nil || svc.Revision != won+1 {
			t.Fatalf("won by %d; the service is %+v, %v", won, svc, err)
		}
	})
}

func TestDeleteService(t *testing.T) {
	eachStore(t, func(t *testing.T, s testStore) {
		cases := []struct {
			name     string
			deploy   *Deployment // made before the delete
			end      bool        // and ended
			conflict bool
		}{
			{"no deployment", nil, false, false},
			{"a deployment in progress", &Deployment{FromFamily: "web", FromRevision: 1, ToFamily: "web", ToRevision: 2}, false, true},
			{"an ended deployment", &Deployment{FromFamily: "web", FromRevision: 1, ToFamily: "web", ToRevision: 2}, true, false},
			{"the first rollout in progress", &Deployment{ToFamily: "web", ToRevision: 1}, false, false},
			{"another service's deployment", &Deployment{Service: "api", FromFamily: "api", FromRevision: 1, ToFamily: "api", ToRevision: 2}, false, false},
		}
		// The cases share a database, each with an app of its own.
		db := s.open(t)
		for i, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				ctx := context.Background()
				app := fmt.Sprintf("a%d", i)
				mustApps(t, db, app)
				for _, n := range []string{"web", "api"} {
					if _, err := db.CreateService(ctx, Service{App: app, Env: "staging", Name: n, Family: n, Revision: 1, Desired: 1}); err != nil {
						t.Fatal(err)
					}
					if err := db.AddServiceEvent(ctx, app, "staging", n, "steady"); err != nil {
						t.Fatal(err)
					}
				}
				if c.deploy != nil {
					d := *c.deploy
					d.App, d.Env = app, "staging"
					if d.Service == "" {
						d.Service = "web"
					}
					d = mustDeploy(t, db, d)
					if c.end {
						d.State = DeployCompleted
						if err := db.UpdateDeployment(ctx, d, "done"); err != nil {
							t.Fatal(err)
						}
					}
				}
				err := db.DeleteService(ctx, app, "staging", "web")
				if c.conflict {
					if !errors.Is(err, ErrConflict) {
						t.Fatalf("DeleteService = %v, want ErrConflict", err)
					}
					if _, err := db.GetService(ctx, app, "staging", "web"); err != nil {
						t.Fatalf("the service after a refused delete: %v", err)
					}
					if evs, _ := db.ListServiceEvents(ctx, app, "staging", "web", 0); len(evs) != 1 {
						t.Fatalf("events after a refused delete: %+v", evs)
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				if _, err := db.GetService(ctx, app, "staging", "web"); !errors.Is(err, ErrNotFound) {
					t.Fatalf("GetService after the delete: %v", err)
				}
				if err := db.DeleteService(ctx, app, "staging", "web"); !errors.Is(err, ErrNotFound) {
					t.Fatalf("a second delete: %v, want ErrNotFound", err)
				}
				if list, _ := db.ListServices(ctx, app, ""); len(list) != 1 || list[0].Name != "api" {
					t.Fatalf("services left: %+v", list)
				}
				if evs, _ := db.ListServiceEvents(ctx, app, "staging", "api", 0); len(evs) != 1 {
					t.Fatalf("the other service's events: %+v", evs)
				}
			})
		}
	})
}

func TestListServiceEventsLimit(t *testing.T) {
	eachStore(t, func(t *testing.T, s testStore) {
		ctx := context.Background()
		db := openWithApps(t, s, "a")
		if evs, err := db.ListServiceEvents(ctx, "a", "staging", "web", 10); err != nil || evs == nil || len(evs) != 0 {
			t.Fatalf("events of a service without any: %#v, %v", evs, err)
		}
		for i := range 60 {
			if err := db.AddServiceEvent(ctx, "a", "staging", "web", fmt.Sprintf("event %d", i)); err != nil {
				t.Fatal(err)
			}
		}
		cases := []struct {
			limit       int
			n           int
			first, last string
		}{
			{1, 1, "event 59", "event 59"},
			{3, 3, "event 59", "event 57"},
			{0, 50, "event 59", "event 10"},   // the default
			{-1, 50, "event 59", "event 10"},  // the default
			{501, 50, "event 59", "event 10"}, // more than the most: the default
			{500, 60, "event 59", "event 0"},
		}
		for _, c := range cases {
			evs, err := db.ListServiceEvents(ctx, "a", "staging", "web", c.limit)
			if err != nil || len(evs) != c.n || evs[0].Message != c.first || evs[len(evs)-1].Message != c.last {
				t.Errorf("limit %d: %d events (%v), want %d from %q to %q", c.limit, len(evs), err, c.n, c.first, c.last)
				continue
			}
			for i := 1; i < len(evs); i++ {
				if evs[i].ID >= evs[i-1].ID || evs[i].At.After(evs[i-1].At) || evs[i].Count != 1 {
					t.Errorf("limit %d: %+v listed after %+v", c.limit, evs[i], evs[i-1])
				}
			}
		}
	})
}

func TestAutoscalingSettingsRoundTrip(t *testing.T) {
	eachStore(t, func(t *testing.T, s testStore) {
		ctx := context.Background()
		db := openWithApps(t, s, "a")
		if _, err := db.CreateService(ctx, Service{App: "a", Env: "staging", Name: "web", Family: "web", Revision: 1, Desired: 2}); err != nil {
			t.Fatal(err)
		}
		cases := []*Autoscaling{
			{MinCount: 1, MaxCount: 10, TargetRequestsPerSecond: 12.5, Window: "60s", ScaleOutCooldown: "30s", ScaleInCooldown: "5m0s"},
			{MinCount: 0, MaxCount: 3, TargetCPUPercent: 61.25, TargetMemoryPercent: 70, Window: "1m"},
			nil,
		}
		for _, a := range cases {
			before, _ := db.GetService(ctx, "a", "staging", "web")
			time.Sleep(time.Millisecond)
			if err := db.SetAutoscaling(ctx, "a", "staging", "web", a); err != nil {
				t.Fatal(err)
			}
			got, err := db.GetService(ctx, "a", "staging", "web")
			if err != nil || !reflect.DeepEqual(got.Autoscaling, a) || !got.UpdatedAt.After(before.UpdatedAt) || got.Desired != 2 {
				t.Fatalf("SetAutoscaling(%+v): read %+v, %v", a, got, err)
			}
		}
		if err := db.SetAutoscaling(ctx, "a", "staging", "nope", cases[0]); !errors.Is(err, ErrNotFound) {
			t.Fatalf("SetAutoscaling of an unknown service: %v", err)
		}
		// A service without a stored layout scales its count alone.
		from := time.Now()
		if err := db.AutoScale(ctx, "a", "staging", "web", 2, 1); err != nil {
			t.Fatal(err)
		}
		got, _ := db.GetService(ctx, "a", "staging", "web")
		if got.Desired != 1 || got.Layout != nil || !within(got.AutoscaledInAt, from, time.Now()) || !got.AutoscaledOutAt.IsZero() || !got.UpdatedAt.Equal(got.AutoscaledInAt) {
			t.Fatalf("after scaling in: %+v", got)
		}
	})
}

// Auto scaling decisions taken at once from one count: one scales, the
// others find the count moved.
func TestConcurrentAutoScaleFromOneCount(t *testing.T) {
	eachStore(t, func(t *testing.T, s testStore) {
		ctx := context.Background()
		db := openWithApps(t, s, "a")
		if _, err := db.CreateService(ctx, Service{App: "a", Env: "staging", Name: "web", Family: "web", Revision: 1, Desired: 2}); err != nil {
			t.Fatal(err)
		}
		errs := race(t, db, func(i int) error { return db.AutoScale(ctx, "a", "staging", "web", 2, 3+i) })
		won := oneWinner(t, errs, ErrConflict)
		if svc, err := db.GetService(ctx, "a", "staging", "web"); err != nil || svc.Desired != 3+won {
			t.Fatalf("won by %d; the service is %+v, %v", won, svc, err)
		}
	})
}

// The same event added at once is one event counted that many times.
func TestConcurrentRepeatsOfAServiceEvent(t *testing.T) {
	eachStore(t, func(t *testing.T, s testStore) {
		ctx := context.Background()
		db := openWithApps(t, s, "a")
		const msg = "(service web) unable to start a task: image not found"
		errs := race(t, db, func(int) error { return db.AddServiceEvent(ctx, "a", "staging", "web", msg) })
		for i, err := range errs {
			if err != nil {
				t.Fatalf("AddServiceEvent %d: %v", i, err)
			}
		}
		evs, err := db.ListServiceEvents(ctx, "a", "staging", "web", 0)
		if err != nil || len(evs) != 1 || evs[0].Count != racers || evs[0].Message != msg || evs[0].LastAt.Before(evs[0].At) {
			t.Fatalf("events %+v, %v; want one counted %d times", evs, err, racers)
		}
	})
}

// The values the store's types work out for themselves.
func TestServiceValues(t *testing.T) {
	a := Autoscaling{TargetRequestsPerSecond: 50, TargetCPUPercent: 60.5, TargetMemoryPercent: 70}
	if got := a.TargetsText(); got != "50 requests/s per task, CPU 60.5%, memory 70%" {
		t.Errorf("TargetsText = %q", got)
	}
	if got := (Autoscaling{TargetCPUPercent: 60}).TargetsText(); got != "CPU 60%" {
		t.Errorf("TargetsText of CPU alone = %q", got)
	}
	if got := (TaskSet{Group: "tg2", Family: "web", Revision: 4}).Key(); got != "tg2/web:4" {
		t.Errorf("Key = %q", got)
	}
	if got := (TaskSet{Group: "tg1", Family: "web", Revision: 4, Generation: 7}).Key(); got != "tg1/web:4@d7" {
		t.Errorf("Key of a generation = %q", got)
	}
	l := Layout{Sets: []TaskSet{{Group: "tg1", Desired: 2}, {Group: "tg2", Desired: 2}, {Group: "tg3", Desired: 2}},
		Prod: []Weight{{Group: "tg1", Weight: 90}, {Group: "tg2", Weight: 10}, {Group: "tg3", Weight: 0}}}
	l.ScaleServing(5)
	if got := fmt.Sprint(l.Sets[0].Desired, l.Sets[1].Desired, l.Sets[2].Desired); got != "5 5 2" {
		t.Errorf("ScaleServing(5): counts %s, want 5 5 2", got)
	}
	svc := Service{Family: "web", Revision: 3, Desired: 2}
	if got := svc.EffectiveLayout(); !reflect.DeepEqual(got, Layout{Sets: []TaskSet{{Group: DefaultGroup, Family: "web", Revision: 3, Desired: 2}},
		Prod: []Weight{{Group: DefaultGroup, Weight: 100}}, Test: DefaultGroup}) {
		t.Errorf("the steady layout: %+v", got)
	}
	svc.Layout = &Layout{}
	if got := svc.EffectiveLayout(); len(got.Sets) != 1 || got.Sets[0].Revision != 3 {
		t.Errorf("a layout without sets: %+v, want the steady one", got)
	}
	svc.Layout = &l
	if got := svc.EffectiveLayout(); !reflect.DeepEqual(got, l) {
		t.Errorf("a stored layout: %+v", got)
	}
	first := Deployment{ToFamily: "web", ToRevision: 1}
	next := Deployment{FromFamily: "web", FromRevision: 1, ToFamily: "web", ToRevision: 2}
	if !first.First() || first.From() != "(new service)" || next.First() || next.From() != "web:1" {
		t.Errorf("First and From: %v %q, %v %q", first.First(), first.From(), next.First(), next.From())
	}
}
