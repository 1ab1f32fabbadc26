package main

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/slipway-dev/slipway/internal/traffic"
)

// autoscale measures how fast auto scaling answers a burst: from the first
// request of the burst to the desired count raised, and to every new task
// serving; then how long a lull takes to scale back in, with requests
// flowing all along (goal: 0 failed).
func autoscale(e *env) (map[string]any, string, error) {
	return withWebService(e, func(ws *webService) (map[string]any, string, error) {
		const window, target, most = 5 * time.Second, 100, 4
		settings := fmt.Sprintf(`{"min_count":1,"max_count":%d,"target_requests_per_second":%d,"window":%q,"scale_out_cooldown":"0s","scale_in_cooldown":"5s"}`, most, target, window)
		if err := e.api.Do(context.Background(), "PUT", "/api/v1/apps/bench/envs/staging/services/web/autoscaling", json.RawMessage(settings), nil); err != nil {
			return nil, "", err
		}
		// With no traffic the service settles at its minimum first.
		if _, err := e.waitScaled(1, 60*time.Second); err != nil {
			return nil, "", err
		}
		trickle := traffic.Start(traffic.Options{URLs: []string{ws.url}, Clients: 1, Pause: 50 * time.Millisecond})
		defer trickle.Stop()
		burst := traffic.Start(traffic.Options{URLs: []string{ws.url}, Clients: 16})
		defer burst.Stop()
		start := time.Now()
		decided, err := e.waitScaled(most, 60*time.Second)
		if err != nil {
			return nil, "", err
		}
		ready, err := e.waitScaled(-most, 60*time.Second)
		if err != nil {
			return nil, "", err
		}
		burstTotal, burstFailed := burst.Stop()
		rate := float64(burstTotal) / time.Since(start).Seconds()
		lull := time.Now()
		if _, err := e.waitScaled(1, 90*time.Second); err != nil {
			return nil, "", err
		}
		scaledIn, err := e.waitScaled(-1, 90*time.Second)
		if err != nil {
			return nil, "", err
		}
		time.Sleep(2 * time.Second) // requests to the drained tasks' last moments
		trickleTotal, trickleFailed := trickle.Stop()
		f := map[string]any{"window_s": window.Seconds(), "target_rps_per_task": target, "burst_rps": rate,
			"burst_to_desired_s": decided.Sub(start).Seconds(), "burst_to_serving_s": ready.Sub(start).Seconds(), "lull_to_scaled_in_s": scaledIn.Sub(lull).Seconds(),
			"requests": burstTotal + trickleTotal, "failed": burstFailed + trickleFailed, "first_failures": append(burst.Failures(), trickle.Failures()...),
			"goal": "desired raised within window + 2 s; 0 failed"}
		return f, fmt.Sprintf("burst of %.0f req/s (target %d per task, window %s): desired 1 → %d after %.1f s, all %d serving after %.1f s; lull: back to 1 task after %.1f s (scale-in cooldown 5 s); %d requests, %d failed",
			rate, target, window, most, f["burst_to_desired_s"], most, f["burst_to_serving_s"], f["lull_to_scaled_in_s"], f["requests"], f["failed"]), nil
	})
}

// waitScaled waits until the service's desired count is n, or, for a
// negative n, until -n tasks run and all are healthy targets with nothing
// else left; it returns when.
func (e *env) waitScaled(n int, timeout time.Duration) (time.Time, error) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		var s struct {
			Desired int `json:"desired_count"`
			Tasks   []struct {
				Status string `json:"status"`
				Target string `json:"target_health"`
			} `json:"tasks"`
		}
		if err := e.getJSON("/api/v1/apps/bench/envs/staging/services/web", &s); err != nil {
			return time.Time{}, err
		}
		if n > 0 && s.Desired == n {
			return time.Now(), nil
		}
		if n < 0 {
			healthy := 0
			for _, t := range s.Tasks {
				if t.Status == "RUNNING" && t.Target == "healthy" {
					healthy++
				}
			}
			if healthy == -n && len(s.Tasks) == -n {
				return time.Now(), nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return time.Time{}, fmt.Errorf("the service never reached %d tasks in %s", n, timeout)
}
