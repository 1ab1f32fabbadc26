package server

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// pushPipeline commits files to a fresh branch of app and pushes it.
func (e *testEnv) pushPipeline(app, branch string, files map[string]string) string {
	e.t.Helper()
	w := newWork(e.t)
	sha := w.commit("pipeline", files)
	w.git("push", "-q", repoURL(e.URL, e.Admin, app), "main:"+branch)
	return sha
}

func (e *testEnv) startRun(app, ref string) int {
	e.t.Helper()
	code, body := e.call("POST", "/api/v1/apps/"+app+"/runs", e.Admin, map[string]string{"ref": ref})
	if code != http.StatusCreated {
		e.t.Fatalf("start run: %d %v", code, body)
	}
	return int(body["id"].(float64))
}

// waitRun polls until the run ends and returns its detail.
func (e *testEnv) waitRun(id int, timeout time.Duration) map[string]any {
	e.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		_, run := e.call("GET", fmt.Sprintf("/api/v1/runs/%d", id), e.Admin, nil)
		if run["ended_at"] != nil {
			return run
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("run %d did not end within %s: %v", id, timeout, run)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func actionsOf(run map[string]any) map[string]map[string]any {
	out := map[string]map[string]any{}
	for _, a := range run["actions"].([]any) {
		m := a.(map[string]any)
		out[m["stage"].(string)+"/"+m["name"].(string)] = m
	}
	return out
}

func (e *testEnv) logText(id int) string {
	e.t.Helper()
	_, body := e.call("GET", fmt.Sprintf("/api/v1/runs/%d/logs", id), e.Admin, nil)
	var b strings.Builder
	for _, l := range body["items"].([]any) {
		b.WriteString(l.(map[string]any)["line"].(string) + "\n")
	}
	return b.String()
}

const manualOnly = "on: {}\n"

func TestIntegrationPipelineArtifactsAcrossStages(t *testing.T) {
	e := newEnv(t)
	e.createApp("hello")
	sha := e.pushPipeline("hello", "main", map[string]string{
		"slipway.yaml": `on:
  push:
    branches: [main]
stages:
  - name: Build
    actions:
      - name: compile
        type: build
        env: {NAME: action-env}
        outputs: [BuildOut, Extra]
      - name: lint
        type: invoke
        command: echo lint $SLIPWAY_COMMIT
  - name: Test
    actions:
      - name: check
        type: build
        buildspec: test-buildspec.yml
        inputs: [SourceArtifact, BuildOut]
`,
		"buildspec.yml": `version: 0.2
env:
  variables: {NAME: buildspec, KEEP: kept}
phases:
  build:
    commands:
      - mkdir -p out/sub extra
      - echo "hello $NAME $KEEP $CODEBUILD_RESOLVED_SOURCE_VERSION" > out/sub/greeting.txt
      - echo extra > extra/x.txt
artifacts:
  files: ['**/*']
  base-directory: out
  secondary-artifacts:
    Extra:
      files: ['extra/*']
      discard-paths: yes
`,
		"test-buildspec.yml": `version: 0.2
phases:
  build:
    commands:
      - cat $CODEBUILD_SRC_DIR_BuildOut/sub/greeting.txt
      - test -f test-buildspec.yml
`,
	})
	// The push itself started run 1.
	run := e.waitRun(1, 30*time.Second)
	if run["state"] != "succeeded" || run["commit"] != sha {
		t.Fatalf("run: %v\n%s", run, e.logText(1))
	}
	acts := actionsOf(run)
	for _, name := range []string{"Build/compile", "Build/lint", "Test/check"} {
		if acts[name]["state"] != "succeeded" || acts[name]["started_at"] == nil || acts[name]["ended_at"] == nil {
			t.Errorf("%s: %v", name, acts[name])
		}
	}
	// Both Build actions share run-order 1, so they overlapped or at least the test stage waited for both.
	checkStart, _ := time.Parse(time.RFC3339Nano, acts["Test/check"]["started_at"].(string))
	for _, name := range []string{"Build/compile", "Build/lint"} {
		end, _ := time.Parse(time.RFC3339Nano, acts[name]["ended_at"].(string))
		if checkStart.Before(end) {
			t.Errorf("Test/check started before %s ended", name)
		}
	}
	logs := e.logText(1)
	want := "hello action-env kept " + sha
	if !strings.Contains(logs, want) || !strings.Contains(logs, "lint "+sha) {
		t.Fatalf("logs lack %q:\n%s", want, logs)
	}
	// Artifacts download as tar archives with the selected layout.
	for name, wantFiles := range map[string][]string{"BuildOut": {"sub/greeting.txt"}, "Extra": {"x.txt"}} {
		req, _ := http.NewRequest("GET", fmt.Sprintf("%s/api/v1/runs/1/artifacts/%s", e.URL, name), nil)
		req.Header.Set("Authorization", "Bearer "+e.Admin)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("artifact %s: %d %s", name, resp.StatusCode, body)
		}
		var got []string
		tr := tar.NewReader(bytes.NewReader(body))
		for {
			h, err := tr.Next()
			if err != nil {
				break
			}
			got = append(got, h.Name)
		}
		if strings.Join(got, ",") != strings.Join(wantFiles, ",") {
			t.Errorf("artifact %s holds %v, want %v", name, got, wantFiles)
		}
	}
	if code, _ := e.call("GET", "/api/v1/runs/1/artifacts/Nope", e.Admin, nil); code != 404 {
		t.Fatalf("unknown artifact: %d", code)
	}
}

func TestIntegrationPipelineFailures(t *testing.T) {
	e := newEnv(t)
	e.createApp("fails")
	two := func(buildspec string, extra string) map[string]string {
		return map[string]string{
			"slipway.yaml": manualOnly + `stages:
  - name: Build
    actions:
      - name: compile
        type: build
` + extra + `  - name: Later
    actions:
      - name: after
        type: invoke
        command: echo never
`,
			"buildspec.yml": buildspec,
		}
	}
	cases := []struct {
		name, branch string
		files        map[string]string
		reason       string
		exit         any
	}{
		{"non-zero exit", "exit", two("version: 0.2\nphases:\n  build:\n    commands: [\"echo before\", \"exit 7\"]\n", ""), "phase build failed with exit code 7", float64(7)},
		{"command not found", "notfound", two("version: 0.2\nphases:\n  build:\n    commands: [\"no-such-tool --now\"]\n", ""), "exit code 127", float64(127)},
		{"invalid buildspec", "badspec", two("version: 0.2\nphases:\n  build:\n    comands: [x]\n", ""), "buildspec.yml:4:5: phases.build.comands: unknown key", nil},
		{"timeout", "timeout", two("version: 0.2\nphases:\n  build:\n    commands: [\"sleep 30\"]\n", "        timeout: 1s\n"), "timed out after 1s", float64(143)},
		{"outputs without artifacts", "noart", two("version: 0.2\nphases:\n  build:\n    commands: [\"true\"]\n", "        outputs: [Out]\n"), "has no artifacts section", float64(1)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e.pushPipeline("fails", c.branch, c.files)
			id := e.startRun("fails", c.branch)
			start := time.Now()
			run := e.waitRun(id, 30*time.Second)
			if run["state"] != "failed" || !strings.Contains(run["reason"].(string), c.reason) || !strings.Contains(run["reason"].(string), "stage Build failed: action compile") {
				t.Fatalf("run %v: %v", run["state"], run["reason"])
			}
			acts := actionsOf(run)
			if acts["Build/compile"]["state"] != "failed" || acts["Build/compile"]["exit_code"] != c.exit {
				t.Fatalf("compile: %v", acts["Build/compile"])
			}
			if later, ok := acts["Later/after"]; ok && (later["state"] != "cancelled" || later["started_at"] != nil) {
				t.Fatalf("a later stage ran after a failure: %v", later)
			}
			if c.branch == "timeout" && time.Since(start) > 15*time.Second {
				t.Fatal("timeout took too long")
			}
		})
	}
	// A ref that does not exist, or has no valid pipeline, is refused up front.
	if code, body := e.call("POST", "/api/v1/apps/fails/runs", e.Admin, map[string]string{"ref": "nope"}); code != 400 || errorField(body, "field") != "ref" {
		t.Fatalf("unknown ref: %d %v", code, body)
	}
	e.pushPipeline("fails", "broken", map[string]string{"slipway.yaml": "stages: {}\n"})
	if code, body := e.call("POST", "/api/v1/apps/fails/runs", e.Admin, map[string]string{"ref": "broken"}); code != 422 || !strings.Contains(errorField(body, "message"), "slipway.yaml:1:9") {
		t.Fatalf("invalid pipeline: %d %v", code, body)
	}
	viewer := e.token("v", "viewer")
	if code, _ := e.call("POST", "/api/v1/apps/fails/runs", viewer, map[string]string{"ref": "exit"}); code != 403 {
		t.Fatalf("viewer started a run: %d", code)
	}
}

// A disk that fills while an action stores its output artifact fails the
// action with the system's reason; nothing is recorded as stored. The
// full disk is a real one: a 1 MiB tmpfs over the artifact store, which
// needs root (CI runs as root).
func TestIntegrationArtifactOnFullDiskFailsAction(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting a small tmpfs to fill needs root")
	}
	dir := t.TempDir()
	e := newEnvAt(t, dir)
	store := filepath.Join(dir, "artifacts")
	if err := os.MkdirAll(store, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", store, "tmpfs", 0, "size=1m"); err != nil {
		t.Fatalf("mount a tmpfs: %v", err)
	}
	t.Cleanup(func() { syscall.Unmount(store, syscall.MNT_DETACH) })

	e.createApp("full")
	e.pushPipeline("full", "main", map[string]string{
		"slipway.yaml": manualOnly + `stages:
  - name: Build
    actions:
      - name: compile
        type: build
        outputs: [Big]
`,
		"buildspec.yml": "version: 0.2\nphases:\n  build:\n    commands: [\"head -c 4194304 /dev/zero > big.bin\"]\nartifacts:\n  files: [big.bin]\n",
	})
	run := e.waitRun(e.startRun("full", "main"), 30*time.Second)
	reason, _ := run["reason"].(string)
	if run["state"] != "failed" || !strings.Contains(reason, "output Big") || !strings.Contains(reason, "no space left on device") {
		t.Fatalf("run %v: %q", run["state"], reason)
	}
	for _, a := range run["artifacts"].([]any) {
		if name := a.(map[string]any)["name"]; name == "Big" {
			t.Fatalf("an artifact that did not fit was recorded: %v", a)
		}
	}
	if left, _ := os.ReadDir(filepath.Join(store, "_tmp")); len(left) != 0 {
		t.Fatalf("partial files left in the store: %d", len(left))
	}
}

func processGone(pid int) bool {
	if syscall.Kill(pid, 0) != nil {
		return true
	}
	out, _ := exec.Command("ps", "-o", "stat=", "-p", strconv.Itoa(pid)).Output()
	return strings.HasPrefix(strings.TrimSpace(string(out)), "Z")
}

func waitGone(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !processGone(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("process %d is still running", pid)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func readPID(t *testing.T, path string) int {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		b, err := os.ReadFile(path)
		if pid, perr := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && perr == nil && pid > 0 {
			return pid
		}
		if time.Now().After(deadline) {
			t.Fatalf("no pid in %s", path)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// sleeperPipeline runs a build that leaves a background sleeper and records its pid.
func sleeperPipeline(pidFile string) map[string]string {
	return map[string]string{
		"slipway.yaml":  "on:\n  push:\n    branches: [main]\nstages:\n  - name: Build\n    actions:\n      - name: slow\n        type: build\n        env: {PIDFILE: " + pidFile + "}\n",
		"buildspec.yml": "version: 0.2\nphases:\n  build:\n    commands:\n      - echo first\n      - sleep 300 & echo $! > $PIDFILE.tmp && mv $PIDFILE.tmp $PIDFILE; wait\n",
	}
}

func TestIntegrationCancelKillsProcessTreeAndLogsFollow(t *testing.T) {
	e := newEnv(t)
	e.createApp("slow")
	e.buildOnHost("slow") // the host executor's process groups: the sandbox's container is tested in sandbox_integration_test.go
	pidFile := filepath.Join(t.TempDir(), "sleeper.pid")
	e.pushPipeline("slow", "main", sleeperPipeline(pidFile))
	pid := readPID(t, pidFile)
	// A follower sees the first line while the action still runs.
	deadline := time.Now().Add(2 * time.Second)
	for !strings.Contains(e.logText(1), "first") {
		if time.Now().After(deadline) {
			t.Fatalf("log line not visible while running: %q", e.logText(1))
		}
		time.Sleep(20 * time.Millisecond)
	}
	_, run := e.call("GET", "/api/v1/runs/1", e.Admin, nil)
	if run["state"] != "running" {
		t.Fatalf("run ended early: %v", run)
	}
	if code, body := e.call("POST", "/api/v1/runs/1/cancel", e.Admin, nil); code != 202 {
		t.Fatalf("cancel: %d %v", code, body)
	}
	run = e.waitRun(1, 20*time.Second)
	if run["state"] != "cancelled" || actionsOf(run)["Build/slow"]["state"] != "cancelled" {
		t.Fatalf("after cancel: %v", run)
	}
	waitGone(t, pid)
	if code, _ := e.call("POST", "/api/v1/runs/1/cancel", e.Admin, nil); code != 409 {
		t.Fatalf("cancel of an ended run: %d", code)
	}
}

func TestIntegrationModes(t *testing.T) {
	e := newEnv(t)
	e.createApp("modes")
	spec := func(mode string) map[string]string {
		return map[string]string{
			"slipway.yaml": manualOnly + "mode: " + mode + "\nstages:\n  - name: One\n    actions:\n      - {name: a, type: invoke, command: sleep 1}\n  - name: Two\n    actions:\n      - {name: b, type: invoke, command: 'true'}\n",
		}
	}
	e.pushPipeline("modes", "queued", spec("queued"))
	e.pushPipeline("modes", "superseded", spec("superseded"))

	t.Run("queued runs one at a time in order", func(t *testing.T) {
		ids := []int{e.startRun("modes", "queued"), e.startRun("modes", "queued"), e.startRun("modes", "queued")}
		var prevEnd time.Time
		for _, id := range ids {
			run := e.waitRun(id, 30*time.Second)
			if run["state"] != "succeeded" {
				t.Fatalf("run %d: %v %v", id, run["state"], run["reason"])
			}
			start, _ := time.Parse(time.RFC3339Nano, run["started_at"].(string))
			if start.Before(prevEnd) {
				t.Fatalf("run %d started before the previous one ended", id)
			}
			prevEnd, _ = time.Parse(time.RFC3339Nano, run["ended_at"].(string))
		}
	})
	t.Run("superseded: the newest run overtakes at a stage boundary", func(t *testing.T) {
		first := e.startRun("modes", "superseded")
		// Wait until the first run is inside stage One, then queue two more.
		deadline := time.Now().Add(10 * time.Second)
		for {
			_, r := e.call("GET", fmt.Sprintf("/api/v1/runs/%d", first), e.Admin, nil)
			if r["state"] == "running" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("first run never started")
			}
			time.Sleep(20 * time.Millisecond)
		}
		second := e.startRun("modes", "superseded")
		third := e.startRun("modes", "superseded")
		r1, r2, r3 := e.waitRun(first, 30*time.Second), e.waitRun(second, 30*time.Second), e.waitRun(third, 30*time.Second)
		if r1["state"] != "superseded" || !strings.Contains(r1["reason"].(string), fmt.Sprintf("run %d", third)) {
			t.Fatalf("first: %v %v", r1["state"], r1["reason"])
		}
		if actionsOf(r1)["One/a"]["state"] != "succeeded" || actionsOf(r1)["Two/b"]["state"] != "superseded" {
			t.Fatalf("first run's actions: %v", r1["actions"])
		}
		if r2["state"] != "superseded" || r3["state"] != "succeeded" {
			t.Fatalf("second %v (%v), third %v (%v)", r2["state"], r2["reason"], r3["state"], r3["reason"])
		}
	})
}

// TestIntegrationRestartLeavesNoRunStuck kills a real server process with
// SIGKILL in the middle of a build and starts it again on the same data.
func TestIntegrationRestartLeavesNoRunStuck(t *testing.T) {
	bin := slipwayBinary(t)
	data := t.TempDir()
	p := startProcServer(t, bin, data, "")
	e := p.testEnv
	e.createApp("crash")
	e.buildOnHost("crash") // orphaned host process groups; TestIntegrationRestartRemovesSandbox covers the sandbox
	pidFile := filepath.Join(t.TempDir(), "sleeper.pid")
	e.pushPipeline("crash", "main", sleeperPipeline(pidFile))
	pid := readPID(t, pidFile)
	p.kill()
	if processGone(pid) {
		t.Fatal("test premise: the build's process group should outlive a SIGKILLed server")
	}

	p = startProcServer(t, bin, data, "")
	e = p.testEnv
	run := e.waitRun(1, 10*time.Second)
	if run["state"] != "failed" || run["reason"] != "control plane restarted" {
		t.Fatalf("after restart: %v %v", run["state"], run["reason"])
	}
	if a := actionsOf(run)["Build/slow"]; a["state"] != "failed" || a["reason"] != "control plane restarted" {
		t.Fatalf("action after restart: %v", a)
	}
	waitGone(t, pid) // the restarted server killed the orphaned build
	// The pipeline can run again.
	os.Remove(pidFile)
	id := e.startRun("crash", "main")
	readPID(t, pidFile)
	if code, _ := e.call("POST", fmt.Sprintf("/api/v1/runs/%d/cancel", id), e.Admin, nil); code != 202 {
		t.Fatalf("cancel the retry: %d", code)
	}
	if r := e.waitRun(id, 20*time.Second); r["state"] != "cancelled" {
		t.Fatalf("retry: %v", r["state"])
	}
}
