package server

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestIntegrationPromoteSkipsTheCanaryWait: a canary that would hold 10%
// for 15 minutes completes within seconds of a person promoting it, and
// promote is refused where there is nothing to skip.
func TestIntegrationPromoteSkipsTheCanaryWait(t *testing.T) {
	image := webAppImage(t)
	srv, app := startProcApp(t, "promo")
	port, testPort := freePort(t), freePort(t)
	rev1 := srv.registerTaskDef(webTaskDef(app, image, "1"))
	if code, body := srv.call("POST", "/api/v1/apps/"+app+"/envs/staging/services", srv.Admin, map[string]any{"name": "web", "task_definition": fmt.Sprintf("%s:%d", app, rev1), "desired_count": 1,
		"load_balancer": map[string]any{"container_name": "web", "container_port": 8080, "listener_port": port, "test_listener_port": testPort, "health_check_path": "/health",
			"health_check_interval": "1s", "deregistration_delay": "1s"}}); code != 201 {
		t.Fatalf("service: %d %v", code, body)
	}
	srv.waitService(app, "staging", "web", 60*time.Second, "steady", func(d map[string]any) bool { return runningOf(d, rev1) == 1 })
	rev2 := srv.registerTaskDef(webTaskDef(app, image, "2"))
	code, body := srv.call("POST", "/api/v1/apps/"+app+"/envs/staging/services/web/deployments", srv.Admin, map[string]any{"task_definition": fmt.Sprintf("%s:%d", app, rev2),
		"strategy": "blue-green", "config": "CodeDeployDefault.ECSCanary10Percent15Minutes", "settings": map[string]any{"termination_wait": "1s"}})
	if code != 201 {
		t.Fatalf("deploy: %d %v", code, body)
	}
	id := int(body["id"].(float64))
	deadline := time.Now().Add(60 * time.Second)
	for {
		_, d := srv.call("GET", fmt.Sprintf("/api/v1/deployments/%d", id), srv.Admin, nil)
		if d["phase"] == "AllowTraffic" && d["green_weight"] == 10.0 {
			break
		}
		if d["state"] != "IN_PROGRESS" || time.Now().After(deadline) {
			t.Fatalf("the canary did not reach 10%%: %v %v %v", d["state"], d["phase"], d["reason"])
		}
		time.Sleep(100 * time.Millisecond)
	}
	viewer := srv.token("promo-viewer", "viewer")
	if code, _ := srv.call("POST", fmt.Sprintf("/api/v1/deployments/%d/promote", id), viewer, nil); code != 403 {
		t.Fatalf("a viewer promoted: %d", code)
	}
	if code, body := srv.call("POST", fmt.Sprintf("/api/v1/deployments/%d/promote", id), srv.Admin, nil); code != 202 {
		t.Fatalf("promote: %d %v", code, body)
	}
	start := time.Now()
	for {
		_, d := srv.call("GET", fmt.Sprintf("/api/v1/deployments/%d", id), srv.Admin, nil)
		if d["state"] == "COMPLETED" {
			if !strings.Contains(fmt.Sprint(d["events"]), "promoted by") {
				t.Errorf("the timeline does not say who promoted: %v", d["events"])
			}
			break
		}
		if d["state"] != "IN_PROGRESS" || time.Since(start) > 30*time.Second {
			t.Fatalf("after promote: %v %v %v", d["state"], d["phase"], d["reason"])
		}
		time.Sleep(100 * time.Millisecond)
	}
	if _, b := getURL(t, fmt.Sprintf("http://127.0.0.1:%d/", port)); !strings.HasPrefix(b, "version=2") {
		t.Errorf("production serves %q after the promoted deployment", b)
	}
	if code, body := srv.call("POST", fmt.Sprintf("/api/v1/deployments/%d/promote", id), srv.Admin, nil); code != 409 {
		t.Errorf("promote of a completed deployment: %d %v", code, body)
	}
}
