package server

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The attacks a review of workflow runs found, each as the workflow a
// deployer of one app would push. Every one of them worked before its fix.

// TestIntegrationWorkflowAttackCacheRestoreIntoSeededGoCache: a cache saved
// from one path and restored into the build home's seeded Go cache, whose
// files are hard links to the server's own: the server handed the restored
// tree to the job's user, links included, and the job appended to the
// server's cache file.
func TestIntegrationWorkflowAttackCacheRestoreIntoSeededGoCache(t *testing.T) {
	seed := t.TempDir()
	entry := filepath.Join(seed, "ab", "ab12-d")
	if err := os.MkdirAll(filepath.Dir(entry), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(entry, []byte("compiled object\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("GOCACHE", seed)
	e := newEnv(t)
	e.createApp("wfatk1")
	w := newWork(t)
	w.commit("attack", map[string]string{".github/workflows/a.yml": `on: push
jobs:
  save:
    runs-on: ubuntu-latest
    steps:
      - run: mkdir -p ~/x && echo payload > ~/x/f
      - uses: actions/cache@v4
        with:
          key: k1
          path: ~/x
  poison:
    needs: save
    runs-on: ubuntu-latest
    steps:
      - uses: actions/cache@v4
        with:
          key: k1
          path: ~/.cache/go-build
      - run: echo POISONED >> ~/.cache/go-build/ab/ab12-d || true
      - run: cat ~/x/f
`})
	w.git("push", "-q", repoURL(e.URL, e.Admin, "wfatk1"), "main")
	run := e.waitRun(1, 120*time.Second)
	if run["state"] != "succeeded" {
		t.Fatalf("run %v: %v\n%s", run["state"], run["reason"], e.logText(1))
	}
	if b, _ := os.ReadFile(entry); string(b) != "compiled object\n" {
		t.Fatalf("the server's Go cache file now reads %q", b)
	}
	if !strings.Contains(e.logText(1), "payload") {
		t.Errorf("the cache was not restored where it was saved from:\n%s", e.logText(1))
	}
}

// TestIntegrationWorkflowAttackCachePoisonedFromABranch: caches were kept
// per app, so a branch anyone may push (a pull request's) saved a cache
// under the key main's workflow restores, and main's next run built with
// what the branch put there. Caches are now scoped by ref, as GitHub
// scopes them by branch: a branch restores main's, never the reverse.
func TestIntegrationWorkflowAttackCachePoisonedFromABranch(t *testing.T) {
	e := newEnv(t)
	e.createApp("wfatk4")
	w := newWork(t)
	workflow := func(content string) string {
		return `on: push
jobs:
  build:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/cache@v4
        id: deps
        with:
          key: deps-v1
          path: deps
      - run: mkdir -p deps && if [ ! -f deps/lib ]; then echo ` + content + ` > deps/lib; fi
      - run: echo "built with $(cat deps/lib) hit=${{ steps.deps.outputs.cache-hit }}"
`
	}
	// The branch is pushed first, so its cache is the only one there is.
	w.commit("branch", map[string]string{".github/workflows/ci.yml": workflow("POISON")})
	w.git("push", "-q", repoURL(e.URL, e.Admin, "wfatk4"), "HEAD:refs/heads/feature")
	if run := e.waitRun(1, 120*time.Second); run["state"] != "succeeded" {
		t.Fatalf("the branch's run %v: %v\n%s", run["state"], run["reason"], e.logText(1))
	}
	w.commit("main", map[string]string{".github/workflows/ci.yml": workflow("clean")})
	w.git("push", "-q", repoURL(e.URL, e.Admin, "wfatk4"), "HEAD:refs/heads/main")
	if run := e.waitRun(2, 120*time.Second); run["state"] != "succeeded" {
		t.Fatalf("main's run %v: %v\n%s", run["state"], run["reason"], e.logText(2))
	}
	if log := e.logText(2); strings.Contains(log, "built with POISON") || !strings.Contains(log, "built with clean hit=false") {
		t.Fatalf("main's run restored the branch's cache:\n%s", log)
	}
	// The other way is allowed: a branch restores main's cache.
	w.commit("branch again", map[string]string{"README": "x"})
	w.git("push", "-q", repoURL(e.URL, e.Admin, "wfatk4"), "HEAD:refs/heads/other")
	if run := e.waitRun(3, 120*time.Second); run["state"] != "succeeded" {
		t.Fatalf("the second branch's run %v: %v\n%s", run["state"], run["reason"], e.logText(3))
	}
	if log := e.logText(3); !strings.Contains(log, "built with clean hit=true") {
		t.Fatalf("a branch did not restore main's cache:\n%s", log)
	}
}

// TestIntegrationWorkflowAttackHomePoisonedFromABranch: an app's build home
// (its Go module and build caches, what tools put under ~) was one for
// all its refs, so a branch's build left a file there, a rewritten module
// say, that the default branch's next build ran with. A branch or tag now
// builds in a home of its own.
func TestIntegrationWorkflowAttackHomePoisonedFromABranch(t *testing.T) {
	e := newEnv(t)
	e.createApp("wfatk5")
	w := newWork(t)
	w.commit("branch", map[string]string{".github/workflows/ci.yml": `on: push
jobs:
  build:
    runs-on: ubuntu-latest
    steps:
      - run: mkdir -p ~/go/pkg/mod && echo POISON > ~/go/pkg/mod/evil && echo left it
`})
	w.git("push", "-q", repoURL(e.URL, e.Admin, "wfatk5"), "HEAD:refs/heads/feature")
	if run := e.waitRun(1, 120*time.Second); run["state"] != "succeeded" || !strings.Contains(e.logText(1), "left it") {
		t.Fatalf("the branch's run %v: %v\n%s", run["state"], run["reason"], e.logText(1))
	}
	w.commit("main", map[string]string{".github/workflows/ci.yml": `on: push
jobs:
  build:
    runs-on: ubuntu-latest
    steps:
      - run: cat ~/go/pkg/mod/evil 2>/dev/null || echo home is clean
`})
	w.git("push", "-q", repoURL(e.URL, e.Admin, "wfatk5"), "HEAD:refs/heads/main")
	if run := e.waitRun(2, 120*time.Second); run["state"] != "succeeded" {
		t.Fatalf("main's run %v: %v\n%s", run["state"], run["reason"], e.logText(2))
	}
	if log := e.logText(2); strings.Contains(log, "POISON") || !strings.Contains(log, "home is clean") {
		t.Fatalf("main's build saw what the branch left in the home:\n%s", log)
	}
}

// TestIntegrationWorkflowAttackBuildContextThroughLink: a link to / in the
// build home made docker/build-push-action pack (and read as a Dockerfile)
// any file of the host.
func TestIntegrationWorkflowAttackBuildContextThroughLink(t *testing.T) {
	victim := t.TempDir()
	secret := fmt.Sprintf("TOPSECRET-%d", time.Now().UnixNano())
	if err := os.WriteFile(filepath.Join(victim, "secret.txt"), []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	e := newEnv(t)
	e.createApp("wfatk2")
	w := newWork(t)
	w.commit("attack", map[string]string{".github/workflows/a.yml": fmt.Sprintf(`on: push
jobs:
  steal:
    runs-on: ubuntu-latest
    steps:
      - run: ln -s / ~/h
      - id: ecr
        uses: aws-actions/amazon-ecr-login@v2
      - uses: docker/build-push-action@v6
        with:
          context: ~/h%[1]s
          file: ~/h%[1]s/secret.txt
          tags: ${{ steps.ecr.outputs.registry }}/wfatk2:x
`, victim)})
	w.git("push", "-q", repoURL(e.URL, e.Admin, "wfatk2"), "main")
	run := e.waitRun(1, 120*time.Second)
	logs := e.logText(1)
	if strings.Contains(logs, secret) || strings.Contains(fmt.Sprint(run), secret) {
		t.Fatalf("the host file reached the run:\n%s", logs)
	}
	if run["state"] != "failed" {
		t.Fatalf("the build of a context outside the container succeeded: %v", run["state"])
	}
}

// TestIntegrationWorkflowAttackResourceBounds: a FIFO where the server
// reads $GITHUB_OUTPUT held the job (and a build slot) forever; nested
// format() grew a short expression into megabytes in the server; a step
// summary or annotation carrying a secret was stored unmasked; needs: in
// another letter case did not wait for the job it names.
func TestIntegrationWorkflowAttackResourceBounds(t *testing.T) {
	e := newEnv(t)
	e.createApp("wfatk3")
	if code, body := e.call("PUT", "/api/v1/secrets/S1", e.Admin, map[string]string{"app": "wfatk3", "value": "hunter2-secret-value"}); code != 200 && code != 201 {
		t.Fatalf("secret: %d %v", code, body)
	}
	nested := "'x'"
	for range 4 {
		nested = "format('" + strings.Repeat("{0}", 64) + "', " + nested + ")"
	}
	w := newWork(t)
	w.commit("attack", map[string]string{".github/workflows/a.yml": `on: push
jobs:
  fifo:
    runs-on: ubuntu-latest
    timeout-minutes: 1
    steps:
      - run: rm "$GITHUB_OUTPUT" && mkfifo "$GITHUB_OUTPUT"
  bomb:
    runs-on: ubuntu-latest
    steps:
      - run: echo "${{ ` + nested + ` }}" | wc -c
  leak:
    runs-on: ubuntu-latest
    steps:
      - run: |
          echo "token ${{ secrets.S1 }}" >> "$GITHUB_STEP_SUMMARY"
          echo "::error title=${{ secrets.S1 }}::oops ${{ secrets.S1 }}"
  Build:
    runs-on: ubuntu-latest
    steps:
      - run: sleep 2; exit 1
  deploy:
    needs: [build]
    runs-on: ubuntu-latest
    steps:
      - run: echo deployed-too-early
`})
	w.git("push", "-q", repoURL(e.URL, e.Admin, "wfatk3"), "main")
	run := e.waitRun(1, 90*time.Second)
	acts := actionsOf(run)
	if a := acts["fifo/fifo"]; a["state"] != "failed" || !strings.Contains(fmt.Sprint(a["reason"]), "not a regular file") {
		t.Errorf("fifo: %v %v", a["state"], a["reason"])
	}
	if a := acts["bomb/bomb"]; a["state"] != "failed" || !strings.Contains(fmt.Sprint(a["reason"]), "bytes") {
		t.Errorf("bomb: %v %v", a["state"], a["reason"])
	}
	leak := fmt.Sprint(acts["leak/leak"])
	if strings.Contains(leak, "hunter2") || !strings.Contains(leak, "token ***") {
		t.Errorf("the summary or annotations hold the secret: %s", leak)
	}
	if a := acts["deploy/deploy"]; a["state"] != "skipped" {
		t.Errorf("deploy, needing a job that failed: %v %v", a["state"], a["reason"])
	}
	if strings.Contains(e.logText(1), "deployed-too-early") {
		t.Error("deploy ran before the job it needs")
	}
}
