package server

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestIntegrationReviewRefScopeGitHubDefaultBranchNotMain: the default
// branch is the ref the hosted repository's HEAD names, and for an app
// mirrored from GitHub that was always main (the hosted repository is
// made with main and a fetch never moves HEAD), whatever GitHub's default
// branch is. On a repository whose default branch is master, anyone who
// may push a branch there pushed one named main: its builds counted as
// the default branch's, so what they saved was the cache master's builds
// restored. GitHub's signed push payload names the repository's default
// branch; the hosted repository's HEAD follows it.
func TestIntegrationReviewRefScopeGitHubDefaultBranchNotMain(t *testing.T) {
	up := newEnv(t)
	up.createApp("upstream")
	upTok := up.token("reader", "deployer")

	e := newEnv(t)
	e.createApp("ghdef")
	secret := "0123456789abcdef-webhook"
	if code, body := e.call("PUT", "/api/v1/apps/ghdef/source", e.Admin, map[string]any{"url": repoURL(up.URL, upTok, "upstream"), "webhook_secret": secret}); code != 200 {
		t.Fatalf("set-source: %d %v", code, body)
	}
	files := func(content string) map[string]string {
		return map[string]string{
			"slipway.yaml": `on:
  push:
    branches: ["**"]
stages:
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
	zero := strings.Repeat("0", 40)
	n := 0
	// push puts a commit on the upstream branch and delivers GitHub's push
	// event for it, naming master as the repository's default branch.
	push := func(branch, content string) int {
		t.Helper()
		w := newWork(t)
		sha := w.commit("c", files(content))
		w.git("push", "-q", repoURL(up.URL, upTok, "upstream"), "main:"+branch)
		var p map[string]any
		if err := json.Unmarshal(githubPayload("refs/heads/"+branch, zero, sha, []string{"slipway.yaml", "buildspec.yml"}), &p); err != nil {
			t.Fatal(err)
		}
		p["repository"].(map[string]any)["default_branch"] = "master"
		body, _ := json.Marshal(p)
		n++
		code, res := e.deliver("ghdef", "push", fmt.Sprintf("d-%d", n), sign([]byte(secret), body), body)
		if code != 201 {
			t.Fatalf("push of %s: %d %v", branch, code, res)
		}
		ev := res["event"].(map[string]any)
		id, ok := ev["run_id"].(float64)
		if !ok || id == 0 {
			t.Fatalf("push of %s started no run: %v", branch, ev)
		}
		return int(id)
	}
	// A contributor's branch named main (GitHub's default is master).
	id := push("main", "POISON")
	if run := e.waitRun(id, 120*time.Second); run["state"] != "succeeded" {
		t.Fatalf("the branch's run %v: %v\n%s", run["state"], run["reason"], e.logText(id))
	}
	id = push("master", "clean")
	if run := e.waitRun(id, 120*time.Second); run["state"] != "succeeded" {
		t.Fatalf("master's run %v: %v\n%s", run["state"], run["reason"], e.logText(id))
	}
	if log := e.logText(id); strings.Contains(log, "built with POISON") || !strings.Contains(log, "built with clean") {
		t.Fatalf("master, the default branch, restored the cache a branch named main saved:\n%s", log)
	}
}
