package server

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/slipway-dev/slipway/internal/notify/notifytest"
)

func TestIntegrationBlueGreenDeployments(t *testing.T) {
	image := webAppImage(t)
	srv, app := startProcApp(t, "bg")
	prodPort, testPort := freePort(t), freePort(t)
	rev1 := srv.registerTaskDef(webTaskDef(app, image, "1"))
	if code, body := srv.call("POST", "/api/v1/apps/"+app+"/envs/staging/services", srv.Admin, map[string]any{"name": "web", "task_definition": fmt.Sprintf("%s:%d", app, rev1), "desired_count": 2,
		"load_balancer": map[string]any{"container_name": "web", "container_port": 8080, "listener_port": prodPort, "test_listener_port": testPort, "health_check_path": "/health",
			"health_check_interval": "1s", "health_check_timeout": "800ms", "healthy_threshold": 2, "unhealthy_threshold": 3, "deregistration_delay": "2s"}}); code != 201 {
		t.Fatalf("service: %d %v", code, body)
	}
	srv.waitService(app, "staging", "web", 60*time.Second, "steady", func(d map[string]any) bool {
		return runningOf(d, rev1) == 2 && strings.Contains(events(d), "steady state")
	})
	deployURL := "/api/v1/apps/" + app + "/envs/staging/services/web/deployments"
	deploy := func(body map[string]any) int {
		t.Helper()
		code, resp := srv.call("POST", deployURL, srv.Admin, body)
		if code != 201 {
			t.Fatalf("deploy: %d %v", code, resp)
		}
		return int(resp["id"].(float64))
	}
	l := startLoad(t, fmt.Sprintf("http://127.0.0.1:%d/", prodPort))

	// Bad input: unknown configuration, a revision without the load-balanced container.
	rev2 := srv.registerTaskDef(webTaskDef(app, image, "2"))
	if code, body := srv.call("POST", deployURL, srv.Admin, map[string]any{"task_definition": fmt.Sprintf("%s:%d", app, rev2), "strategy": "blue-green", "config": "Fastest"}); code != 400 || !strings.Contains(errorField(body, "message"), "CodeDeployDefault.ECSAllAtOnce") {
		t.Fatalf("unknown config: %d %v", code, body)
	}
	noPort := srv.registerTaskDef(strings.Replace(webTaskDef(app, image, "x"), `"portMappings":[{"containerPort":8080}],`, "", 1))
	if code, body := srv.call("POST", deployURL, srv.Admin, map[string]any{"task_definition": fmt.Sprintf("%s:%d", app, noPort), "strategy": "blue-green"}); code != 400 || errorField(body, "field") != "task_definition" {
		t.Fatalf("revision without the port: %d %v", code, body)
	}

	// A canary with hooks: the test listener reaches green first, then 20% of production for 4 s, then all.
	// The BeforeAllowTraffic hook runs in the sandbox: it fails unless it
	// sees green on the test listener, and it cannot read the data directory.
	appspec := fmt.Sprintf(`version: 0.0
Resources:
  - TargetService:
      Type: AWS::ECS::Service
      Properties:
        TaskDefinition: "<TASK_DEFINITION>"
        LoadBalancerInfo:
          ContainerName: "web"
          ContainerPort: 8080
Hooks:
  - AfterAllowTestTraffic:
      url: ${SLIPWAY_TEST_URL}/health
      expect-status: 200
      timeout: 10s
  - BeforeAllowTraffic: "curl -sf $SLIPWAY_TEST_URL/ | grep -q version=2 && ! test -e %s"
`, filepath.Join(srv.data, AdminTokenFile))
	id := deploy(map[string]any{"task_definition": fmt.Sprintf("%s:%d", app, rev2), "config": "Canary20Percent4Seconds", "appspec": appspec, "settings": map[string]any{"termination_wait": "60s"}})
	// Sample the split while the canary holds.
	for {
		_, d := srv.call("GET", fmt.Sprintf("/api/v1/deployments/%d", id), srv.Admin, nil)
		if d["phase"] == "AllowTraffic" && d["green_weight"] == 20.0 {
			break
		}
		if d["state"] != "IN_PROGRESS" {
			t.Fatalf("canary deployment ended early: %v %v %v", d["state"], d["reason"], d["events"])
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond)
	v1a, v2a := l.Served("version=1"), l.Served("version=2")
	time.Sleep(2500 * time.Millisecond)
	v1b, v2b := l.Served("version=1"), l.Served("version=2")
	share := float64(v2b-v2a) / float64((v2b-v2a)+(v1b-v1a))
	if share < 0.15 || share > 0.25 {
		t.Fatalf("green got %.1f%% of production traffic during a 20%% canary", share*100)
	}
	d := srv.waitDeployment(id, "COMPLETED", 60*time.Second)
	if !strings.Contains(fmt.Sprint(d["events"]), "hook BeforeAllowTraffic succeeded") {
		t.Fatal("BeforeAllowTraffic hook did not run")
	}
	var phases []string
	for _, e := range d["events"].([]any) {
		p := e.(map[string]any)["phase"].(string)
		if len(phases) == 0 || phases[len(phases)-1] != p {
			phases = append(phases, p)
		}
	}
	if got := strings.Join(phases, ">"); got != "Created>Install>AfterInstall>AllowTestTraffic>AfterAllowTestTraffic>BeforeAllowTraffic>AllowTraffic>BlueKept" &&
		got != "Created>Install>AllowTestTraffic>AfterAllowTestTraffic>BeforeAllowTraffic>AllowTraffic>BlueKept" {
		t.Fatalf("lifecycle: %s", got)
	}
	time.Sleep(time.Second)
	if code, body := getURL(t, fmt.Sprintf("http://127.0.0.1:%d/", prodPort)); code != 200 || !strings.HasPrefix(body, "version=2") {
		t.Fatalf("after the canary: %d %s", code, body)
	}
	// Rollback while blue is kept is an instant switch.
	before := l.Served("version=1")
	if code, body := srv.call("POST", "/api/v1/apps/"+app+"/envs/staging/services/web/rollback", srv.Admin, nil); code != 202 || !strings.Contains(body["message"].(string), "switched traffic back") {
		t.Fatalf("rollback: %d %v", code, body)
	}
	time.Sleep(1500 * time.Millisecond)
	if l.Served("version=1") == before {
		t.Fatal("traffic did not return to blue")
	}
	if _, d := srv.call("GET", fmt.Sprintf("/api/v1/deployments/%d", id), srv.Admin, nil); d["state"] != "ROLLED_BACK" {
		t.Fatalf("deployment after rollback: %v", d["state"])
	}
	srv.waitService(app, "staging", "web", 30*time.Second, "back on revision 1 alone", func(d map[string]any) bool { return runningOf(d, rev1) == 2 && runningOf(d, rev2) == 0 })

	// Failing greens roll back and never serve production traffic.
	for _, c := range []struct {
		name, version string
		env           []string
		hook          string
		reason        string
	}{
		{"unhealthy green", "sick", []string{"UNHEALTHY=1"}, "", "timed out"},
		{"crashing green", "crash", []string{"CRASH=1"}, "", "green task failed"},
		{"failing hook", "hooked", nil, "exit 3", "hook AfterAllowTestTraffic failed"},
	} {
		rev := srv.registerTaskDef(webTaskDef(app, image, c.version, c.env...))
		body := map[string]any{"task_definition": fmt.Sprintf("%s:%d", app, rev), "strategy": "blue-green", "settings": map[string]any{"timeout": "20s"}}
		if c.hook != "" {
			body["settings"].(map[string]any)["hooks"] = map[string]any{"AfterAllowTestTraffic": map[string]any{"command": c.hook}}
		}
		d := srv.waitDeployment(deploy(body), "ROLLED_BACK", 60*time.Second)
		if !strings.Contains(d["reason"].(string), c.reason) {
			t.Fatalf("%s: reason %q", c.name, d["reason"])
		}
		if n := l.Served("version=" + c.version); n != 0 {
			t.Fatalf("%s: green served %d production requests", c.name, n)
		}
	}

	// A server killed while green starts, and again while production
	// traffic shifts: each restarted server resumes the deployment where it
	// was (the split holds meanwhile), and it completes.
	waitPhase := func(id int, phase string, weight float64) {
		t.Helper()
		for {
			_, d := srv.call("GET", fmt.Sprintf("/api/v1/deployments/%d", id), srv.Admin, nil)
			// Green must be in the service's layout too: the Install phase
			// is recorded a moment before it is (a restart then rolls back).
			layout, _ := d["layout"].(map[string]any)
			sets, _ := layout["sets"].([]any)
			if d["phase"] == phase && d["green_weight"] == weight && len(sets) == 2 {
				return
			}
			if d["state"] != "IN_PROGRESS" {
				t.Fatalf("deployment ended before %s at %v%%: %v", phase, weight, d)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	id = deploy(map[string]any{"task_definition": fmt.Sprintf("%s:%d", app, rev2), "strategy": "blue-green", "config": "Canary10Percent6Seconds"})
	waitPhase(id, "Install", 0)
	srv = srv.restart()
	waitPhase(id, "AllowTraffic", 10)
	srv = srv.restart()
	d = srv.waitDeployment(id, "COMPLETED", 60*time.Second)
	for _, want := range []string{"resuming at Install", "resuming at AllowTraffic (green 10%)"} {
		if !strings.Contains(fmt.Sprint(d["events"]), want) {
			t.Fatalf("completed without %q: %v", want, d["events"])
		}
	}
	time.Sleep(1500 * time.Millisecond)
	if code, body := getURL(t, fmt.Sprintf("http://127.0.0.1:%d/", prodPort)); code != 200 || !strings.HasPrefix(body, "version=2") {
		t.Fatalf("after the resumed canary: %d %s", code, body)
	}

	// A server killed while a hook runs: the hook's outcome is unknown, so
	// the restarted server rolls back.
	rev3 := srv.registerTaskDef(webTaskDef(app, image, "3"))
	id = deploy(map[string]any{"task_definition": fmt.Sprintf("%s:%d", app, rev3), "strategy": "blue-green",
		"settings": map[string]any{"hooks": map[string]any{"AfterAllowTestTraffic": map[string]any{"command": "sleep 30"}}}})
	waitPhase(id, "AfterAllowTestTraffic", 0)
	srv = srv.restart()
	d = srv.waitDeployment(id, "ROLLED_BACK", 30*time.Second)
	if !strings.Contains(d["reason"].(string), "control plane restarted") {
		t.Fatalf("after restart: %v", d["reason"])
	}
	time.Sleep(1500 * time.Millisecond)
	if n := l.Served("version=3"); n != 0 {
		t.Fatalf("the interrupted green served %d production requests", n)
	}
	if code, body := getURL(t, fmt.Sprintf("http://127.0.0.1:%d/", prodPort)); code != 200 || !strings.HasPrefix(body, "version=2") {
		t.Fatalf("after the rollback: %d %s", code, body)
	}

	// Blue/green of the revision already running replaces every task, even
	// across a restart at Install, and the new tasks stay once the
	// termination wait ends.
	taskIDs := func() map[string]bool {
		ids := map[string]bool{}
		for _, tk := range srv.service(app, "staging", "web")["tasks"].([]any) {
			ids[tk.(map[string]any)["id"].(string)] = true
		}
		return ids
	}
	srv.waitService(app, "staging", "web", 30*time.Second, "back on revision 2 alone", func(d map[string]any) bool { return runningOf(d, rev2) == 2 && len(d["tasks"].([]any)) == 2 })
	old := taskIDs()
	id = deploy(map[string]any{"task_definition": fmt.Sprintf("%s:%d", app, rev2), "strategy": "blue-green", "settings": map[string]any{"termination_wait": "2s"}})
	waitPhase(id, "Install", 0)
	srv = srv.restart()
	d = srv.waitDeployment(id, "COMPLETED", 60*time.Second)
	if !strings.Contains(fmt.Sprint(d["events"]), "resuming at Install") {
		t.Fatalf("the same-revision deployment completed without resuming: %v", d["events"])
	}
	srv.waitService(app, "staging", "web", 30*time.Second, "the termination wait over", func(d map[string]any) bool {
		return strings.Contains(events(d), fmt.Sprintf("deployment %d: termination wait over", id)) && len(d["tasks"].([]any)) == 2
	})
	replaced := taskIDs()
	time.Sleep(3 * time.Second) // reconcile passes
	if now := taskIDs(); fmt.Sprint(now) != fmt.Sprint(replaced) {
		t.Fatalf("the new tasks were replaced again after the termination wait: %v → %v", replaced, now)
	}
	for id := range old {
		if replaced[id] {
			t.Fatalf("task %s of the running revision was not replaced: %v → %v", id, old, replaced)
		}
	}
	l.Stop()
	if l.Failed() != 0 {
		t.Fatalf("%d of %d requests failed:\n%s\ndeployments:\n%s\nload balancer:\n%s", l.Failed(), l.OK()+l.Failed(), strings.Join(l.Failures(), "\n"), srv.deploymentTimeline(app), srv.targetHealthLog())
	}
	t.Logf("%d requests, 0 failed, across a canary, a rollback, three failed greens, four restarts mid-deployment and a redeployment of the running revision", l.OK())
}

// TestIntegrationAlarmRollsBackGreen: green passes health checks but fails
// its users; the error-rate alarm measured by the load balancer rolls it back.
func TestIntegrationAlarmRollsBackGreen(t *testing.T) {
	image := webAppImage(t)
	srv, app := startProcApp(t, "al")
	port := freePort(t)
	rev1 := srv.registerTaskDef(webTaskDef(app, image, "1"))
	if code, body := srv.call("POST", "/api/v1/apps/"+app+"/envs/staging/services", srv.Admin, map[string]any{"name": "web", "task_definition": fmt.Sprintf("%s:%d", app, rev1), "desired_count": 1,
		"load_balancer": map[string]any{"container_name": "web", "container_port": 8080, "listener_port": port, "health_check_path": "/health",
			"health_check_interval": "1s", "health_check_timeout": "800ms", "healthy_threshold": 2, "deregistration_delay": "1s"}}); code != 201 {
		t.Fatalf("service: %d %v", code, body)
	}
	srv.waitService(app, "staging", "web", 60*time.Second, "steady", func(d map[string]any) bool {
		return runningOf(d, rev1) == 1 && strings.Contains(events(d), "steady state")
	})
	inbox := notifytest.NewReceiver(t, 0)
	if code, body := srv.call("PUT", "/api/v1/apps/"+app+"/channels/ops", srv.Admin, map[string]any{"type": "slack", "events": []string{"deployment.rolled_back"},
		"settings": map[string]any{"url": inbox.URL}}); code != 200 {
		t.Fatalf("channel: %d %v", code, body)
	}
	// Traffic for the load balancer to measure green's error rate on.
	startLoad(t, fmt.Sprintf("http://127.0.0.1:%d/", port))
	bad := srv.registerTaskDef(webTaskDef(app, image, "bad", "ERRORS=1"))
	code, body := srv.call("POST", "/api/v1/apps/"+app+"/envs/staging/services/web/deployments", srv.Admin, map[string]any{
		"task_definition": fmt.Sprintf("%s:%d", app, bad), "strategy": "blue-green", "config": "Canary20Percent30Seconds",
		"settings": map[string]any{"alarms": []any{map[string]any{"metric": "error_rate", "threshold": 0.05, "window": "3s", "min_requests": 20}}}})
	if code != 201 {
		t.Fatalf("deploy: %d %v", code, body)
	}
	start := time.Now()
	d := srv.waitDeployment(int(body["id"].(float64)), "ROLLED_BACK", 60*time.Second)
	if !strings.Contains(d["reason"].(string), "alarm: green error rate") {
		t.Fatalf("reason: %v", d["reason"])
	}
	if time.Since(start) > 25*time.Second {
		t.Fatal("the alarm took longer than the canary interval to fire")
	}
	// After the rollback only blue answers.
	time.Sleep(2 * time.Second)
	if r := inbox.Requests(); len(r) != 1 || !strings.Contains(string(r[0].Body), "rolled back") || !strings.Contains(string(r[0].Body), "alarm: green error rate") {
		t.Fatalf("deployment.rolled_back notice: %d requests %v", len(r), r)
	}
	for i := 0; i < 20; i++ {
		if code, body := getURL(t, fmt.Sprintf("http://127.0.0.1:%d/", port)); code != 200 || !strings.HasPrefix(body, "version=1") {
			t.Fatalf("after the rollback: %d %s", code, body)
		}
	}
}
