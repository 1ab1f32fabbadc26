package server

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/slipway-dev/slipway/internal/lb"
	"github.com/slipway-dev/slipway/internal/store"
)

// A rollback is offered as the controller would do it, and never to the
// revision running: a redeployment of it (replace tasks) is passed over,
// and a rollback that would land where the service is offers nothing.
func TestUIRollbackTargetIsNeverTheRevisionRunning(t *testing.T) {
	created := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	dep := func(id int64, from, to int, state, phase string) store.Deployment {
		return store.Deployment{ID: id, FromFamily: "web", FromRevision: from, ToFamily: "web", ToRevision: to, State: state, Phase: phase,
			CreatedAt: created.Add(time.Duration(id) * time.Minute)}
	}
	first := store.Deployment{ID: 1, ToFamily: "web", ToRevision: 1, State: store.DeployCompleted, CreatedAt: created}
	svc := func(rev int) store.Service {
		return store.Service{Family: "web", Revision: rev, CreatedAt: created}
	}
	cases := []struct {
		name    string
		running int
		ds      []store.Deployment // newest first
		want    int64              // 0: none offered
	}{
		{"first rollout only", 1, []store.Deployment{first}, 0},
		{"after an update", 2, []store.Deployment{dep(2, 1, 2, store.DeployCompleted, "Done"), first}, 2},
		{"after replace tasks", 2, []store.Deployment{dep(3, 2, 2, store.DeployCompleted, "Done"), dep(2, 1, 2, store.DeployCompleted, "Done"), first}, 2},
		{"replace tasks, blue kept: still the revision running", 2, []store.Deployment{dep(3, 2, 2, store.DeployCompleted, "BlueKept"), dep(2, 1, 2, store.DeployCompleted, "Done"), first}, 0},
		{"a failed one passed over", 2, []store.Deployment{dep(3, 2, 3, store.DeployRolledBack, "RolledBack"), dep(2, 1, 2, store.DeployCompleted, "Done"), first}, 2},
		{"in progress", 2, []store.Deployment{dep(3, 2, 3, store.DeployInProgress, "Rolling"), dep(2, 1, 2, store.DeployCompleted, "Done"), first}, 0},
		{"a rollback, undone", 1, []store.Deployment{dep(3, 2, 1, store.DeployCompleted, "Done"), dep(2, 1, 2, store.DeployCompleted, "Done"), first}, 3},
	}
	for _, c := range cases {
		got, ok := rollbackTarget(c.ds, svc(c.running))
		if (c.want == 0) == ok || (ok && got.ID != c.want) {
			t.Errorf("%s: target %d (%v), want %d", c.name, got.ID, ok, c.want)
		}
		if ok && got.FromRevision == c.running {
			t.Errorf("%s: offers to roll back to the revision running", c.name)
		}
	}
}

// A blue/green deployment's plan: its steps, the one held, and when the
// next comes (the hold counted from the step's traffic event).
func TestUIDeploymentPlanAndNextStep(t *testing.T) {
	at := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	d := DeploymentDetail{Deployment: store.Deployment{Strategy: "blue-green", Config: "Linear25PercentEvery2Minutes", State: store.DeployInProgress, Phase: "AllowTraffic", GreenWeight: 50},
		Events: []store.DeploymentEvent{
			{At: at, Phase: "AllowTraffic", GreenWeight: 25},
			{At: at.Add(2 * time.Minute), Phase: "AllowTraffic", GreenWeight: 50},
		}}
	var v deploymentView
	v.planFrom(d)
	var steps []string
	for _, s := range v.Plan {
		steps = append(steps, fmt.Sprintf("%d %s %s", s.Weight, s.Hold, s.State))
	}
	if got := strings.Join(steps, ", "); got != "25 2 min done, 50 2 min current, 75 2 min next, 100  next" || v.PlanKind != "linear" {
		t.Fatalf("plan %s (%s)", got, v.PlanKind)
	}
	if v.NextAt == nil || !v.NextAt.Equal(at.Add(4*time.Minute)) || v.NextWeight != 75 {
		t.Fatalf("next step %v to %d", v.NextAt, v.NextWeight)
	}
	// Before traffic moves nothing is held; once complete, all is done.
	for _, c := range []struct {
		state, phase string
		want         string
	}{{store.DeployInProgress, "Install", "next"}, {store.DeployCompleted, "BlueKept", "done"}} {
		v = deploymentView{}
		d.State, d.Phase = c.state, c.phase
		v.planFrom(d)
		for _, s := range v.Plan {
			if s.State != c.want {
				t.Errorf("%s: step %d is %s", c.phase, s.Weight, s.State)
			}
		}
		if v.NextAt != nil {
			t.Errorf("%s: a next step at %v", c.phase, v.NextAt)
		}
	}
	// Rolled back at 50%: the steps it reached are done, the rest were not.
	v = deploymentView{}
	d.State, d.Phase, d.GreenWeight = store.DeployRolledBack, "RolledBack", 0
	v.planFrom(d)
	steps = nil
	for _, s := range v.Plan {
		steps = append(steps, fmt.Sprintf("%d %s", s.Weight, s.State))
	}
	if got := strings.Join(steps, ", "); got != "25 done, 50 done, 75 skipped, 100 skipped" || v.NextAt != nil {
		t.Errorf("rolled back: %s, next %v", got, v.NextAt)
	}
}

func TestUIImageTag(t *testing.T) {
	for in, want := range map[string]string{
		"":                                "",
		"nginx":                           "latest",
		"127.0.0.1:5000/shop/web:abc1234": "abc1234",
		"127.0.0.1:5000/shop/web":         "latest",
		"reg.example/web@sha256:0123456789abcdef0123": "@0123456789ab",
	} {
		if got := imageTag(in); got != want {
			t.Errorf("imageTag(%q) = %q, want %q", in, got, want)
		}
	}
}

// The traffic plots say "no samples yet" before the sampler has any,
// "no traffic yet" while nothing is served, and otherwise draw each target
// group, blue against green during a deployment.
func TestUITrafficPlots(t *testing.T) {
	now := time.Now().Truncate(time.Second)
	from := now.Add(-plotKeep)
	set := func(group string, rev int) plotSet {
		return plotSet{TaskSet: store.TaskSet{Group: group, Family: "web", Revision: rev, Desired: 1}, Running: 1, Healthy: 1}
	}
	html := func(samples []plotSample, green string) string {
		h, _ := chartsHTML(trafficCharts("t", samples, plotGroups(samples, green), from, now))
		return string(h)
	}
	if got := html(nil, ""); strings.Count(got, ">no samples yet: one comes every 3s</text>") != 3 {
		t.Errorf("no samples:\n%s", got)
	}
	windows := func(tg1, tg2 *lb.Window) groupWindows {
		var g groupWindows
		for i, w := range []*lb.Window{tg1, tg2} {
			if w != nil {
				g[i].Known, g[i].Window = true, *w
			}
		}
		return g
	}
	idle := []plotSample{{At: now.Add(-3 * time.Second), Sets: []plotSet{set("tg1", 1)}, Groups: windows(&lb.Window{Seconds: 3}, nil)}, {At: now, Sets: []plotSet{set("tg1", 1)}, Groups: windows(&lb.Window{Seconds: 3}, nil)}}
	if got := html(idle, ""); strings.Count(got, ">no traffic yet</text>") != 3 || strings.Contains(got, "<path") {
		t.Errorf("no traffic:\n%s", got)
	}
	var busy []plotSample
	for i := 10; i >= 0; i-- {
		busy = append(busy, plotSample{At: now.Add(-time.Duration(i) * plotEvery), Sets: []plotSet{set("tg1", 1), set("tg2", 2)},
			Groups: windows(&lb.Window{Seconds: 3, Requests: 30, P99Ms: 4}, &lb.Window{Seconds: 3, Requests: 30, Errors: 3, P99Ms: 9})})
	}
	got := html(busy, "tg2")
	for _, want := range []string{
		"blue · tg1 · web:1: now 10 requests/s", "green · tg2 · web:2: now 10 requests/s",
		"blue · tg1 · web:1: now 0 % of requests", "green · tg2 · web:2: now 10 % of requests",
		"green · tg2 · web:2: now 9 ms",
		`class="line series-blue"`, `class="line series-green"`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("busy plots lack %q", want)
		}
	}
	// Outside a deployment the groups are named by what they serve alone.
	if got := html(busy, ""); !strings.Contains(got, "tg1 · web:1: now 10 requests/s") || strings.Contains(got, "blue ·") || !strings.Contains(got, `class="line series-live"`) {
		t.Errorf("plots outside a deployment:\n%s", got)
	}
}

// The sampler keeps a bounded ring of the last plotKeep per service and
// forgets services that are gone.
func TestUIPlotRingIsBounded(t *testing.T) {
	e := newEnv(t)
	e.createApp("shop")
	if _, err := e.srv.db.CreateService(context.Background(), store.Service{App: "shop", Env: "staging", Name: "web", Family: "web", Revision: 1}); err != nil {
		t.Fatal(err)
	}
	p := &plotSampler{s: e.srv, rings: map[string][]plotSample{}}
	old := make([]plotSample, 400)
	for i := range old {
		old[i] = plotSample{At: time.Now().Add(-plotKeep - time.Minute + time.Duration(i)*time.Second)}
	}
	p.rings[plotKey("shop", "staging", "web")] = old
	p.rings[plotKey("shop", "staging", "gone")] = old[:3]
	p.sample(context.Background())
	h := p.history("shop", "staging", "web")
	if len(h) > int(plotKeep/plotEvery)+1 || time.Since(h[0].At) > plotKeep {
		t.Fatalf("ring of %d, oldest %s ago", len(h), time.Since(h[0].At))
	}
	if last := h[len(h)-1]; len(last.Sets) != 1 || last.Sets[0].Family != "web" {
		t.Fatalf("newest sample %+v", last)
	}
	if _, ok := p.rings[plotKey("shop", "staging", "gone")]; ok {
		t.Fatal("a deleted service's ring is kept")
	}
}

// An app's page shows the latest run's stages and, per environment, the
// service's version with the run and commit that registered it.
func TestUIAppPage(t *testing.T) {
	e := newEnv(t)
	e.createApp("shop")
	ctx := context.Background()
	run, err := e.srv.db.CreateRun(ctx, store.Run{App: "shop", State: "succeeded", Trigger: "push", Ref: "refs/heads/main", Commit: "0123456789abcdef0123456789abcdef01234567"})
	if err != nil {
		t.Fatal(err)
	}
	td, err := e.srv.db.RegisterRunTaskDef(ctx, "shop-web", []byte(`{"family": "shop-web", "containerDefinitions": [{"name": "web", "image": "127.0.0.1:1/shop:v7"}]}`), run.ID)
	if err != nil {
		t.Fatal(err)
	}
	if code, body := e.call("POST", "/api/v1/apps/shop/envs/staging/services", e.Admin, map[string]any{"name": "web", "task_definition": fmt.Sprintf("shop-web:%d", td.Revision), "desired_count": 0}); code != 201 {
		t.Fatalf("service: %d %v", code, body)
	}
	c, _ := e.signin(e.token("v", "viewer"))
	get := func(path string) (int, string) {
		resp, err := c.Get(e.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp.StatusCode, string(b)
	}
	code, page := get("/apps/shop")
	if code != http.StatusOK {
		t.Fatalf("GET /apps/shop: %d", code)
	}
	for _, want := range []string{`data-sse="/ui/apps/shop/events"`, fmt.Sprintf(`<a href="/runs/%d">#%d</a>`, run.ID, run.ID), "shop-web:1", ">v7<", ">0123456789ab<", `state-idle`, "0 of 0 healthy"} {
		if !strings.Contains(page, want) {
			t.Errorf("app page lacks %s", want)
		}
	}
	if code, _ := get("/apps/nothing"); code != http.StatusNotFound {
		t.Errorf("an unknown app: %d", code)
	}
	if _, apps := get("/apps"); !strings.Contains(apps, `<a href="/apps/shop">shop</a>`) || !strings.Contains(apps, `data-sse="/ui/apps/events"`) {
		t.Errorf("the apps list does not link the app's page or is not live")
	}
	if _, runs := get("/runs?app=shop"); !strings.Contains(runs, `data-sse="/ui/runs/events?app=shop"`) {
		t.Errorf("the runs list is not live")
	}
}
