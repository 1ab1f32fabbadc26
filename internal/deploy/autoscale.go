package deploy

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/slipway-dev/slipway/internal/lb"
	"github.com/slipway-dev/slipway/internal/store"
	"github.com/slipway-dev/slipway/internal/task"
	"github.com/slipway-dev/slipway/internal/taskdef"
)

// Service auto scaling is target tracking with ECS's predefined metrics:
// the requests per second each task serves, as the load balancer counts them
// (ALBRequestCountPerTarget), and the tasks' CPU and memory use as a share
// of what their task definition reserves (ECSServiceAverageCPUUtilization,
// ECSServiceAverageMemoryUtilization).
const (
	// autoscaleEvery is how often the metrics are looked at.
	autoscaleEvery          = 2 * time.Second
	defaultAutoscaleWindow  = 60 * time.Second
	defaultScaleOutCooldown = 60 * time.Second
	defaultScaleInCooldown  = 300 * time.Second
	maxDesiredCount         = 100
	// unreservedCPUUnits is the CPU a task that reserves none is measured
	// against: one vCPU.
	unreservedCPUUnits = 1024
)

// ScalingKeys spells auto scaling's settings in errors, so that each user
// reads the names they wrote: the API's fields (min_count) or a file's keys.
type ScalingKeys struct {
	Names map[string]string // the API's field → its spelling here; absent: the same
	AddLB string            // how to give the service a load balancer
}

// APIKeys are the API's and the CLI's names.
var APIKeys = ScalingKeys{AddLB: "give it load_balancer settings first (slipway service update NAME --lb-container C --lb-container-port P --listener-port L)"}

func (k ScalingKeys) name(field string) string {
	if n, ok := k.Names[field]; ok {
		return n
	}
	return field
}

// ScalingError is a bad auto scaling setting.
type ScalingError struct {
	Field   string // "autoscaling.<key>", or "autoscaling" for the settings as a whole
	Message string
}

func (e *ScalingError) Error() string { return e.Message }

// bad makes the error about key (its API name; "" for no one key), whose
// message starts with the field it is about.
func (k ScalingKeys) bad(key, format string, args ...any) error {
	field := "autoscaling"
	if key != "" {
		field += "." + k.name(key)
	}
	return &ScalingError{Field: field, Message: field + fmt.Sprintf(format, args...)}
}

// ValidateAutoscaling checks auto scaling settings and fills their
// defaults. Its errors are *ScalingError, with settings spelt by keys.
func ValidateAutoscaling(a *store.Autoscaling, lb *store.LoadBalancer, keys ScalingKeys) error {
	if a.MinCount < 1 || a.MinCount > maxDesiredCount {
		return keys.bad("min_count", " must be 1 to %d", maxDesiredCount)
	}
	if a.MaxCount < a.MinCount || a.MaxCount > maxDesiredCount {
		return keys.bad("max_count", " must be %s (%d) to %d", keys.name("min_count"), a.MinCount, maxDesiredCount)
	}
	rps, cpu, mem := keys.name("target_requests_per_second"), keys.name("target_cpu_percent"), keys.name("target_memory_percent")
	if a.TargetRequestsPerSecond == 0 && a.TargetCPUPercent == 0 && a.TargetMemoryPercent == 0 {
		return keys.bad("target_requests_per_second", ": give a target to track: %s (requests each task should serve per second), %s or %s (mean use of what the task definition reserves)", rps, cpu, mem)
	}
	targets := []struct {
		field string
		value float64
		max   float64
		what  string
	}{
		{"target_requests_per_second", a.TargetRequestsPerSecond, 1e6, "requests each task should serve per second"},
		{"target_cpu_percent", a.TargetCPUPercent, 100, "the tasks' mean CPU use in percent of their reservation"},
		{"target_memory_percent", a.TargetMemoryPercent, 100, "the tasks' mean memory use in percent of their reservation"},
	}
	for _, t := range targets {
		// Written so that NaN fails too.
		if t.value != 0 && !(t.value > 0 && t.value <= t.max) {
			return keys.bad(t.field, " must be more than 0 and at most %g (%s), or left out", t.max, t.what)
		}
	}
	if a.TargetRequestsPerSecond > 0 && lb == nil {
		return keys.bad("", ": the service has no load balancer, whose request counts %s tracks; track %s or %s instead, or %s", rps, cpu, mem, keys.AddLB)
	}
	limits := []struct {
		field    string
		value    *string
		def      time.Duration
		min, max time.Duration
	}{
		// The load balancer keeps two minutes of counts.
		{"window", &a.Window, defaultAutoscaleWindow, 5 * time.Second, 120 * time.Second},
		{"scale_out_cooldown", &a.ScaleOutCooldown, defaultScaleOutCooldown, 0, time.Hour},
		{"scale_in_cooldown", &a.ScaleInCooldown, defaultScaleInCooldown, 0, time.Hour},
	}
	for _, l := range limits {
		if *l.value == "" {
			*l.value = l.def.String()
			continue
		}
		d, err := time.ParseDuration(*l.value)
		if err != nil || d < l.min || d > l.max {
			return keys.bad(l.field, " %q must be a duration from %s to %s, such as 30s", *l.value, l.min, l.max)
		}
	}
	return nil
}

// scaleTimes are when a service last scaled out and in.
type scaleTimes struct{ out, in time.Time }

// measures is what one pass measured of a service. A metric that could not
// be measured (no task has a long enough history yet) has no say.
type measures struct {
	rate float64 // requests per second to the service
	// cpu and memory add up the measured tasks' use, each in percent of
	// its reservation; cpuTasks and memoryTasks count those tasks.
	cpu, memory           float64
	cpuTasks, memoryTasks int
}

// wantedCount is the desired count target tracking asks for: for each
// target, enough tasks that the total measured spreads at most at the
// target over them; the largest of these, within the limits. ok is false
// when no tracked metric was measured.
func wantedCount(a store.Autoscaling, m measures) (n int, ok bool) {
	need := func(total, target float64) {
		n = max(n, int(math.Ceil(total/target-1e-9)))
		ok = true
	}
	if a.TargetRequestsPerSecond > 0 {
		need(m.rate, a.TargetRequestsPerSecond)
	}
	if a.TargetCPUPercent > 0 && m.cpuTasks > 0 {
		need(m.cpu, a.TargetCPUPercent)
	}
	if a.TargetMemoryPercent > 0 && m.memoryTasks > 0 {
		need(m.memory, a.TargetMemoryPercent)
	}
	return min(max(n, a.MinCount), a.MaxCount), ok
}

// scaleDecision says what a service's desired count should become, given
// what was measured and when it last scaled: a count outside the limits
// moves inside at once; otherwise scaling out waits for the scale-out
// cooldown since the last scale-out, scaling in for the scale-in cooldown
// since the last scaling of either kind. It returns desired when nothing is to change.
func scaleDecision(a store.Autoscaling, desired int, m measures, last scaleTimes, now time.Time) int {
	if desired < a.MinCount {
		return a.MinCount
	}
	if desired > a.MaxCount {
		return a.MaxCount
	}
	want, ok := wantedCount(a, m)
	if !ok {
		return desired
	}
	outCooldown, _ := time.ParseDuration(a.ScaleOutCooldown)
	inCooldown, _ := time.ParseDuration(a.ScaleInCooldown)
	switch {
	case want > desired && now.Sub(last.out) >= outCooldown:
		return want
	case want < desired && now.Sub(last.out) >= inCooldown && now.Sub(last.in) >= inCooldown:
		return want
	}
	return desired
}

// usageSample is a task's CPU time used so far, read at one moment.
type usageSample struct {
	at  time.Time
	cpu time.Duration
}

// cpuPercent is a task's CPU use between its oldest and newest samples, in
// percent of the CPU units it reserves.
func cpuPercent(samples []usageSample, units int) (float64, bool) {
	if len(samples) < 2 {
		return 0, false
	}
	first, last := samples[0], samples[len(samples)-1]
	elapsed := last.at.Sub(first.at)
	if elapsed <= 0 || last.cpu < first.cpu {
		return 0, false
	}
	return float64(last.cpu-first.cpu) / float64(elapsed) / (float64(units) / 1024) * 100, true
}

// keepWindow drops the samples no longer needed to measure over window:
// the oldest kept is the newest one at least window old.
func keepWindow(samples []usageSample, now time.Time, window time.Duration) []usageSample {
	for len(samples) > 1 && !samples[1].at.After(now.Add(-window)) {
		samples = samples[1:]
	}
	return samples
}

// autoscale applies every service's auto scaling once.
func (m *Manager) autoscale(ctx context.Context) error {
	svcs, err := m.Store.ListServices(ctx, "", "")
	if err != nil {
		return err
	}
	m.mu.Lock()
	all := m.lastTasks
	m.mu.Unlock()
	// One read of the load balancer per window serves every service measured over it.
	states := map[time.Duration]lb.State{}
	seen := map[string]bool{}
	defs := map[string]*taskdef.TaskDef{}
	use := map[string]Utilization{}
	for _, s := range svcs {
		if s.Autoscaling == nil {
			continue
		}
		a := *s.Autoscaling
		window, _ := time.ParseDuration(a.Window)
		var ms measures
		if a.TargetRequestsPerSecond > 0 && s.LoadBalancer != nil {
			st, ok := states[window]
			if !ok {
				if st, err = m.Proxy.Client().State(ctx, window); err != nil {
					return fmt.Errorf("read the request counts: %w", err)
				}
				states[window] = st
			}
			ms.rate = serviceRate(s, st, window)
		}
		if a.TargetCPUPercent > 0 || a.TargetMemoryPercent > 0 {
			m.measureUsage(ctx, s, all, window, defs, seen, &ms)
			use[key(s)] = utilizationOf(ms, window)
		}
		if err := m.autoscaleService(ctx, s, window, ms); err != nil && ctx.Err() == nil {
			m.Log.Warn("auto scaling", "service", key(s), "err", err)
		}
	}
	m.mu.Lock()
	for id := range m.usage {
		if !seen[id] {
			delete(m.usage, id)
		}
	}
	m.use = use
	m.mu.Unlock()
	return nil
}

// Utilization is a service's mean CPU and memory use, in percent of what
// its tasks reserve, as auto scaling last measured it; a figure is absent
// when it was not measured.
type Utilization struct {
	CPUPercent    *float64 `json:"cpu_percent,omitempty"`
	MemoryPercent *float64 `json:"memory_percent,omitempty"`
	Window        string   `json:"window"`
}

// Text reads as "CPU 34%, memory 12%", or "not measured yet".
func (u Utilization) Text() string {
	var parts []string
	if u.CPUPercent != nil {
		parts = append(parts, fmt.Sprintf("CPU %.0f%%", *u.CPUPercent))
	}
	if u.MemoryPercent != nil {
		parts = append(parts, fmt.Sprintf("memory %.0f%%", *u.MemoryPercent))
	}
	if len(parts) == 0 {
		return "not measured yet"
	}
	return strings.Join(parts, ", ")
}

func utilizationOf(ms measures, window time.Duration) Utilization {
	u := Utilization{Window: window.String()}
	if ms.cpuTasks > 0 {
		u.CPUPercent = new(ms.cpu / float64(ms.cpuTasks))
	}
	if ms.memoryTasks > 0 {
		u.MemoryPercent = new(ms.memory / float64(ms.memoryTasks))
	}
	return u
}

// Utilization is what the last auto scaling pass measured of the service's
// CPU and memory; nil when it tracks neither.
func (m *Manager) Utilization(s store.Service) *Utilization {
	m.mu.Lock()
	defer m.mu.Unlock()
	u, ok := m.use[key(s)]
	if !ok {
		return nil
	}
	return &u
}

// serviceRate is the requests per second the load balancer counted for the
// service over window, in both target groups: during a blue/green
// deployment's wait either may serve.
func serviceRate(s store.Service, st lb.State, window time.Duration) float64 {
	var requests int64
	seconds := window.Seconds()
	for _, g := range []string{"tg1", "tg2"} {
		if gs, ok := st.TargetGroups[TargetGroupName(s, g)]; ok {
			requests += gs.Stats.Requests
			seconds = gs.Stats.Seconds
		}
	}
	return float64(requests) / max(seconds, 1)
}

// measureUsage samples the CPU and memory of the service's running tasks
// and adds their use over window to ms. seen collects the tasks sampled;
// defs caches task definitions for the pass.
func (m *Manager) measureUsage(ctx context.Context, s store.Service, all []task.Task, window time.Duration, defs map[string]*taskdef.TaskDef, seen map[string]bool, ms *measures) {
	for _, t := range all {
		if t.App != s.App || t.Env != s.Env || t.Service != s.Name || t.Status() != "RUNNING" || m.isStopping(t.ID) {
			continue
		}
		ref := fmt.Sprintf("%s:%d", t.Family, t.Revision)
		def, ok := defs[ref]
		if !ok {
			if rev, err := m.Store.GetTaskDef(ctx, t.Family, t.Revision); err == nil {
				def, _, _ = taskdef.Parse(rev.Body)
			}
			defs[ref] = def
		}
		if def == nil {
			continue
		}
		rt := m.backendOf(t)
		if rt == nil {
			continue
		}
		u, err := rt.Usage(ctx, t)
		if errors.Is(err, task.ErrNoUsage) {
			m.noUsage(s, rt)
			continue
		}
		if err != nil {
			continue // stopped since the listing: it has no say
		}
		now := time.Now()
		seen[t.ID] = true
		m.mu.Lock()
		samples := keepWindow(append(m.usage[t.ID], usageSample{at: now, cpu: u.CPU}), now, window)
		m.usage[t.ID] = samples
		m.mu.Unlock()
		units := def.ReservedCPUUnits()
		if units == 0 {
			units = unreservedCPUUnits
		}
		if pct, ok := cpuPercent(samples, units); ok {
			ms.cpu += pct
			ms.cpuTasks++
		}
		if mib := def.ReservedMemoryMiB(); mib > 0 {
			ms.memory += float64(u.MemoryBytes) / float64(uint64(mib)<<20) * 100
			ms.memoryTasks++
		}
	}
}

func (m *Manager) autoscaleService(ctx context.Context, s store.Service, window time.Duration, ms measures) error {
	a := *s.Autoscaling
	// The times come from the store, so a restarted server keeps the cooldowns.
	last := scaleTimes{out: s.AutoscaledOutAt, in: s.AutoscaledInAt}
	to := scaleDecision(a, s.Desired, ms, last, time.Now())
	if to == s.Desired {
		return nil
	}
	if err := m.Store.AutoScale(ctx, s.App, s.Env, s.Name, s.Desired, to); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return nil // a deployment owns the count until it ends; try again after
		}
		return err
	}
	m.event(ctx, s, "auto scaling: desired count %d → %d (%s over the last %s; targets %s; %d to %d tasks)",
		s.Desired, to, measuredText(a, ms), window, a.TargetsText(), a.MinCount, a.MaxCount)
	m.Wake()
	return nil
}

// measuredText tells what was measured of the tracked metrics.
func measuredText(a store.Autoscaling, ms measures) string {
	var parts []string
	if a.TargetRequestsPerSecond > 0 {
		parts = append(parts, fmt.Sprintf("%.1f requests/s", ms.rate))
	}
	if a.TargetCPUPercent > 0 && ms.cpuTasks > 0 {
		parts = append(parts, fmt.Sprintf("CPU %.0f%% on average over %s", ms.cpu/float64(ms.cpuTasks), tasksText(ms.cpuTasks)))
	}
	if a.TargetMemoryPercent > 0 && ms.memoryTasks > 0 {
		parts = append(parts, fmt.Sprintf("memory %.0f%% on average over %s", ms.memory/float64(ms.memoryTasks), tasksText(ms.memoryTasks)))
	}
	if len(parts) == 0 {
		return "nothing measured"
	}
	return strings.Join(parts, ", ")
}

// CheckReservation refuses a memory target when the service's task
// definition reserves no memory to measure use against. (CPU is measured
// against one vCPU when none is reserved.)
func (m *Manager) CheckReservation(ctx context.Context, svc store.Service, a store.Autoscaling, keys ScalingKeys) error {
	if a.TargetMemoryPercent == 0 {
		return nil
	}
	rev, err := m.Store.GetTaskDef(ctx, svc.Family, svc.Revision)
	if err != nil {
		return err
	}
	def, _, err := taskdef.Parse(rev.Body)
	if err != nil {
		return err
	}
	if def.ReservedMemoryMiB() == 0 {
		return keys.bad("target_memory_percent", ": task definition %s:%d reserves no memory to measure use against; give its containers memory or memoryReservation (or the task a memory), or track %s or %s",
			svc.Family, svc.Revision, keys.name("target_cpu_percent"), keys.name("target_requests_per_second"))
	}
	return nil
}

func tasksText(n int) string {
	if n == 1 {
		return "1 task"
	}
	return fmt.Sprintf("%d tasks", n)
}
