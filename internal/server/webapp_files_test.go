package server

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

// webappPipeline is a repository of the test web app (testdata/webapp)
// with a three-stage pipeline: a buildspec builds it (its cache section,
// if any, in buildCache), an image action packs it, and a deploy action
// with the settings in deploy (one "key: value" per line) rolls it out to
// staging. VERSION in its task definition is version.
func webappPipeline(t *testing.T, app, version, buildCache, deploy string) map[string]string {
	t.Helper()
	src, err := os.ReadFile("testdata/webapp/main.go")
	if err != nil {
		t.Fatal(err)
	}
	var settings strings.Builder
	for _, line := range strings.Split(strings.TrimSpace(deploy), "\n") {
		settings.WriteString("        " + strings.TrimSpace(line) + "\n")
	}
	return map[string]string{
		"main.go":    string(src),
		"go.mod":     "module webapp\n\ngo 1.22\n",
		"Dockerfile": "FROM scratch\nLABEL slipway.test=1\nCOPY web /web\nENTRYPOINT [\"/web\"]\n",
		"buildspec.yml": `version: 0.2
phases:
  build:
    commands:
      - mkdir -p deps && echo kept > deps/marker
      - CGO_ENABLED=0 go build -o web .
artifacts:
  files: [web, Dockerfile, taskdef.json]
` + buildCache,
		"taskdef.json": fmt.Sprintf(`{"family": "%s", "containerDefinitions": [{"name": "web", "image": "<IMAGE1_NAME>",
  "portMappings": [{"containerPort": 8080}], "environment": [{"name": "VERSION", "value": "%s"}], "memory": 64, "stopTimeout": 2}]}`, app, version),
		"slipway.yaml": `on:
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
` + settings.String(),
	}
}

// shipVersion commits files as version N of the web app, pushes it to srv,
// and waits for run N to succeed and the listener on port to serve version
// N; it returns the run's log.
func shipVersion(t *testing.T, srv *procServer, w *gitWork, app string, n int, files map[string]string, port int) string {
	t.Helper()
	w.commit(fmt.Sprintf("v%d", n), files)
	w.git("push", "-q", repoURL(srv.URL, srv.Admin, app), "main")
	run := srv.waitRun(n, 240*time.Second)
	logs := srv.logText(n)
	if run["state"] != "succeeded" {
		t.Fatalf("run %d %v: %v\n%s", n, run["state"], run["reason"], logs)
	}
	if code, body := getURL(t, fmt.Sprintf("http://127.0.0.1:%d/", port)); code != 200 || !strings.HasPrefix(body, fmt.Sprintf("version=%d", n)) {
		t.Fatalf("the service after run %d: %d %s", n, code, body)
	}
	return logs
}
