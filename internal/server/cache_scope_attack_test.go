package server

import (
	"strings"
	"testing"
	"time"
)

// TestIntegrationBuildspecCachePoisonedFromABranch: a buildspec's cache:
// paths were kept per app, so a branch's successful build saved them and
// the default branch's next build restored what the branch put there (a
// dependency directory, here). They are now kept per ref: a branch
// starts from the default branch's, never the reverse.
func TestIntegrationBuildspecCachePoisonedFromABranch(t *testing.T) {
	e := newEnv(t)
	e.createApp("cacheatk")
	files := func(content string) map[string]string {
		return map[string]string{
			"slipway.yaml": manualOnly + `stages:
  - name: Build
    actions:
      - {name: compile, type: build}
`,
			"buildspec.yml": `version: 0.2
phases:
  build:
    commands:
      - mkdir -p deps && if [ ! -f deps/lib ]; then echo ` + content + ` > deps/lib; fi
      - echo "built with $(cat deps/lib)"
cache:
  paths: ['deps/**/*']
`,
		}
	}
	e.pushPipeline("cacheatk", "feature", files("POISON"))
	if run := e.waitRun(e.startRun("cacheatk", "refs/heads/feature"), 120*time.Second); run["state"] != "succeeded" {
		t.Fatalf("the branch's run %v: %v", run["state"], run["reason"])
	}
	e.pushPipeline("cacheatk", "main", files("clean"))
	id := e.startRun("cacheatk", "refs/heads/main")
	if run := e.waitRun(id, 120*time.Second); run["state"] != "succeeded" {
		t.Fatalf("main's run %v: %v\n%s", run["state"], run["reason"], e.logText(id))
	}
	if log := e.logText(id); strings.Contains(log, "built with POISON") || !strings.Contains(log, "built with clean") {
		t.Fatalf("main's build restored the branch's cache:\n%s", log)
	}
	// A new branch starts from main's.
	e.pushPipeline("cacheatk", "other", files("other"))
	id = e.startRun("cacheatk", "refs/heads/other")
	if run := e.waitRun(id, 120*time.Second); run["state"] != "succeeded" || !strings.Contains(e.logText(id), "built with clean") {
		t.Fatalf("a new branch did not start from main's cache: %v\n%s", run["state"], e.logText(id))
	}
}
