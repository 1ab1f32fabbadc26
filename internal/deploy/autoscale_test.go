package deploy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/slipway-dev/slipway/internal/store"
)

func TestScaleDecision(t *testing.T) {
	a := store.Autoscaling{MinCount: 1, MaxCount: 4, TargetRequestsPerSecond: 50, ScaleOutCooldown: "60s", ScaleInCooldown: "300s"}
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	long := scaleTimes{out: now.Add(-time.Hour), in: now.Add(-time.Hour)}
	cases := []struct {
		name    string
		desired int
		rate    float64
		last    scaleTimes
		want    int
	}{
		{"at the target", 2, 100, long, 2},
		{"just over the target", 2, 100.5, long, 3},
		{"far over: as many as needed", 1, 180, long, 4},
		{"over the maximum: the maximum", 2, 10000, long, 4},
		{"under: fewer tasks", 4, 60, long, 2},
		{"no traffic: the minimum", 3, 0, long, 1},
		{"scale-out cooldown holds a second scale-out", 2, 180, scaleTimes{out: now.Add(-30 * time.Second)}, 2},
		{"scale-out cooldown over", 2, 180, scaleTimes{out: now.Add(-61 * time.Second)}, 4},
		{"a recent scale-out holds scale-in", 4, 10, scaleTimes{out: now.Add(-200 * time.Second), in: now.Add(-time.Hour)}, 4},
		{"a recent scale-in holds scale-in", 4, 10, scaleTimes{out: now.Add(-time.Hour), in: now.Add(-100 * time.Second)}, 4},
		{"a recent scale-in does not hold scale-out", 2, 180, scaleTimes{out: now.Add(-time.Hour), in: now.Add(-time.Second)}, 4},
		{"below the minimum moves at once", 0, 0, scaleTimes{out: now, in: now}, 1},
		{"above the maximum moves at once", 9, 1000, scaleTimes{out: now, in: now}, 4},
	}
	for _, c := range cases {
		if got := scaleDecision(a, c.desired, measures{rate: c.rate}, c.last, now); got != c.want {
			t.Errorf("%s: %d tasks at %.1f req/s → %d, want %d", c.name, c.desired, c.rate, got, c.want)
		}
	}
}

func TestWantedCountWithSeveralTargets(t *testing.T) {
	both := store.Autoscaling{MinCount: 1, MaxCount: 10, TargetRequestsPerSecond: 50, TargetCPUPercent: 60, TargetMemoryPercent: 80}
	cpuOnly := store.Autoscaling{MinCount: 2, MaxCount: 10, TargetCPUPercent: 50}
	cases := []struct {
		name   string
		a      store.Autoscaling
		m      measures
		want   int
		wantOK bool
	}{
		{"CPU asks for the most", both, measures{rate: 40, cpu: 300, cpuTasks: 2, memory: 60, memoryTasks: 2}, 5, true},
		{"requests ask for the most", both, measures{rate: 420, cpu: 100, cpuTasks: 2, memory: 60, memoryTasks: 2}, 9, true},
		{"memory asks for the most", both, measures{rate: 10, cpu: 50, cpuTasks: 2, memory: 390, memoryTasks: 3}, 5, true},
		{"all low: the minimum", both, measures{cpu: 10, cpuTasks: 3, memory: 10, memoryTasks: 3}, 1, true},
		{"CPU just at the target keeps the count", cpuOnly, measures{cpu: 150, cpuTasks: 3}, 3, true},
		{"CPU over the target adds a task", cpuOnly, measures{cpu: 151, cpuTasks: 3}, 4, true},
		{"CPU far over: the maximum", cpuOnly, measures{cpu: 2000, cpuTasks: 10}, 10, true},
		{"CPU not measured yet: no say", cpuOnly, measures{}, 2, false},
		{"an untracked metric has no say", cpuOnly, measures{rate: 1e6, memory: 900, memoryTasks: 3}, 2, false},
	}
	for _, c := range cases {
		got, ok := wantedCount(c.a, c.m)
		if got != c.want || ok != c.wantOK {
			t.Errorf("%s: %d %v, want %d %v", c.name, got, ok, c.want, c.wantOK)
		}
	}
	// Nothing measured leaves the count, even past every cooldown.
	if got := scaleDecision(cpuOnly, 5, measures{}, scaleTimes{}, time.Now()); got != 5 {
		t.Errorf("nothing measured: desired 5 → %d", got)
	}
}

func TestCPUPercent(t *testing.T) {
	at := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	sample := func(sec int, cpuMs int) usageSample {
		return usageSample{at: at.Add(time.Duration(sec) * time.Second), cpu: time.Duration(cpuMs) * time.Millisecond}
	}
	cases := []struct {
		name    string
		samples []usageSample
		units   int
		want    float64
		wantOK  bool
	}{
		{"one sample: not yet", []usageSample{sample(0, 0)}, 1024, 0, false},
		{"a whole vCPU busy", []usageSample{sample(0, 0), sample(2, 2000)}, 1024, 100, true},
		{"half a vCPU reserved, a quarter used", []usageSample{sample(0, 500), sample(4, 1500)}, 512, 50, true},
		{"oldest to newest, whatever between", []usageSample{sample(0, 0), sample(1, 900), sample(10, 1000)}, 1024, 10, true},
		{"usage went back (a container restarted)", []usageSample{sample(0, 5000), sample(2, 100)}, 1024, 0, false},
	}
	for _, c := range cases {
		got, ok := cpuPercent(c.samples, c.units)
		if ok != c.wantOK || (ok && (got < c.want-0.001 || got > c.want+0.001)) {
			t.Errorf("%s: %.3f %v, want %.3f %v", c.name, got, ok, c.want, c.wantOK)
		}
	}
	// The window keeps one sample at least as old as itself, so use is
	// measured over the whole window and no more.
	samples := []usageSample{sample(0, 0), sample(2, 0), sample(4, 0), sample(6, 0)}
	kept := keepWindow(samples, at.Add(7*time.Second), 4*time.Second)
	if len(kept) != 3 || !kept[0].at.Equal(at.Add(2*time.Second)) {
		t.Errorf("kept %v", kept)
	}
	if kept := keepWindow(samples[:1], at.Add(time.Hour), time.Second); len(kept) != 1 {
		t.Errorf("a lone sample must stay: %v", kept)
	}
}

func TestValidateAutoscaling(t *testing.T) {
	lb := &store.LoadBalancer{ContainerName: "web", ContainerPort: 8080, ListenerPort: 8081}
	ok := store.Autoscaling{MinCount: 1, MaxCount: 3, TargetRequestsPerSecond: 20}
	cases := []struct {
		name string
		edit func(*store.Autoscaling)
		lb   *store.LoadBalancer
		want string // the error's start; "" for none
	}{
		{"defaults filled", func(*store.Autoscaling) {}, lb, ""},
		{"no load balancer", func(*store.Autoscaling) {}, nil, "autoscaling: the service has no load balancer"},
		{"min 0", func(a *store.Autoscaling) { a.MinCount = 0 }, lb, "autoscaling.min_count must be 1 to 100"},
		{"max under min", func(a *store.Autoscaling) { a.MaxCount = 0 }, lb, "autoscaling.max_count must be min_count (1) to 100"},
		{"max over 100", func(a *store.Autoscaling) { a.MaxCount = 101 }, lb, "autoscaling.max_count"},
		{"no target", func(a *store.Autoscaling) { a.TargetRequestsPerSecond = 0 }, lb, "autoscaling.target_requests_per_second: give a target to track"},
		{"negative rate", func(a *store.Autoscaling) { a.TargetRequestsPerSecond = -5 }, lb, "autoscaling.target_requests_per_second must be more than 0"},
		{"CPU alone needs no load balancer", func(a *store.Autoscaling) { a.TargetRequestsPerSecond, a.TargetCPUPercent = 0, 60 }, nil, ""},
		{"memory alone", func(a *store.Autoscaling) { a.TargetRequestsPerSecond, a.TargetMemoryPercent = 0, 75 }, nil, ""},
		{"CPU over 100", func(a *store.Autoscaling) { a.TargetCPUPercent = 150 }, lb, "autoscaling.target_cpu_percent must be more than 0 and at most 100"},
		{"memory negative", func(a *store.Autoscaling) { a.TargetMemoryPercent = -1 }, lb, "autoscaling.target_memory_percent"},
		{"requests without a load balancer, with CPU", func(a *store.Autoscaling) { a.TargetCPUPercent = 50 }, nil, "autoscaling: the service has no load balancer"},
		{"window too long", func(a *store.Autoscaling) { a.Window = "5m" }, lb, `autoscaling.window "5m" must be a duration from 5s to 2m0s`},
		{"window not a duration", func(a *store.Autoscaling) { a.Window = "soon" }, lb, `autoscaling.window "soon"`},
		{"negative cooldown", func(a *store.Autoscaling) { a.ScaleInCooldown = "-1s" }, lb, `autoscaling.scale_in_cooldown "-1s"`},
		{"zero cooldown allowed", func(a *store.Autoscaling) { a.ScaleOutCooldown = "0s" }, lb, ""},
	}
	for _, c := range cases {
		a := ok
		c.edit(&a)
		err := ValidateAutoscaling(&a, c.lb, APIKeys)
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s: %v", c.name, err)
		case c.want != "" && (err == nil || !strings.HasPrefix(err.Error(), c.want)):
			t.Errorf("%s: error %v, want one starting %q", c.name, err, c.want)
		case err != nil:
			// The error names its field: the API answers 400 with it.
			var se *ScalingError
			field := strings.TrimSuffix(strings.Fields(c.want)[0], ":")
			if !errors.As(err, &se) || se.Field != field {
				t.Errorf("%s: error %#v, want a ScalingError about %s", c.name, err, field)
			}
		}
	}
	a := ok
	_ = ValidateAutoscaling(&a, lb, APIKeys)
	if a.Window != "1m0s" || a.ScaleOutCooldown != "1m0s" || a.ScaleInCooldown != "5m0s" {
		t.Errorf("defaults: %+v", a)
	}
}

// TestValidateAutoscalingSpellsKeysAsTheirWriter: a file's keys name the
// fields in its errors, the other fields they mention and how to fix them.
func TestValidateAutoscalingSpellsKeysAsTheirWriter(t *testing.T) {
	keys := ScalingKeys{AddLB: "give the action a listener-port", Names: map[string]string{"min_count": "min", "max_count": "max", "target_requests_per_second": "rps", "target_cpu_percent": "cpu"}}
	a := store.Autoscaling{MinCount: 3, MaxCount: 2, TargetRequestsPerSecond: 5}
	err := ValidateAutoscaling(&a, nil, keys)
	var se *ScalingError
	if !errors.As(err, &se) || se.Field != "autoscaling.max" || se.Message != "autoscaling.max must be min (3) to 100" {
		t.Fatalf("max under min: %#v", err)
	}
	a.MaxCount = 4
	err = ValidateAutoscaling(&a, nil, keys)
	if want := "autoscaling: the service has no load balancer, whose request counts rps tracks; track cpu or target_memory_percent instead, or give the action a listener-port"; err == nil || err.Error() != want {
		t.Fatalf("no load balancer: %v\nwant %s", err, want)
	}
}

// TestCheckReservationNeedsMemoryForAMemoryTarget: a memory target with a
// task definition that reserves no memory is refused, in the writer's keys.
func TestCheckReservationNeedsMemoryForAMemoryTarget(t *testing.T) {
	ctx := context.Background()
	db := storeWithApp(t, t.TempDir(), "")
	m := &Manager{Store: db}
	keys := ScalingKeys{Names: map[string]string{"target_memory_percent": "target-memory-percent", "target_cpu_percent": "target-cpu-percent", "target_requests_per_second": "target-requests-per-second"}}
	for _, c := range []struct {
		memory string
		want   string
	}{
		{``, "autoscaling.target-memory-percent: task definition web:1 reserves no memory to measure use against; give its containers memory or memoryReservation (or the task a memory), or track target-cpu-percent or target-requests-per-second"},
		{`"memory": 64,`, ""},
	} {
		rev, err := db.RegisterTaskDef(ctx, "web", []byte(`{"family":"web","containerDefinitions":[{"name":"web",`+c.memory+`"image":"x"}]}`), "test")
		if err != nil {
			t.Fatal(err)
		}
		svc := store.Service{App: "a", Env: "staging", Name: "web", Family: "web", Revision: rev.Revision}
		err = m.CheckReservation(ctx, svc, store.Autoscaling{MinCount: 1, MaxCount: 2, TargetMemoryPercent: 70}, keys)
		if c.want == "" && err != nil || c.want != "" && (err == nil || err.Error() != strings.Replace(c.want, "web:1", fmt.Sprintf("web:%d", rev.Revision), 1)) {
			t.Errorf("memory %q: error %v, want %q", c.memory, err, c.want)
		}
		if err := m.CheckReservation(ctx, svc, store.Autoscaling{MinCount: 1, MaxCount: 2, TargetCPUPercent: 70}, keys); err != nil {
			t.Errorf("a CPU target needs no reservation: %v", err)
		}
	}
}

// With the load balancer not answering there is no rate to judge by: the
// pass says so and the count stays.
func TestAutoscaleLeavesTheCountWhenTheLoadBalancerIsDown(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	db := storeWithApp(t, dir, "a")
	if _, err := db.CreateService(ctx, store.Service{App: "a", Env: "staging", Name: "web", Family: "web", Revision: 1, Desired: 3,
		LoadBalancer: &store.LoadBalancer{ContainerName: "web", ContainerPort: 8080, ListenerPort: 8081}}); err != nil {
		t.Fatal(err)
	}
	if err := db.SetAutoscaling(ctx, "a", "staging", "web", &store.Autoscaling{MinCount: 1, MaxCount: 4, TargetRequestsPerSecond: 10,
		Window: "10s", ScaleOutCooldown: "0s", ScaleInCooldown: "0s"}); err != nil {
		t.Fatal(err)
	}
	m := &Manager{Store: db, Proxy: NewProxy(dir, ""), Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if err := m.autoscale(ctx); err == nil || !strings.Contains(err.Error(), "read the request counts") {
		t.Fatalf("autoscale with no load balancer: %v", err)
	}
	if svc, _ := db.GetService(ctx, "a", "staging", "web"); svc.Desired != 3 {
		t.Fatalf("desired count %d, want it left at 3", svc.Desired)
	}
}

// The cooldowns are kept with the service: a server restarted just after a
// scale-out neither scales out again nor scales in before they pass.
func TestAutoscaleCooldownsOutlastARestart(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	open := func() (*store.DB, *Manager) {
		db, err := store.Open(ctx, dir)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return db, &Manager{Store: db, Proxy: NewProxy(dir, ""), Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	}
	db, m := open()
	if _, err := db.CreateApp(ctx, store.App{Name: "a", RegistryRepo: "a", Environments: []string{"staging"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.CreateService(ctx, store.Service{App: "a", Env: "staging", Name: "web", Family: "web", Revision: 1, Desired: 1,
		LoadBalancer: &store.LoadBalancer{ContainerName: "web", ContainerPort: 8080, ListenerPort: 8081}}); err != nil {
		t.Fatal(err)
	}
	cooldown := "1h"
	if err := db.SetAutoscaling(ctx, "a", "staging", "web", &store.Autoscaling{MinCount: 1, MaxCount: 6, TargetRequestsPerSecond: 10,
		Window: "10s", ScaleOutCooldown: cooldown, ScaleInCooldown: cooldown}); err != nil {
		t.Fatal(err)
	}
	evaluate := func(m *Manager, db *store.DB, rate float64) int {
		t.Helper()
		svc, err := db.GetService(ctx, "a", "staging", "web")
		if err != nil {
			t.Fatal(err)
		}
		if err := m.autoscaleService(ctx, svc, 10*time.Second, measures{rate: rate}); err != nil {
			t.Fatal(err)
		}
		svc, _ = db.GetService(ctx, "a", "staging", "web")
		return svc.Desired
	}
	if got := evaluate(m, db, 30); got != 3 {
		t.Fatalf("first scale-out: desired %d, want 3", got)
	}
	if got := evaluate(m, db, 50); got != 3 {
		t.Fatalf("a second scale-out within the cooldown: desired %d, want 3", got)
	}
	db.Close()

	db, m = open()
	if got := evaluate(m, db, 50); got != 3 {
		t.Fatalf("after a restart, a scale-out within the cooldown: desired %d, want 3", got)
	}
	if got := evaluate(m, db, 5); got != 3 {
		t.Fatalf("after a restart, a scale-in within the cooldown: desired %d, want 3", got)
	}
	svc, _ := db.GetService(ctx, "a", "staging", "web")
	if svc.AutoscaledOutAt.IsZero() || time.Since(svc.AutoscaledOutAt) > time.Minute || !svc.AutoscaledInAt.IsZero() {
		t.Fatalf("scaling times: out %v, in %v", svc.AutoscaledOutAt, svc.AutoscaledInAt)
	}
	evs, _ := db.ListServiceEvents(ctx, "a", "staging", "web", 10)
	if n := len(evs); n == 0 || !strings.Contains(evs[0].Message, "auto scaling: desired count 1 → 3 (30.0 requests/s") {
		t.Fatalf("events: %+v", evs)
	}
}
