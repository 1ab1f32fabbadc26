package server

import (
	"context"
	"net/http"
	"strings"
	"time"

	"github.com/slipway-dev/slipway/internal/store"
	"github.com/slipway-dev/slipway/internal/taskdef"
)

// An app's page, as CodePipeline's pipeline view: the latest run through
// each stage, then per environment what runs there and where it came from.
type appView struct {
	App     store.App
	LastRun *runRow
	Stages  []appStage
	// Runs are the app's most recent runs, with their commits' subjects.
	Runs []runRow
	Envs []appEnv
}

// appStage is one stage of the latest run as a box.
type appStage struct {
	Name, State      string
	Actions          int
	Started, Ended   *time.Time
	Failed, FailedAt string // the first action that did not succeed, and its reason
}

type appEnv struct {
	Name     string
	Services []appService
}

// appService is a service with the version it runs and where that came from.
type appService struct {
	serviceRow
	// Tag is the image's tag (or short digest).
	Tag string
	// Run is the pipeline run whose deploy action registered the running
	// revision; nil for a revision registered by hand.
	Run *store.Run
	// Deploying is the deployment in progress, if one is.
	Deploying *store.Deployment
}

const appRecentRuns = 10

func (s *Server) appView(ctx context.Context, name string) (appView, error) {
	app, err := s.db.GetApp(ctx, name)
	if err != nil {
		return appView{}, err
	}
	v := appView{App: app}
	recent, err := s.db.ListRuns(ctx, name, store.Page{Limit: appRecentRuns})
	if err != nil {
		return v, err
	}
	v.Runs = s.runRows(ctx, recent)
	if len(v.Runs) > 0 {
		v.LastRun = &v.Runs[0]
		actions, err := s.db.ListActions(ctx, v.LastRun.ID)
		if err != nil {
			return v, err
		}
		v.Stages = appStages(actions)
	}
	svcs, err := s.db.ListServices(ctx, name, "")
	if err != nil {
		return v, err
	}
	active, err := s.db.ActiveDeployments(ctx)
	if err != nil {
		return v, err
	}
	runs := map[int64]*store.Run{}
	runOf := func(id int64) *store.Run {
		if id == 0 {
			return nil
		}
		if r, ok := runs[id]; ok {
			return r
		}
		var found *store.Run
		if r, err := s.db.GetRun(ctx, id); err == nil {
			found = &r
		}
		runs[id] = found
		return found
	}
	byEnv := map[string][]appService{}
	for _, svc := range svcs {
		row := appService{}
		stored, err := s.db.GetTaskDef(ctx, svc.Family, svc.Revision)
		var def *taskdef.TaskDef
		if err == nil {
			def, _, _ = taskdef.Parse(stored.Body)
			row.Run = runOf(stored.RunID)
		}
		row.serviceRow = s.withCounts(serviceRowFrom(svc, func(string, int) *taskdef.TaskDef { return def }))
		row.Tag = imageTag(row.Image)
		for i := range active {
			if d := active[i]; d.App == svc.App && d.Env == svc.Env && d.Service == svc.Name {
				row.Deploying = &active[i]
			}
		}
		byEnv[svc.Env] = append(byEnv[svc.Env], row)
	}
	for _, env := range app.Environments {
		v.Envs = append(v.Envs, appEnv{Name: env, Services: byEnv[env]})
	}
	return v, nil
}

// appStages sums a run's actions up per stage, in the run's order.
func appStages(actions []store.Action) []appStage {
	var out []appStage
	var views [][]actionView
	for _, a := range actions {
		if len(out) == 0 || out[len(out)-1].Name != a.Stage {
			out = append(out, appStage{Name: a.Stage})
			views = append(views, nil)
		}
		st := &out[len(out)-1]
		st.Actions++
		views[len(views)-1] = append(views[len(views)-1], actionView{Action: a})
		if a.StartedAt != nil && (st.Started == nil || a.StartedAt.Before(*st.Started)) {
			st.Started = a.StartedAt
		}
		if a.EndedAt != nil && (st.Ended == nil || a.EndedAt.After(*st.Ended)) {
			st.Ended = a.EndedAt
		}
		if st.Failed == "" && (a.State == store.RunFailed || a.State == store.RunCancelled) {
			st.Failed, st.FailedAt = a.Name, a.Reason
		}
	}
	for i := range out {
		out[i].State = stageState(views[i])
		if out[i].State == store.RunRunning || out[i].State == store.RunQueued || out[i].State == store.RunWaiting {
			out[i].Ended = nil // the stage goes on: its duration runs
		}
	}
	return out
}

// imageTag is what people call an image's version: its tag, or the start
// of its digest when pinned by one.
func imageTag(image string) string {
	if image == "" {
		return ""
	}
	if _, digest, ok := strings.Cut(image, "@"); ok {
		d := strings.TrimPrefix(digest, "sha256:")
		return "@" + d[:min(12, len(d))]
	}
	name := image[strings.LastIndex(image, "/")+1:]
	if _, tag, ok := strings.Cut(name, ":"); ok {
		return tag
	}
	return "latest"
}

func (s *Server) uiApp(w http.ResponseWriter, r *http.Request) {
	v, err := s.appView(r.Context(), r.PathValue("app"))
	if err != nil {
		s.uiFail(w, r, err)
		return
	}
	s.ui.Page(w, http.StatusOK, "app", s.page(r, "App "+v.App.Name, "apps", v))
}
