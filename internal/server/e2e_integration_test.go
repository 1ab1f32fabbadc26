package server

import (
	"fmt"
	"net"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestIntegrationPushBuildImageDeploy(t *testing.T) {
	srv, app := startProcApp(t, "e2e")
	prodPort, testPort := freePort(t), freePort(t)
	webSource, err := os.ReadFile("testdata/webapp/main.go")
	if err != nil {
		t.Fatal(err)
	}
	files := func(version string, crash bool, prodPort int) map[string]string {
		return map[string]string{
			"main.go":    string(webSource),
			"go.mod":     "module webapp\n\ngo 1.22\n",
			"Dockerfile": "FROM scratch\nLABEL slipway.test=1\nCOPY web /web\nENTRYPOINT [\"/web\"]\n",
			"buildspec.yml": `version: 0.2
phases:
  build:
    commands:
      - CGO_ENABLED=0 go build -o web .
artifacts:
  files: [web, Dockerfile, taskdef.json, appspec.yaml]
`,
			"taskdef.json": fmt.Sprintf(`{"family": "%s", "requiresCompatibilities": ["FARGATE"], "containerDefinitions": [{"name": "web", "image": "<IMAGE1_NAME>",
  "portMappings": [{"containerPort": 8080}], "environment": [{"name": "VERSION", "value": "%s"}, {"name": "CRASH", "value": "%s"}], "memory": 64, "stopTimeout": 2}]}`, app, version, map[bool]string{false: "0", true: "1"}[crash]),
			"appspec.yaml": `version: 0.0
Resources:
  - TargetService:
      Type: AWS::ECS::Service
      Properties:
        TaskDefinition: "<TASK_DEFINITION>"
        LoadBalancerInfo: {ContainerName: web, ContainerPort: 8080}
Hooks:
  - AfterAllowTestTraffic: {url: "${SLIPWAY_TEST_URL}/health", expect-status: 200, timeout: 10s}
`,
			"slipway.yaml": fmt.Sprintf(`on:
  push:
    branches: [main]
mode: queued
stages:
  - name: Build
    actions:
      - {name: compile, type: build, outputs: [BuildOut], timeout: 5m}
  - name: Package
    actions:
      - {name: image, type: image, inputs: [BuildOut], outputs: [ImageArtifact]}
  - name: Staging
    actions:
      - name: deploy
        type: deploy
        inputs: [ImageArtifact, BuildOut]
        environment: staging
        service: web
        appspec: appspec.yaml
        deployment-config: CodeDeployDefault.ECSAllAtOnce
        termination-wait: 1s
        desired-count: 2
        listener-port: %d
        test-listener-port: %d
        health-check-path: /health
        autoscaling: {min: 2, max: 3, target-requests-per-second: 100000, window: 10s}
`, prodPort, testPort),
		}
	}
	w := newWork(t)
	w.commit("v1", files("1", false, prodPort))
	w.git("push", "-q", repoURL(srv.URL, srv.Admin, app), "main")
	run := srv.waitRun(1, 240*time.Second)
	if run["state"] != "succeeded" {
		t.Fatalf("first run %v: %v\n%s", run["state"], run["reason"], srv.logText(1))
	}
	// The deploy action's log says what the task definition had that means
	// nothing here, and when each copied deployment line happened.
	if log := srv.logText(1); !strings.Contains(log, "taskdef.json: requiresCompatibilities ignored") ||
		!regexp.MustCompile(`\[slipway\] \d\d:\d\d:\d\d\.\d{3}Z `).MatchString(log) {
		t.Errorf("deploy action log:\n%s", log)
	}
	url := fmt.Sprintf("http://127.0.0.1:%d/", prodPort)
	if code, body := getURL(t, url); code != 200 || !strings.HasPrefix(body, "version=1") {
		t.Fatalf("staging after the first run: %d %s", code, body)
	}
	// The deploy action gave the service its declared auto scaling.
	svc := srv.service(app, "staging", "web")
	if a, _ := svc["autoscaling"].(map[string]any); a == nil || a["min_count"] != 2.0 || a["max_count"] != 3.0 || a["window"] != "10s" || a["scale_in_cooldown"] != "5m0s" {
		t.Fatalf("auto scaling after the first run: %v", svc["autoscaling"])
	}
	if ev := events(svc); !strings.Contains(ev, "auto scaling set by run 1: 2 to 3 tasks") {
		t.Fatalf("auto scaling events: %s", ev)
	}
	l := startLoad(t, url)
	w.commit("v2", files("2", false, prodPort))
	w.git("push", "-q", repoURL(srv.URL, srv.Admin, app), "main")
	run = srv.waitRun(2, 240*time.Second)
	l.Stop()
	logs := srv.logText(2)
	if run["state"] != "succeeded" || !strings.Contains(logs, "deployment COMPLETED") || !strings.Contains(logs, "hook AfterAllowTestTraffic succeeded") {
		t.Fatalf("second run %v: %v\n%s", run["state"], run["reason"], logs)
	}
	if code, body := getURL(t, url); code != 200 || !strings.HasPrefix(body, "version=2") {
		t.Fatalf("staging after the second run: %d %s", code, body)
	}
	// Unchanged settings are not set again.
	if ev := events(srv.service(app, "staging", "web")); strings.Contains(ev, "auto scaling set by run 2") {
		t.Fatalf("auto scaling events: %s", ev)
	}
	if l.Failed() != 0 || l.Served("version=2") == 0 {
		t.Fatalf("during the blue/green deploy: %d failed (%v), %d on version 2", l.Failed(), l.Failures(), l.Served("version=2"))
	}
	t.Logf("push → build → image → blue/green deploy: %d requests during the rollout, 0 failed", l.OK())

	// A service made anew by the deploy action from a crashing image fails
	// the action by its circuit breaker (3 failed launches for 2 tasks), not
	// by the action's timeout, and the first service's old "steady state"
	// event does not pass for the new one's.
	if code, body := srv.call("DELETE", "/api/v1/apps/"+app+"/envs/staging/services/web", srv.Admin, nil); code != 200 && code != 204 {
		t.Fatalf("delete the service: %d %v", code, body)
	}
	w.commit("v3", files("3", true, prodPort))
	w.git("push", "-q", repoURL(srv.URL, srv.Admin, app), "main")
	run = srv.waitRun(3, 240*time.Second)
	logs = srv.logText(3)
	if run["state"] != "failed" || !regexp.MustCompile(`circuit breaker: [34] failed launches`).MatchString(fmt.Sprint(run["reason"])) || !strings.Contains(logs, "exited with code 2") {
		t.Fatalf("run of a crashing first revision %v: %v\n%s", run["state"], run["reason"], logs)
	}
	if strings.Contains(logs, "has reached a steady state") {
		t.Fatalf("the new service passed for steady:\n%s", logs)
	}

	// A service the action would make on a port another program holds is
	// refused before anything starts, in slipway.yaml's words.
	if code, body := srv.call("DELETE", "/api/v1/apps/"+app+"/envs/staging/services/web", srv.Admin, nil); code != 200 && code != 204 {
		t.Fatalf("delete the service: %d %v", code, body)
	}
	held, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	w.commit("v4", files("4", false, held.Addr().(*net.TCPAddr).Port))
	w.git("push", "-q", repoURL(srv.URL, srv.Admin, app), "main")
	run = srv.waitRun(4, 240*time.Second)
	if want := "listener-port: " + held.Addr().String() + " is in use by another program"; run["state"] != "failed" || !strings.Contains(fmt.Sprint(run["reason"]), want) {
		t.Fatalf("run onto a port in use %v: %v, want %q\n%s", run["state"], run["reason"], want, srv.logText(4))
	}
}
