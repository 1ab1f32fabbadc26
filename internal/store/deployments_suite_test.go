package store

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"
)

func TestDeploymentsAndTheirTimeline(t *testing.T) {
	eachStore(t, func(t *testing.T, s testStore) {
		ctx := context.Background()
		db := openWithApps(t, s, "a")
		from := time.Now()
		d, err := db.CreateDeployment(ctx, Deployment{App: "a", Env: "staging", Service: "web", Strategy: "blue-green", Config: "CodeDeployDefault.ECSCanary10Percent5Minutes",
			FromFamily: "web", FromRevision: 3, ToFamily: "web", ToRevision: 4, Settings: []byte(`{"termination_wait":"5m","hooks":["ä",1,true,null]}`),
			State: DeployCompleted, Phase: "Created", GreenWeight: 50, Reason: "ignored", CreatedBy: "alice"})
		if err != nil {
			t.Fatal(err)
		}
		// A new deployment is in progress, whatever its caller said.
		if d.ID == 0 || d.State != DeployInProgress || !within(d.CreatedAt, from, time.Now()) || !d.UpdatedAt.Equal(d.CreatedAt) || d.EndedAt != nil {
			t.Fatalf("created %+v", d)
		}
		got, err := db.GetDeployment(ctx, d.ID)
		d.GreenWeight, d.Reason = 0, "" // the store starts them afresh
		if err != nil || !reflect.DeepEqual(got, d) {
			t.Fatalf("GetDeployment:\n got %+v, %v\nwant %+v", got, err, d)
		}
		if string(got.Settings) != `{"termination_wait":"5m","hooks":["ä",1,true,null]}` {
			t.Fatalf("settings read back as %s", got.Settings)
		}
		first, err := db.CreateDeployment(ctx, Deployment{App: "a", Env: "staging", Service: "api", Strategy: "rolling", ToFamily: "api", ToRevision: 1, Settings: []byte(`{}`), Phase: "Created"})
		if err != nil {
			t.Fatal(err)
		}

		steps := []struct {
			state, phase string
			weight       int
			reason       string
			event        string
			ended        bool
		}{
			{DeployInProgress, "Installing", 0, "", "installing the green tasks", false},
			{DeployInProgress, "Shifting", 10, "", "", false}, // no event: the timeline stays
			{DeployInProgress, "Shifting", 100, "", "all traffic on green", false},
			{DeployRolledBack, "RolledBack", 0, "alarm fired", "rolled back: alarm fired", true},
			{DeployRolledBack, "RolledBack", 0, "alarm fired", "blue tasks kept", true}, // a later update keeps the end time
		}
		var endedAt *time.Time
		wantEvents := []DeploymentEvent{{At: d.CreatedAt, Phase: "Created", Message: "deployment created: blue-green web:3 → web:4 (CodeDeployDefault.ECSCanary10Percent5Minutes)"}}
		for i, st := range steps {
			time.Sleep(time.Millisecond)
			before := time.Now()
			d.State, d.Phase, d.GreenWeight, d.Reason = st.state, st.phase, st.weight, st.reason
			if err := db.UpdateDeployment(ctx, d, st.event); err != nil {
				t.Fatal(err)
			}
			got, err := db.GetDeployment(ctx, d.ID)
			if err != nil || got.State != st.state || got.Phase != st.phase || got.GreenWeight != st.weight || got.Reason != st.reason ||
				!within(got.UpdatedAt, before, time.Now()) || !got.CreatedAt.Equal(d.CreatedAt) || (got.EndedAt != nil) != st.ended {
				t.Fatalf("step %d: read %+v, %v", i, got, err)
			}
			if st.ended {
				if endedAt == nil {
					endedAt = got.EndedAt
					if !got.EndedAt.Equal(got.UpdatedAt) {
						t.Fatalf("ended at %v, updated at %v", got.EndedAt, got.UpdatedAt)
					}
				} else if !got.EndedAt.Equal(*endedAt) {
					t.Fatalf("step %d moved the end from %v to %v", i, *endedAt, *got.EndedAt)
				}
			}
			if st.event != "" {
				wantEvents = append(wantEvents, DeploymentEvent{At: got.UpdatedAt, Phase: st.phase, GreenWeight: st.weight, Message: st.event})
			}
		}
		evs, err := db.DeploymentEvents(ctx, d.ID)
		if err != nil || !reflect.DeepEqual(evs, wantEvents) {
			t.Fatalf("DeploymentEvents:\n got %+v, %v\nwant %+v", evs, err, wantEvents)
		}
		// A service's first rollout tells so in its first event.
		if evs, err := db.DeploymentEvents(ctx, first.ID); err != nil || len(evs) != 1 || evs[0].Message != "service created: rolling out api:1" || !evs[0].At.Equal(first.CreatedAt) {
			t.Fatalf("events of a first rollout: %+v, %v", evs, err)
		}
		if evs, err := db.DeploymentEvents(ctx, 999); err != nil || evs == nil || len(evs) != 0 {
			t.Fatalf("events of an unknown deployment: %#v, %v", evs, err)
		}
		if _, err := db.GetDeployment(ctx, 999); !errors.Is(err, ErrNotFound) {
			t.Fatalf("GetDeployment of an unknown deployment: %v", err)
		}
		for _, event := range []string{"", "an event"} {
			if err := db.UpdateDeployment(ctx, Deployment{ID: 999, State: DeployFailed}, event); !errors.Is(err, ErrNotFound) {
				t.Fatalf("UpdateDeployment of an unknown deployment (event %q): %v, want ErrNotFound", event, err)
			}
		}
	})
}

// A service has one deployment in progress at a time; its first rollout
// holds nothing back.
func TestOneDeploymentInProgressPerService(t *testing.T) {
	eachStore(t, func(t *testing.T, s testStore) {
		type dep struct{ app, env, service, from, state string }
		cases := []struct {
			name     string
			existing dep
			next     dep
			conflict bool
		}{
			{"in progress, same service", dep{"a", "staging", "web", "web", DeployInProgress}, dep{"a", "staging", "web", "web", ""}, true},
			{"in progress, a first rollout next", dep{"a", "staging", "web", "web", DeployInProgress}, dep{"a", "staging", "web", "", ""}, true},
			{"in progress, another service", dep{"a", "staging", "web", "web", DeployInProgress}, dep{"a", "staging", "api", "api", ""}, false},
			{"in progress, another environment", dep{"a", "staging", "web", "web", DeployInProgress}, dep{"a", "production", "web", "web", ""}, false},
			{"in progress, another app", dep{"a", "staging", "web", "web", DeployInProgress}, dep{"b", "staging", "web", "web", ""}, false},
			{"a first rollout in progress", dep{"a", "staging", "web", "", DeployInProgress}, dep{"a", "staging", "web", "web", ""}, false},
			{"completed", dep{"a", "staging", "web", "web", DeployCompleted}, dep{"a", "staging", "web", "web", ""}, false},
			{"failed", dep{"a", "staging", "web", "web", DeployFailed}, dep{"a", "staging", "web", "web", ""}, false},
			{"rolled back", dep{"a", "staging", "web", "web", DeployRolledBack}, dep{"a", "staging", "web", "web", ""}, false},
			{"stopped", dep{"a", "staging", "web", "web", DeployStopped}, dep{"a", "staging", "web", "web", ""}, false},
		}
		// The cases share a database, each with apps of its own: a and b
		// stand for them.
		db := s.open(t)
		for i, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				ctx := context.Background()
				apps := map[string]string{"a": fmt.Sprintf("a%d", i), "b": fmt.Sprintf("b%d", i)}
				mustApps(t, db, apps["a"], apps["b"])
				mk := func(d dep) Deployment {
					return Deployment{App: apps[d.app], Env: d.env, Service: d.service, FromFamily: d.from, FromRevision: map[bool]int{true: 1}[d.from != ""], ToFamily: d.service, ToRevision: 2}
				}
				old := mustDeploy(t, db, mk(c.existing))
				if c.existing.state != DeployInProgress {
					old.State = c.existing.state
					if err := db.UpdateDeployment(ctx, old, "ended"); err != nil {
						t.Fatal(err)
					}
				}
				d, err := db.CreateDeployment(ctx, func() Deployment { d := mk(c.next); d.Strategy, d.Settings = "rolling", []byte(`{}`); return d }())
				if c.conflict {
					if !errors.Is(err, ErrConflict) || errors.Is(err, ErrExists) {
						t.Fatalf("CreateDeployment = %v, want a conflict", err)
					}
					if want := fmt.Sprintf("deployment %d of service web is still in progress; wait for it, or stop it with slipway deploy stop %d", old.ID, old.ID); err.Error() != want {
						t.Fatalf("refused with %q, want %q", err, want)
					}
					if ds, _ := db.ListDeployments(ctx, apps["a"], "", "", 0); len(ds) != 1 {
						t.Fatalf("a refused deployment was recorded: %+v", ds)
					}
					return
				}
				if err != nil || d.ID <= old.ID {
					t.Fatalf("CreateDeployment = %+v, %v", d, err)
				}
			})
		}
	})
}

// Deployments of one service created at once: one is, the others are
// refused; of different services, all are.
func TestConcurrentDeploymentsOfOneService(t *testing.T) {
	eachStore(t, func(t *testing.T, s testStore) {
		ctx := context.Background()
		db := openWithApps(t, s, "a")
		deploy := func(service string, to int) (Deployment, error) {
			return db.CreateDeployment(ctx, Deployment{App: "a", Env: "staging", Service: service, Strategy: "rolling", FromFamily: service, FromRevision: 1,
				ToFamily: service, ToRevision: to, Settings: []byte(`{}`), Phase: "Created"})
		}
		ids := make([]int64, racers)
		errs := race(t, db, func(i int) error {
			d, err := deploy("web", i+2)
			ids[i] = d.ID
			return err
		})
		won := oneWinner(t, errs, ErrConflict, ErrExists)
		active, err := db.ActiveDeployments(ctx)
		if err != nil || len(active) != 1 || active[0].ID != ids[won] || active[0].ToRevision != won+2 {
			t.Fatalf("won by %d; in progress: %+v, %v", won, active, err)
		}
		if evs, _ := db.DeploymentEvents(ctx, ids[won]); len(evs) != 1 {
			t.Fatalf("the winner's timeline: %+v", evs)
		}

		// Other services do not get in each other's way.
		errs = race(t, db, func(i int) error {
			_, err := deploy(fmt.Sprintf("svc%d", i), 2)
			return err
		})
		for i, err := range errs {
			if err != nil {
				t.Errorf("CreateDeployment of svc%d: %v", i, err)
			}
		}
		if active, _ := db.ActiveDeployments(ctx); len(active) != racers+1 {
			t.Fatalf("%d deployments in progress, want %d", len(active), racers+1)
		}
	})
}

func TestListDeploymentsAndActiveOnes(t *testing.T) {
	eachStore(t, func(t *testing.T, s testStore) {
		ctx := context.Background()
		db := openWithApps(t, s, "a", "b")
		if ds, err := db.ActiveDeployments(ctx); err != nil || ds == nil || len(ds) != 0 {
			t.Fatalf("ActiveDeployments of none: %#v, %v", ds, err)
		}
		if ds, err := db.ListDeployments(ctx, "", "", "", 0); err != nil || ds == nil || len(ds) != 0 {
			t.Fatalf("ListDeployments of none: %#v, %v", ds, err)
		}
		// Named app/env/service; the ones marked ended are ended.
		keys := []struct {
			key   string
			ended bool
		}{{"a/staging/web", true}, {"a/staging/api", false}, {"b/staging/web", true}, {"a/production/web", false}, {"a/staging/web", false}, {"b/staging/web", false}, {"b/production/api", true}}
		byID := map[int64]string{}
		for i, k := range keys {
			app, env, svc := splitKey(k.key)
			d := mustDeploy(t, db, Deployment{App: app, Env: env, Service: svc, FromFamily: svc, FromRevision: i, ToFamily: svc, ToRevision: i + 1})
			byID[d.ID] = fmt.Sprintf("%s#%d", k.key, i)
			if k.ended {
				d.State = DeployCompleted
				if err := db.UpdateDeployment(ctx, d, "done"); err != nil {
					t.Fatal(err)
				}
			}
		}
		names := func(ds []Deployment) string {
			var out []string
			for _, d := range ds {
				out = append(out, byID[d.ID])
			}
			return fmt.Sprint(out)
		}
		cases := []struct {
			app, env, service string
			limit             int
			want              string
		}{
			{"", "", "", 0, "[b/production/api#6 b/staging/web#5 a/staging/web#4 a/production/web#3 b/staging/web#2 a/staging/api#1 a/staging/web#0]"},
			{"", "", "", 2, "[b/production/api#6 b/staging/web#5]"},
			{"a", "", "", 0, "[a/staging/web#4 a/production/web#3 a/staging/api#1 a/staging/web#0]"},
			{"a", "staging", "", 0, "[a/staging/web#4 a/staging/api#1 a/staging/web#0]"},
			{"a", "staging", "web", 0, "[a/staging/web#4 a/staging/web#0]"},
			{"a", "staging", "web", 1, "[a/staging/web#4]"},
			{"", "", "web", 0, "[b/staging/web#5 a/staging/web#4 a/production/web#3 b/staging/web#2 a/staging/web#0]"},
			{"", "production", "", 0, "[b/production/api#6 a/production/web#3]"},
			{"b", "", "api", 0, "[b/production/api#6]"},
			{"a", "staging", "nope", 0, "[]"},
		}
		for _, c := range cases {
			ds, err := db.ListDeployments(ctx, c.app, c.env, c.service, c.limit)
			if err != nil || ds == nil || names(ds) != c.want {
				t.Errorf("ListDeployments(%q, %q, %q, %d) = %s, %v; want %s", c.app, c.env, c.service, c.limit, names(ds), err, c.want)
			}
		}
		active, err := db.ActiveDeployments(ctx)
		if err != nil || names(active) != "[a/staging/api#1 a/production/web#3 a/staging/web#4 b/staging/web#5]" {
			t.Fatalf("ActiveDeployments = %s, %v", names(active), err)
		}
		for _, d := range active {
			if got, _ := db.GetDeployment(ctx, d.ID); !reflect.DeepEqual(got, d) {
				t.Fatalf("listed %+v, read %+v", d, got)
			}
		}
	})
}
