package deploy

import (
	"context"
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
		if got := scaleDecision(a, c.desired, c.rate, c.last, now); got != c.want {
			t.Errorf("%s: %d tasks at %.1f req/s → %d, want %d", c.name, c.desired, c.rate, got, c.want)
		}
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
		{"no target", func(a *store.Autoscaling) { a.TargetRequestsPerSecond = 0 }, lb, "autoscaling.target_requests_per_second must be more than 0"},
		{"window too long", func(a *store.Autoscaling) { a.Window = "5m" }, lb, `autoscaling.window "5m" must be a duration from 5s to 2m0s`},
		{"window not a duration", func(a *store.Autoscaling) { a.Window = "soon" }, lb, `autoscaling.window "soon"`},
		{"negative cooldown", func(a *store.Autoscaling) { a.ScaleInCooldown = "-1s" }, lb, `autoscaling.scale_in_cooldown "-1s"`},
		{"zero cooldown allowed", func(a *store.Autoscaling) { a.ScaleOutCooldown = "0s" }, lb, ""},
	}
	for _, c := range cases {
		a := ok
		c.edit(&a)
		err := ValidateAutoscaling(&a, c.lb)
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s: %v", c.name, err)
		case c.want != "" && (err == nil || !strings.HasPrefix(err.Error(), c.want)):
			t.Errorf("%s: error %v, want one starting %q", c.name, err, c.want)
		}
	}
	a := ok
	_ = ValidateAutoscaling(&a, lb)
	if a.Window != "1m0s" || a.ScaleOutCooldown != "1m0s" || a.ScaleInCooldown != "5m0s" {
		t.Errorf("defaults: %+v", a)
	}
}

// With the load balancer not answering there is no rate to judge by: the
// pass says so and the count stays.
func TestAutoscaleLeavesTheCountWhenTheLoadBalancerIsDown(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	db, err := store.Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.CreateApp(ctx, store.App{Name: "a", RegistryRepo: "a", Environments: []string{"staging"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.CreateService(ctx, store.Service{App: "a", Env: "staging", Name: "web", Family: "web", Revision: 1, Desired: 3,
		LoadBalancer: &store.LoadBalancer{ContainerName: "web", ContainerPort: 8080, ListenerPort: 8081}}); err != nil {
		t.Fatal(err)
	}
	if err := db.SetAutoscaling(ctx, "a", "staging", "web", &store.Autoscaling{MinCount: 1, MaxCount: 4, TargetRequestsPerSecond: 10,
		Window: "10s", ScaleOutCooldown: "0s", ScaleInCooldown: "0s"}); err != nil {
		t.Fatal(err)
	}
	m := &Manager{Store: db, Proxy: NewProxy(dir, ""), Log: slog.New(slog.NewTextHandler(io.Discard, nil)), scaled: map[string]scaleTimes{}}
	if err := m.autoscale(ctx); err == nil || !strings.Contains(err.Error(), "read the request counts") {
		t.Fatalf("autoscale with no load balancer: %v", err)
	}
	if svc, _ := db.GetService(ctx, "a", "staging", "web"); svc.Desired != 3 {
		t.Fatalf("desired count %d, want it left at 3", svc.Desired)
	}
}
