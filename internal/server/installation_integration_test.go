package server

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// Two installations on one Docker engine, with the same app, environment
// and service names, never adopt or stop each other's tasks.
func TestIntegrationInstallationsShareAnEngine(t *testing.T) {
	image := webAppImage(t)
	// Both servers stop before either installation's leftovers are removed,
	// so neither replaces tasks that the other's cleanup takes away.
	dirs := []string{t.TempDir(), t.TempDir()}
	for _, dir := range dirs {
		cleanupRuntime(t, "twin", dir)
	}
	var envs []*testEnv
	var rev []int
	for i, dir := range dirs {
		e := newEnvWith(t, Config{DataDir: dir, ProxyBinary: slipwayBinary(t)})
		e.createApp("twin")
		r := e.registerTaskDef(webTaskDef("twin", image, fmt.Sprint(i)))
		if code, body := e.call("POST", "/api/v1/apps/twin/envs/staging/services", e.Admin, map[string]any{"name": "web", "task_definition": fmt.Sprintf("twin:%d", r),
			"load_balancer": map[string]any{"container_name": "web", "container_port": 8080, "listener_port": freePort(t), "health_check_path": "/health"}}); code != 201 {
			t.Fatalf("installation %d: service: %d %v", i, code, body)
		}
		envs, rev = append(envs, e), append(rev, r)
	}
	taskIDs := func(e *testEnv) []string {
		var ids []string
		for _, tk := range e.service("twin", "staging", "web")["tasks"].([]any) {
			ids = append(ids, tk.(map[string]any)["id"].(string))
		}
		return ids
	}
	var first [2][]string
	for i, e := range envs {
		e.waitService("twin", "staging", "web", 60*time.Second, "running its task", func(d map[string]any) bool { return runningOf(d, rev[i]) == 1 })
		first[i] = taskIDs(e)
	}
	time.Sleep(4 * time.Second) // several reconcile passes of both
	for i, e := range envs {
		d := e.service("twin", "staging", "web")
		if got := taskIDs(e); len(got) != 1 || got[0] != first[i][0] || strings.Contains(events(d), "stopped task") {
			t.Fatalf("installation %d: tasks %v (were %v); events:\n%s", i, got, first[i], events(d))
		}
	}
}
