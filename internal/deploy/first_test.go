package deploy

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/slipway-dev/slipway/internal/store"
)

// A new service's first rollout ends by what happens to the service: all
// tasks healthy, the circuit breaker, a deployment or delete that takes
// over, a stop; and a restart waits on. The task counts are set here as a
// reconcile pass would set them; no engine runs.
func TestFirstRolloutEnds(t *testing.T) {
	cases := []struct {
		name       string
		then       func(t *testing.T, c *Controller, svc store.Service, d store.Deployment)
		wantState  string
		wantReason string
	}{
		{"every task healthy", func(t *testing.T, c *Controller, svc store.Service, d store.Deployment) {
			c.Manager.mu.Lock()
			c.Manager.setStatus[key(svc)] = map[string]SetStatus{svc.EffectiveLayout().Sets[0].Key(): {Running: 2, Healthy: 2}}
			c.Manager.mu.Unlock()
		}, store.DeployCompleted, ""},
		{"the circuit breaker", func(t *testing.T, c *Controller, svc store.Service, d store.Deployment) {
			c.Manager.event(context.Background(), svc, "task t1 stopped: essential container web exited with code 2")
			for range 3 {
				c.Manager.setFailed(svc, svc.EffectiveLayout().Sets[0])
			}
		}, store.DeployFailed, "circuit breaker: 3 failed launches of web:1 before the new service web reached a steady state (last event: task t1 stopped: essential container web exited with code 2)"},
		{"a deployment takes over", func(t *testing.T, c *Controller, svc store.Service, d store.Deployment) {
			if _, err := c.Store.CreateDeployment(context.Background(), store.Deployment{App: "a", Env: "staging", Service: "web", Strategy: "rolling",
				FromFamily: "web", FromRevision: 1, ToFamily: "web", ToRevision: 1, Settings: []byte("{}"), Phase: "Created"}); err != nil {
				t.Fatalf("a deployment during the first rollout: %v", err)
			}
		}, store.DeployStopped, "took over the service"},
		{"the service is deleted", func(t *testing.T, c *Controller, svc store.Service, d store.Deployment) {
			if err := c.Store.DeleteService(context.Background(), "a", "staging", "web"); err != nil {
				t.Fatalf("delete during the first rollout: %v", err)
			}
		}, store.DeployStopped, "the service was deleted"},
		{"the app is deleted", func(t *testing.T, c *Controller, svc store.Service, d store.Deployment) {
			if err := c.Store.(*store.DB).DeleteApp(context.Background(), "a"); err != nil {
				t.Fatalf("app delete during the first rollout: %v", err)
			}
		}, "", ""},
		{"someone stops it", func(t *testing.T, c *Controller, svc store.Service, d store.Deployment) {
			if err := c.Stop(context.Background(), d.ID); err != nil {
				t.Fatal(err)
			}
		}, store.DeployStopped, "stopped by a person"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, svc, d := startFirstRollout(t)
			tc.then(t, c, svc, d)
			if tc.wantState == "" { // gone with its app: the runner ends all the same
				c.Close()
				if _, err := c.Store.GetDeployment(context.Background(), d.ID); !errors.Is(err, store.ErrNotFound) {
					t.Fatalf("the deployment of a deleted app: %v", err)
				}
				return
			}
			got := waitEnded(t, c.Store, d.ID)
			// Nothing is said of a deleted service among service events.
			if evs, _ := c.Store.ListServiceEvents(context.Background(), "a", "staging", "web", 10); tc.wantReason == "the service was deleted" && len(evs) != 0 {
				t.Fatalf("events of the deleted service: %+v", evs)
			}
			if got.State != tc.wantState || !strings.Contains(got.Reason, tc.wantReason) {
				t.Fatalf("ended %s (%q), want %s (%q)", got.State, got.Reason, tc.wantState, tc.wantReason)
			}
		})
	}
}

// Tasks that never turn healthy, without failing either (a health check
// that never passes, an image that takes for ever), fail the first
// rollout at its timeout.
func TestFirstRolloutTimesOut(t *testing.T) {
	c, _, d := startFirstRolloutWith(t, 500*time.Millisecond)
	if got := waitEnded(t, c.Store, d.ID); got.State != store.DeployFailed || got.Reason != "the new service's tasks were not all healthy after 500ms" {
		t.Fatalf("ended %s (%q)", got.State, got.Reason)
	}
}

func TestFirstRolloutWaitsOnAfterARestart(t *testing.T) {
	c, svc, d := startFirstRollout(t)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if got, _ := c.Store.GetDeployment(context.Background(), d.ID); got.Phase == "Rolling" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the first rollout never began")
		}
	}
	c.Close()
	if got, _ := c.Store.GetDeployment(context.Background(), d.ID); got.State != store.DeployInProgress {
		t.Fatalf("after the controller stopped: %s", got.State)
	}
	again := &Controller{Store: c.Store, Manager: c.Manager}
	if err := again.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(again.Close)
	c.Manager.mu.Lock()
	c.Manager.setStatus[key(svc)] = map[string]SetStatus{svc.EffectiveLayout().Sets[0].Key(): {Running: 2, Healthy: 2}}
	c.Manager.mu.Unlock()
	if got := waitEnded(t, c.Store, d.ID); got.State != store.DeployCompleted {
		t.Fatalf("after the restart: %s %q", got.State, got.Reason)
	}
	evs, _ := c.Store.DeploymentEvents(context.Background(), d.ID)
	if len(evs) != 4 || !strings.HasPrefix(evs[2].Message, "control plane restarted: waiting again for 2 tasks") {
		t.Fatalf("timeline: %+v", evs)
	}
}

// startFirstRollout creates service web (2 × web:1) through a controller
// whose manager has no engine.
func startFirstRollout(t *testing.T) (*Controller, store.Service, store.Deployment) {
	t.Helper()
	return startFirstRolloutWith(t, 0)
}

// startFirstRolloutWith is startFirstRollout with a first-rollout timeout
// (0: the default).
func startFirstRolloutWith(t *testing.T, timeout time.Duration) (*Controller, store.Service, store.Deployment) {
	t.Helper()
	ctx := context.Background()
	db := storeWithApp(t, t.TempDir(), "a")
	if _, err := db.RegisterTaskDef(ctx, "web", []byte(`{"family":"web","containerDefinitions":[{"name":"web","image":"x"}]}`), "test"); err != nil {
		t.Fatal(err)
	}
	m := &Manager{Store: db, Log: slog.New(slog.NewTextHandler(io.Discard, nil)), setFailures: map[string]int{}, setStatus: map[string]map[string]SetStatus{}}
	c := &Controller{Store: db, Manager: m, FirstRolloutTimeout: timeout}
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	svc, d, err := c.CreateService(ctx, store.Service{App: "a", Env: "staging", Name: "web", Family: "web", Revision: 1, Desired: 2}, "test")
	if err != nil {
		t.Fatal(err)
	}
	if d.State != store.DeployInProgress || !d.First() || d.From() != "(new service)" {
		t.Fatalf("first rollout: %+v", d)
	}
	return c, svc, d
}

func waitEnded(t *testing.T, db DeployStore, id int64) store.Deployment {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		d, err := db.GetDeployment(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if d.State != store.DeployInProgress {
			return d
		}
		if time.Now().After(deadline) {
			t.Fatalf("deployment %d still in progress (phase %s)", id, d.Phase)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
