package server

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

// TestIntegrationSeedStyleBuildspecDeploys pushes a repository as the
// seeds keep it, files unchanged: a buildspec in the AWS ECS tutorial's
// shape sets its tag in pre_build, runs docker build and docker push
// itself and writes imagedefinitions.json, and a deploy action rolls the
// service out from that file. It needs one shell for the whole build (the
// tag set in pre_build is used in post_build) and the admin's docker
// access for the app.
func TestIntegrationSeedStyleBuildspecDeploys(t *testing.T) {
	srv, app := startProcApp(t, "seed")
	t.Cleanup(func() { removeImagesOf(app) })
	port := freePort(t)
	webSource, err := os.ReadFile("testdata/webapp/main.go")
	if err != nil {
		t.Fatal(err)
	}
	if code, body := srv.call("PUT", "/api/v1/apps/"+app+"/build", srv.Admin, map[string]any{"docker_access": true}); code != 200 {
		t.Fatalf("docker access: %d %v", code, body)
	}
	files := map[string]string{
		"main.go":    string(webSource),
		"go.mod":     "module webapp\n\ngo 1.22\n",
		"Dockerfile": "FROM scratch\nLABEL slipway.test=1\nCOPY web /web\nENTRYPOINT [\"/web\"]\n",
		"buildspec.yml": `version: 0.2
phases:
  pre_build:
    commands:
      - echo Logging in to the registry...
      - COMMIT_HASH=$(echo $CODEBUILD_RESOLVED_SOURCE_VERSION | cut -c 1-7)
      - IMAGE_TAG=seed-${COMMIT_HASH:=latest}
  build:
    commands:
      - echo Build started on $(date +%Y-%m-%d)
      - CGO_ENABLED=0 go build -o web .
      - docker build -q -t $REPOSITORY_URI:$IMAGE_TAG .
  post_build:
    commands:
      - docker push $REPOSITORY_URI:$IMAGE_TAG
      - printf '[{"name":"web","imageUri":"%s"}]' $REPOSITORY_URI:$IMAGE_TAG > imagedefinitions.json
artifacts:
  files: [imagedefinitions.json, taskdef.json]
`,
		"taskdef.json": fmt.Sprintf(`{"family": "%s", "containerDefinitions": [{"name": "web", "image": "<IMAGE1_NAME>",
  "portMappings": [{"containerPort": 8080}], "environment": [{"name": "VERSION", "value": "seed"}], "memory": 64, "stopTimeout": 2}]}`, app),
		"slipway.yaml": fmt.Sprintf(`on:
  push:
    branches: [main]
stages:
  - name: Build
    actions:
      - {name: build, type: build, outputs: [BuildArtifact], timeout: 5m}
  - name: Staging
    actions:
      - {name: deploy, type: deploy, inputs: [BuildArtifact], environment: staging, service: web, desired-count: 1, listener-port: %d, health-check-path: /health}
`, port),
	}
	w := newWork(t)
	sha := w.commit("seed", files)
	w.git("push", "-q", repoURL(srv.URL, srv.Admin, app), "main")
	run := srv.waitRun(1, 240*time.Second)
	if run["state"] != "succeeded" {
		t.Fatalf("run %v: %v\n%s", run["state"], run["reason"], srv.logText(1))
	}
	tag := "seed-" + sha[:7]
	if _, list := srv.call("GET", "/api/v1/images?repository="+app, srv.Admin, nil); !strings.Contains(fmt.Sprint(list), tag) {
		t.Fatalf("the tag set in pre_build was not pushed (%s): %v\n%s", tag, list, srv.logText(1))
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		code, body := getURL(t, fmt.Sprintf("http://127.0.0.1:%d/", port))
		if code == 200 && strings.HasPrefix(body, "version=seed") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the service does not serve the seed image: %d %q", code, body)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
