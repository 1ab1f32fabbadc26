package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/slipway-dev/slipway/internal/deploy"
	"github.com/slipway-dev/slipway/internal/pipeline"
	"github.com/slipway-dev/slipway/internal/store"
	"github.com/slipway-dev/slipway/internal/taskdef"
)

// serviceRow is a service with what the lists show beside it.
type serviceRow struct {
	store.Service
	Image    string
	Listener string
	// Running and Healthy count the tasks of the task sets that carry
	// production traffic, as of the last reconcile: healthy by the load
	// balancer's checks, or by the containers' own (a task whose containers
	// have none counts as healthy once running, as on ECS). Standby counts
	// the running tasks of the others: a blue/green deployment's green
	// before traffic moves to it, or its blue kept for the termination wait.
	Running, Healthy, Standby int
}

// withCounts fills the row's task counts.
func (s *Server) withCounts(row serviceRow) serviceRow {
	status := s.deploy.Status(row.Service)
	layout := row.EffectiveLayout()
	for _, set := range layout.Sets {
		st := status[set.Key()]
		serving := false
		for _, w := range layout.Prod {
			serving = serving || (w.Group == set.Group && w.Weight > 0)
		}
		if serving {
			row.Running += st.Running
			row.Healthy += st.Healthy
		} else {
			row.Standby += st.Running
		}
	}
	return row
}

// Health sums the counts up: HEALTHY when the desired count runs and
// passes its checks, UNHEALTHY when none does, DEGRADED between, IDLE when
// scaled to nothing.
func (row serviceRow) Health() string {
	switch {
	case row.Desired == 0 && row.Running == 0:
		return "IDLE"
	case row.Healthy >= row.Desired && row.Running >= row.Desired:
		return "HEALTHY"
	case row.Healthy == 0:
		return "UNHEALTHY"
	}
	return "DEGRADED"
}

// taskDefLookup reads task definitions through a cache so a page that lists
// many services of one family parses each revision once. It returns nil for
// a revision that is missing or unreadable.
func (s *Server) taskDefLookup(ctx context.Context) func(family string, rev int) *taskdef.TaskDef {
	type key struct {
		family string
		rev    int
	}
	seen := map[key]*taskdef.TaskDef{}
	return func(family string, rev int) *taskdef.TaskDef {
		k := key{family, rev}
		def, ok := seen[k]
		if !ok {
			if stored, err := s.db.GetTaskDef(ctx, family, rev); err == nil {
				def, _, _ = taskdef.Parse(stored.Body)
			}
			seen[k] = def
		}
		return def
	}
}

func serviceRowFrom(svc store.Service, lookup func(string, int) *taskdef.TaskDef) serviceRow {
	row := serviceRow{Service: svc}
	if def := lookup(svc.Family, svc.Revision); def != nil && len(def.ContainerDefinitions) > 0 {
		row.Image = def.ContainerDefinitions[0].Image
		if svc.LoadBalancer != nil {
			if c, ok := def.Container(svc.LoadBalancer.ContainerName); ok {
				row.Image = c.Image
			}
		}
	}
	if l := svc.LoadBalancer; l != nil {
		switch {
		case l.ListenerPort != 0:
			row.Listener = fmt.Sprintf("http://127.0.0.1:%d/", l.ListenerPort)
		case l.HTTPS:
			row.Listener = "https://" + l.Host + l.PathPrefix
		default:
			row.Listener = "http://" + l.Host + l.PathPrefix
		}
	}
	return row
}

type appCard struct {
	Name    string
	LastRun *store.Run
	Envs    []envServices
}

type envServices struct {
	Name     string
	Services []serviceRow
}

// appCards reads apps, each app's newest run and all services in three
// queries, however many apps there are.
func (s *Server) appCards(ctx context.Context) ([]appCard, error) {
	apps, err := s.db.ListApps(ctx)
	if err != nil {
		return nil, err
	}
	latest, err := s.db.LatestRuns(ctx)
	if err != nil {
		return nil, err
	}
	svcs, err := s.db.ListServices(ctx, "", "")
	if err != nil {
		return nil, err
	}
	lookup := s.taskDefLookup(ctx)
	byEnv := map[[2]string][]serviceRow{}
	for _, svc := range svcs {
		k := [2]string{svc.App, svc.Env}
		byEnv[k] = append(byEnv[k], s.withCounts(serviceRowFrom(svc, lookup)))
	}
	cards := make([]appCard, 0, len(apps))
	for _, a := range apps {
		c := appCard{Name: a.Name}
		if run, ok := latest[a.Name]; ok {
			c.LastRun = &run
		}
		for _, env := range a.Environments {
			c.Envs = append(c.Envs, envServices{Name: env, Services: byEnv[[2]string{a.Name, env}]})
		}
		cards = append(cards, c)
	}
	return cards, nil
}

func (s *Server) uiApps(w http.ResponseWriter, r *http.Request) {
	cards, err := s.appCards(r.Context())
	if err != nil {
		s.uiFail(w, r, err)
		return
	}
	s.ui.Page(w, http.StatusOK, "apps", s.page(r, "Apps", "apps", cards))
}

func (s *Server) uiRuns(w http.ResponseWriter, r *http.Request) {
	app := r.URL.Query().Get("app")
	runs, err := s.db.ListRuns(r.Context(), app, store.Page{Limit: 100})
	if err != nil {
		s.uiFail(w, r, err)
		return
	}
	s.ui.Page(w, http.StatusOK, "runs", s.page(r, "Runs", "runs", map[string]any{"App": app, "Runs": s.runRows(r.Context(), runs)}))
}

// runView is a run arranged as its stage diagram.
type runView struct {
	RunDetail
	Stages      []stageView
	Pending     *store.Approval
	PanelKey    string
	ActionNames string
	// Controls are the run's buttons; the stage diagram's Retry stage
	// buttons go by them too.
	Controls runControls
	// Commit is the run's commit subject and author (the page's facts,
	// outside its live region).
	Commit commitInfo
}

type stageView struct {
	Name  string
	State string
	// Needs are the jobs a workflow job waits for (the edges of the
	// run's job graph).
	Needs   []string
	Actions []actionView
}

type actionView struct {
	store.Action
	Reports []store.Report
	// Link is the action's page, with its log.
	Link string
	// Tail is the last lines of a failed action's log.
	Tail template.HTML
}

// runView reads a run for its page; tails follows its log, for the last
// lines of failed actions (a live page keeps one across updates).
func (s *Server) runView(ctx context.Context, id int64, tails *logTails) (runView, error) {
	d, err := s.runDetail(ctx, id)
	if err != nil {
		return runView{}, err
	}
	if err := tails.update(ctx, s.db, d.Actions); err != nil {
		return runView{}, err
	}
	v := runView{RunDetail: d, PanelKey: "none"}
	names := map[string]string{}
	for _, a := range d.Actions {
		names[strconv.FormatInt(a.ID, 10)] = a.Stage + "/" + a.Name
		if len(v.Stages) == 0 || v.Stages[len(v.Stages)-1].Name != a.Stage {
			v.Stages = append(v.Stages, stageView{Name: a.Stage})
		}
		av := actionView{Action: a, Link: actionPath(a)}
		if a.State == store.RunFailed {
			av.Tail = tails.tailHTML(a)
		}
		for _, rep := range d.Reports {
			if rep.ActionID == a.ID {
				av.Reports = append(av.Reports, rep)
			}
		}
		st := &v.Stages[len(v.Stages)-1]
		st.Actions = append(st.Actions, av)
	}
	needs := s.workflowNeeds(ctx, d.Run)
	for i := range v.Stages {
		v.Stages[i].State = stageState(v.Stages[i].Actions)
		v.Stages[i].Needs = needs[v.Stages[i].Name]
	}
	for i := range d.Approvals {
		ap := d.Approvals[i]
		if ap.State != store.ApprovalPending {
			continue
		}
		for _, a := range d.Actions {
			if a.ID == ap.ActionID && a.State == store.RunWaiting {
				v.Pending = &ap
				v.PanelKey = fmt.Sprintf("approval-%d", ap.ID)
			}
		}
	}
	b, _ := json.Marshal(names)
	v.ActionNames = string(b)
	return v, nil
}

// stageState summarises a stage: failed beats waiting beats running; done
// when every action succeeded.
func stageState(actions []actionView) string {
	counts := map[string]int{}
	for _, a := range actions {
		counts[a.State]++
	}
	for _, st := range []string{store.RunFailed, store.RunCancelled, store.RunWaiting, store.RunRunning} {
		if counts[st] > 0 {
			return st
		}
	}
	if counts[pipeline.StateSkipped] == len(actions) {
		return pipeline.StateSkipped
	}
	if counts[store.RunSucceeded]+counts[pipeline.StateSkipped] == len(actions) {
		return store.RunSucceeded
	}
	if counts[store.RunSucceeded] > 0 {
		return store.RunRunning
	}
	return store.RunQueued
}

func (s *Server) uiRun(w http.ResponseWriter, r *http.Request) {
	id, err := runIDParam(r)
	if err != nil {
		s.uiFail(w, r, err)
		return
	}
	v, err := s.runView(r.Context(), id, newLogTails())
	if err != nil {
		s.uiFail(w, r, err)
		return
	}
	v.Controls = s.runControls(r, v.Run, fmt.Sprintf("/runs/%d", id))
	v.Commit = s.commitOf(r.Context(), v.Run)
	s.ui.Page(w, http.StatusOK, "run", s.page(r, fmt.Sprintf("Run #%d", id), "runs", v))
}

func (s *Server) uiDecide(w http.ResponseWriter, r *http.Request) {
	id, err := runIDParam(r)
	if err != nil {
		s.uiFail(w, r, err)
		return
	}
	path := fmt.Sprintf("/runs/%d", id)
	decision := r.PostFormValue("decision")
	if decision != "approve" && decision != "reject" {
		s.back(w, r, path, "", "Choose Approve or Reject.")
		return
	}
	if decision == "reject" && strings.TrimSpace(r.PostFormValue("comment")) == "" {
		s.back(w, r, path, "", "To reject, say why in the Comment box.")
		return
	}
	ap, err := s.recordDecision(r, id, decision == "approve", r.PostFormValue("comment"))
	if err != nil {
		s.uiFormError(w, r, path, err)
		return
	}
	s.back(w, r, path, fmt.Sprintf("Run %d %s at %s/%s.", id, ap.State, ap.Stage, ap.Action), "")
}

// uiFormError sends a refused form back to its page with the reason;
// anything else is an error page.
func (s *Server) uiFormError(w http.ResponseWriter, r *http.Request, path string, err error) {
	var ae *apiError
	if (errors.As(err, &ae) && ae.Status < 500) || errors.Is(err, store.ErrConflict) {
		s.back(w, r, path, "", err.Error())
		return
	}
	s.uiFail(w, r, err)
}

type envGroup struct {
	App, Env string
	Services []serviceRow
}

func (s *Server) uiServices(w http.ResponseWriter, r *http.Request) {
	svcs, err := s.db.ListServices(r.Context(), "", "")
	if err != nil {
		s.uiFail(w, r, err)
		return
	}
	lookup := s.taskDefLookup(r.Context())
	var groups []envGroup
	for _, svc := range svcs {
		if len(groups) == 0 || groups[len(groups)-1].App != svc.App || groups[len(groups)-1].Env != svc.Env {
			groups = append(groups, envGroup{App: svc.App, Env: svc.Env})
		}
		g := &groups[len(groups)-1]
		g.Services = append(g.Services, s.withCounts(serviceRowFrom(svc, lookup)))
	}
	s.ui.Page(w, http.StatusOK, "services", s.page(r, "Services", "services", groups))
}

type serviceView struct {
	ServiceDetail
	Deployments []store.Deployment
	Sets        []setRow
	// Runtime says where the environment's tasks run, when not on Docker.
	Runtime string
	// RollbackTo is the revision a rollback returns to, when one would
	// change what runs.
	RollbackTo string
	Plots      plotsView
}

// HealthyCount sums the task sets' healthy tasks.
func (v serviceView) HealthyCount() int {
	n := 0
	for _, set := range v.Sets {
		n += set.Healthy
	}
	return n
}

// setRow is one task set as the load balancer sees it.
type setRow struct {
	Set              string
	Running, Healthy int
	Weight           int
}

func (s *Server) serviceView(r *http.Request) (serviceView, error) {
	svc, err := s.db.GetService(r.Context(), r.PathValue("app"), r.PathValue("env"), r.PathValue("name"))
	if err != nil {
		return serviceView{}, err
	}
	d, err := s.serviceDetail(r, svc, true)
	if err != nil {
		return serviceView{}, err
	}
	ds, err := s.db.ListDeployments(r.Context(), svc.App, svc.Env, svc.Name, 50)
	v := serviceView{ServiceDetail: d, Deployments: ds}
	if target, ok := rollbackTarget(ds, svc); ok {
		v.RollbackTo = target.From()
	}
	var latest *store.Deployment
	if len(ds) > 0 {
		latest = &ds[0]
	}
	v.Plots = s.servicePlots(svc, latest)
	if len(ds) > 10 {
		v.Deployments = ds[:10]
	}
	if rt, _, err := s.db.EnvRuntime(r.Context(), svc.App, svc.Env); err == nil {
		v.Runtime = "Kubernetes namespace " + rt.Namespace
	}
	layout := svc.EffectiveLayout()
	status := s.deploy.Status(svc)
	for _, set := range layout.Sets {
		key := set.Key()
		row := setRow{Set: key, Running: status[key].Running, Healthy: status[key].Healthy}
		for _, w := range layout.Prod {
			if w.Group == set.Group {
				row.Weight = w.Weight
			}
		}
		v.Sets = append(v.Sets, row)
	}
	return v, err
}

func (s *Server) uiService(w http.ResponseWriter, r *http.Request) {
	v, err := s.serviceView(r)
	if err != nil {
		s.uiFail(w, r, err)
		return
	}
	s.ui.Page(w, http.StatusOK, "service", s.page(r, "Service "+v.Service.Name, "services", v))
}

// servicePage is the page of the service a /services/{app}/{env}/{name}/…
// form acts on, where its outcome is shown.
func servicePage(r *http.Request) string {
	return "/services/" + r.PathValue("app") + "/" + r.PathValue("env") + "/" + r.PathValue("name")
}

func (s *Server) uiRollback(w http.ResponseWriter, r *http.Request) {
	tok, _ := Caller(r.Context())
	path := servicePage(r)
	msg, err := s.deploys.Rollback(r.Context(), r.PathValue("app"), r.PathValue("env"), r.PathValue("name"), tok.Name)
	if err != nil {
		s.back(w, r, path, "", err.Error())
		return
	}
	s.back(w, r, path, msg, "")
}

// uiReplaceTasks redeploys the running revision (ECS's force new deployment).
func (s *Server) uiReplaceTasks(w http.ResponseWriter, r *http.Request) {
	path := servicePage(r)
	svc, err := s.db.GetService(r.Context(), r.PathValue("app"), r.PathValue("env"), r.PathValue("name"))
	if err != nil {
		s.uiFail(w, r, err)
		return
	}
	d, err := s.rollOut(r, svc, svc.Family, svc.Revision)
	if err != nil {
		s.back(w, r, path, "", err.Error())
		return
	}
	s.back(w, r, fmt.Sprintf("/deployments/%d", d.ID), fmt.Sprintf("Deployment %d replaces the tasks of %s:%d, a few at a time.", d.ID, d.ToFamily, d.ToRevision), "")
}

// uiAutoscaling turns a service's auto scaling on, retunes it, or turns it off.
func (s *Server) uiAutoscaling(w http.ResponseWriter, r *http.Request) {
	path := servicePage(r)
	svc, err := s.db.GetService(r.Context(), r.PathValue("app"), r.PathValue("env"), r.PathValue("name"))
	if err != nil {
		s.uiFail(w, r, err)
		return
	}
	if r.FormValue("do") == "off" {
		if err := s.setAutoscaling(r.Context(), svc, nil); err != nil {
			s.back(w, r, path, "", err.Error())
			return
		}
		s.back(w, r, path, "Auto scaling is off; the desired count stays where it is.", "")
		return
	}
	a := store.Autoscaling{Window: r.FormValue("window"), ScaleOutCooldown: r.FormValue("scale_out_cooldown"), ScaleInCooldown: r.FormValue("scale_in_cooldown")}
	numbers := []struct {
		label, field string
		set          func(string) error
	}{
		{"Fewest tasks", "min_count", func(v string) (err error) { a.MinCount, err = strconv.Atoi(v); return }},
		{"Most tasks", "max_count", func(v string) (err error) { a.MaxCount, err = strconv.Atoi(v); return }},
		{"Requests/s per task", "target_requests_per_second", optionalFloat(&a.TargetRequestsPerSecond)},
		{"CPU %", "target_cpu_percent", optionalFloat(&a.TargetCPUPercent)},
		{"Memory %", "target_memory_percent", optionalFloat(&a.TargetMemoryPercent)},
	}
	for _, n := range numbers {
		v := strings.TrimSpace(r.FormValue(n.field))
		if err := n.set(v); err != nil {
			s.back(w, r, path, "", fmt.Sprintf("%s: %q is not a number", n.label, v))
			return
		}
	}
	if err := s.checkAutoscalingForm(r.Context(), svc, &a); err != nil {
		s.back(w, r, path, "", err.Error())
		return
	}
	if err := s.setAutoscaling(r.Context(), svc, &a); err != nil {
		s.back(w, r, path, "", err.Error())
		return
	}
	s.back(w, r, path, fmt.Sprintf("Auto scaling keeps %d to %d tasks at %s.", a.MinCount, a.MaxCount, a.TargetsText()), "")
}

// formScalingKeys spell auto scaling's settings as the service page's
// form labels them, so a refusal names the box to change.
var formScalingKeys = deploy.ScalingKeys{
	AddLB: "give the service a load balancer first",
	Names: map[string]string{
		"min_count": "“Fewest tasks”", "max_count": "“Most tasks”", "target_requests_per_second": "“Requests/s per task”",
		"target_cpu_percent": "“CPU %”", "target_memory_percent": "“Memory %”", "window": "“Measured over”",
		"scale_out_cooldown": "“Scale-out cooldown”", "scale_in_cooldown": "“Scale-in cooldown”",
	},
}

// checkAutoscalingForm checks the form's auto scaling settings (filling
// their defaults) as setAutoscaling does, in the form's words: "“Most
// tasks” must be …" rather than the API's "autoscaling.max_count must be …".
func (s *Server) checkAutoscalingForm(ctx context.Context, svc store.Service, a *store.Autoscaling) error {
	err := deploy.ValidateAutoscaling(a, svc.LoadBalancer, formScalingKeys)
	if err == nil {
		err = s.deploy.CheckReservation(ctx, svc, *a, formScalingKeys)
	}
	var se *deploy.ScalingError
	if !errors.As(err, &se) {
		return err
	}
	if rest, ok := strings.CutPrefix(se.Message, "autoscaling."); ok {
		return errors.New(rest) // "“Most tasks” must be …"
	}
	return errors.New("auto scaling" + strings.TrimPrefix(se.Message, "autoscaling")) // "auto scaling: the service has no load balancer …"
}

// optionalFloat reads a form number into f; an empty field leaves it 0
// (a target not tracked).
func optionalFloat(f *float64) func(string) error {
	return func(v string) (err error) {
		if v == "" {
			*f = 0
			return nil
		}
		*f, err = strconv.ParseFloat(v, 64)
		return err
	}
}

func (s *Server) uiDeployments(w http.ResponseWriter, r *http.Request) {
	ds, err := s.db.ListDeployments(r.Context(), "", "", "", 100)
	if err != nil {
		s.uiFail(w, r, err)
		return
	}
	s.ui.Page(w, http.StatusOK, "deployments", s.page(r, "Deployments", "deployments", ds))
}

// deploymentView adds the traffic split, the plan, the task counts and
// which buttons apply.
type deploymentView struct {
	Detail      DeploymentDetail
	Blue, Green int
	TestColor   string
	// BlueRev and GreenRev name the revision on each side of a blue/green
	// deployment's traffic; BlueGroup and GreenGroup their target groups.
	BlueRev, GreenRev     string
	BlueGroup, GreenGroup string
	// Plan is a blue/green deployment's traffic steps; NextAt is when the
	// step being held ends (nil when none is held), moving green to NextWeight.
	Plan       []planStep
	PlanKind   string
	NextAt     *time.Time
	NextWeight int
	// Tasks counts a rolling deployment's old and new tasks now.
	Tasks rollingCounts
	// CanRollback offers "Roll back to RollbackTo": this deployment is the
	// one a rollback returns from, and its starting revision is not the one
	// running.
	CanRollback bool
	RollbackTo  string
	Plots       plotsView
	PlotsTitle  string
	// Origin is where the deployment came from; its page shows it above
	// the live region (it never changes).
	Origin *deploymentOrigin
}

// deploymentOrigin is where a deployment came from: the run (and the
// run's action) that started it, or who did; and the run whose deploy
// action registered the revision it rolls out.
type deploymentOrigin struct {
	// By names who started it when no run did (a token's name).
	By     string
	Run    *store.Run
	Action *store.Action
	// RevisionRun registered the revision rolled out, when another run
	// than Run did (0: none, or registered by hand).
	RevisionRun int64
}

// deploymentOrigin reads where d came from. A deployment a run started
// says "run N" (CreatedBy); as a token may be named so too, the run is
// taken at its word only when one of its actions started d, or it
// registered the revision d rolls out.
func (s *Server) deploymentOrigin(ctx context.Context, d store.Deployment) *deploymentOrigin {
	o := &deploymentOrigin{By: d.CreatedBy}
	var revisionRun int64
	if td, err := s.db.GetTaskDef(ctx, d.ToFamily, d.ToRevision); err == nil {
		revisionRun = td.RunID
	}
	if id, ok := runCreator(d.CreatedBy); ok {
		if run, err := s.db.GetRun(ctx, id); err == nil && run.App == d.App {
			if actions, err := s.db.ListActions(ctx, id); err == nil {
				for i := range actions {
					if actions[i].DeploymentID == d.ID {
						o.Action = &actions[i]
					}
				}
			}
			if o.Action != nil || revisionRun == id {
				o.Run, o.By = &run, ""
			}
		}
	}
	if revisionRun != 0 && (o.Run == nil || o.Run.ID != revisionRun) {
		o.RevisionRun = revisionRun
	}
	return o
}

// runCreator reads the run a deployment's CreatedBy names ("run 12").
func runCreator(by string) (int64, bool) {
	rest, ok := strings.CutPrefix(by, "run ")
	if !ok {
		return 0, false
	}
	id, err := strconv.ParseInt(rest, 10, 64)
	return id, err == nil && id > 0 && strconv.FormatInt(id, 10) == rest
}

// planStep is one traffic step of a blue/green deployment.
type planStep struct {
	Weight int
	Hold   string
	// State is done, current, next, or skipped (the deployment ended
	// before it).
	State string
}

// rollingCounts are a rolling deployment's tasks by revision.
type rollingCounts struct {
	OldRunning, OldHealthy, NewRunning, NewHealthy, Desired int
}

func (s *Server) deploymentView(ctx context.Context, id int64) (deploymentView, error) {
	d, err := s.deploymentDetail(ctx, id)
	if err != nil {
		return deploymentView{}, err
	}
	v := deploymentView{Detail: d, Green: d.GreenWeight, Blue: 100 - d.GreenWeight, TestColor: "–",
		BlueRev: d.From(), GreenRev: fmt.Sprintf("%s:%d", d.ToFamily, d.ToRevision)}
	green, hasGreen := deploy.NewSetOf(d.Deployment, d.Layout)
	if d.State == store.DeployInProgress {
		for _, set := range d.Layout.Sets {
			if set.Group == d.Layout.Test {
				v.TestColor = "blue"
			}
		}
		// By the set the deployment started, not by revision: a
		// redeployment of the running revision has it on both sides.
		if hasGreen && green.Group == d.Layout.Test {
			v.TestColor = "green"
		}
	}
	if hasGreen && d.Strategy == "blue-green" {
		v.GreenGroup = green.Group
		v.BlueGroup = map[string]string{"tg1": "tg2", "tg2": "tg1"}[green.Group]
	}
	svc, svcErr := s.db.GetService(ctx, d.App, d.Env, d.Service)
	if d.Strategy == "blue-green" {
		v.planFrom(d)
	} else if svcErr == nil {
		status := s.deploy.Status(svc)
		v.Tasks.Desired = svc.Desired
		for _, set := range d.Layout.Sets {
			st := status[set.Key()]
			switch {
			case isNewSet(d.Deployment, set):
				v.Tasks.NewRunning += st.Running
				v.Tasks.NewHealthy += st.Healthy
			case isOldSet(d.Deployment, set):
				v.Tasks.OldRunning += st.Running
				v.Tasks.OldHealthy += st.Healthy
			}
		}
	}
	if svcErr == nil && d.State == store.DeployCompleted {
		if ds, err := s.db.ListDeployments(ctx, d.App, d.Env, d.Service, 50); err == nil {
			if target, ok := rollbackTarget(ds, svc); ok && target.ID == d.ID {
				v.CanRollback, v.RollbackTo = true, target.From()
			}
		}
	}
	hasLB := svcErr == nil && svc.LoadBalancer != nil
	v.Plots = s.deploymentPlots(d.Deployment, hasLB)
	switch {
	case d.Strategy == "blue-green":
		v.PlotsTitle = "Traffic, blue against green"
	case hasLB:
		v.PlotsTitle = "Tasks and traffic over time"
	default:
		v.PlotsTitle = "Tasks over time"
	}
	return v, nil
}

// planFrom lays out a blue/green deployment's traffic steps and when the
// one held now ends: the step began with its "production traffic" event.
func (v *deploymentView) planFrom(d DeploymentDetail) {
	shift, err := deploy.ParseConfig(d.Config)
	if err != nil {
		return
	}
	v.PlanKind = shift.Kind
	steps := shift.Steps()
	current := -1
	switch {
	case d.State == store.DeployCompleted:
		current = len(steps)
	case d.State == store.DeployInProgress && d.Phase == "AllowTraffic":
		for i, st := range steps {
			if st.Weight == d.GreenWeight {
				current = i
			}
		}
	}
	// A deployment that ended otherwise (rolled back, stopped, failed) got
	// as far as the highest weight it gave green.
	reached := -1
	for _, ev := range d.Events {
		if ev.Phase == "AllowTraffic" {
			reached = max(reached, ev.GreenWeight)
		}
	}
	ended := d.State != store.DeployInProgress && d.State != store.DeployCompleted
	for i, st := range steps {
		ps := planStep{Weight: st.Weight, Hold: holdText(st.Hold), State: "next"}
		switch {
		case ended && st.Weight <= reached:
			ps.State = "done"
		case ended:
			ps.State = "skipped"
		case i < current:
			ps.State = "done"
		case i == current:
			ps.State = "current"
		}
		v.Plan = append(v.Plan, ps)
	}
	if current < 0 || current >= len(steps)-1 || steps[current].Hold == 0 {
		return
	}
	for i := len(d.Events) - 1; i >= 0; i-- {
		ev := d.Events[i]
		if ev.Phase == "AllowTraffic" && ev.GreenWeight == d.GreenWeight {
			at := ev.At.Add(steps[current].Hold)
			v.NextAt, v.NextWeight = &at, steps[current+1].Weight
			return
		}
	}
}

// holdText says how long a step is held: "4 s", "5 min", "1 h 30 min".
func holdText(d time.Duration) string {
	switch {
	case d <= 0:
		return ""
	case d < time.Minute:
		return fmt.Sprintf("%d s", int(d.Seconds()))
	case d < time.Hour && d%time.Minute == 0:
		return fmt.Sprintf("%d min", int(d.Minutes()))
	case d < time.Hour:
		return fmt.Sprintf("%d min %d s", int(d.Minutes()), int(d.Seconds())%60)
	case d%time.Hour == 0:
		return fmt.Sprintf("%d h", int(d.Hours()))
	}
	return fmt.Sprintf("%d h %d min", int(d.Hours()), int(d.Minutes())%60)
}

// rollbackTarget is the deployment a rollback of svc returns from, chosen
// as the controller chooses (deploy.Controller.Rollback, from the newest
// 50): the newest completed one, passing over redeployments of a running
// revision unless their blue is still kept. There is none to offer while
// a deployment runs, or when it would return to the revision running.
func rollbackTarget(ds []store.Deployment, svc store.Service) (store.Deployment, bool) {
	for _, d := range ds {
		if d.CreatedAt.Before(svc.CreatedAt) || d.First() || d.State == store.DeployInProgress {
			break
		}
		if d.State != store.DeployCompleted {
			continue
		}
		if d.Phase == "BlueKept" || d.FromFamily != d.ToFamily || d.FromRevision != d.ToRevision {
			if d.FromFamily == svc.Family && d.FromRevision == svc.Revision {
				break // "roll back" to what runs
			}
			return d, true
		}
	}
	return store.Deployment{}, false
}

func (s *Server) uiDeployment(w http.ResponseWriter, r *http.Request) {
	id, err := deploymentID(r)
	if err != nil {
		s.uiFail(w, r, err)
		return
	}
	v, err := s.deploymentView(r.Context(), id)
	if err != nil {
		s.uiFail(w, r, err)
		return
	}
	v.Origin = s.deploymentOrigin(r.Context(), v.Detail.Deployment)
	s.ui.Page(w, http.StatusOK, "deployment", s.page(r, fmt.Sprintf("Deployment #%d", id), "deployments", v))
}

func (s *Server) uiStopDeployment(w http.ResponseWriter, r *http.Request) {
	id, err := deploymentID(r)
	if err != nil {
		s.uiFail(w, r, err)
		return
	}
	path := fmt.Sprintf("/deployments/%d", id)
	if err := s.deploys.Stop(r.Context(), id); err != nil {
		s.back(w, r, path, "", err.Error())
		return
	}
	s.back(w, r, path, "Stopping: traffic goes back to blue.", "")
}

func (s *Server) uiPromoteDeployment(w http.ResponseWriter, r *http.Request) {
	id, err := deploymentID(r)
	if err != nil {
		s.uiFail(w, r, err)
		return
	}
	path := fmt.Sprintf("/deployments/%d", id)
	tok, _ := Caller(r.Context())
	if err := s.deploys.Promote(r.Context(), id, tok.Name); err != nil {
		s.back(w, r, path, "", err.Error())
		return
	}
	s.back(w, r, path, "Promoted: green takes all production traffic once its checks pass.", "")
}

type repoGroup struct {
	Name   string
	Images []store.Image
}

func (s *Server) uiRegistry(w http.ResponseWriter, r *http.Request) {
	imgs, err := s.db.ListImages(r.Context(), "")
	if err != nil {
		s.uiFail(w, r, err)
		return
	}
	sort.SliceStable(imgs, func(i, j int) bool { return imgs[i].Repo < imgs[j].Repo })
	var groups []repoGroup
	for _, img := range imgs {
		if len(groups) == 0 || groups[len(groups)-1].Name != img.Repo {
			groups = append(groups, repoGroup{Name: img.Repo})
		}
		groups[len(groups)-1].Images = append(groups[len(groups)-1].Images, img)
	}
	s.ui.Page(w, http.StatusOK, "registry", s.page(r, "Registry", "registry", groups))
}

func (s *Server) uiSecrets(w http.ResponseWriter, r *http.Request) {
	list, err := s.db.ListSecrets(r.Context(), "")
	if err != nil {
		s.uiFail(w, r, err)
		return
	}
	s.ui.Page(w, http.StatusOK, "secrets", s.page(r, "Secrets", "secrets", list))
}

type appChannels struct {
	App        string
	Channels   []store.Channel
	Deliveries []deliveryRow
}

// deliveryRow is a notice sent to a channel, with a link to what it was
// about: its run, deployment or service.
type deliveryRow struct {
	store.Delivery
	Link, About string
}

// deliveryAbout links a delivery to its subject's page, read from the
// event's fields (the run, the deployment, the service) rather than its
// URL, which may be another site's (an approval's review link).
func deliveryAbout(d store.Delivery) deliveryRow {
	row := deliveryRow{Delivery: d}
	var ev struct {
		Fields map[string]string `json:"fields"`
	}
	if json.Unmarshal([]byte(d.Payload), &ev) != nil {
		return row
	}
	id := func(key string) (int64, bool) {
		v := ev.Fields[key]
		n, err := strconv.ParseInt(v, 10, 64)
		return n, err == nil && n > 0 && strconv.FormatInt(n, 10) == v
	}
	if n, ok := id("deployment"); ok {
		row.Link, row.About = fmt.Sprintf("/deployments/%d", n), fmt.Sprintf("deployment #%d", n)
	} else if n, ok := id("run"); ok {
		row.Link, row.About = fmt.Sprintf("/runs/%d", n), fmt.Sprintf("run #%d", n)
	} else if env, svc := ev.Fields["environment"], ev.Fields["service"]; env != "" && svc != "" {
		row.Link = "/services/" + url.PathEscape(d.App) + "/" + url.PathEscape(env) + "/" + url.PathEscape(svc)
		row.About = "service " + svc + " in " + env
	}
	return row
}

func (s *Server) uiNotifications(w http.ResponseWriter, r *http.Request) {
	apps, err := s.db.ListApps(r.Context())
	if err != nil {
		s.uiFail(w, r, err)
		return
	}
	out := make([]appChannels, 0, len(apps))
	for _, a := range apps {
		ac := appChannels{App: a.Name}
		var ds []store.Delivery
		if ac.Channels, err = s.db.ListChannels(r.Context(), a.Name); err == nil {
			ds, err = s.db.ListDeliveries(r.Context(), a.Name, store.Page{Limit: 20})
		}
		if err != nil {
			s.uiFail(w, r, err)
			return
		}
		for _, d := range ds {
			ac.Deliveries = append(ac.Deliveries, deliveryAbout(d))
		}
		out = append(out, ac)
	}
	s.ui.Page(w, http.StatusOK, "notifications", s.page(r, "Notifications", "notifications", out))
}

func (s *Server) uiTokens(w http.ResponseWriter, r *http.Request) {
	s.renderTokens(w, r, nil)
}

func (s *Server) renderTokens(w http.ResponseWriter, r *http.Request, created *CreatedToken) {
	toks, err := s.db.ListTokens(r.Context())
	if err != nil {
		s.uiFail(w, r, err)
		return
	}
	visible := toks[:0]
	for _, t := range toks {
		if !strings.HasPrefix(t.Name, "system:") { // the server's own: pipeline, builds, pulls
			visible = append(visible, t)
		}
	}
	self, _ := Caller(r.Context())
	s.ui.Page(w, http.StatusOK, "tokens", s.page(r, "Tokens", "tokens", map[string]any{"Tokens": visible, "Created": created, "Self": self.ID}))
}

func (s *Server) uiCreateToken(w http.ResponseWriter, r *http.Request) {
	created, err := s.issueToken(r.Context(), r.PostFormValue("name"), r.PostFormValue("role"))
	if err != nil {
		s.uiFormError(w, r, "/tokens", err)
		return
	}
	// Shown once, in this response only (no redirect carries the secret).
	w.Header().Set("Cache-Control", "no-store")
	s.renderTokens(w, r, &created)
}

func (s *Server) uiRevokeToken(w http.ResponseWriter, r *http.Request) {
	tok, err := s.db.RevokeToken(r.Context(), r.PathValue("id"))
	if err != nil {
		s.back(w, r, "/tokens", "", err.Error())
		return
	}
	s.back(w, r, "/tokens", "Revoked token "+tok.Name+".", "")
}
