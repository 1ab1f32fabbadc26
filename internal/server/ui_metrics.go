package server

import (
	"context"
	"fmt"
	"hash/fnv"
	"html/template"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/slipway-dev/slipway/internal/deploy"
	"github.com/slipway-dev/slipway/internal/lb"
	"github.com/slipway-dev/slipway/internal/store"
	"github.com/slipway-dev/slipway/internal/web"
)

// The web UI's plots. The load balancer keeps per-second counters for two
// minutes and answers for a window ending now; a plot wants a quarter of an
// hour. So, while someone looks at a service or deployment page, the
// server samples every service's target groups (requests, 5xx, p99) and
// task sets (desired, running, healthy) every plotEvery into a ring per
// service holding the last plotKeep. Sampling starts with the first page
// that shows a plot and stops when none has been asked for in plotIdle; the
// rings live in memory only, so a restarted server starts them afresh.
const (
	plotEvery = 3 * time.Second
	plotKeep  = 15 * time.Minute
	plotIdle  = 15 * time.Minute
	// plotMaxServices bounds the memory: 301 samples (of some 250 bytes)
	// of at most this many services, the first by app, environment and name.
	plotMaxServices = 200
)

// plotSample is one service at one instant.
type plotSample struct {
	At      time.Time
	Desired int
	// Groups are the target groups' traffic over the plotEvery before At;
	// none for a service without a load balancer or when the load balancer
	// did not answer.
	Groups groupWindows
	Sets   []plotSet
}

// plotGroupNames are a service's target groups, in groupWindows' order.
var plotGroupNames = [2]string{"tg1", "tg2"}

// groupWindows holds tg1's and tg2's traffic, each when known: an array,
// not a map, since a ring holds many.
type groupWindows [2]struct {
	Known bool
	lb.Window
}

func (g groupWindows) get(group string) (lb.Window, bool) {
	for i, n := range plotGroupNames {
		if n == group && g[i].Known {
			return g[i].Window, true
		}
	}
	return lb.Window{}, false
}

// plotSet is a task set as sampled.
type plotSet struct {
	store.TaskSet
	Running, Healthy int
}

// plotSampler keeps the rings of one server.
type plotSampler struct {
	s        *Server
	mu       sync.Mutex
	running  bool
	lastRead time.Time
	rings    map[string][]plotSample // by app/env/service
}

// plotter holds a server's sampler, made by the first plot.
type plotter struct {
	once sync.Once
	p    *plotSampler
}

func plotKey(app, env, name string) string { return app + "/" + env + "/" + name }

// plots returns the server's sampler, starting it when it is not running.
func (s *Server) plots() *plotSampler {
	s.plotter.once.Do(func() { s.plotter.p = &plotSampler{s: s, rings: map[string][]plotSample{}} })
	p := s.plotter.p
	p.mu.Lock()
	p.lastRead = time.Now()
	start := !p.running && s.life != nil && s.life.Err() == nil
	if start {
		p.running = true
	}
	p.mu.Unlock()
	if start {
		go p.run()
	}
	return p
}

// history is a copy of a service's samples, oldest first.
func (p *plotSampler) history(app, env, name string) []plotSample {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.lastRead = time.Now()
	return slices.Clone(p.rings[plotKey(app, env, name)])
}

func (p *plotSampler) run() {
	life := p.s.life
	// Samples are taken just before a second ends, so each one's window
	// (whole seconds up to the current one) follows the last one's.
	next := time.Now().Truncate(time.Second).Add(time.Second - 50*time.Millisecond)
	for {
		ctx, cancel := context.WithTimeout(life, 2*time.Second)
		p.sample(ctx)
		cancel()
		for !next.After(time.Now()) {
			next = next.Add(plotEvery)
		}
		select {
		case <-life.Done():
			return
		case <-time.After(time.Until(next)):
		}
		p.mu.Lock()
		if time.Since(p.lastRead) > plotIdle {
			p.running = false
			p.mu.Unlock()
			return
		}
		p.mu.Unlock()
	}
}

// sample reads every service's task sets and, in one call, the load
// balancer's traffic over the last plotEvery. Only the server running the
// control loops knows the task counts (the UI's requests are passed to it).
func (p *plotSampler) sample(ctx context.Context) {
	if !p.s.controlling() {
		return
	}
	svcs, err := p.s.db.ListServices(ctx, "", "")
	if err != nil {
		return
	}
	if len(svcs) > plotMaxServices {
		svcs = svcs[:plotMaxServices]
	}
	var st lb.State
	stOK := false
	for _, svc := range svcs {
		if svc.LoadBalancer != nil && p.s.deploy.Proxy != nil {
			st, err = p.s.deploy.Proxy.Client().State(ctx, plotEvery)
			stOK = err == nil
			break
		}
	}
	now := time.Now()
	samples := make(map[string]plotSample, len(svcs))
	for _, svc := range svcs {
		smp := plotSample{At: now, Desired: svc.Desired}
		status := p.s.deploy.Status(svc)
		for _, set := range svc.EffectiveLayout().Sets {
			smp.Sets = append(smp.Sets, plotSet{TaskSet: set, Running: status[set.Key()].Running, Healthy: status[set.Key()].Healthy})
		}
		if svc.LoadBalancer != nil && stOK {
			for i, g := range plotGroupNames {
				if gs, ok := st.TargetGroups[deploy.TargetGroupName(svc, g)]; ok {
					smp.Groups[i].Known, smp.Groups[i].Window = true, gs.Stats
				}
			}
		}
		samples[plotKey(svc.App, svc.Env, svc.Name)] = smp
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for k := range p.rings {
		if _, ok := samples[k]; !ok {
			delete(p.rings, k) // the service is gone
		}
	}
	for k, smp := range samples {
		ring := append(p.rings[k], smp)
		drop := 0
		for drop < len(ring) && now.Sub(ring[drop].At) > plotKeep {
			drop++
		}
		if n := int(plotKeep/plotEvery) + 1; len(ring)-drop > n {
			drop = len(ring) - n
		}
		if drop > 0 {
			ring = ring[:copy(ring, ring[drop:])] // readers have copies
		}
		p.rings[k] = ring
	}
}

// plotRole is what a target group is in a plot: blue or green during a
// blue/green deployment, else just the group serving.
type plotRole struct {
	Group, Role, Class, Revision string
}

func (r plotRole) name() string {
	n := r.Group
	if r.Revision != "" {
		n += " · " + r.Revision
	}
	if r.Role != "" {
		n = r.Role + " · " + n
	}
	return n
}

// plotGroups names the target groups that carried traffic in samples or
// hold a task set now, with the revision each served last. green, when
// set, is the group of a blue/green deployment's new tasks; the other is
// blue.
func plotGroups(samples []plotSample, green string) []plotRole {
	var out []plotRole
	for _, g := range plotGroupNames {
		used, rev := false, ""
		for _, smp := range samples {
			if w, ok := smp.Groups.get(g); ok && w.Requests > 0 {
				used = true
			}
			for _, set := range smp.Sets {
				if set.Group == g {
					rev = fmt.Sprintf("%s:%d", set.Family, set.Revision)
				}
			}
		}
		if last := len(samples) - 1; last >= 0 {
			for _, set := range samples[last].Sets {
				if set.Group == g {
					used = true
				}
			}
		}
		if !used {
			continue
		}
		r := plotRole{Group: g, Class: "series-live", Revision: rev}
		switch {
		case green == "":
		case g == green:
			r.Role, r.Class = "green", "series-green"
		default:
			r.Role, r.Class = "blue", "series-blue"
		}
		out = append(out, r)
	}
	return out
}

// trafficCharts draws requests per second, the share of 5xx answers and
// p99 latency per target group between from and to.
func trafficCharts(id string, samples []plotSample, groups []plotRole, from, to time.Time) []web.Chart {
	rps := web.Chart{ID: id + "-rps", Title: "Requests per second", Unit: "requests/s", From: from, To: to, MinTop: 1}
	errs := web.Chart{ID: id + "-5xx", Title: "5xx answers", Unit: "% of requests", From: from, To: to, MinTop: 1}
	p99 := web.Chart{ID: id + "-p99", Title: "p99 latency", Unit: "ms", From: from, To: to, MinTop: 1}
	var total int64
	inWindow := 0
	for _, smp := range samples {
		if !smp.At.Before(from) && !smp.At.After(to) {
			inWindow++
		}
	}
	for _, g := range groups {
		var a, b, c []web.Point
		for _, smp := range samples {
			w, ok := smp.Groups.get(g.Group)
			if !ok || smp.At.Before(from) || smp.At.After(to) {
				continue
			}
			total += w.Requests
			a = append(a, web.Point{At: smp.At, V: float64(w.Requests) / max(w.Seconds, 1)})
			if w.Requests > 0 {
				b = append(b, web.Point{At: smp.At, V: 100 * float64(w.Errors) / float64(w.Requests)})
				c = append(c, web.Point{At: smp.At, V: w.P99Ms})
			}
		}
		name := g.name()
		rps.Series = append(rps.Series, web.Series{Name: name, Class: g.Class, Points: a})
		errs.Series = append(errs.Series, web.Series{Name: name, Class: g.Class, Points: b})
		p99.Series = append(p99.Series, web.Series{Name: name, Class: g.Class, Points: c})
	}
	charts := []web.Chart{rps, errs, p99}
	for i := range charts {
		charts[i].Gap = 3 * plotEvery
		switch {
		case inWindow == 0:
			charts[i].Empty = "no samples yet: one comes every " + plotEvery.String()
			charts[i].Series = nil
		case total == 0:
			charts[i].Empty = "no traffic yet"
			charts[i].Series = nil
		}
	}
	return charts
}

// chartsHTML draws charts side by side; key changes when they do.
func chartsHTML(charts []web.Chart) (template.HTML, string) {
	var out template.HTML
	for _, c := range charts {
		out += c.HTML()
	}
	return out, htmlKey(out)
}

// htmlKey tells drawings apart, for a live page to swap only changed ones.
func htmlKey(html template.HTML) string {
	h := fnv.New64a()
	_, _ = h.Write([]byte(html))
	return strconv.FormatUint(h.Sum64(), 36)
}

// plotsView is a page's plots, or a note saying why there are none.
type plotsView struct {
	Charts template.HTML
	Key    string
}

func plotsNote(note string) plotsView {
	html := template.HTML(`<p class="hint plots-note">` + template.HTMLEscapeString(note) + `</p>`)
	return plotsView{Charts: html, Key: htmlKey(html)}
}

// servicePlots draws a service's traffic over the last plotKeep, blue
// against green while a blue/green deployment runs or keeps blue.
func (s *Server) servicePlots(svc store.Service, latest *store.Deployment) plotsView {
	if svc.LoadBalancer == nil {
		return plotsNote("This service has no load balancer, so there are no request metrics to plot.")
	}
	samples := s.plots().history(svc.App, svc.Env, svc.Name)
	to := time.Now().Truncate(time.Second)
	if n := len(samples); n > 0 {
		to = samples[n-1].At
	}
	green := ""
	if d := latest; d != nil && d.Strategy == "blue-green" && (d.State == store.DeployInProgress || d.Phase == "BlueKept") {
		if set, ok := deploy.NewSetOf(*d, svc.EffectiveLayout()); ok {
			green = set.Group
		}
	}
	// The axis spans what the ring holds, a minute at least: a sampler
	// that just started does not squeeze its points into an edge.
	from := to.Add(-plotKeep)
	if len(samples) > 0 && samples[0].At.After(from) {
		from = samples[0].At
		if to.Sub(from) < time.Minute {
			from = to.Add(-time.Minute)
		}
	}
	html, key := chartsHTML(trafficCharts("svc", samples, plotGroups(samples, green), from, to))
	return plotsView{Charts: html, Key: key}
}

// deploymentWindow is the span of a deployment's plots: the deployment
// with a margin either side (a quarter of its length, 15 s to a minute), as
// far as the ring has samples.
func deploymentWindow(d store.Deployment, samples []plotSample) (from, to time.Time, ok bool) {
	if len(samples) == 0 {
		return time.Time{}, time.Time{}, false
	}
	end := samples[len(samples)-1].At
	if d.EndedAt != nil && d.EndedAt.Before(end) {
		end = *d.EndedAt
	}
	pad := min(max(end.Sub(d.CreatedAt)/4, 15*time.Second), time.Minute)
	from, to = d.CreatedAt.Add(-pad), end.Add(pad)
	if first := samples[0].At; from.Before(first) {
		from = first
	}
	if last := samples[len(samples)-1].At; to.After(last) {
		to = last
	}
	return from, to, from.Before(to)
}

// isNewSet and isOldSet tell a deployment's task sets apart as the
// controller does: by revision, and by generation when it redeploys the
// revision running.
func isNewSet(d store.Deployment, set store.TaskSet) bool {
	_, ok := deploy.NewSetOf(d, store.Layout{Sets: []store.TaskSet{set}})
	return ok
}

func isOldSet(d store.Deployment, set store.TaskSet) bool {
	if d.First() || set.Family != d.FromFamily || set.Revision != d.FromRevision {
		return false
	}
	return !(d.FromFamily == d.ToFamily && d.FromRevision == d.ToRevision) || set.Generation != d.ID
}

// deploymentPlots draws a deployment's traffic per target group (blue
// against green) and, for a rolling one, its old and new task counts.
func (s *Server) deploymentPlots(d store.Deployment, svcHasLB bool) plotsView {
	samples := s.plots().history(d.App, d.Env, d.Service)
	from, to, ok := deploymentWindow(d, samples)
	if !ok {
		note := fmt.Sprintf("No samples of this deployment's time: the server samples while someone looks at a service or deployment page, and keeps the last %s.", plotKeep)
		if len(samples) == 0 && d.State == store.DeployInProgress {
			note = "Sampling has just started: the first points come within " + plotEvery.String() + "."
		}
		return plotsNote(note)
	}
	var charts []web.Chart
	if d.Strategy != "blue-green" {
		charts = append(charts, rollingChart(d, samples, from, to))
	}
	if svcHasLB {
		green := ""
		if d.Strategy == "blue-green" {
			for _, smp := range samples {
				for _, set := range smp.Sets {
					if isNewSet(d, set.TaskSet) && !smp.At.Before(from) && !smp.At.After(to) {
						green = set.Group
					}
				}
			}
		}
		var inWindow []plotSample
		for _, smp := range samples {
			if !smp.At.Before(from) && !smp.At.After(to) {
				inWindow = append(inWindow, smp)
			}
		}
		charts = append(charts, trafficCharts(fmt.Sprintf("dep%d", d.ID), samples, plotGroups(inWindow, green), from, to)...)
	}
	html, key := chartsHTML(charts)
	return plotsView{Charts: html, Key: key}
}

// rollingChart draws the old revision's running tasks going down as the
// new one's go up, towards the desired count.
func rollingChart(d store.Deployment, samples []plotSample, from, to time.Time) web.Chart {
	c := web.Chart{ID: fmt.Sprintf("dep%d-tasks", d.ID), Title: "Tasks: old and new revision", Unit: "tasks", From: from, To: to,
		Integer: true, MinTop: 1, Gap: 3 * plotEvery, Empty: "no samples yet: one comes every " + plotEvery.String()}
	var old, next, desired []web.Point
	for _, smp := range samples {
		if smp.At.Before(from) || smp.At.After(to) {
			continue
		}
		o, n := 0, 0
		for _, set := range smp.Sets {
			switch {
			case isNewSet(d, set.TaskSet):
				n += set.Running
			case isOldSet(d, set.TaskSet):
				o += set.Running
			}
		}
		old = append(old, web.Point{At: smp.At, V: float64(o)})
		next = append(next, web.Point{At: smp.At, V: float64(n)})
		desired = append(desired, web.Point{At: smp.At, V: float64(smp.Desired)})
	}
	if !d.First() {
		c.Series = append(c.Series, web.Series{Name: "old " + d.From() + " running", Class: "series-old", Points: old})
	}
	c.Series = append(c.Series,
		web.Series{Name: fmt.Sprintf("new %s:%d running", d.ToFamily, d.ToRevision), Class: "series-new", Points: next},
		web.Series{Name: "desired", Class: "series-desired", Dashed: true, Points: desired})
	return c
}
