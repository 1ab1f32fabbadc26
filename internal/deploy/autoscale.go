package deploy

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/slipway-dev/slipway/internal/lb"
	"github.com/slipway-dev/slipway/internal/store"
)

// Service auto scaling tracks one target: the requests per second each task
// serves, as the load balancer counts them (ECS's ALBRequestCountPerTarget).
const (
	// autoscaleEvery is how often the request rates are looked at.
	autoscaleEvery          = 2 * time.Second
	defaultAutoscaleWindow  = 60 * time.Second
	defaultScaleOutCooldown = 60 * time.Second
	defaultScaleInCooldown  = 300 * time.Second
	maxDesiredCount         = 100
)

// ValidateAutoscaling checks auto scaling settings and fills their
// defaults. Its errors begin with the field they are about.
func ValidateAutoscaling(a *store.Autoscaling, lb *store.LoadBalancer) error {
	if lb == nil {
		return errors.New("autoscaling: the service has no load balancer, whose request counts auto scaling tracks; give it load_balancer settings first (slipway service update NAME --lb-container C --lb-container-port P --listener-port L)")
	}
	if a.MinCount < 1 || a.MinCount > maxDesiredCount {
		return fmt.Errorf("autoscaling.min_count must be 1 to %d", maxDesiredCount)
	}
	if a.MaxCount < a.MinCount || a.MaxCount > maxDesiredCount {
		return fmt.Errorf("autoscaling.max_count must be min_count (%d) to %d", a.MinCount, maxDesiredCount)
	}
	if !(a.TargetRequestsPerSecond > 0) || a.TargetRequestsPerSecond > 1e6 {
		return errors.New("autoscaling.target_requests_per_second must be more than 0 (requests each task should serve per second)")
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
			return fmt.Errorf("autoscaling.%s %q must be a duration from %s to %s, such as 30s", l.field, *l.value, l.min, l.max)
		}
	}
	return nil
}

// scaleTimes are when a service last scaled out and in.
type scaleTimes struct{ out, in time.Time }

// wantedCount is the desired count target tracking asks for: enough tasks
// that each serves at most the target rate, within the limits.
func wantedCount(a store.Autoscaling, rate float64) int {
	n := int(math.Ceil(rate/a.TargetRequestsPerSecond - 1e-9))
	return min(max(n, a.MinCount), a.MaxCount)
}

// scaleDecision says what a service's desired count should become, given
// the measured rate and when it last scaled: a count outside the limits
// moves inside at once; otherwise scaling out waits for the scale-out
// cooldown since the last scale-out, scaling in for the scale-in cooldown
// since the last scaling of either kind. It returns desired when nothing is to change.
func scaleDecision(a store.Autoscaling, desired int, rate float64, last scaleTimes, now time.Time) int {
	if desired < a.MinCount {
		return a.MinCount
	}
	if desired > a.MaxCount {
		return a.MaxCount
	}
	want := wantedCount(a, rate)
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

// autoscale applies every service's auto scaling once.
func (m *Manager) autoscale(ctx context.Context) error {
	svcs, err := m.Store.ListServices(ctx, "", "")
	if err != nil {
		return err
	}
	// One read of the load balancer per window serves every service measured over it.
	states := map[time.Duration]lb.State{}
	for _, s := range svcs {
		if s.Autoscaling == nil || s.LoadBalancer == nil {
			continue
		}
		window, _ := time.ParseDuration(s.Autoscaling.Window)
		st, ok := states[window]
		if !ok {
			if st, err = m.Proxy.Client().State(ctx, window); err != nil {
				return fmt.Errorf("read the request counts: %w", err)
			}
			states[window] = st
		}
		if err := m.autoscaleService(ctx, s, window, st); err != nil && ctx.Err() == nil {
			m.Log.Warn("auto scaling", "service", key(s), "err", err)
		}
	}
	return nil
}

func (m *Manager) autoscaleService(ctx context.Context, s store.Service, window time.Duration, st lb.State) error {
	a := *s.Autoscaling
	// Both target groups: during a blue/green deployment's wait either may serve.
	var requests int64
	seconds := window.Seconds()
	for _, g := range []string{"tg1", "tg2"} {
		if gs, ok := st.TargetGroups[TargetGroupName(s, g)]; ok {
			requests += gs.Stats.Requests
			seconds = gs.Stats.Seconds
		}
	}
	rate := float64(requests) / max(seconds, 1)
	m.mu.Lock()
	last := m.scaled[key(s)]
	m.mu.Unlock()
	now := time.Now()
	to := scaleDecision(a, s.Desired, rate, last, now)
	if to == s.Desired {
		return nil
	}
	if err := m.Store.Scale(ctx, s.App, s.Env, s.Name, s.Desired, to); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return nil // a deployment owns the count until it ends; try again after
		}
		return err
	}
	m.mu.Lock()
	if to > s.Desired {
		last.out = now
	} else {
		last.in = now
	}
	m.scaled[key(s)] = last
	m.mu.Unlock()
	m.event(ctx, s, "auto scaling: desired count %d → %d (%.1f requests/s over the last %s; target %g per task, %d to %d tasks)",
		s.Desired, to, rate, window, a.TargetRequestsPerSecond, a.MinCount, a.MaxCount)
	m.Wake()
	return nil
}
