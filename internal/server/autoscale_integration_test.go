package server

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/slipway-dev/slipway/internal/traffic"
)

// TestIntegrationAutoscaling drives a service's desired count with real
// traffic through the load balancer: a burst scales it out to its maximum,
// a trickle scales it back in, and no request fails on the way.
func TestIntegrationAutoscaling(t *testing.T) {
	image := webAppImage(t)
	srv, app := startProcApp(t, "auto")
	listener := freePort(t)
	rev := srv.registerTaskDef(webTaskDef(app, image, "1"))
	base := "/api/v1/apps/" + app + "/envs/staging/services/"
	if code, body := srv.call("POST", base[:len(base)-1], srv.Admin, map[string]any{"name": "web", "task_definition": fmt.Sprintf("%s:%d", app, rev), "desired_count": 1,
		"load_balancer": map[string]any{"container_name": "web", "container_port": 8080, "listener_port": listener, "health_check_path": "/health",
			"health_check_interval": "500ms", "healthy_threshold": 2, "unhealthy_threshold": 3, "deregistration_delay": "1s"}}); code != 201 {
		t.Fatalf("create service: %d %v", code, body)
	}
	if code, body := srv.call("POST", base[:len(base)-1], srv.Admin, map[string]any{"name": "worker", "task_definition": fmt.Sprintf("%s:%d", app, rev), "desired_count": 0}); code != 201 {
		t.Fatalf("create worker: %d %v", code, body)
	}

	// Bad input names the field.
	bad := []struct {
		service string
		body    string
		field   string
	}{
		{"web", `{"min_count":0,"max_count":3,"target_requests_per_second":50}`, "autoscaling.min_count"},
		{"web", `{"min_count":2,"max_count":1,"target_requests_per_second":50}`, "autoscaling.max_count"},
		{"web", `{"min_count":1,"max_count":3}`, "autoscaling.target_requests_per_second"},
		{"web", `{"min_count":1,"max_count":3,"target_requests_per_second":50,"window":"10m"}`, "autoscaling.window"},
		{"web", `{"min_count":1,"max_count":3,"target_requests_per_second":50,"windw":"5s"}`, "windw"},
		{"worker", `{"min_count":1,"max_count":3,"target_requests_per_second":50}`, "autoscaling"},
	}
	for _, b := range bad {
		if code, body := srv.call("PUT", base+b.service+"/autoscaling", srv.Admin, b.body); code != 400 || errorField(body, "field") != b.field {
			t.Errorf("PUT %s: %d %v, want 400 naming %s", b.body, code, body, b.field)
		}
	}
	if code, _ := srv.call("PUT", base+"nope/autoscaling", srv.Admin, `{"min_count":1,"max_count":3,"target_requests_per_second":50}`); code != 404 {
		t.Errorf("auto scaling an unknown service: %d", code)
	}

	healthyTargets := func(d map[string]any) int {
		n := 0
		for _, tk := range d["tasks"].([]any) {
			if tk.(map[string]any)["target_health"] == "healthy" {
				n++
			}
		}
		return n
	}
	srv.waitService(app, "staging", "web", 60*time.Second, "serving from one task", func(d map[string]any) bool { return healthyTargets(d) == 1 })
	if code, body := srv.call("PATCH", base+"web", srv.Admin, map[string]any{"desired_count": 2}); code != 200 {
		t.Fatalf("scale to 2: %d %v", code, body)
	}
	d := srv.waitService(app, "staging", "web", 60*time.Second, "serving from two tasks", func(d map[string]any) bool {
		return runningOf(d, rev) == 2 && healthyTargets(d) == 2
	})
	url := fmt.Sprintf("http://127.0.0.1:%d/", listener)
	trickle := traffic.Start(traffic.Options{URLs: []string{url}, Clients: 1, Pause: 100 * time.Millisecond})
	t.Cleanup(func() { trickle.Stop() })

	// A scale-in stops the tasks that do not serve first, though newer ones
	// would go first otherwise: here the older task fails its checks.
	tasks := d["tasks"].([]any)
	created := func(i int) time.Time {
		at, err := time.Parse(time.RFC3339Nano, tasks[i].(map[string]any)["created_at"].(string))
		if err != nil {
			t.Fatalf("task created_at: %v", err)
		}
		return at
	}
	sort.Slice(tasks, func(i, j int) bool { return created(i).Before(created(j)) })
	older, newer := tasks[0].(map[string]any), tasks[1].(map[string]any)
	if resp, err := http.Post("http://"+older["endpoint"].(string)+"/sicken", "text/plain", nil); err != nil || resp.StatusCode != 200 {
		t.Fatalf("sicken task %s: %v %v", older["id"], err, resp)
	}
	srv.waitService(app, "staging", "web", 30*time.Second, "with the older task an unhealthy target", func(d map[string]any) bool { return healthyTargets(d) == 1 })
	if code, body := srv.call("PATCH", base+"web", srv.Admin, map[string]any{"desired_count": 1}); code != 200 {
		t.Fatalf("scale to 1: %d %v", code, body)
	}
	d = srv.waitService(app, "staging", "web", 30*time.Second, "scaled in to one task", func(d map[string]any) bool { return len(d["tasks"].([]any)) == 1 })
	if kept := d["tasks"].([]any)[0].(map[string]any)["id"]; kept != newer["id"] {
		t.Fatalf("scaling in kept task %v, not the healthy %v", kept, newer["id"])
	}
	cli := func(args ...string) string {
		c := exec.Command(srv.bin, args...)
		c.Env = append(os.Environ(), "SLIPWAY_URL="+srv.URL, "SLIPWAY_TOKEN="+srv.Admin, "XDG_CONFIG_HOME="+t.TempDir())
		out, err := c.CombinedOutput()
		if err != nil {
			t.Fatalf("slipway %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	if out := cli("service", "autoscale", "web", "--app", app, "--env", "staging", "--min", "1", "--max", "3", "--target-requests-per-second", "50",
		"--window", "5s", "--scale-out-cooldown", "0s", "--scale-in-cooldown", "4s"); !strings.Contains(out, "scales 1 to 3 tasks at 50 requests/s per task") {
		t.Fatalf("autoscale: %s", out)
	}

	// Eight clients send far more than 3 × 50 requests/s.
	burst := startLoad(t, url)
	srv.waitService(app, "staging", "web", 30*time.Second, "scaled out to 3 healthy targets", func(d map[string]any) bool {
		healthy := 0
		for _, tk := range d["tasks"].([]any) {
			if tk.(map[string]any)["target_health"] == "healthy" {
				healthy++
			}
		}
		return d["desired_count"] == 3.0 && healthy == 3 && scaledTo(3).MatchString(events(d))
	})
	// /metrics shows the count and the traffic that caused it.
	labels := fmt.Sprintf(`app=%q,environment="staging",service="web"`, app)
	wants := []string{"slipway_service_desired_tasks{" + labels + "} 3", "slipway_service_healthy_tasks{" + labels + "} 3",
		"slipway_target_group_healthy_targets{" + labels + `,target_group="tg1"} 3`}
	var m string
	// Every request answered so far was counted by the load balancer first.
	served := burst.OK()
	// The reconciler's counts are as of its last pass, a second at most behind.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		m = srv.metrics()
		missing := ""
		for _, want := range wants {
			if !strings.Contains(m, want) {
				missing = want
			}
		}
		if missing == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/metrics lacks %s:\n%s", missing, m)
		}
	}
	// The rate is over the last minute, which holds the whole burst.
	if rate := metricValue(t, m, "slipway_target_group_requests_per_second{"+labels+`,target_group="tg1"}`); rate < float64(served)/60 || rate < 50 {
		t.Errorf("request rate %.1f/s during the burst, want at least %d requests/min and more than 50/s", rate, served)
	}
	burst.Stop()
	// The trickle of about 10 requests/s needs one task; the scale-in drains
	// the others while it flows.
	d = srv.waitService(app, "staging", "web", 40*time.Second, "scaled in to 1 task", func(d map[string]any) bool {
		return d["desired_count"] == 1.0 && len(d["tasks"].([]any)) == 1 && scaledTo(1).MatchString(events(d))
	})
	time.Sleep(time.Second)
	trickle.Stop()
	if burst.Failed() != 0 || trickle.Failed() != 0 {
		t.Fatalf("failed requests: %d of %d in the burst, %d of %d in the trickle: %v %v\n%s", burst.Failed(), burst.OK()+burst.Failed(),
			trickle.Failed(), trickle.OK()+trickle.Failed(), burst.Failures(), trickle.Failures(), events(d))
	}
	t.Logf("burst: %d requests; trickle: %d requests; 0 failed", burst.OK(), trickle.OK())

	// It scaled both ways, so show names when each last happened.
	lastScaled := regexp.MustCompile(`Last scaled:\s+out \d{4}-\d\d-\d\d \d\d:\d\d:\d\d, in \d{4}-\d\d-\d\d \d\d:\d\d:\d\d`)
	if out := cli("service", "show", "web", "--app", app, "--env", "staging"); !strings.Contains(out, "1 to 3 tasks at 50 requests/s per task (measured over 5s; cooldowns: out 0s, in 4s)") || !lastScaled.MatchString(out) {
		t.Fatalf("service show: %s", out)
	}
	if out := cli("service", "list", "--app", app); !strings.Contains(out, "1–3 at 50 requests/s per task") {
		t.Fatalf("service list: %s", out)
	}
	cli("service", "autoscale", "web", "--app", app, "--env", "staging", "--off")
	// Off again changes nothing and says nothing more.
	if code, _ := srv.call("DELETE", base+"web/autoscaling", srv.Admin, nil); code != 204 {
		t.Fatalf("turn off twice: %d", code)
	}
	if code, _ := srv.call("DELETE", base+"nope/autoscaling", srv.Admin, nil); code != 404 {
		t.Fatalf("turn off an unknown service's auto scaling: %d", code)
	}
	if d := srv.service(app, "staging", "web"); d["autoscaling"] != nil || strings.Count(events(d), "auto scaling off") != 1 {
		t.Fatalf("auto scaling after turning it off twice: %v\n%s", d["autoscaling"], events(d))
	}
}

// scaledTo matches an auto scaling event that set the desired count to n;
// a window that holds the start or the end of a burst can make it a step
// of several.
func scaledTo(n int) *regexp.Regexp {
	return regexp.MustCompile(fmt.Sprintf(`auto scaling: desired count \d+ → %d \(`, n))
}

// metricValue is the value of the Prometheus sample named with its labels.
func metricValue(t *testing.T, text, sample string) float64 {
	t.Helper()
	for _, line := range strings.Split(text, "\n") {
		if v, ok := strings.CutPrefix(line, sample+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s: %v", line, err)
			}
			return f
		}
	}
	t.Fatalf("no sample %s", sample)
	return 0
}

// TestIntegrationAutoscalingOnCPUAndMemory tracks what real containers use
// as the engine measures it, with no load balancer: one task kept busy
// scales the service out, idle again it scales in, and memory held past
// the target scales it out once more.
func TestIntegrationAutoscalingOnCPUAndMemory(t *testing.T) {
	image := webAppImage(t)
	srv, app := startProcApp(t, "use")
	// A quarter vCPU and 64 MiB each: one busy loop uses all of its CPU.
	rev := srv.registerTaskDef(strings.Replace(webTaskDef(app, image, "1"), `"memory":64`, `"cpu":256,"memory":64`, 1))
	unreserved := srv.registerTaskDef(strings.Replace(webTaskDef(app+"-free", image, "1"), `"memory":64,`, "", 1))
	base := "/api/v1/apps/" + app + "/envs/staging/services"
	for name, def := range map[string]string{"worker": fmt.Sprintf("%s:%d", app, rev), "free": fmt.Sprintf("%s-free:%d", app, unreserved)} {
		if code, body := srv.call("POST", base, srv.Admin, map[string]any{"name": name, "task_definition": def, "desired_count": 1}); code != 201 {
			t.Fatalf("create %s: %d %v", name, code, body)
		}
	}
	if code, body := srv.call("PUT", base+"/free/autoscaling", srv.Admin, `{"min_count":1,"max_count":2,"target_memory_percent":50}`); code != 400 ||
		errorField(body, "field") != "autoscaling.target_memory_percent" || !strings.Contains(errorField(body, "message"), "reserves no memory") {
		t.Fatalf("memory target without a reservation: %d %v", code, body)
	}
	if code, body := srv.call("PUT", base+"/free/autoscaling", srv.Admin, `{"min_count":1,"max_count":2,"target_cpu_percent":50}`); code != 200 {
		t.Fatalf("CPU target without a reservation (one vCPU then): %d %v", code, body)
	}
	cli := exec.Command(srv.bin, "service", "autoscale", "worker", "--app", app, "--env", "staging", "--min", "1", "--max", "3",
		"--target-cpu-percent", "50", "--target-memory-percent", "50", "--window", "5s", "--scale-out-cooldown", "0s", "--scale-in-cooldown", "0s")
	cli.Env = append(os.Environ(), "SLIPWAY_URL="+srv.URL, "SLIPWAY_TOKEN="+srv.Admin, "XDG_CONFIG_HOME="+t.TempDir())
	if out, err := cli.CombinedOutput(); err != nil || !strings.Contains(string(out), "scales 1 to 3 tasks at CPU 50%, memory 50%") {
		t.Fatalf("service autoscale: %v\n%s", err, out)
	}
	// Without a load balancer a task's port is published on loopback all the same.
	endpoint := func(d map[string]any) string {
		for _, tk := range d["tasks"].([]any) {
			for _, c := range tk.(map[string]any)["containers"].([]any) {
				if ep, _ := c.(map[string]any)["ports"].(map[string]any)["8080/tcp"].(string); ep != "" {
					return ep
				}
			}
		}
		return ""
	}
	d := srv.waitService(app, "staging", "worker", 60*time.Second, "one task running", func(d map[string]any) bool { return runningOf(d, rev) == 1 && endpoint(d) != "" })
	post := func(ep, path string) {
		t.Helper()
		resp, err := http.Post("http://"+ep+path, "text/plain", nil)
		if err != nil || resp.StatusCode/100 != 2 {
			t.Fatalf("POST %s: %v %v", path, err, resp)
		}
		resp.Body.Close()
	}
	// Idle, the task stays alone: a few passes go by.
	time.Sleep(6 * time.Second)
	if d := srv.service(app, "staging", "worker"); d["desired_count"] != 1.0 {
		t.Fatalf("idle service scaled to %v:\n%s", d["desired_count"], events(d))
	}
	post(endpoint(d), "/burn?for=10s")
	srv.waitService(app, "staging", "worker", 30*time.Second, "scaled out on CPU", func(d map[string]any) bool {
		return d["desired_count"] == 2.0 && strings.Contains(events(d), "auto scaling: desired count 1 → 2 (CPU ")
	})
	d = srv.waitService(app, "staging", "worker", 40*time.Second, "back to one task once idle", func(d map[string]any) bool {
		return d["desired_count"] == 1.0 && len(d["tasks"].([]any)) == 1 && strings.Contains(events(d), "auto scaling: desired count 2 → 1")
	})
	post(endpoint(d), "/hog?mib=40")
	// 40 MiB and the program's own of 64 MiB reserved: above 60%.
	memoryScaleOut := regexp.MustCompile(`auto scaling: desired count 1 → 2 \(CPU \d+% on average over 1 task, memory ([6-9]\d)% on average over 1 task`)
	d = srv.waitService(app, "staging", "worker", 30*time.Second, "scaled out on memory", func(d map[string]any) bool {
		return d["desired_count"] == 2.0 && memoryScaleOut.MatchString(events(d))
	})
	// What auto scaling measured shows in the API, `service show` and /metrics.
	if u, _ := d["utilization"].(map[string]any); u == nil || u["memory_percent"] == nil || u["cpu_percent"] == nil || u["window"] != "5s" {
		t.Errorf("utilization in the service detail: %v", d["utilization"])
	}
	show := exec.Command(srv.bin, "service", "show", "worker", "--app", app, "--env", "staging")
	show.Env = cli.Env
	if out, err := show.CombinedOutput(); err != nil || !regexp.MustCompile(`Utilization:\s+CPU \d+%, memory \d+% of the reservation \(mean over the last 5s\)`).Match(out) {
		t.Errorf("service show: %v\n%s", err, out)
	}
	labels := fmt.Sprintf(`app=%q,environment="staging",service="worker"`, app)
	m := srv.metrics()
	if v := metricValue(t, m, "slipway_service_memory_utilization_percent{"+labels+"}"); v <= 0 || v > 100 {
		t.Errorf("memory utilization metric %.1f", v)
	}
	metricValue(t, m, "slipway_service_cpu_utilization_percent{"+labels+"}")
	t.Logf("events:\n%s", events(d))
}
