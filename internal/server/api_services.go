package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/slipway-dev/slipway/internal/deploy"
	"github.com/slipway-dev/slipway/internal/lb"
	"github.com/slipway-dev/slipway/internal/secret"
	"github.com/slipway-dev/slipway/internal/source"
	"github.com/slipway-dev/slipway/internal/store"
	"github.com/slipway-dev/slipway/internal/task"
	"github.com/slipway-dev/slipway/internal/taskdef"
)

// RegisteredTaskDef answers a registration with the revision and what was ignored.
type RegisteredTaskDef struct {
	store.TaskDefRevision
	Ignored []string `json:"ignored_fields"`
}

func (s *Server) registerTaskDef(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		s.writeError(w, r, &apiError{Status: http.StatusRequestEntityTooLarge, Code: "too_large", Message: "task definition is over the 1 MiB limit"})
		return
	}
	td, ignored, err := taskdef.Parse(body)
	if err != nil {
		var te *taskdef.Error
		field := ""
		if errors.As(err, &te) {
			field = te.Path
		}
		s.writeError(w, r, &apiError{Status: http.StatusBadRequest, Code: "invalid_task_definition", Field: field, Message: err.Error()})
		return
	}
	canonical, _ := json.Marshal(td)
	tok, _ := Caller(r.Context())
	rev, err := s.db.RegisterTaskDef(r.Context(), td.Family, canonical, tok.Name)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	// Its awslogs group and stream prefix name where the output is kept.
	ignored = task.IgnoredLogConfiguration(td, ignored)
	writeJSON(w, http.StatusCreated, RegisteredTaskDef{TaskDefRevision: rev, Ignored: ignored})
}
func (s *Server) listTaskDefs(w http.ResponseWriter, r *http.Request) {
	tds, err := s.db.ListTaskDefs(r.Context(), r.URL.Query().Get("family"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, tds)
}

// revisionParam reads a revision number, or "latest" (0).
func revisionParam(r *http.Request) (int, error) {
	v := r.PathValue("revision")
	if v == "latest" {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		return 0, errBadRequest("revision", "revision %q must be a positive number or latest", v)
	}
	return n, nil
}

func (s *Server) showTaskDef(w http.ResponseWriter, r *http.Request) {
	rev, err := revisionParam(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	td, err := s.db.GetTaskDef(r.Context(), r.PathValue("family"), rev)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, td)
}

func (s *Server) deregisterTaskDef(w http.ResponseWriter, r *http.Request) {
	rev, err := revisionParam(r)
	if err != nil || rev == 0 {
		s.writeError(w, r, errBadRequest("revision", "name the revision to deregister"))
		return
	}
	if err := s.db.DeregisterTaskDef(r.Context(), r.PathValue("family"), rev); err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"message": fmt.Sprintf("deregistered %s:%d", r.PathValue("family"), rev)})
}

// ServiceRequest creates or updates a service.
type ServiceRequest struct {
	Name         string              `json:"name"`
	TaskDef      string              `json:"task_definition"` // family or family:revision
	Desired      *int                `json:"desired_count"`
	LoadBalancer *store.LoadBalancer `json:"load_balancer"`
	// ForceNewDeployment replaces the service's tasks even when the
	// revision stays, as ECS's update-service --force-new-deployment does
	// (after a secret or a mutable image tag changed, say).
	ForceNewDeployment bool `json:"force_new_deployment,omitempty"`
}

func parseTaskDefRef(ref string) (string, int, error) {
	family, rev, hasRev := strings.Cut(ref, ":")
	if family == "" {
		return "", 0, fmt.Errorf("task_definition %q must be FAMILY or FAMILY:REVISION", ref)
	}
	if !hasRev {
		return family, 0, nil
	}
	n, err := strconv.Atoi(rev)
	if err != nil || n < 1 {
		return "", 0, fmt.Errorf("task_definition %q: the revision must be a positive number", ref)
	}
	return family, n, nil
}

// resolveService checks the app, environment, task definition and load balancer of a request.
func (s *Server) resolveService(r *http.Request, svc *store.Service, req ServiceRequest) error {
	app, err := s.db.GetApp(r.Context(), svc.App)
	if err != nil {
		return err
	}
	if !slices.Contains(app.Environments, svc.Env) {
		return errNotFound("app %s has no environment %s (it has %s)", svc.App, svc.Env, strings.Join(app.Environments, ", "))
	}
	if req.TaskDef != "" {
		family, rev, err := parseTaskDefRef(req.TaskDef)
		if err != nil {
			return errBadRequest("task_definition", "%v", err)
		}
		td, err := s.db.GetTaskDef(r.Context(), family, rev)
		if err != nil {
			return errBadRequest("task_definition", "%v", err)
		}
		if td.Status != "ACTIVE" {
			return errBadRequest("task_definition", "%s:%d is deregistered", td.Family, td.Revision)
		}
		svc.Family, svc.Revision = td.Family, td.Revision
	}
	if req.Desired != nil {
		if *req.Desired < 0 || *req.Desired > 100 {
			return errBadRequest("desired_count", "desired_count must be 0 to 100")
		}
		svc.Desired = *req.Desired
	}
	if req.LoadBalancer != nil {
		svc.LoadBalancer = req.LoadBalancer
	}
	if svc.Family == "" {
		return errBadRequest("task_definition", "task_definition is required (FAMILY or FAMILY:REVISION)")
	}
	if svc.LoadBalancer != nil {
		rev, err := s.db.GetTaskDef(r.Context(), svc.Family, svc.Revision)
		if err != nil {
			return err
		}
		def, _, err := taskdef.Parse(rev.Body)
		if err != nil {
			return err
		}
		if err := deploy.ValidateLB(svc.LoadBalancer, def); err != nil {
			field, _, _ := strings.Cut(err.Error(), " ")
			return errBadRequest(strings.TrimSuffix(field, ":"), "%v", err)
		}
	}
	return nil
}

// CreatedService is a new service and the deployment that rolls it out.
type CreatedService struct {
	store.Service
	DeploymentID int64 `json:"deployment_id"`
}

func (s *Server) createService(w http.ResponseWriter, r *http.Request) {
	var req ServiceRequest
	if err := decodeJSON(r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	svc := store.Service{App: r.PathValue("app"), Env: r.PathValue("env"), Name: req.Name, Desired: 1}
	if !source.ValidAppName(req.Name) {
		s.writeError(w, r, errBadRequest("name", "service name %q must be lower-case letters, digits and dashes (at most 63)", req.Name))
		return
	}
	if err := s.resolveService(r, &svc, req); err != nil {
		s.writeError(w, r, err)
		return
	}
	tok, _ := Caller(r.Context())
	svc, d, err := s.deploys.CreateService(r.Context(), svc, tok.Name)
	if err != nil {
		s.writeError(w, r, deployError(err))
		return
	}
	writeJSON(w, http.StatusCreated, CreatedService{Service: svc, DeploymentID: d.ID})
}

func (s *Server) updateService(w http.ResponseWriter, r *http.Request) {
	var req ServiceRequest
	svc, ok := s.decodeForService(w, r, &req)
	if !ok {
		return
	}
	if req.Name != "" && req.Name != svc.Name {
		s.writeError(w, r, errBadRequest("name", "a service cannot be renamed"))
		return
	}
	before := svc
	if err := s.resolveService(r, &svc, req); err != nil {
		s.writeError(w, r, err)
		return
	}
	// A new revision is a deployment (rolling, ECS defaults), not a silent swap.
	newFamily, newRevision := svc.Family, svc.Revision
	svc.Family, svc.Revision = before.Family, before.Revision
	if svc.Desired != before.Desired && svc.Layout != nil {
		svc.Layout.ScaleServing(svc.Desired) // the store refuses it while a deployment runs
	}
	// Ports and hosts are checked and written under one lock (a service
	// made anew is, by the manager as it makes it).
	err := s.deploy.ClaimAndSave(r.Context(), svc, func(ctx context.Context) error {
		var err error
		svc, err = s.db.UpdateService(ctx, svc)
		return err
	})
	var le *deploy.ListenerError
	if errors.As(err, &le) {
		s.writeError(w, r, deployError(err))
		return
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.deploy.Wake()
	if newFamily != before.Family || newRevision != before.Revision || req.ForceNewDeployment {
		d, err := s.rollOut(r, svc, newFamily, newRevision)
		if err != nil {
			s.writeError(w, r, deployError(err))
			return
		}
		writeJSON(w, http.StatusAccepted, map[string]any{"service": svc, "deployment": d})
		return
	}
	writeJSON(w, http.StatusOK, svc)
}

// rollOut starts the rolling deployment (ECS defaults, circuit breaker and
// rollback on) that a service update or a "replace tasks" asks for.
func (s *Server) rollOut(r *http.Request, svc store.Service, family string, revision int) (store.Deployment, error) {
	tok, _ := Caller(r.Context())
	return s.deploys.Create(r.Context(), deploy.Request{App: svc.App, Env: svc.Env, Service: svc.Name, Family: family, Revision: revision, By: tok.Name,
		Settings: deploy.Settings{CircuitBreaker: true, Rollback: true}})
}

// deployError maps controller refusals to 400s naming the field.
func deployError(err error) error {
	if errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrNotFound) {
		return err
	}
	var le *deploy.ListenerError
	if errors.As(err, &le) {
		return errBadRequest(le.Field, "%v", le)
	}
	var fe *deploy.FieldError
	if errors.As(err, &fe) {
		return errBadRequest(fe.Field, "%v", fe)
	}
	msg := err.Error()
	field := ""
	switch {
	case strings.Contains(msg, "configuration"):
		field = "config"
	case strings.HasPrefix(msg, "strategy"):
		field = "strategy"
	case strings.Contains(msg, "percent"):
		field = "settings"
	case strings.Contains(msg, "secret"):
		field = "task_definition"
	}
	return &apiError{Status: http.StatusBadRequest, Code: "invalid_argument", Field: field, Message: msg}
}

// ServiceDetail is a service with its tasks and recent events.
type ServiceDetail struct {
	store.Service
	Running int                  `json:"running_count"`
	Tasks   []TaskView           `json:"tasks"`
	Events  []store.ServiceEvent `json:"events"`
	// Utilization is present while auto scaling tracks CPU or memory.
	Utilization *deploy.Utilization `json:"utilization,omitempty"`
	// ListedAt, when set, is when the listing the tasks come from began
	// (the reconciler's last pass); unset, they are the engine's answer now.
	ListedAt *time.Time `json:"listed_at,omitempty"`
}

// TaskView is a task as `service ps` shows it.
type TaskView struct {
	task.Task
	Status string `json:"status"`
	Health string `json:"health"`
	// TargetHealth is the load balancer's state of the task's target:
	// initial, healthy, unhealthy or draining; empty when it is no target.
	TargetHealth string `json:"target_health,omitempty"`
	Endpoint     string `json:"endpoint,omitempty"`
}

// tasksOf lists a service's tasks from its engine.
func (s *Server) tasksOf(r *http.Request, svc store.Service) ([]TaskView, error) {
	rt, err := s.deploy.RuntimeOf(r.Context(), svc.App, svc.Env)
	if err != nil {
		return nil, err
	}
	ts, err := rt.List(r.Context(), map[string]string{task.LabelApp: svc.App, task.LabelEnv: svc.Env, task.LabelService: svc.Name})
	if err != nil {
		return nil, err
	}
	return s.taskViews(r, svc, ts), nil
}

// taskViews adds to tasks what `service ps` shows of each: its status,
// health, the load balancer's state of its target and its endpoint.
func (s *Server) taskViews(r *http.Request, svc store.Service, ts []task.Task) []TaskView {
	out := []TaskView{}
	var targets lb.State
	if svc.LoadBalancer != nil {
		// Without the load balancer's answer the tasks still show, with no target health.
		targets, _ = s.deploy.Proxy.Client().State(r.Context(), time.Second)
	}
	for _, t := range ts {
		v := TaskView{Task: t, Status: t.Status(), Health: t.Health(), TargetHealth: deploy.TargetHealth(targets, svc, t)}
		if svc.LoadBalancer != nil {
			v.Endpoint = t.Endpoint(svc.LoadBalancer.ContainerName, svc.LoadBalancer.ContainerPort)
		}
		out = append(out, v)
	}
	return out
}

func (s *Server) showService(w http.ResponseWriter, r *http.Request) {
	svc, err := s.db.GetService(r.Context(), r.PathValue("app"), r.PathValue("env"), r.PathValue("name"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	d, err := s.serviceDetail(r, svc, false)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, d)
}

// serviceDetail is a service with its tasks: listed by its engine, or,
// when listed is set, as the reconciler's last pass listed them (no engine
// call: the console's page of a service with hundreds of tasks).
func (s *Server) serviceDetail(r *http.Request, svc store.Service, listed bool) (ServiceDetail, error) {
	d := ServiceDetail{Service: svc, Utilization: s.deploy.Utilization(svc)}
	var err error
	if ts, at, ok := s.deploy.Listed(svc); listed && ok {
		d.Tasks, d.ListedAt = s.taskViews(r, svc, ts), &at
	} else if d.Tasks, err = s.tasksOf(r, svc); err != nil {
		return d, err
	}
	for _, t := range d.Tasks {
		if t.Status == "RUNNING" {
			d.Running++
		}
	}
	d.Events, err = s.db.ListServiceEvents(r.Context(), svc.App, svc.Env, svc.Name, 20)
	return d, err
}

func (s *Server) listServices(w http.ResponseWriter, r *http.Request) {
	svcs, err := s.db.ListServices(r.Context(), r.URL.Query().Get("app"), r.URL.Query().Get("env"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	// Counts as of the reconciler's last pass, as ECS's DescribeServices
	// has them: no engine call, so listing many services stays cheap.
	out := make([]ServiceSummary, len(svcs))
	for i, c := range s.deploy.CountsOf(svcs) {
		out[i] = ServiceSummary{Service: svcs[i], Running: c.Running, Healthy: c.Healthy, Pending: c.Pending}
	}
	writeJSON(w, http.StatusOK, out)
}

// ServiceSummary is a service in a list, with its task counts as of the
// reconciler's last pass.
type ServiceSummary struct {
	store.Service
	Running int `json:"running_count"`
	Healthy int `json:"healthy_count"`
	Pending int `json:"pending_count"` // tasks being started
}

func (s *Server) deleteService(w http.ResponseWriter, r *http.Request) {
	if err := s.db.DeleteService(r.Context(), r.PathValue("app"), r.PathValue("env"), r.PathValue("name")); err != nil {
		s.writeError(w, r, err)
		return
	}
	s.deploy.Wake() // its tasks drain and stop on the next pass
	w.WriteHeader(http.StatusNoContent)
}

// serviceLogs answers a service's task output from the log store, oldest
// first: every task's within the retention, one that crashed or stopped
// long ago too. since (a duration back such as 10m or 2d, or an RFC 3339
// time) and task select; follow=true goes on with lines as they are
// stored. Each line reads "TASK/CONTAINER | TIME TEXT", or is a JSON object
// when the request accepts application/x-ndjson.
func (s *Server) serviceLogs(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	svc, err := s.db.GetService(ctx, r.PathValue("app"), r.PathValue("env"), r.PathValue("name"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	q := r.URL.Query()
	since, err := ParseSince(q.Get("since"), time.Now())
	if err != nil {
		s.writeError(w, r, errBadRequest("since", "%v", err))
		return
	}
	follow := q.Get("follow") == "true"
	ndjson := strings.Contains(r.Header.Get("Accept"), "application/x-ndjson")
	// Kept masked already; masked again with the secrets as they are now.
	mask := s.taskSecretMasker(ctx, svc, s.revisionsOf(r, svc))
	// What the collector has read from the containers is stored before the first look.
	_ = s.deploy.FlushTaskLogs(ctx)
	if ndjson {
		w.Header().Set("Content-Type", "application/x-ndjson")
	} else {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	}
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	// A page at a time: at most 256 lines of at most 16 KiB are held.
	query := store.TaskLogQuery{App: svc.App, Env: svc.Env, Service: svc.Name, Task: q.Get("task"), Since: since, Limit: 256}
	enc := json.NewEncoder(w)
	for {
		appended := s.deploy.TaskLogsAppended() // taken before the look, so no line slips between
		lines, err := s.db.ListTaskLogs(ctx, query)
		if err != nil {
			if ctx.Err() == nil {
				s.log.Error("read task logs", "service", svc.App+"/"+svc.Env+"/"+svc.Name, "err", err)
			}
			return
		}
		for _, l := range lines {
			if mask != nil {
				l.Line = mask.Replace(l.Line)
			}
			if ndjson {
				err = enc.Encode(l)
			} else {
				_, err = fmt.Fprintf(w, "%s/%s | %s %s\n", l.Task, l.Container, l.At.Format(logTime), l.Line)
			}
			if err != nil {
				return // the client left
			}
			query.AfterID = l.ID
		}
		if len(lines) > 0 {
			_ = rc.Flush()
		}
		if len(lines) == query.Limit {
			continue // the next page at once
		}
		if !follow {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-appended:
		case <-time.After(5 * time.Second): // lines stored by another writer
		}
	}
}

// logTime dates a log line as the engine does: nanoseconds, fixed width.
const logTime = "2006-01-02T15:04:05.000000000Z07:00"

// ParseSince reads a logs request's since: a duration back from now (10m,
// 2h, or whole days as 2d) or an RFC 3339 time; "" is no bound.
func ParseSince(v string, now time.Time) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	if days, ok := strings.CutSuffix(v, "d"); ok {
		if n, err := strconv.Atoi(days); err == nil && n >= 0 {
			return now.AddDate(0, 0, -n), nil
		}
	}
	if d, err := time.ParseDuration(v); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("since %q must be a duration back such as 10m, 2h or 2d, or an RFC 3339 time", v)
}

// revisionsOf lists the task definition revisions whose output a service's
// log may hold: the service's, its layout's, and its tasks' (when the
// engine answers).
func (s *Server) revisionsOf(r *http.Request, svc store.Service) []string {
	refs := []string{fmt.Sprintf("%s:%d", svc.Family, svc.Revision)}
	for _, set := range svc.EffectiveLayout().Sets {
		refs = append(refs, fmt.Sprintf("%s:%d", set.Family, set.Revision))
	}
	if tasks, err := s.tasksOf(r, svc); err == nil {
		for _, t := range tasks {
			refs = append(refs, fmt.Sprintf("%s:%d", t.Family, t.Revision))
		}
	}
	return refs
}

// taskSecretMasker masks the values of every secret the revisions (FAMILY:REVISION) inject.
func (s *Server) taskSecretMasker(ctx context.Context, svc store.Service, refs []string) *strings.Replacer {
	var values []string
	seen := map[string]bool{}
	for _, ref := range refs {
		if seen[ref] {
			continue
		}
		seen[ref] = true
		family, rev, err := parseTaskDefRef(ref)
		if err != nil {
			continue
		}
		td, err := s.db.GetTaskDef(ctx, family, rev)
		if err != nil {
			continue
		}
		def, _, err := taskdef.Parse(td.Body)
		if err != nil {
			continue
		}
		for _, c := range def.ContainerDefinitions {
			vals, err := s.resolveTaskSecrets(ctx, svc.App, svc.Env, c)
			if err != nil {
				continue
			}
			for _, v := range vals {
				values = append(values, v)
			}
		}
	}
	return secret.Masker(values)
}

// putAutoscaling turns on (or retunes) target tracking of the service's
// request rate per task.
func (s *Server) putAutoscaling(w http.ResponseWriter, r *http.Request) {
	var a store.Autoscaling
	svc, ok := s.decodeForService(w, r, &a)
	if !ok {
		return
	}
	if err := s.setAutoscaling(r.Context(), svc, &a); err != nil {
		s.writeError(w, r, err)
		return
	}
	svc.Autoscaling = &a
	writeJSON(w, http.StatusOK, svc)
}

func (s *Server) deleteAutoscaling(w http.ResponseWriter, r *http.Request) {
	svc, err := s.db.GetService(r.Context(), r.PathValue("app"), r.PathValue("env"), r.PathValue("name"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if err := s.setAutoscaling(r.Context(), svc, nil); err != nil {
		s.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// setAutoscaling checks and stores a service's auto scaling (nil: off) and
// records the change as a service event; bad settings are a 400 naming the field.
func (s *Server) setAutoscaling(ctx context.Context, svc store.Service, a *store.Autoscaling) error {
	if a != nil {
		err := deploy.ValidateAutoscaling(a, svc.LoadBalancer, deploy.APIKeys)
		if err == nil {
			err = s.deploy.CheckReservation(ctx, svc, *a, deploy.APIKeys)
		}
		var se *deploy.ScalingError
		if errors.As(err, &se) {
			return errBadRequest(se.Field, "%v", se)
		}
		if err != nil {
			return err
		}
	}
	if err := s.db.SetAutoscaling(ctx, svc.App, svc.Env, svc.Name, a); err != nil {
		return err
	}
	if a == nil {
		if svc.Autoscaling != nil {
			s.deploy.Event(ctx, svc, "auto scaling off: the desired count stays where it is")
		}
	} else {
		s.deploy.Event(ctx, svc, "auto scaling on: %d to %d tasks, targets %s, measured over %s", a.MinCount, a.MaxCount, a.TargetsText(), a.Window)
	}
	return nil
}

// decodeForService decodes the request body into v and loads the service
// the path names; when either fails it has answered and reports false.
func (s *Server) decodeForService(w http.ResponseWriter, r *http.Request, v any) (store.Service, bool) {
	if err := decodeJSON(r, v); err != nil {
		s.writeError(w, r, err)
		return store.Service{}, false
	}
	svc, err := s.db.GetService(r.Context(), r.PathValue("app"), r.PathValue("env"), r.PathValue("name"))
	if err != nil {
		s.writeError(w, r, err)
		return store.Service{}, false
	}
	return svc, true
}
