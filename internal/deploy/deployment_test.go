package deploy

import (
	"errors"
	"testing"
	"time"

	"github.com/slipway-dev/slipway/internal/store"
)

func TestResumable(t *testing.T) {
	cases := []struct {
		strategy, phase, state string
		want                   bool
	}{
		{"blue-green", "Install", store.DeployInProgress, true},
		{"blue-green", "AllowTestTraffic", store.DeployInProgress, true},
		{"blue-green", "AllowTraffic", store.DeployInProgress, true},
		{"blue-green", "Created", store.DeployInProgress, false},       // green not placed yet
		{"blue-green", "BeforeInstall", store.DeployInProgress, false}, // a hook was running
		{"blue-green", "AfterAllowTestTraffic", store.DeployInProgress, false},
		{"blue-green", "AfterAllowTraffic", store.DeployInProgress, false},
		{"blue-green", "BlueKept", store.DeployCompleted, false}, // done: only its termination wait resumes
		{"rolling", "Rolling", store.DeployInProgress, true},
		{"rolling", "Created", store.DeployInProgress, false},
		{"rolling", "Rolling", store.DeployRolledBack, false},
	}
	for _, c := range cases {
		d := store.Deployment{Strategy: c.strategy, Phase: c.phase, State: c.state}
		if got := resumable(d); got != c.want {
			t.Errorf("%s in %s (%s): resumable %v, want %v", c.strategy, c.phase, c.state, got, c.want)
		}
	}
}

func TestResumedGreen(t *testing.T) {
	d := store.Deployment{FromFamily: "web", FromRevision: 1, ToFamily: "web", ToRevision: 2}
	blue := store.TaskSet{Group: "tg1", Family: "web", Revision: 1, Desired: 2}
	green := store.TaskSet{Group: "tg2", Family: "web", Revision: 2, Desired: 2}
	other := store.TaskSet{Group: "tg2", Family: "web", Revision: 3, Desired: 2}
	cases := []struct {
		name string
		sets []store.TaskSet
		ok   bool
	}{
		{"blue and green", []store.TaskSet{blue, green}, true},
		{"green listed first", []store.TaskSet{green, blue}, true},
		{"killed before green was placed", []store.TaskSet{blue}, false},
		{"another deployment's green", []store.TaskSet{blue, other}, false},
		{"blue gone", []store.TaskSet{green}, false},
	}
	for _, c := range cases {
		got, err := resumedGreen(d, store.Layout{Sets: c.sets})
		var rb errRollback
		switch {
		case c.ok && (err != nil || got != green):
			t.Errorf("%s: %+v, %v; want %+v", c.name, got, err, green)
		case !c.ok && !errors.As(err, &rb):
			t.Errorf("%s: %+v, %v; want a rollback", c.name, got, err)
		}
	}
	// Blue and green of the same revision: green is the set the deployment
	// started, told by its generation.
	same := d
	same.ID, same.ToRevision = 7, 1
	sameGreen := store.TaskSet{Group: "tg2", Family: "web", Revision: 1, Desired: 2, Generation: 7}
	for _, sets := range [][]store.TaskSet{{blue, sameGreen}, {sameGreen, blue}} {
		if got, err := resumedGreen(same, store.Layout{Sets: sets}); err != nil || got != sameGreen {
			t.Errorf("the same revision on both sides %+v: %+v, %v; want %+v", sets, got, err, sameGreen)
		}
	}
	if _, err := resumedGreen(same, store.Layout{Sets: []store.TaskSet{blue}}); !errors.As(err, new(errRollback)) {
		t.Errorf("the same revision killed before green was placed: %v, want a rollback", err)
	}
}

func TestNewGenerationOnlyForTheRevisionAlreadyRunning(t *testing.T) {
	cases := []struct {
		from, to string
		fromRev  int
		toRev    int
		want     int64
	}{
		{"web", "web", 1, 2, 0},
		{"web", "web", 2, 2, 9},
		{"web", "api", 2, 2, 0},
	}
	for _, c := range cases {
		d := store.Deployment{ID: 9, FromFamily: c.from, FromRevision: c.fromRev, ToFamily: c.to, ToRevision: c.toRev}
		if got := newGeneration(d); got != c.want {
			t.Errorf("%s:%d to %s:%d: generation %d, want %d", c.from, c.fromRev, c.to, c.toRev, got, c.want)
		}
	}
}

func TestRollbackTarget(t *testing.T) {
	created := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC) // the service's creation
	dep := func(id int64, state, phase string, from, to int) store.Deployment {
		return store.Deployment{ID: id, State: state, Phase: phase, FromFamily: "web", FromRevision: from, ToFamily: "web", ToRevision: to, CreatedAt: created.Add(time.Duration(id) * time.Minute)}
	}
	ofEarlierService := func(d store.Deployment) store.Deployment {
		d.CreatedAt = created.Add(-time.Second)
		return d
	}
	firstRollout := func(d store.Deployment) store.Deployment {
		d.FromFamily, d.FromRevision = "", 0
		return d
	}
	done := store.DeployCompleted
	cases := []struct {
		name   string
		ds     []store.Deployment // newest first
		want   int64              // the chosen deployment; 0 for none
		wantIs error
	}{
		{"the newest completed", []store.Deployment{dep(3, done, "Done", 2, 3), dep(2, done, "Done", 1, 2)}, 3, nil},
		{"past a rolled-back one", []store.Deployment{dep(3, store.DeployRolledBack, "Done", 2, 3), dep(2, done, "Done", 1, 2)}, 2, nil},
		{"past a redeployment of the running revision", []store.Deployment{dep(4, done, "Done", 3, 3), dep(3, done, "Done", 2, 3)}, 3, nil},
		{"a redeployment whose blue is kept", []store.Deployment{dep(4, done, "BlueKept", 3, 3), dep(3, done, "Done", 2, 3)}, 4, nil},
		{"one in progress", []store.Deployment{dep(4, store.DeployInProgress, "Install", 3, 4), dep(3, done, "Done", 2, 3)}, 0, store.ErrConflict},
		{"only redeployments", []store.Deployment{dep(2, done, "Done", 1, 1)}, 0, store.ErrNotFound},
		{"none", nil, 0, store.ErrNotFound},
		{"only the first rollout", []store.Deployment{firstRollout(dep(1, done, "Done", 0, 1))}, 0, store.ErrNotFound},
		{"not past the first rollout", []store.Deployment{dep(3, store.DeployRolledBack, "Done", 1, 2), firstRollout(dep(1, done, "Done", 0, 1))}, 0, store.ErrNotFound},
		{"the first update", []store.Deployment{dep(2, done, "Done", 1, 2), firstRollout(dep(1, done, "Done", 0, 1))}, 2, nil},
		{"none since the service was made anew", []store.Deployment{ofEarlierService(dep(2, done, "Done", 1, 2))}, 0, store.ErrNotFound},
		{"the newest of the new service's", []store.Deployment{dep(5, done, "Done", 4, 5), ofEarlierService(dep(2, done, "BlueKept", 1, 2))}, 5, nil},
		{"past a rolled-back one, not into the earlier service's", []store.Deployment{dep(5, store.DeployRolledBack, "Done", 4, 5), ofEarlierService(dep(2, done, "Done", 1, 2))}, 0, store.ErrNotFound},
	}
	for _, c := range cases {
		i, err := rollbackTarget(c.ds, created)
		switch {
		case c.wantIs != nil && !errors.Is(err, c.wantIs):
			t.Errorf("%s: %v, want %v", c.name, err, c.wantIs)
		case c.wantIs == nil && (err != nil || c.ds[i].ID != c.want):
			t.Errorf("%s: deployment index %d, %v; want deployment %d", c.name, i, err, c.want)
		}
	}
}

func TestRestoreBoundLetsTheHealthChecksPass(t *testing.T) {
	cases := []struct {
		name string
		lb   *store.LoadBalancer
		want time.Duration
	}{
		{"no load balancer", nil, 2 * time.Minute},
		{"fast checks", &store.LoadBalancer{HealthCheckInterval: "1s", HealthyThreshold: 2}, 2 * time.Minute},
		{"default threshold", &store.LoadBalancer{HealthCheckInterval: "30s"}, 3 * time.Minute},
		{"ALB's defaults: 5 passes 30 s apart", &store.LoadBalancer{HealthCheckInterval: "30s", HealthyThreshold: 5}, 6 * time.Minute},
	}
	for _, c := range cases {
		if got := restoreBound(c.lb); got != c.want {
			t.Errorf("%s: %s, want %s", c.name, got, c.want)
		}
	}
}

func TestCircuitBreakerThreshold(t *testing.T) {
	for desired, want := range map[int]int{0: 3, 1: 3, 6: 3, 7: 4, 10: 5, 399: 200, 400: 200, 1000: 200} {
		if got := CircuitBreakerThreshold(desired); got != want {
			t.Errorf("CircuitBreakerThreshold(%d) = %d, want %d", desired, got, want)
		}
	}
}
