package deploy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"time"

	"github.com/slipway-dev/slipway/internal/container"
	"github.com/slipway-dev/slipway/internal/notify"
	"github.com/slipway-dev/slipway/internal/sandbox"
	"github.com/slipway-dev/slipway/internal/store"
)

// DeployStore is what deployments need from the state store.
type DeployStore interface {
	store.RuntimeStore
	store.DeploymentStore
}

// Controller runs deployments, one goroutine each, keeping their state durable.
type Controller struct {
	Store   DeployStore
	Manager *Manager
	// Installation labels hook containers as the runtime labels tasks.
	Installation string
	// DataDir is kept out of hook sandboxes, even one whose host mounts
	// would contain it.
	DataDir string
	// Apps tells where an app's hooks run (its build settings); nil: in
	// the sandbox.
	Apps interface {
		GetApp(ctx context.Context, name string) (store.App, error)
	}
	// FirstRolloutTimeout bounds the wait for a new service's tasks
	// (default 15 minutes).
	FirstRolloutTimeout time.Duration
	mu                  sync.Mutex
	termMu              sync.Mutex // orders ending a termination wait against starting a deployment
	running             map[int64]context.CancelFunc
	stopped             map[int64]string // deployment → why someone stopped it
	promoted            map[int64]string // deployment → who skipped its remaining traffic steps
	wg                  sync.WaitGroup
	ctx                 context.Context
	stop                context.CancelFunc // ends ctx: Close, so nothing launches after it
}

// Request starts a deployment.
type Request struct {
	App, Env, Service string
	Family            string
	Revision          int
	Strategy          string // rolling (default) or blue-green
	Config            string
	Settings          Settings
	By                string
}

// errRollback asks the runner to roll back with a reason.
type errRollback struct{ reason string }

func (e errRollback) Error() string { return e.reason }

// Start takes over what a stopped server left, so traffic is never left
// split with nobody in charge: a deployment stopped where nothing but
// launches and the schedule was in flight resumes (see resumable), any
// other in progress rolls back, and a completed blue/green deployment
// keeps waiting to remove blue.
func (c *Controller) Start(ctx context.Context) error {
	c.mu.Lock()
	c.ctx, c.stop = context.WithCancel(ctx)
	c.running = map[int64]context.CancelFunc{}
	c.mu.Unlock()
	c.stopped = map[int64]string{}
	c.promoted = map[int64]string{}
	active, err := c.Store.ActiveDeployments(ctx)
	if err != nil {
		return err
	}
	for _, d := range active {
		if d.First() { // nothing to roll back to: wait on
			c.launch(d, func(ctx context.Context, d *store.Deployment) error { return c.firstRollout(ctx, d, nil) })
			continue
		}
		if resumable(d) {
			c.launch(d, c.run)
			continue
		}
		svc, err := c.Store.GetService(ctx, d.App, d.Env, d.Service)
		if err != nil {
			continue
		}
		reason := "control plane restarted during the deployment"
		if d.Phase == "RollingBack" && d.Reason != "" {
			reason = d.Reason // the rollback was under way: its cause stands
		}
		// In the background: a rolling rollback waits for the old tasks.
		c.launch(d, func(ctx context.Context, d *store.Deployment) error {
			c.rollback(ctx, d, svc, reason)
			return nil
		})
	}
	recent, err := c.Store.ListDeployments(ctx, "", "", "", 500)
	if err != nil {
		return err
	}
	for _, d := range recent {
		if d.State == store.DeployCompleted && d.Phase == "BlueKept" {
			c.launch(d, func(ctx context.Context, d *store.Deployment) error { return c.finishTermination(ctx, d) })
		}
	}
	return nil
}

// resumable reports a deployment that a restart can pick up where it was.
// In the blue/green phases it names, every hook before has passed and none
// runs (a hook records its own phase while it runs), so nothing was in
// flight but green's launch and the traffic schedule; anywhere else a hook
// may have been cut short, and it rolls back. A rolling deployment resumes
// once its rollout has begun.
func resumable(d store.Deployment) bool {
	if d.State != store.DeployInProgress {
		return false
	}
	switch d.Strategy {
	case "blue-green":
		return d.Phase == "Install" || d.Phase == "AllowTestTraffic" || d.Phase == "AllowTraffic"
	case "rolling":
		return d.Phase == "Rolling" // no hooks: only the counts were in flight
	}
	return false
}

// resumedGreen is the green set a resumed blue/green deployment carries on
// with: the layout must hold blue and the deployment's green, or the
// restart came before green was placed, and it rolls back.
func resumedGreen(d store.Deployment, layout store.Layout) (store.TaskSet, error) {
	green, ok := NewSetOf(d, layout)
	if _, blue := oldSetOf(d, layout); !ok || !blue || len(layout.Sets) != 2 {
		return store.TaskSet{}, errRollback{"control plane restarted during the deployment, before green was in the service's layout"}
	}
	return green, nil
}

// newGeneration is the generation of the task set deployment d starts: its
// own ID when it deploys the revision already running (ECS's force new
// deployment), so that its tasks can be told from those they replace.
func newGeneration(d store.Deployment) int64 {
	if d.FromFamily == d.ToFamily && d.FromRevision == d.ToRevision {
		return d.ID
	}
	return 0
}

// NewSetOf finds the task set deployment d started (its green) in layout.
func NewSetOf(d store.Deployment, layout store.Layout) (store.TaskSet, bool) {
	for _, set := range layout.Sets {
		if set.Family == d.ToFamily && set.Revision == d.ToRevision && set.Generation == newGeneration(d) {
			return set, true
		}
	}
	return store.TaskSet{}, false
}

// oldSetOf finds the task set deployment d replaces in layout.
func oldSetOf(d store.Deployment, layout store.Layout) (store.TaskSet, bool) {
	for _, set := range layout.Sets {
		if set.Family == d.FromFamily && set.Revision == d.FromRevision && (newGeneration(d) == 0 || set.Generation != d.ID) {
			return set, true
		}
	}
	return store.TaskSet{}, false
}

// Close stops the runners (their deployments resume at the next start).
func (c *Controller) Close() {
	c.mu.Lock()
	if c.stop != nil {
		c.stop()
	}
	for _, cancel := range c.running {
		cancel()
	}
	c.mu.Unlock()
	c.wg.Wait()
}

// Create validates and records a deployment, then runs it.
func (c *Controller) Create(ctx context.Context, req Request) (store.Deployment, error) {
	svc, err := c.Store.GetService(ctx, req.App, req.Env, req.Service)
	if err != nil {
		return store.Deployment{}, err
	}
	if req.Strategy == "" {
		req.Strategy = "rolling"
	}
	if req.Strategy != "rolling" && req.Strategy != "blue-green" {
		return store.Deployment{}, fmt.Errorf("strategy %q must be rolling or blue-green", req.Strategy)
	}
	if _, err := ParseConfig(req.Config); err != nil {
		return store.Deployment{}, err
	}
	if req.Config == "" {
		req.Config = "CodeDeployDefault.ECSAllAtOnce"
	}
	if req.Strategy == "blue-green" && svc.LoadBalancer == nil {
		return store.Deployment{}, errors.New("a blue/green deployment needs a service with a load balancer")
	}
	if err := req.Settings.Defaults(req.Strategy); err != nil {
		return store.Deployment{}, err
	}
	if err := c.Manager.CheckSecrets(ctx, req.App, req.Env, req.Family, req.Revision); err != nil {
		return store.Deployment{}, err
	}
	if err := c.Manager.CheckRuntime(ctx, req.App, req.Env, req.Family, req.Revision); err != nil {
		return store.Deployment{}, err
	}
	if err := c.Manager.CheckCapacity(ctx, req.App, req.Env, req.Family, req.Revision); err != nil {
		return store.Deployment{}, err
	}
	// A blue set still kept by the last deployment goes now: the new
	// deployment takes the other target group for its green.
	c.termMu.Lock()
	defer c.termMu.Unlock()
	if prev, err := c.Store.ListDeployments(ctx, req.App, req.Env, req.Service, 1); err == nil && len(prev) == 1 && prev[0].Phase == "BlueKept" {
		if err := c.endTermination(ctx, &prev[0], "termination wait ended early: a new deployment starts"); err != nil {
			return store.Deployment{}, err
		}
		if svc, err = c.Store.GetService(ctx, req.App, req.Env, req.Service); err != nil {
			return store.Deployment{}, err
		}
	}
	settings, _ := json.Marshal(req.Settings)
	d, err := c.Store.CreateDeployment(ctx, store.Deployment{App: req.App, Env: req.Env, Service: req.Service, Strategy: req.Strategy, Config: req.Config,
		FromFamily: svc.Family, FromRevision: svc.Revision, ToFamily: req.Family, ToRevision: req.Revision, Settings: settings,
		Phase: "Created", CreatedBy: req.By})
	if err != nil {
		return d, err
	}
	c.launch(d, c.run)
	return d, nil
}

// CreateService creates a service and records its first rollout, as ECS
// records a service's first deployment: it completes once every desired
// task runs and passes its health checks, and fails when the circuit
// breaker trips (the service has no earlier revision to roll back to, and
// keeps retrying with backoff). It holds nothing back: a deployment, a new
// count or a delete of the service ends it.
func (c *Controller) CreateService(ctx context.Context, svc store.Service, by string) (store.Service, store.Deployment, error) {
	// Failures counted before this service (one of the same name, deleted
	// since) are not its own.
	base := c.Manager.SetFailures(svc, svc.EffectiveLayout().Sets[0])
	svc, err := c.Manager.CreateService(ctx, svc)
	if err != nil {
		return svc, store.Deployment{}, err
	}
	settings, _ := json.Marshal(Settings{CircuitBreaker: true})
	d, err := c.Store.CreateDeployment(ctx, store.Deployment{App: svc.App, Env: svc.Env, Service: svc.Name, Strategy: "rolling",
		ToFamily: svc.Family, ToRevision: svc.Revision, Settings: settings, Phase: "Created", CreatedBy: by})
	if err != nil {
		return svc, d, fmt.Errorf("service %s created, but its first rollout was not recorded: %w", svc.Name, err)
	}
	// Said here, not by the runner: a delete may follow at once, and no
	// event may outlive the service.
	c.note(ctx, &d, "Rolling", "starting %s of %s:%d for the new service; circuit breaker after %d failed launches", tasks(svc.Desired), d.ToFamily, d.ToRevision, CircuitBreakerThreshold(svc.Desired))
	c.launch(d, func(ctx context.Context, d *store.Deployment) error { return c.firstRollout(ctx, d, &base) })
	return svc, d, nil
}

// firstRolloutSettle is how long the tasks of a service without a load
// balancer must run (two reconcile passes) to count.
const firstRolloutSettle = 2500 * time.Millisecond

// firstRollout follows a new service until its tasks are healthy, counting
// failed launches from base (nil: from now, after a restart).
func (c *Controller) firstRollout(ctx context.Context, d *store.Deployment, base *int) error {
	svc, err := c.Store.GetService(ctx, d.App, d.Env, d.Service)
	for err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return c.endDeleted(ctx, d)
		}
		if err := sleep(ctx, time.Second); err != nil {
			return err
		}
		svc, err = c.Store.GetService(ctx, d.App, d.Env, d.Service)
	}
	set := svc.EffectiveLayout().Sets[0]
	resumed := base == nil
	if resumed {
		n := c.Manager.SetFailures(svc, set)
		base = &n
	}
	threshold := CircuitBreakerThreshold(svc.Desired)
	if d.Phase == "Rolling" && resumed {
		c.note(ctx, d, "Rolling", "control plane restarted: waiting again for %s of %s:%d", tasks(svc.Desired), d.ToFamily, d.ToRevision)
	}
	timeout := c.FirstRolloutTimeout
	if timeout == 0 {
		timeout = 15 * time.Minute
	}
	deadline := time.Now().Add(timeout)
	var healthySince time.Time
	for {
		if why := c.stopRequested(d.ID); why != "" {
			return c.endFirst(ctx, d, store.DeployStopped, why+"; a new service has no earlier revision to return to: its tasks stay (delete the service or deploy another revision)")
		}
		cur, err := c.Store.GetService(ctx, d.App, d.Env, d.Service)
		if errors.Is(err, store.ErrNotFound) || (err == nil && cur.CreatedAt.After(d.CreatedAt)) {
			return c.endDeleted(ctx, d)
		}
		if err == nil {
			svc = cur
			if latest, err := c.Store.ListDeployments(ctx, d.App, d.Env, d.Service, 1); err == nil && len(latest) == 1 && latest[0].ID != d.ID {
				return c.endFirst(ctx, d, store.DeployStopped, fmt.Sprintf("deployment %d took over the service", latest[0].ID))
			}
			if svc.Family != d.ToFamily || svc.Revision != d.ToRevision {
				return c.endFirst(ctx, d, store.DeployStopped, fmt.Sprintf("the service was changed to %s:%d", svc.Family, svc.Revision))
			}
			if s := c.Manager.Status(svc)[set.Key()]; s.Healthy < svc.Desired {
				healthySince = time.Time{}
			} else if healthySince.IsZero() {
				healthySince = time.Now()
			}
			// Without the load balancer's checks, a running task counts as
			// healthy, and one that crashes at once runs for a moment after
			// each start: it must keep running past a reconcile pass.
			if !healthySince.IsZero() && (svc.LoadBalancer != nil || svc.Desired == 0 || time.Since(healthySince) >= firstRolloutSettle) {
				d.State, d.GreenWeight = store.DeployCompleted, 100
				c.note(ctx, d, "Done", "rollout COMPLETED: %s of %s:%d healthy", tasks(svc.Desired), d.ToFamily, d.ToRevision)
				return nil
			}
			if f := c.Manager.SetFailures(svc, set) - *base; f >= threshold {
				reason := fmt.Sprintf("circuit breaker: %d failed launches of %s:%d before the new service %s reached a steady state", f, d.ToFamily, d.ToRevision, d.Service)
				const retrying = "it keeps retrying with backoff until a fixed revision is deployed or it is deleted"
				// The cause, quoting the container's output, comes last.
				if why := c.Manager.SetFailureCause(svc, set); why != "" {
					return c.endFirst(ctx, d, store.DeployFailed, fmt.Sprintf("%s; %s; last failure: %s", reason, retrying, why))
				}
				return c.endFirst(ctx, d, store.DeployFailed, fmt.Sprintf("%s (last event: %s); %s", reason, c.lastTaskEvent(ctx, svc), retrying))
			}
		}
		if time.Now().After(deadline) {
			return c.endFirst(ctx, d, store.DeployFailed, fmt.Sprintf("the new service's tasks were not all healthy after %s", timeout))
		}
		c.Manager.Wake()
		if err := sleep(ctx, 300*time.Millisecond); err != nil {
			return err // the server is stopping: the next start waits again
		}
	}
}

// endFirst ends a first rollout FAILED or STOPPED, for reason.
func (c *Controller) endFirst(ctx context.Context, d *store.Deployment, state, reason string) error {
	d.State, d.Reason = state, reason
	c.note(ctx, d, map[string]string{store.DeployFailed: "Failed", store.DeployStopped: "Stopped"}[state], "first rollout %s: %s", strings.ToLower(state), reason)
	return nil
}

// endDeleted ends the first rollout of a service deleted under it. No
// service event says so: it would outlive the service and show among the
// events of a new one of the same name. (With the app gone, the
// deployment is gone too, and nothing is left to record.)
func (c *Controller) endDeleted(ctx context.Context, d *store.Deployment) error {
	d.State, d.Reason, d.Phase = store.DeployStopped, "the service was deleted", "Stopped"
	_ = c.Store.UpdateDeployment(ctx, *d, "first rollout stopped: the service was deleted")
	return nil
}

// lastTaskEvent is the newest event of svc that is not a deployment's own.
func (c *Controller) lastTaskEvent(ctx context.Context, svc store.Service) string {
	evs, err := c.Store.ListServiceEvents(ctx, svc.App, svc.Env, svc.Name, 10)
	if err != nil {
		return err.Error()
	}
	for _, ev := range evs {
		if msg := strings.TrimPrefix(ev.Message, "(service "+svc.Name+") "); !strings.HasPrefix(msg, "deployment ") {
			return msg
		}
	}
	return "none"
}

func (c *Controller) launch(d store.Deployment, fn func(context.Context, *store.Deployment) error) {
	c.mu.Lock()
	if c.ctx == nil || c.ctx.Err() != nil {
		// Closed (this server gave the control loops up): the deployment
		// stays in progress for the server that runs them next.
		c.mu.Unlock()
		return
	}
	ctx, cancel := context.WithCancel(c.ctx)
	c.running[d.ID] = cancel
	c.wg.Add(1) // under mu: Close cannot be waiting yet
	c.mu.Unlock()
	go func() {
		defer c.wg.Done()
		defer func() {
			c.mu.Lock()
			delete(c.running, d.ID)
			delete(c.promoted, d.ID)
			c.mu.Unlock()
			cancel()
		}()
		if err := fn(ctx, &d); err != nil && ctx.Err() == nil {
			c.Manager.Log.Error("deployment", "id", d.ID, "err", err)
		}
	}()
}

// Stop ends a deployment in progress by rolling it back.
func (c *Controller) Stop(ctx context.Context, id int64) error {
	d, err := c.Store.GetDeployment(ctx, id)
	if err != nil {
		return err
	}
	if d.State != store.DeployInProgress {
		return store.Conflictf("deployment %d is %s; only one in progress can be stopped", id, d.State)
	}
	if d.Phase == "RollingBack" {
		return store.Conflictf("deployment %d is already rolling back", id)
	}
	c.mu.Lock()
	c.stopped[id] = "stopped by a person"
	c.mu.Unlock()
	return nil
}

// Promote ends the wait of a blue/green deployment's canary or linear
// steps: green takes all production traffic at once (Argo Rollouts'
// promote --full). Health checks and alarms still apply until then, and
// the hooks after traffic still run.
func (c *Controller) Promote(ctx context.Context, id int64, by string) error {
	d, err := c.Store.GetDeployment(ctx, id)
	if err != nil {
		return err
	}
	if d.State != store.DeployInProgress {
		return store.Conflictf("deployment %d is %s; only one in progress can be promoted", id, d.State)
	}
	if d.Strategy != "blue-green" {
		return store.Conflictf("deployment %d is %s; only a blue/green deployment has traffic steps to skip", id, d.Strategy)
	}
	if d.Phase == "RollingBack" || d.GreenWeight == 100 {
		return store.Conflictf("deployment %d has no traffic steps left (phase %s, green %d%%)", id, d.Phase, d.GreenWeight)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.promoted == nil {
		c.promoted = map[int64]string{}
	}
	c.promoted[id] = by
	return nil
}

func (c *Controller) promoteRequested(id int64) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.promoted[id]
}

func (c *Controller) stopRequested(id int64) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stopped[id]
}

func activeGroup(l store.Layout) string {
	best, w := store.DefaultGroup, -1
	for _, p := range l.Prod {
		if p.Weight > w {
			best, w = p.Group, p.Weight
		}
	}
	return best
}

func otherGroup(g string) string {
	if g == "tg1" {
		return "tg2"
	}
	return "tg1"
}

func (c *Controller) note(ctx context.Context, d *store.Deployment, phase, format string, args ...any) {
	d.Phase = phase
	msg := fmt.Sprintf(format, args...)
	if err := c.Store.UpdateDeployment(ctx, *d, msg); err != nil {
		c.Manager.Log.Error("record deployment event", "id", d.ID, "err", err)
	}
	c.Manager.event(ctx, store.Service{App: d.App, Env: d.Env, Name: d.Service}, "deployment %d: %s", d.ID, msg)
}

// setLayout stores the service's layout and applies it at once, so a
// traffic step is in force in the load balancer before it is reported.
func (c *Controller) setLayout(ctx context.Context, svc *store.Service, l store.Layout) error {
	routingOnly := svc.Layout != nil && reflect.DeepEqual(svc.Layout.Sets, l.Sets)
	svc.Layout = &l
	if _, err := c.Store.UpdateService(ctx, *svc); err != nil {
		return err
	}
	if routingOnly {
		// Same task sets, new weights: only the routing changes, which is
		// what a traffic shift must not wait on a reconcile pass for.
		if err := c.Manager.ApplyRoutes(ctx); err != nil {
			return fmt.Errorf("apply the new routing: %w", err)
		}
		c.Manager.Wake()
		return nil
	}
	if err := c.Manager.Reconcile(ctx); err != nil {
		return fmt.Errorf("apply the new layout: %w", err)
	}
	return nil
}

func (c *Controller) run(ctx context.Context, d *store.Deployment) error {
	var st Settings
	_ = json.Unmarshal(d.Settings, &st)
	svc, err := c.Store.GetService(ctx, d.App, d.Env, d.Service)
	if err != nil {
		return err
	}
	var runErr error
	if d.Strategy == "blue-green" {
		runErr = c.blueGreen(ctx, d, &svc, st)
	} else {
		runErr = c.rolling(ctx, d, &svc, st)
	}
	if ctx.Err() != nil {
		return ctx.Err() // the server is stopping; the next start resumes or rolls back
	}
	var rb errRollback
	if errors.As(runErr, &rb) {
		svc, _ = c.Store.GetService(context.WithoutCancel(ctx), d.App, d.Env, d.Service)
		if d.Strategy == "rolling" && !st.Rollback && !strings.HasPrefix(rb.reason, "stopped") {
			d.State, d.Reason = store.DeployFailed, rb.reason
			c.note(ctx, d, "Failed", "deployment failed: %s (rollback is off; the service keeps what is running)", rb.reason)
			return nil
		}
		c.rollback(ctx, d, svc, rb.reason)
		return nil
	}
	return runErr
}

// rollback restores the deployment's starting revision at full count with
// all traffic. Its changes outlive ctx; a rolling rollback that ctx ends
// while it waits for the old tasks is left in progress for the next start
// to roll back again.
func (c *Controller) rollback(ctx context.Context, d *store.Deployment, svc store.Service, reason string) {
	wait := ctx
	ctx = context.WithoutCancel(ctx)
	from := store.TaskSet{Family: d.FromFamily, Revision: d.FromRevision, Desired: svc.Desired}
	layout := svc.EffectiveLayout()
	blue := activeGroup(layout)
	old, hasOld := oldSetOf(*d, layout)
	if d.Strategy == "blue-green" && d.Phase != "BlueKept" && d.Phase != "Done" {
		// Blue never stopped serving: put all traffic and the test listener back on it.
		if hasOld {
			blue = old.Group
		}
	} else if d.Strategy == "blue-green" {
		blue = otherGroup(activeGroup(layout))
	}
	from.Group = blue
	if hasOld && old.Group == blue {
		from.Generation = old.Generation // the tasks still running, not new ones
	} else if set, ok := NewSetOf(*d, layout); ok && set.Group == blue && newGeneration(*d) != 0 {
		// Every old task of the revision is gone: its new tasks are as good.
		from.Generation = set.Generation
	}
	svc.Family, svc.Revision = d.FromFamily, d.FromRevision
	if d.Strategy == "rolling" && !c.serveWhileRestoring(wait, d, &svc, from, reason) {
		return
	}
	_ = c.setLayout(ctx, &svc, store.Layout{Sets: []store.TaskSet{from}, Prod: []store.Weight{{Group: blue, Weight: 100}}, Test: blue})
	d.State, d.Reason, d.GreenWeight = store.DeployRolledBack, reason, 0
	c.note(ctx, d, "RolledBack", "rolled back to %s:%d: %s", d.FromFamily, d.FromRevision, reason)
	c.Manager.Notifier.Notify(ctx, notify.Event{Kind: notify.DeploymentRolledBack, App: d.App, Path: fmt.Sprintf("/deployments/%d", d.ID),
		Title: fmt.Sprintf("%s: deployment %d of %s in %s rolled back", d.App, d.ID, d.Service, d.Env),
		Text:  reason,
		Fields: map[string]string{"deployment": fmt.Sprint(d.ID), "environment": d.Env, "service": d.Service,
			"from": fmt.Sprintf("%s:%d", d.ToFamily, d.ToRevision), "to": fmt.Sprintf("%s:%d", d.FromFamily, d.FromRevision)}})
}

// serveWhileRestoring is a rolling rollback's first step: the new
// revision's healthy tasks keep serving beside the restored set until the
// old revision passes the load balancer's checks at full count, so a
// rollback that starts after old tasks have drained never leaves the
// listener with no one to send requests to. It reports false when ctx
// ended first (the server is stopping). The rollback's reason is recorded
// with the phase, so a restart in the wait rolls back for the same reason.
func (c *Controller) serveWhileRestoring(ctx context.Context, d *store.Deployment, svc *store.Service, from store.TaskSet, reason string) bool {
	next, ok := NewSetOf(*d, svc.EffectiveLayout())
	if !ok || next.Key() == from.Key() {
		return true
	}
	status := c.Manager.Status(*svc)
	keep := min(next.Desired, status[next.Key()].Healthy)
	if d.Phase == "RollingBack" {
		// A restarted server carries on: its first reconcile pass may not
		// have counted healthy tasks yet, and the count was cut before.
		keep = next.Desired
	}
	if keep == 0 || status[from.Key()].Healthy >= from.Desired {
		return true
	}
	next.Desired = keep
	wctx := context.WithoutCancel(ctx)
	restoring := store.Layout{Sets: []store.TaskSet{from, next}, Prod: []store.Weight{{Group: from.Group, Weight: 100}}, Test: from.Group}
	if err := c.setLayout(wctx, svc, restoring); err != nil {
		return true
	}
	d.Reason = reason
	c.note(wctx, d, "RollingBack", "rolling back (%s): %s of %s:%d keep serving until %s of %s:%d pass the load balancer's checks",
		reason, tasks(keep), d.ToFamily, d.ToRevision, tasks(from.Desired), d.FromFamily, d.FromRevision)
	for deadline := time.Now().Add(restoreBound(svc.LoadBalancer)); time.Now().Before(deadline); {
		if c.Manager.Status(*svc)[from.Key()].Healthy >= from.Desired {
			break
		}
		if sleep(ctx, 300*time.Millisecond) != nil {
			return false
		}
	}
	return true
}

// restoreBound is how long a rolling rollback keeps the new revision's
// tasks serving while the old revision's come back: two minutes, or longer
// when the load balancer's checks take longer to pass (ALB's defaults,
// 5 passes 30 s apart, do), so the listener is not emptied before they can.
func restoreBound(l *store.LoadBalancer) time.Duration {
	const least = 2 * time.Minute
	if l == nil {
		return least
	}
	hc := healthCheckOf(l).WithDefaults()
	return max(least, 2*time.Duration(hc.HealthyThreshold)*hc.Interval.Duration+time.Minute)
}

// because ends a reason about failed launches of set with why the newest
// failed (the engine's error, the exit code, the last output), when known.
func (c *Controller) because(svc store.Service, set store.TaskSet, reason string) string {
	if why := c.Manager.SetFailureCause(svc, set); why != "" {
		return reason + ": " + why
	}
	return reason
}

// lastFailureOf adds to a timeout why set's newest launch failed, if one
// failed since the deployment counted base failures: a rollout without a
// circuit breaker times out on tasks that crash.
func (c *Controller) lastFailureOf(err error, svc store.Service, set store.TaskSet, base int) error {
	var rb errRollback
	if !errors.As(err, &rb) || rb.reason != errTimedOut || c.Manager.SetFailures(svc, set) <= base {
		return err
	}
	if why := c.Manager.SetFailureCause(svc, set); why != "" {
		return errRollback{rb.reason + "; last failure of the new tasks: " + why}
	}
	return err
}

// errTimedOut is the reason of a deployment that ran out of time.
const errTimedOut = "deployment timed out"

// check ends a step early when someone stopped the deployment or it ran out of time.
func (c *Controller) check(d *store.Deployment, deadline time.Time) error {
	if why := c.stopRequested(d.ID); why != "" {
		return errRollback{why}
	}
	if time.Now().After(deadline) {
		return errRollback{errTimedOut}
	}
	return nil
}

func (c *Controller) rolling(ctx context.Context, d *store.Deployment, svc *store.Service, st Settings) error {
	deadline := time.Now().Add(st.Timeout.Duration)
	layout := svc.EffectiveLayout()
	group := activeGroup(layout)
	want := svc.Desired
	prev, _ := oldSetOf(*d, layout) // the zero set when the old one is gone
	old := store.TaskSet{Group: group, Family: d.FromFamily, Revision: d.FromRevision, Desired: want, Generation: prev.Generation}
	next := store.TaskSet{Group: group, Family: d.ToFamily, Revision: d.ToRevision, Generation: newGeneration(*d)}
	minHealthy := int(math.Ceil(float64(want) * float64(st.MinHealthyPercent) / 100))
	maxTotal := int(math.Floor(float64(want) * float64(st.MaxPercent) / 100))
	threshold := CircuitBreakerThreshold(want)
	base := c.Manager.SetFailures(*svc, next)
	if resumable(*d) {
		// Carry on from the counts the rollout had reached, which the
		// service's layout keeps (a set no longer there is at 0).
		cur, _ := NewSetOf(*d, layout)
		next.Desired, old.Desired = cur.Desired, prev.Desired
		c.note(ctx, d, "Rolling", "control plane restarted: resuming the rollout at %d old and %d new tasks", old.Desired, next.Desired)
	} else {
		c.note(ctx, d, "Rolling", "rolling %s: at least %d healthy, at most %d running; circuit breaker after %d failed launches", tasks(want), minHealthy, maxTotal, threshold)
	}
	for {
		if err := c.check(d, deadline); err != nil {
			return c.lastFailureOf(err, *svc, next, base)
		}
		status := c.Manager.Status(*svc)
		newSt, oldSt := status[next.Key()], status[old.Key()]
		if st.CircuitBreaker {
			if f := c.Manager.SetFailures(*svc, next) - base; f >= threshold {
				return errRollback{c.because(*svc, next, fmt.Sprintf("circuit breaker: %s of %s:%d failed to launch or stay healthy", tasks(f), next.Family, next.Revision))}
			}
		}
		if newSt.Healthy >= want && old.Desired == 0 {
			break
		}
		// Scale old down only as far as healthy new tasks allow, then let new grow into the room.
		if d := max(0, minHealthy-newSt.Healthy); d < old.Desired {
			old.Desired = d
		}
		if room := maxTotal - max(old.Desired, oldSt.Running); room > next.Desired {
			next.Desired = min(want, room)
		}
		sets := []store.TaskSet{next}
		if old.Desired > 0 || oldSt.Running > 0 {
			sets = append(sets, old)
		}
		if err := c.setLayout(ctx, svc, store.Layout{Sets: sets, Prod: []store.Weight{{Group: group, Weight: 100}}, Test: group}); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(300 * time.Millisecond):
		}
	}
	svc.Family, svc.Revision = d.ToFamily, d.ToRevision
	next.Desired = want
	if err := c.setLayout(ctx, svc, store.Layout{Sets: []store.TaskSet{next}, Prod: []store.Weight{{Group: group, Weight: 100}}, Test: group}); err != nil {
		return err
	}
	d.State, d.GreenWeight = store.DeployCompleted, 100
	c.note(ctx, d, "Done", "rollout COMPLETED: %s of %s:%d healthy", tasks(want), d.ToFamily, d.ToRevision)
	return nil
}

// blueGreen runs a blue/green deployment, or resumes one that a
// control-plane restart interrupted at a point where nothing was in flight
// but green's launch and the traffic schedule (see resumable).
func (c *Controller) blueGreen(ctx context.Context, d *store.Deployment, svc *store.Service, st Settings) error {
	deadline := time.Now().Add(st.Timeout.Duration)
	resumeAt := ""
	var layout store.Layout
	var greenSet store.TaskSet
	if resumable(*d) {
		resumeAt = d.Phase
		layout = svc.EffectiveLayout()
		var err error
		if greenSet, err = resumedGreen(*d, layout); err != nil {
			return err
		}
		c.note(ctx, d, resumeAt, "control plane restarted: resuming at %s (green %d%%) once green passes the load balancer's checks", resumeAt, d.GreenWeight)
	} else {
		blue := activeGroup(svc.EffectiveLayout())
		blueSet := store.TaskSet{Group: blue, Family: d.FromFamily, Revision: d.FromRevision, Desired: svc.Desired}
		if set, ok := oldSetOf(*d, svc.EffectiveLayout()); ok && set.Group == blue {
			blueSet.Generation = set.Generation // keep blue's tasks, whichever deployment started them
		}
		greenSet = store.TaskSet{Group: otherGroup(blue), Family: d.ToFamily, Revision: d.ToRevision, Desired: svc.Desired, Generation: newGeneration(*d)}
		layout = store.Layout{Sets: []store.TaskSet{blueSet}, Prod: []store.Weight{{Group: blue, Weight: 100}}, Test: blue}
		if err := c.hook(ctx, d, svc, st, "BeforeInstall"); err != nil {
			return err
		}
		c.note(ctx, d, "Install", "starting green: %s of %s:%d in %s", tasks(greenSet.Desired), d.ToFamily, d.ToRevision, greenSet.Group)
		layout.Sets = append(layout.Sets, greenSet)
		if err := c.setLayout(ctx, svc, layout); err != nil {
			return err
		}
	}
	base := c.Manager.SetFailures(*svc, greenSet)
	if err := c.waitGreenHealthy(ctx, d, svc, greenSet, base, deadline); err != nil {
		return err
	}
	if resumeAt == "" || resumeAt == "Install" {
		c.note(ctx, d, "Install", "green is healthy: the load balancer's checks pass for %s", tasks(greenSet.Desired))
		if err := c.hook(ctx, d, svc, st, "AfterInstall"); err != nil {
			return err
		}
		layout.Test = greenSet.Group
		if err := c.setLayout(ctx, svc, layout); err != nil {
			return err
		}
		c.note(ctx, d, "AllowTestTraffic", "test listener routes to green")
	}
	if resumeAt != "AllowTraffic" {
		for _, ev := range []string{"AfterAllowTestTraffic", "BeforeAllowTraffic"} {
			if err := c.hook(ctx, d, svc, st, ev); err != nil {
				return err
			}
		}
	}
	fromWeight := 0
	if resumeAt == "AllowTraffic" {
		fromWeight = d.GreenWeight
	}
	return c.shiftTraffic(ctx, d, svc, st, layout, greenSet, base, deadline, fromWeight)
}

// waitGreenHealthy waits until all of green passes the load balancer's
// health checks; a failed launch or the deadline rolls back.
func (c *Controller) waitGreenHealthy(ctx context.Context, d *store.Deployment, svc *store.Service, green store.TaskSet, base int, deadline time.Time) error {
	defer c.Manager.WaitingForHealth()()
	var lastWake, lastConfirm time.Time
	for {
		if err := c.check(d, deadline); err != nil {
			return c.lastFailureOf(err, *svc, green, base)
		}
		if f := c.Manager.SetFailures(*svc, green) - base; f > 0 {
			return errRollback{c.because(*svc, green, fmt.Sprintf("green task failed (%d failed launches or health checks)", f))}
		}
		if s := c.Manager.Status(*svc)[green.Key()]; s.Healthy >= green.Desired {
			return nil
		}
		// The load balancer checks a new target every 50 ms: asking it
		// directly sees green healthy within a check; a pass at once then
		// confirms it on a fresh listing (a task that died meanwhile is
		// not counted) and sets the status traffic shifting watches.
		// Should the two disagree, confirming passes keep minPassGap apart.
		if time.Since(lastConfirm) >= minPassGap {
			if n, err := c.Manager.HealthyNow(ctx, *svc, green); err == nil && n >= green.Desired {
				if err := c.Manager.Reconcile(ctx); err != nil && ctx.Err() != nil {
					return err
				}
				lastWake, lastConfirm = time.Now(), time.Now()
				continue
			}
		}
		// Health is read from the load balancer by reconcile passes, once a
		// second when nothing wakes them; they also find the tasks that
		// failed, for the circuit breaker: ask for one now and then.
		if time.Since(lastWake) >= 200*time.Millisecond {
			c.Manager.Wake()
			lastWake = time.Now()
		}
		if err := sleep(ctx, greenPoll); err != nil {
			return err
		}
	}
}

// greenPoll is how often a deployment asks whether green is healthy: the
// load balancer's own pace for a starting target.
const greenPoll = 50 * time.Millisecond

// shiftTraffic moves production traffic to green by the deployment
// configuration's steps, from the step that gives green fromWeight on (0:
// all of them), runs AfterAllowTraffic and completes the deployment.
func (c *Controller) shiftTraffic(ctx context.Context, d *store.Deployment, svc *store.Service, st Settings, layout store.Layout, greenSet store.TaskSet, base int, deadline time.Time, fromWeight int) error {
	shift, _ := ParseConfig(d.Config)
	blue, green := otherGroup(greenSet.Group), greenSet.Group
	promoted := false
	for _, step := range shift.Steps() {
		if step.Weight < fromWeight {
			continue
		}
		if by := c.promoteRequested(d.ID); by != "" && step.Weight < 100 {
			if !promoted {
				promoted = true
				c.note(ctx, d, "AllowTraffic", "promoted by %s: the remaining traffic steps are skipped", by)
			}
			continue
		}
		layout.Prod = []store.Weight{{Group: blue, Weight: 100 - step.Weight}, {Group: green, Weight: step.Weight}}
		if err := c.setLayout(ctx, svc, layout); err != nil {
			return err
		}
		d.GreenWeight = step.Weight
		c.note(ctx, d, "AllowTraffic", "production traffic: green %d%%, blue %d%%", step.Weight, 100-step.Weight)
		if err := c.watchGreen(ctx, d, svc, st, greenSet, base, step.Hold, deadline); err != nil {
			return err
		}
	}
	if err := c.hook(ctx, d, svc, st, "AfterAllowTraffic"); err != nil {
		return err
	}
	svc.Family, svc.Revision = d.ToFamily, d.ToRevision
	layout.Prod = []store.Weight{{Group: green, Weight: 100}}
	if err := c.setLayout(ctx, svc, layout); err != nil {
		return err
	}
	d.State = store.DeployCompleted
	c.note(ctx, d, "BlueKept", "deployment COMPLETED; blue kept for %s so a rollback is an instant switch", st.TerminationWait.Duration)
	return c.finishTermination(ctx, d)
}

// watchGreen holds a traffic step, rolling back when green fails or an alarm fires.
func (c *Controller) watchGreen(ctx context.Context, d *store.Deployment, svc *store.Service, st Settings, green store.TaskSet, base int, hold time.Duration, deadline time.Time) error {
	end := time.Now().Add(hold)
	for {
		if err := c.check(d, deadline.Add(hold)); err != nil {
			return err
		}
		if f := c.Manager.SetFailures(*svc, green) - base; f > 0 {
			return errRollback{c.because(*svc, green, fmt.Sprintf("green task failed during traffic shifting (%d failures)", f))}
		}
		if s := c.Manager.Status(*svc)[green.Key()]; s.Healthy < green.Desired {
			return errRollback{fmt.Sprintf("green is unhealthy: %d of %d tasks pass health checks", s.Healthy, green.Desired)}
		}
		if len(st.Alarms) > 0 {
			if err := c.alarms(ctx, svc, st, green.Group); err != nil {
				return err
			}
		}
		if !time.Now().Before(end) {
			return nil
		}
		if by := c.promoteRequested(d.ID); by != "" && d.GreenWeight < 100 {
			c.note(ctx, d, "AllowTraffic", "promoted by %s: the wait at green %d%% ends", by, d.GreenWeight)
			return nil
		}
		if err := sleep(ctx, 200*time.Millisecond); err != nil {
			return err
		}
	}
}

func (c *Controller) alarms(ctx context.Context, svc *store.Service, st Settings, group string) error {
	for _, a := range st.Alarms {
		state, err := c.Manager.Proxy.Client().State(ctx, a.Window.Duration)
		if err != nil {
			return nil // the load balancer is briefly unreachable: judge next time
		}
		w := state.TargetGroups[TargetGroupName(*svc, group)].Stats
		if w.Requests < max(a.MinRequests, 1) {
			continue
		}
		switch a.Metric {
		case "error_rate":
			if rate := float64(w.Errors) / float64(w.Requests); rate > a.Threshold {
				return errRollback{fmt.Sprintf("alarm: green error rate %.1f%% over %s is above %.1f%%", rate*100, a.Window.Duration, a.Threshold*100)}
			}
		case "p99_ms":
			if w.P99Ms > a.Threshold {
				return errRollback{fmt.Sprintf("alarm: green p99 latency %.1f ms over %s is above %.1f ms", w.P99Ms, a.Window.Duration, a.Threshold)}
			}
		}
	}
	return nil
}

// finishTermination removes blue once the termination wait is over.
func (c *Controller) finishTermination(ctx context.Context, d *store.Deployment) error {
	var st Settings
	_ = json.Unmarshal(d.Settings, &st)
	wait := time.Until(d.UpdatedAt.Add(st.TerminationWait.Duration))
	if wait > 0 {
		if err := sleep(ctx, wait); err != nil {
			return err
		}
	}
	c.termMu.Lock()
	defer c.termMu.Unlock()
	cur, err := c.Store.GetDeployment(ctx, d.ID)
	if err != nil || cur.Phase != "BlueKept" {
		return err // rolled back, or ended by a newer deployment
	}
	return c.endTermination(ctx, &cur, "termination wait over: blue tasks stopped")
}

// endTermination drops the kept blue set; the caller holds termMu.
func (c *Controller) endTermination(ctx context.Context, d *store.Deployment, msg string) error {
	svc, err := c.Store.GetService(ctx, d.App, d.Env, d.Service)
	if err != nil {
		return err
	}
	green := activeGroup(svc.EffectiveLayout())
	set := store.TaskSet{Group: green, Family: d.ToFamily, Revision: d.ToRevision, Desired: svc.Desired, Generation: newGeneration(*d)}
	if err := c.setLayout(ctx, &svc, store.Layout{Sets: []store.TaskSet{set}, Prod: []store.Weight{{Group: green, Weight: 100}}, Test: green}); err != nil {
		return err
	}
	c.note(ctx, d, "Done", "%s", msg)
	return nil
}

// Rollback returns a service to its last successful revision: an instant
// switch while the last blue/green deployment still keeps blue.
func (c *Controller) Rollback(ctx context.Context, app, env, service, by string) (string, error) {
	svc, err := c.Store.GetService(ctx, app, env, service)
	if err != nil {
		return "", err
	}
	ds, err := c.Store.ListDeployments(ctx, app, env, service, 50)
	if err != nil {
		return "", err
	}
	i, err := rollbackTarget(ds, svc.CreatedAt)
	if err != nil {
		return "", fmt.Errorf("service %s: %w", service, err)
	}
	if ds[i].Phase == "BlueKept" {
		c.termMu.Lock()
		cur, err := c.Store.GetDeployment(ctx, ds[i].ID)
		if err == nil && cur.Phase == "BlueKept" {
			defer c.termMu.Unlock()
			if svc, err = c.Store.GetService(ctx, app, env, service); err != nil {
				return "", err
			}
			c.rollback(ctx, &cur, svc, "rolled back by "+by+" during the termination wait")
			return fmt.Sprintf("switched traffic back to %s:%d (blue was still running)", cur.FromFamily, cur.FromRevision), nil
		}
		c.termMu.Unlock()
		// The wait ended meanwhile: roll back by deploying, choosing again.
		if err == nil {
			ds[i] = cur
		}
		if i, err = rollbackTarget(ds, svc.CreatedAt); err != nil {
			return "", fmt.Errorf("service %s: %w", service, err)
		}
	}
	d := ds[i]
	nd, err := c.Create(ctx, Request{App: app, Env: env, Service: service, Family: d.FromFamily, Revision: d.FromRevision, Strategy: d.Strategy, Config: "CodeDeployDefault.ECSAllAtOnce", By: by})
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("deployment %d rolls back to %s:%d", nd.ID, d.FromFamily, d.FromRevision), nil
}

// rollbackTarget picks, from a service's deployments newest first, the one
// whose starting point a rollback returns to: the newest completed one,
// passing over redeployments of a running revision (they started where
// they ended) unless blue is still kept, when their old tasks are one
// switch away. Deployments before since were of an earlier service of the
// same name, deleted since: their revisions are not this one's to return to.
func rollbackTarget(ds []store.Deployment, since time.Time) (int, error) {
	for i, d := range ds {
		if d.CreatedAt.Before(since) || d.First() {
			break
		}
		if d.State == store.DeployInProgress {
			return 0, store.Conflictf("deployment %d is in progress; stop it instead (slipway deploy stop %d)", d.ID, d.ID)
		}
		if d.State != store.DeployCompleted {
			continue
		}
		if d.Phase == "BlueKept" || newGeneration(d) == 0 {
			return i, nil
		}
	}
	return 0, fmt.Errorf("no completed deployment of another revision to roll back to: %w", store.ErrNotFound)
}

// CircuitBreakerThreshold is how many failed launches fail a rollout to
// desired tasks: half of them rounded up, within [3, 200], as in ECS.
func CircuitBreakerThreshold(desired int) int {
	return min(max(int(math.Ceil(0.5*float64(desired))), 3), 200)
}

func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

// hook runs a lifecycle hook; a failure from AfterInstall on rolls back,
// and before that ends the deployment the same way (nothing took traffic).
func (c *Controller) hook(ctx context.Context, d *store.Deployment, svc *store.Service, st Settings, event string) error {
	h, ok := st.Hooks[event]
	if !ok {
		return nil
	}
	timeout := h.Timeout.Duration
	if timeout == 0 {
		timeout = 5 * time.Minute
	}
	hctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	c.note(ctx, d, event, "running hook %s", event)
	env := []string{"SLIPWAY_DEPLOYMENT_ID=" + fmt.Sprint(d.ID), "SLIPWAY_LIFECYCLE_EVENT=" + event, "SLIPWAY_SERVICE=" + d.Service,
		"SLIPWAY_APP=" + d.App, "SLIPWAY_ENV=" + d.Env}
	if l := svc.LoadBalancer; l != nil {
		env = append(env, hookURLs(l, c.Manager.Edge)...)
	}
	var out strings.Builder
	var err error
	switch {
	case h.URL != "":
		err = httpCheck(hctx, os.Expand(h.URL, func(k string) string { return lookup(env, k) }), hostFor(h.URL, env), h.ExpectStatus, &out)
	default:
		err = c.runHook(hctx, d, h, env, &out)
	}
	if hctx.Err() == context.DeadlineExceeded {
		err = fmt.Errorf("timed out after %s", timeout)
	}
	if err != nil {
		return errRollback{fmt.Sprintf("hook %s failed: %v: %s", event, err, strings.TrimSpace(lastLines(out.String(), 5)))}
	}
	c.note(ctx, d, event, "hook %s succeeded", event)
	return nil
}

// runHook runs a hook's command in the sandbox, as builds run (on the
// host only when an admin set the app's executor to host), with a fresh
// empty directory as its workspace.
func (c *Controller) runHook(ctx context.Context, d *store.Deployment, h Hook, env []string, out io.Writer) error {
	if h.Image == "" && c.Apps != nil {
		app, err := c.Apps.GetApp(ctx, d.App)
		if err != nil {
			return err
		}
		if app.Build.Executor == store.ExecutorHost {
			cmd := exec.CommandContext(ctx, "sh", "-c", h.Command)
			cmd.Env = append(hostEnv(), env...)
			cmd.Stdout, cmd.Stderr = out, out
			return cmd.Run()
		}
	}
	eng, err := container.Connect(ctx)
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "slipway-hook-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if err := os.Mkdir(filepath.Join(dir, "src"), 0o755); err != nil {
		return err
	}
	box, err := sandbox.Start(ctx, eng, sandbox.Options{Image: h.Image, Workspace: dir, Hide: []string{c.DataDir},
		Labels: container.Labels(d.App, c.Installation, "slipway.deployment", fmt.Sprint(d.ID))})
	if err != nil {
		return err
	}
	defer box.Remove()
	if h.Image == "" {
		env = append([]string{"HOME=/tmp", "PATH=" + os.Getenv("PATH")}, env...)
	}
	code, err := box.Exec(ctx, []string{"sh", "-c", h.Command}, env, out)
	if err == nil && code != 0 {
		err = fmt.Errorf("exit code %d", code)
	}
	return err
}

// hostEnv is what a hook on the host inherits from the server: its PATH and
// locale, not its secrets (SLIPWAY_MASTER_KEY and the like).
func hostEnv() []string {
	var env []string
	for _, k := range []string{"PATH", "HOME", "LANG", "TMPDIR"} {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	return env
}

// lookup expands a hook URL's ${VAR} from the hook's own variables only:
// the URL comes from the repository, the server's environment must not
// reach it (SLIPWAY_MASTER_KEY in a query string).
func lookup(env []string, k string) string {
	for _, kv := range env {
		if strings.HasPrefix(kv, k+"=") {
			return kv[len(k)+1:]
		}
	}
	return ""
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}

func httpCheck(ctx context.Context, url, host string, expect int, out io.Writer) error {
	if expect == 0 {
		expect = 200
	}
	req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
	if err != nil {
		return err
	}
	if host != "" {
		req.Host = host // the shared listener routes by host
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	fmt.Fprintf(out, "GET %s → %d %s", url, resp.StatusCode, b)
	if resp.StatusCode != expect {
		return fmt.Errorf("GET %s answered %d, expected %d", url, resp.StatusCode, expect)
	}
	return nil
}

// tasks counts tasks in a sentence: "1 task", "3 tasks".
func tasks(n int) string {
	if n == 1 {
		return "1 task"
	}
	return fmt.Sprintf("%d tasks", n)
}
