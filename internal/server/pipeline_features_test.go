package server

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

const junitPass = `<?xml version="1.0"?>
<testsuites><testsuite name="unit">
<testcase classname="pkg" name="TestA"/><testcase classname="pkg" name="TestB"/>
<testcase classname="pkg" name="TestC"><skipped/></testcase>
</testsuite></testsuites>`

const junitFail = `<testsuite name="unit">
<testcase classname="pkg" name="TestA"/>
<testcase classname="pkg" name="TestBroken"><failure message="boom">x</failure></testcase>
</testsuite>`

func TestIntegrationVariablesReportsAndCache(t *testing.T) {
	e := newEnv(t)
	e.createApp("feat")
	files := map[string]string{
		"slipway.yaml": manualOnly + `stages:
  - name: Build
    actions:
      - name: version
        type: build
  - name: Test
    actions:
      - name: unit
        type: test
        buildspec: test.yml
        env: {TAG: "v-#{version.VERSION}"}
`,
		"buildspec.yml": `version: 0.2
env:
  exported-variables: [VERSION, UNSET]
cache:
  paths: ['.cache/**/*']
phases:
  build:
    commands:
      - mkdir -p .cache && echo $(( $(cat .cache/count 2>/dev/null || echo 0) + 1 )) > .cache/count
      - echo "cache count $(cat .cache/count)"
      - export VERSION=1.4.$(cat .cache/count)
`,
		"test.yml": `version: 0.2
phases:
  build:
    commands:
      - echo "tag=$TAG plain=$VERSION"
      - cp $REPORT reports/junit.xml
reports:
  unit-tests:
    files: ['junit.xml']
    base-directory: reports
`,
		"reports/pass.xml": junitPass,
		"reports/fail.xml": junitFail,
	}
	files["test.yml"] = strings.Replace(files["test.yml"], "cp $REPORT reports/junit.xml", "cp reports/$RESULT.xml reports/junit.xml", 1)

	// First run, on the default branch: reports pass.
	e.pushPipeline("feat", "main", withEnv(files, "pass"))
	id := e.startRun("feat", "main")
	run := e.waitRun(id, 30*time.Second)
	if run["state"] != "succeeded" {
		t.Fatalf("run: %v %v\n%s", run["state"], run["reason"], e.logText(id))
	}
	logs := e.logText(id)
	if !strings.Contains(logs, "tag=v-1.4.1 plain=1.4.1") || !strings.Contains(logs, "cache count 1") {
		t.Fatalf("variables did not reach the later stage:\n%s", logs)
	}
	rep := run["reports"].([]any)[0].(map[string]any)
	if rep["group"] != "unit-tests" || rep["total"] != 3.0 || rep["passed"] != 2.0 || rep["skipped"] != 1.0 || rep["failed"] != 0.0 {
		t.Fatalf("report: %v", rep)
	}
	vars := fmt.Sprint(run["variables"])
	if !strings.Contains(vars, "VERSION value:1.4.1") {
		t.Fatalf("variables: %v", vars)
	}

	// Second run, on a branch: the default branch's cache is restored;
	// the failing report gates the stage.
	e.pushPipeline("feat", "fail", withEnv(files, "fail"))
	id = e.startRun("feat", "fail")
	run = e.waitRun(id, 30*time.Second)
	logs = e.logText(id)
	if !strings.Contains(logs, "cache count 2") {
		t.Fatalf("cache not restored:\n%s", logs)
	}
	if run["state"] != "failed" || !strings.Contains(run["reason"].(string), "1 of 2 tests failed in report unit-tests: pkg.TestBroken") {
		t.Fatalf("failing tests did not gate: %v %v", run["state"], run["reason"])
	}
	rep = run["reports"].([]any)[0].(map[string]any)
	if rep["failed"] != 1.0 || fmt.Sprint(rep["failed_tests"]) != "[pkg.TestBroken]" {
		t.Fatalf("report: %v", rep)
	}
}

// withEnv sets the test stage's RESULT through the action env.
func withEnv(files map[string]string, result string) map[string]string {
	out := map[string]string{}
	for k, v := range files {
		out[k] = v
	}
	out["slipway.yaml"] = strings.Replace(files["slipway.yaml"], `env: {TAG: "v-#{version.VERSION}"}`, `env: {TAG: "v-#{version.VERSION}", RESULT: `+result+`}`, 1)
	return out
}

func TestIntegrationRetryAndTransitions(t *testing.T) {
	e := newEnv(t)
	e.createApp("brake")
	e.buildOnHost("brake") // the flaky action reads a flag file the test makes on the host
	flag := t.TempDir() + "/ok"
	e.pushPipeline("brake", "main", map[string]string{
		"slipway.yaml": manualOnly + `stages:
  - name: Build
    actions:
      - {name: one, type: invoke, command: "echo built"}
  - name: Flaky
    actions:
      - {name: steady, type: invoke, command: "echo steady"}
      - {name: flaky, type: invoke, command: "test -f ` + flag + `"}
  - name: Prod
    actions:
      - {name: ship, type: invoke, command: "echo shipped"}
`,
	})
	id := e.startRun("brake", "main")
	run := e.waitRun(id, 30*time.Second)
	if run["state"] != "failed" || actionsOf(run)["Prod/ship"]["state"] != "cancelled" {
		t.Fatalf("first attempt: %v %v", run["state"], run["reason"])
	}
	buildEnded := actionsOf(run)["Build/one"]["ended_at"]

	// Disable the transition into Prod, then retry: the run waits before Prod.
	viewer := e.token("viewer", "viewer")
	if code, _ := e.call("PUT", "/api/v1/apps/brake/transitions/Prod", viewer, map[string]any{"enabled": false, "reason": "x"}); code != 403 {
		t.Fatalf("viewer disabled a transition: %d", code)
	}
	if code, body := e.call("PUT", "/api/v1/apps/brake/transitions/Prod", e.Admin, map[string]any{"enabled": false}); code != 400 || errorField(body, "field") != "reason" {
		t.Fatalf("disable without reason: %d %v", code, body)
	}
	if code, _ := e.call("PUT", "/api/v1/apps/brake/transitions/Prod", e.Admin, map[string]any{"enabled": false, "reason": "release freeze"}); code != 200 {
		t.Fatalf("disable: %d", code)
	}
	if code, body := e.call("POST", fmt.Sprintf("/api/v1/runs/%d/retry", id), e.Admin, map[string]string{"stage": "Nope"}); code != 400 || errorField(body, "field") != "stage" {
		t.Fatalf("retry unknown stage: %d %v", code, body)
	}
	writeFile(t, flag, "ok")
	if code, body := e.call("POST", fmt.Sprintf("/api/v1/runs/%d/retry", id), e.Admin, nil); code != 202 {
		t.Fatalf("retry: %d %v", code, body)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, r := e.call("GET", fmt.Sprintf("/api/v1/runs/%d", id), e.Admin, nil)
		if r["state"] == "waiting" {
			if !strings.Contains(r["reason"].(string), "release freeze") || actionsOf(r)["Flaky/flaky"]["state"] != "succeeded" || actionsOf(r)["Prod/ship"]["state"] != "queued" {
				t.Fatalf("waiting run: %v", r)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("run never waited at the disabled transition: %v %v", r["state"], r["reason"])
		}
		time.Sleep(50 * time.Millisecond)
	}
	if code, _ := e.call("PUT", "/api/v1/apps/brake/transitions/Prod", e.Admin, map[string]any{"enabled": true}); code != 200 {
		t.Fatalf("enable: %d", code)
	}
	run = e.waitRun(id, 30*time.Second)
	acts := actionsOf(run)
	if run["state"] != "succeeded" || acts["Prod/ship"]["state"] != "succeeded" {
		t.Fatalf("after enable: %v %v", run["state"], run["reason"])
	}
	if acts["Build/one"]["ended_at"] != buildEnded {
		t.Fatal("retry re-ran an action of an earlier stage that had succeeded")
	}
	if code, _ := e.call("POST", fmt.Sprintf("/api/v1/runs/%d/retry", id), e.Admin, nil); code != 409 {
		t.Fatalf("retry of a succeeded run: %d", code)
	}
}

func TestIntegrationLogStreamDeliversLinesWhileRunning(t *testing.T) {
	e := newEnv(t)
	e.createApp("stream")
	e.pushPipeline("stream", "main", map[string]string{
		"slipway.yaml": manualOnly + "stages:\n  - name: B\n    actions:\n      - {name: talk, type: invoke, command: 'echo first; sleep 1; echo second'}\n",
	})
	id := e.startRun("stream", "main")
	req, _ := http.NewRequest("GET", fmt.Sprintf("%s/api/v1/runs/%d/logs", e.URL, id), nil)
	req.Header.Set("Authorization", "Bearer "+e.Admin)
	req.Header.Set("Accept", "text/event-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("content type %q", ct)
	}
	sc := bufio.NewScanner(resp.Body)
	var firstAt, secondAt time.Time
	var events []string
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "event: ") {
			events = append(events, strings.TrimPrefix(line, "event: "))
		}
		if strings.Contains(line, `"line":"first"`) {
			firstAt = time.Now()
		}
		if strings.Contains(line, `"line":"second"`) {
			secondAt = time.Now()
		}
		if strings.HasPrefix(line, "data: ") && events[len(events)-1] == "end" {
			if !strings.Contains(line, `"state":"succeeded"`) {
				t.Fatalf("end event: %s", line)
			}
			break
		}
	}
	if firstAt.IsZero() || secondAt.IsZero() {
		t.Fatalf("lines missing; events %v", events)
	}
	if secondAt.Sub(firstAt) < 700*time.Millisecond {
		t.Fatalf("the first line arrived only %s before the second: not live", secondAt.Sub(firstAt))
	}
	// Resuming after the last seen id sends nothing already seen.
	req, _ = http.NewRequest("GET", fmt.Sprintf("%s/api/v1/runs/%d/logs?follow=true", e.URL, id), nil)
	req.Header.Set("Authorization", "Bearer "+e.Admin)
	req.Header.Set("Last-Event-ID", "1000000")
	resp2, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp2.Body)
	resp2.Body.Close()
	if strings.Contains(string(body), "event: line") || !strings.Contains(string(body), "event: end") {
		t.Fatalf("resumed stream: %s", body)
	}
}
