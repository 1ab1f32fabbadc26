package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/slipway-dev/slipway/internal/slipwayfile"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/slipway-dev/slipway/internal/artifact"
	"github.com/slipway-dev/slipway/internal/deploy"
	"github.com/slipway-dev/slipway/internal/store"
	"github.com/slipway-dev/slipway/internal/taskdef"
)

// DeployStore is what the deploy action needs from the state store.
type DeployStore interface {
	store.RuntimeStore
	store.DeploymentStore
	RegisterRunTaskDef(ctx context.Context, family string, body []byte, runID int64) (store.TaskDefRevision, error)
	SetActionDeployment(ctx context.Context, actionID, deploymentID int64) error
}

// performDeploy renders the task definition from the action's input
// artifacts, registers it, creates the service when it does not exist yet,
// and follows the deployment until it ends.
func (e *Engine) performDeploy(ctx context.Context, r store.Run, a Action, row store.Action, logs io.Writer) (*int, string) {
	if e.Deploys == nil || e.DeployStore == nil {
		return nil, "this server cannot deploy (no deployment controller)"
	}
	if row.DeploymentID != 0 {
		// A server that ran this action stopped while its deployment went
		// on: follow the deployment from here to its end.
		fmt.Fprintf(logs, "[slipway] The control plane restarted; following deployment %d again\n", row.DeploymentID)
		return nil, e.follow(ctx, row.DeploymentID, e.timelineTo(ctx, row.DeploymentID, logs, time.Now()))
	}
	dir := filepath.Join(e.WorkRoot, fmt.Sprintf("run-%d", r.ID), fmt.Sprintf("action-%d", row.ID))
	defer os.RemoveAll(dir)
	// find reads name from the first input that has it; a file that is
	// there but refused (too large, a link out) is an error, not skipped.
	var findErr error
	find := func(name string) ([]byte, string) {
		for _, in := range a.Inputs {
			b, err := readSpecFile(filepath.Join(dir, in), name)
			if err == nil {
				return b, in
			}
			if !isMissing(err) && findErr == nil {
				findErr = fmt.Errorf("%s in %s: %w", name, in, err)
			}
		}
		return nil, ""
	}
	for _, in := range a.Inputs {
		rc, err := e.openArtifact(ctx, r.ID, in)
		if err != nil {
			return nil, err.Error()
		}
		err = artifact.Unpack(rc, filepath.Join(dir, in))
		rc.Close()
		if err != nil {
			return nil, fmt.Sprintf("unpack %s: %v", in, err)
		}
	}
	tdData, from := find(a.TaskDef)
	if findErr != nil {
		return nil, findErr.Error()
	}
	if tdData == nil {
		return nil, fmt.Sprintf("%s is in none of the inputs %v", a.TaskDef, a.Inputs)
	}
	fmt.Fprintf(logs, "[slipway] Task definition template %s from %s\n", a.TaskDef, from)
	var imageURI string
	b, in := find("imageDetail.json")
	if findErr != nil {
		return nil, findErr.Error()
	}
	if b != nil {
		var d ImageDetail
		if err := json.Unmarshal(b, &d); err != nil || d.ImageURI == "" {
			return nil, "imageDetail.json in " + in + " has no ImageURI"
		}
		imageURI = d.ImageURI
		tdData = taskdef.FillPlaceholders(tdData, imageURI)
	}
	td, ignored, err := taskdef.Parse(tdData)
	if err != nil {
		return nil, fmt.Sprintf("%s: %v", a.TaskDef, err)
	}
	for _, f := range ignored {
		fmt.Fprintf(logs, "[slipway] %s: %s ignored (no meaning on this platform)\n", a.TaskDef, f)
	}
	for _, n := range td.Adjustments() {
		fmt.Fprintf(logs, "[slipway] %s: %s\n", a.TaskDef, n)
	}
	if b, in := find("imagedefinitions.json"); findErr != nil {
		return nil, findErr.Error()
	} else if b != nil && imageURI == "" {
		var defs []ImageDefinition
		if err := json.Unmarshal(b, &defs); err != nil {
			return nil, "imagedefinitions.json in " + in + ": " + err.Error()
		}
		for _, d := range defs {
			if err := taskdef.Render(td, d.Name, d.ImageURI); err != nil {
				return nil, "imagedefinitions.json: " + err.Error()
			}
			imageURI = d.ImageURI
		}
	}
	if imageURI == "" {
		return nil, "no imageDetail.json or imagedefinitions.json in the inputs: nothing says which image to deploy"
	}
	body, _ := json.Marshal(td)
	rev, err := e.DeployStore.RegisterRunTaskDef(ctx, td.Family, body, r.ID)
	if err != nil {
		return nil, err.Error()
	}
	fmt.Fprintf(logs, "[slipway] Registered %s:%d with image %s\n", rev.Family, rev.Revision, imageURI)
	var appspec *deploy.AppSpec
	if a.AppSpec != "" {
		b, _ := find(a.AppSpec)
		if findErr != nil {
			return nil, findErr.Error()
		}
		if b == nil {
			return nil, fmt.Sprintf("%s is in none of the inputs %v", a.AppSpec, a.Inputs)
		}
		if appspec, err = deploy.ParseAppSpec(b); err != nil {
			return nil, err.Error()
		}
	}
	svc, err := e.DeployStore.GetService(ctx, r.App, a.Environment, a.Service)
	if errors.Is(err, store.ErrNotFound) {
		return nil, e.createService(ctx, r, a, row, td, rev, appspec, logs)
	}
	if err != nil {
		return nil, err.Error()
	}
	if msg := e.applyAutoscaling(ctx, r, svc, a, logs); msg != "" {
		return nil, msg
	}
	strategy := a.Strategy
	settings := deploy.Settings{CircuitBreaker: true, Rollback: true}
	if appspec != nil {
		settings.Hooks = appspec.Hooks
		if strategy == "" {
			strategy = "blue-green"
		}
	}
	if a.TerminationWait != "" {
		d, err := time.ParseDuration(a.TerminationWait)
		if err != nil {
			return nil, "termination-wait: " + err.Error()
		}
		settings.TerminationWait.Duration = d
	}
	if svc.LoadBalancer != nil {
		l := *svc.LoadBalancer
		if err := deploy.ValidateLB(&l, td); err != nil {
			return nil, err.Error()
		}
	}
	d, err := e.Deploys.Create(ctx, deploy.Request{App: r.App, Env: a.Environment, Service: a.Service, Family: rev.Family, Revision: rev.Revision,
		Strategy: strategy, Config: a.DeployConfig, Settings: settings, By: "run " + fmt.Sprint(r.ID)})
	if err != nil {
		return nil, err.Error()
	}
	e.recordDeployment(ctx, row, d.ID)
	return nil, e.follow(ctx, d.ID, e.timelineTo(ctx, d.ID, logs, time.Time{}))
}

// createService makes the service the action names, at the new revision.
func (e *Engine) createService(ctx context.Context, r store.Run, a Action, row store.Action, td *taskdef.TaskDef, rev store.TaskDefRevision, appspec *deploy.AppSpec, logs io.Writer) string {
	desired := a.DesiredCount
	if desired == 0 {
		desired = 1
	}
	svc := store.Service{App: r.App, Env: a.Environment, Name: a.Service, Family: rev.Family, Revision: rev.Revision, Desired: desired}
	if a.ListenerPort != 0 || a.Host != "" {
		name, port := a.ContainerName, a.ContainerPort
		if appspec != nil {
			name, port = appspec.ContainerName, appspec.ContainerPort
		}
		if name == "" {
			name = td.ContainerDefinitions[0].Name
		}
		if port == 0 {
			if c, ok := td.Container(name); ok && len(c.PortMappings) > 0 {
				port = c.PortMappings[0].ContainerPort
			}
		}
		svc.LoadBalancer = &store.LoadBalancer{ContainerName: name, ContainerPort: port, ListenerPort: a.ListenerPort, TestListenerPort: a.TestListenerPort,
			HealthCheckPath: a.HealthCheckPath, HealthCheckInterval: a.HealthCheckInterval, HealthyThreshold: 2, UnhealthyThreshold: 2,
			Host: a.Host, TestHost: a.TestHost, PathPrefix: a.PathPrefix, HTTPS: a.HTTPS, RedirectHTTPS: a.RedirectHTTPS, HSTS: a.HSTS}
		if err := deploy.ValidateLB(svc.LoadBalancer, td); err != nil {
			return err.Error()
		}
	}
	// Only events after the creation tell: a deleted predecessor of this
	// name may still get one while its tasks drain.
	seen := int64(0)
	if evs, err := e.DeployStore.ListServiceEvents(ctx, r.App, a.Environment, a.Service, 1); err == nil && len(evs) > 0 {
		seen = evs[0].ID
	}
	_, d, err := e.Deploys.CreateService(ctx, svc, "run "+fmt.Sprint(r.ID))
	if err != nil {
		var le *deploy.ListenerError
		if errors.As(err, &le) { // named as slipway.yaml spells it
			key := map[string]string{"load_balancer.listener_port": "listener-port", "load_balancer.test_listener_port": "test-listener-port",
				"load_balancer.host": "host", "load_balancer.test_host": "test-host", "load_balancer.https": "https", "load_balancer.priority": "priority"}[le.Field]
			return fmt.Sprintf("%s: %s", key, le.Detail)
		}
		return err.Error()
	}
	fmt.Fprintf(logs, "[slipway] Created service %s in %s with %d × %s:%d (deployment %d)\n", a.Service, a.Environment, desired, rev.Family, rev.Revision, d.ID)
	e.recordDeployment(ctx, row, d.ID)
	if msg := e.applyAutoscaling(ctx, r, svc, a, logs); msg != "" {
		return msg
	}
	// The service's events, its first rollout's notes among them beside
	// each task's start and stop, tell how the tasks fare.
	return e.follow(ctx, d.ID, e.serviceEventsTo(ctx, r.App, a.Environment, a.Service, seen, logs))
}

// follow waits for a deployment to end, calling report before each look
// so that the log keeps up with it.
func (e *Engine) follow(ctx context.Context, id int64, report func()) string {
	for {
		report()
		d, err := e.DeployStore.GetDeployment(context.WithoutCancel(ctx), id)
		if err != nil {
			return err.Error()
		}
		switch d.State {
		case store.DeployCompleted:
			report() // what the end wrote after the last look
			return ""
		case store.DeployFailed, store.DeployRolledBack, store.DeployStopped:
			report()
			return fmt.Sprintf("deployment %d %s: %s", id, d.State, d.Reason)
		}
		select {
		case <-ctx.Done():
			if errors.Is(context.Cause(ctx), errEngineStopping) {
				// The deployment goes on; whoever runs the engine next
				// follows it again.
				return fmt.Sprintf("deployment %d goes on: the control plane is stopping", id)
			}
			_ = e.Deploys.Stop(context.WithoutCancel(ctx), id)
			return fmt.Sprintf("deployment %d stopped: the action ended (%v)", id, ctx.Err())
		case <-time.After(300 * time.Millisecond):
		}
	}
}

// logTime stamps the deployment and service lines a deploy action copies
// into its log with when they happened (the log's own time is when they
// were copied, up to a poll later).
const logTime = "15:04:05.000Z"

// timelineTo copies deployment id's new timeline entries to logs, those
// from since on (a resumed action's log has the earlier ones).
func (e *Engine) timelineTo(ctx context.Context, id int64, logs io.Writer, since time.Time) func() {
	seen := 0
	return func() {
		evs, err := e.DeployStore.DeploymentEvents(context.WithoutCancel(ctx), id)
		if err != nil {
			return
		}
		for _, ev := range evs[seen:] {
			if ev.At.Before(since) {
				continue
			}
			fmt.Fprintf(logs, "[deploy %d] %s %-16s green %3d%%  %s\n", id, ev.At.UTC().Format(logTime), ev.Phase, ev.GreenWeight, ev.Message)
		}
		seen = len(evs)
	}
}

// recordDeployment notes the deployment an action started, so a server
// taking over follows it; without the note the run ends at a restart, as
// it did before.
func (e *Engine) recordDeployment(ctx context.Context, row store.Action, id int64) {
	if err := whenReachable(context.WithoutCancel(ctx), e.Log, func() error {
		return e.DeployStore.SetActionDeployment(context.WithoutCancel(ctx), row.ID, id)
	}); err != nil {
		e.Log.Warn("record the deployment of a deploy action", "action", row.ID, "deployment", id, "err", err)
	}
}

// serviceEventsTo copies a service's events newer than event after to
// logs. A repeat collapses into its event in the store; here it is a line
// of its own, at its time, with the count so far.
func (e *Engine) serviceEventsTo(ctx context.Context, app, env, service string, after int64, logs io.Writer) func() {
	printed := map[int64]int{} // event id → occurrences copied
	return func() {
		evs, err := e.DeployStore.ListServiceEvents(context.WithoutCancel(ctx), app, env, service, 50)
		if err != nil {
			return
		}
		for i := len(evs) - 1; i >= 0; i-- { // newest first
			ev := evs[i]
			n := max(ev.Count, 1)
			switch {
			case ev.ID <= after || printed[ev.ID] >= n:
			case printed[ev.ID] == 0:
				fmt.Fprintf(logs, "[slipway] %s %s\n", ev.At.UTC().Format(logTime), ev.Message)
				if n > 1 {
					fmt.Fprintf(logs, "[slipway] %s (the same again, %d times in all)\n", ev.LastAt.UTC().Format(logTime), n)
				}
			default:
				fmt.Fprintf(logs, "[slipway] %s %s (%d times in all)\n", ev.LastAt.UTC().Format(logTime), ev.Message, n)
			}
			printed[ev.ID] = n
		}
	}
}

// applyAutoscaling gives the service the auto scaling the action declares,
// when it has other settings or none. An action without the key leaves the
// service's auto scaling as it is.
func (e *Engine) applyAutoscaling(ctx context.Context, r store.Run, svc store.Service, a Action, logs io.Writer) string {
	if a.Autoscaling == nil {
		return ""
	}
	set, err := a.Autoscaling.Settings(svc.LoadBalancer)
	if err != nil {
		return err.Error()
	}
	if err := e.Deploys.Manager.CheckReservation(ctx, svc, set, slipwayfile.ScalingKeys); err != nil {
		return err.Error()
	}
	if svc.Autoscaling != nil && *svc.Autoscaling == set {
		return ""
	}
	if err := e.DeployStore.SetAutoscaling(ctx, svc.App, svc.Env, svc.Name, &set); err != nil {
		return err.Error()
	}
	e.Deploys.Manager.Event(ctx, svc, "auto scaling set by run %d: %d to %d tasks, targets %s, measured over %s", r.ID, set.MinCount, set.MaxCount, set.TargetsText(), set.Window)
	fmt.Fprintf(logs, "[slipway] Auto scaling of %s: %d to %d tasks, targets %s\n", svc.Name, set.MinCount, set.MaxCount, set.TargetsText())
	return ""
}
