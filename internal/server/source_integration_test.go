package server

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// gitWork is a working copy driven with the real git binary.
type gitWork struct {
	t   *testing.T
	dir string
	env []string
}

func newWork(t *testing.T) *gitWork {
	t.Helper()
	home := t.TempDir()
	w := &gitWork{t: t, dir: t.TempDir(), env: append(os.Environ(),
		"HOME="+home, "GIT_CONFIG_NOSYSTEM=1", "GIT_TERMINAL_PROMPT=0",
		"GIT_AUTHOR_NAME=Test", "GIT_AUTHOR_EMAIL=test@example.com",
		"GIT_COMMITTER_NAME=Test", "GIT_COMMITTER_EMAIL=test@example.com")}
	w.git("init", "-q", "-b", "main")
	return w
}

func (w *gitWork) run(args ...string) (string, error) {
	cmd := exec.Command("git", args...)
	cmd.Dir = w.dir
	cmd.Env = w.env
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (w *gitWork) git(args ...string) string {
	w.t.Helper()
	out, err := w.run(args...)
	if err != nil {
		w.t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(out)
}

func (w *gitWork) write(path, content string) {
	w.t.Helper()
	full := filepath.Join(w.dir, path)
	if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
		w.t.Fatal(err)
	}
	if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
		w.t.Fatal(err)
	}
}

// commit writes files and commits them, returning the new SHA.
func (w *gitWork) commit(msg string, files map[string]string) string {
	w.t.Helper()
	for p, c := range files {
		w.write(p, c)
	}
	w.git("add", "-A")
	w.git("commit", "-q", "-m", msg)
	return w.git("rev-parse", "HEAD")
}

func repoURL(base, token, app string) string {
	u, _ := url.Parse(base)
	u.User = url.UserPassword("ci", token)
	u.Path = "/git/" + app + ".git"
	return u.String()
}

const triggerSpec = `on:
  push:
    branches: [main, "release/**"]
    tags: ["v*"]
    paths: ["src/**", "slipway.yaml"]
stages:
  - name: Build
    actions:
      - name: compile
        type: build
`

// events returns the app's push events, oldest first.
func (e *testEnv) events(app string) []map[string]any {
	e.t.Helper()
	code, body := e.call("GET", "/api/v1/apps/"+app+"/events?limit=500", e.Admin, nil)
	if code != 200 {
		e.t.Fatalf("events: %d %v", code, body)
	}
	items := body["items"].([]any)
	out := make([]map[string]any, len(items))
	for i, it := range items {
		out[len(items)-1-i] = it.(map[string]any)
	}
	return out
}

func TestIntegrationGitPushStartsRuns(t *testing.T) {
	e := newEnv(t)
	e.createApp("hello")
	deployer := e.token("pusher", "deployer")
	remote := repoURL(e.URL, deployer, "hello")
	w := newWork(t)
	w.git("remote", "add", "origin", remote)

	type want struct {
		ref, outcome, reason string
		old, new             string
	}
	var wants []want
	expect := func(ref, outcome, reason, old, new string) {
		wants = append(wants, want{ref, outcome, reason, old, new})
	}
	zero := strings.Repeat("0", 40)

	c1 := w.commit("first", map[string]string{"slipway.yaml": triggerSpec, "src/a.go": "package a"})
	w.git("push", "-q", "origin", "main")
	expect("refs/heads/main", "run", "", zero, c1)

	c2 := w.commit("docs only", map[string]string{"docs/readme.md": "hi"})
	w.git("push", "-q", "origin", "main")
	expect("refs/heads/main", "filtered", "on.push.paths", c1, c2)

	c3 := w.commit("code", map[string]string{"src/b.go": "package a"})
	w.git("push", "-q", "origin", "main")
	expect("refs/heads/main", "run", "", c2, c3)

	w.git("reset", "-q", "--hard", c2)
	c4 := w.commit("rewrite", map[string]string{"src/c.go": "package a"})
	w.git("push", "-q", "--force", "origin", "main")
	expect("refs/heads/main", "run", "", c3, c4)

	w.git("checkout", "-q", "-b", "feature/x")
	w.git("push", "-q", "origin", "feature/x")
	expect("refs/heads/feature/x", "filtered", "matches no on.push.branches", zero, c4)

	w.git("tag", "v1.2.0")
	w.git("push", "-q", "origin", "v1.2.0")
	expect("refs/tags/v1.2.0", "run", "", zero, c4)

	w.git("tag", "-a", "-m", "nightly", "nightly")
	tagObj := w.git("rev-parse", "nightly")
	w.git("push", "-q", "origin", "nightly")
	expect("refs/tags/nightly", "filtered", "matches no on.push.tags", zero, tagObj)

	w.git("push", "-q", "origin", "--delete", "feature/x")
	expect("refs/heads/feature/x", "filtered", "deleted", c4, zero)

	// A malformed slipway.yaml never loses the push: the event keeps the error.
	w.git("checkout", "-q", "-b", "release/1")
	c5 := w.commit("broken pipeline", map[string]string{"slipway.yaml": "on:\n  push:\n    branches: [main]\nstages:\n  - name: B\n    actions:\n      - name: a\n        type: compile\n"})
	w.git("push", "-q", "origin", "release/1")
	expect("refs/heads/release/1", "error", "slipway.yaml:8:15: stages[0].actions[0].type", zero, c5)

	w.git("checkout", "-q", "--orphan", "release/2")
	w.git("rm", "-q", "-r", "--cached", ".")
	for _, f := range []string{"slipway.yaml", "src", "docs"} {
		os.RemoveAll(filepath.Join(w.dir, f))
	}
	c6 := w.commit("no pipeline", map[string]string{"README": "x"})
	w.git("push", "-q", "origin", "release/2")
	expect("refs/heads/release/2", "filtered", "no slipway.yaml", zero, c6)

	evs := e.events("hello")
	if len(evs) != len(wants) {
		for _, ev := range evs {
			t.Logf("event %v %v %v %v", ev["ref"], ev["outcome"], ev["reason"], ev["run_id"])
		}
		t.Fatalf("%d events, want %d", len(evs), len(wants))
	}
	runs := 0
	for i, w := range wants {
		ev := evs[i]
		if ev["ref"] != w.ref || ev["outcome"] != w.outcome || ev["old_sha"] != w.old || ev["new_sha"] != w.new || ev["pushed_by"] != "pusher" {
			t.Errorf("event %d: got %v %v old=%v new=%v by=%v; want %s %s old=%s new=%s", i, ev["ref"], ev["outcome"], ev["old_sha"], ev["new_sha"], ev["pushed_by"], w.ref, w.outcome, w.old, w.new)
		}
		if reason, _ := ev["reason"].(string); !strings.Contains(reason, w.reason) {
			t.Errorf("event %d (%s): reason %q lacks %q", i, w.ref, reason, w.reason)
		}
		if w.outcome == "run" {
			runs++
			id := int(ev["run_id"].(float64))
			code, run := e.call("GET", fmt.Sprintf("/api/v1/runs/%d", id), e.Admin, nil)
			if code != 200 || run["trigger"] != "git-push" || run["ref"] != w.ref || run["event_id"] == nil {
				t.Errorf("run %d: %d %v", id, code, run)
			}
		} else if ev["run_id"] != nil {
			t.Errorf("event %d (%s) has a run but was %s", i, w.ref, w.outcome)
		}
	}
	_, list := e.call("GET", "/api/v1/runs?app=hello", e.Admin, nil)
	if n := len(list["items"].([]any)); n != runs {
		t.Fatalf("%d runs recorded, want %d", n, runs)
	}
	// The annotated tag's run (had it matched) would use the commit, never the tag object.
	if c4 == tagObj {
		t.Fatal("annotated tag should be its own object")
	}
}

func TestIntegrationGitPermissionsAndClones(t *testing.T) {
	e := newEnv(t)
	e.createApp("hello")
	deployer := e.token("dep", "deployer")
	viewer := e.token("view", "viewer")

	w := newWork(t)
	for i := 0; i < 3; i++ {
		w.commit(fmt.Sprintf("c%d", i), map[string]string{"f.txt": fmt.Sprint(i)})
	}
	// 50 MB of incompressible data in one push.
	big := make([]byte, 50<<20)
	if _, err := rand.Read(big); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(w.dir, "big.bin"), big, 0o644); err != nil {
		t.Fatal(err)
	}
	w.git("add", "big.bin")
	w.git("commit", "-q", "-m", "big")
	head := w.git("rev-parse", "HEAD")

	if out, err := w.run("push", repoURL(e.URL, viewer, "hello"), "main"); err == nil || !strings.Contains(out, "403") {
		t.Fatalf("viewer push: err=%v out=%s", err, out)
	}
	noCreds := strings.Replace(repoURL(e.URL, "x", "hello"), "ci:x@", "", 1)
	if out, err := w.run("push", noCreds, "main"); err == nil {
		t.Fatalf("anonymous push succeeded: %s", out)
	}
	if out, err := w.run("push", strings.Replace(repoURL(e.URL, "slw_wrong", "hello"), "", "", 1), "main"); err == nil || !strings.Contains(out, "Authentication failed") {
		t.Fatalf("bad-token push: err=%v out=%s", err, out)
	}
	if len(e.events("hello")) != 0 {
		t.Fatal("a refused push recorded an event")
	}
	w.git("push", "-q", repoURL(e.URL, deployer, "hello"), "main")

	// The raw protocol: a push without credentials is challenged so git asks for them.
	resp, err := http.Get(e.URL + "/git/hello.git/info/refs?service=git-receive-pack")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Basic") {
		t.Fatalf("anonymous receive-pack: %d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
	resp, err = http.Get(e.URL + "/git/nope.git/info/refs?service=git-upload-pack")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Fatalf("anonymous fetch of unknown repo: %d (must not reveal existence)", resp.StatusCode)
	}

	// Viewers clone, fully and shallow.
	cloneDir := filepath.Join(t.TempDir(), "full")
	if out, err := w.run("clone", "-q", repoURL(e.URL, viewer, "hello"), cloneDir); err != nil {
		t.Fatalf("clone: %v %s", err, out)
	}
	got, _ := os.ReadFile(filepath.Join(cloneDir, "big.bin"))
	if !bytes.Equal(got, big) {
		t.Fatal("cloned big.bin differs from the pushed one")
	}
	shallow := filepath.Join(t.TempDir(), "shallow")
	if out, err := w.run("clone", "-q", "--depth", "1", repoURL(e.URL, viewer, "hello"), shallow); err != nil {
		t.Fatalf("shallow clone: %v %s", err, out)
	}
	sw := &gitWork{t: t, dir: shallow, env: w.env}
	if n := sw.git("rev-list", "--count", "HEAD"); n != "1" {
		t.Fatalf("shallow clone has %s commits", n)
	}
	if sw.git("rev-parse", "HEAD") != head {
		t.Fatal("shallow clone is not at the pushed head")
	}
	// Fetch after another push.
	next := w.commit("after", map[string]string{"f.txt": "later"})
	w.git("push", "-q", repoURL(e.URL, deployer, "hello"), "main")
	full := &gitWork{t: t, dir: cloneDir, env: w.env}
	full.git("pull", "-q", "--ff-only")
	if full.git("rev-parse", "HEAD") != next {
		t.Fatal("fetch did not bring the new commit")
	}
	// Unknown repository for an authenticated caller is a 404.
	if out, err := w.run("ls-remote", repoURL(e.URL, viewer, "nope")); err == nil || !strings.Contains(out, "not found") {
		t.Fatalf("unknown repo: %v %s", err, out)
	}
}

func sign(secret, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// githubPayload has the shape GitHub sends for a push (trimmed to the fields
// real deliveries always carry).
func githubPayload(ref, before, after string, added []string) []byte {
	p := map[string]any{
		"ref": ref, "before": before, "after": after,
		"created": before == strings.Repeat("0", 40), "deleted": after == strings.Repeat("0", 40), "forced": false,
		"base_ref": nil, "compare": "https://github.com/acme/hello/compare/x...y",
		"commits": []map[string]any{{
			"id": after, "tree_id": after, "distinct": true, "message": "change", "timestamp": "2026-11-23T10:00:00Z",
			"url": "https://github.com/acme/hello/commit/" + after, "author": map[string]string{"name": "Octo", "email": "octo@example.com", "username": "octo"},
			"committer": map[string]string{"name": "Octo", "email": "octo@example.com", "username": "octo"},
			"added":     added, "removed": []string{}, "modified": []string{},
		}},
		"head_commit": map[string]any{"id": after},
		"repository":  map[string]any{"id": 1, "name": "hello", "full_name": "acme/hello", "default_branch": "main", "clone_url": "https://github.com/acme/hello.git"},
		"pusher":      map[string]string{"name": "octo", "email": "octo@example.com"},
		"sender":      map[string]any{"login": "octo", "id": 1},
	}
	b, _ := json.Marshal(p)
	return b
}

func (e *testEnv) deliver(app, event, id, signature string, body []byte) (int, map[string]any) {
	e.t.Helper()
	req, _ := http.NewRequest("POST", e.URL+"/hooks/github/"+app, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-GitHub-Event", event)
	req.Header.Set("X-GitHub-Delivery", id)
	if signature != "" {
		req.Header.Set("X-Hub-Signature-256", signature)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	out := map[string]any{}
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

func TestIntegrationGitHubWebhook(t *testing.T) {
	// The upstream "GitHub" is a second Slipway server: a real git server on loopback.
	up := newEnv(t)
	up.createApp("upstream")
	upTok := up.token("reader", "deployer")
	w := newWork(t)
	sha := w.commit("first", map[string]string{"slipway.yaml": triggerSpec, "src/main.go": "package main"})
	w.git("push", "-q", repoURL(up.URL, upTok, "upstream"), "main")

	e := newEnv(t)
	e.createApp("hello")
	e.createApp("nosecret")
	secret := "0123456789abcdef-webhook"
	code, body := e.call("PUT", "/api/v1/apps/hello/source", e.Admin, map[string]any{"url": repoURL(up.URL, upTok, "upstream"), "webhook_secret": secret})
	if code != 200 || body["webhook_secret_set"] != true {
		t.Fatalf("set-source: %d %v", code, body)
	}
	if code, body := e.call("PUT", "/api/v1/apps/hello/source", e.Admin, map[string]any{"url": "x", "webhook_secret": "short"}); code != 400 || errorField(body, "field") != "webhook_secret" {
		t.Fatalf("short secret: %d %v", code, body)
	}
	if code, body := e.call("PUT", "/api/v1/apps/hello/source", e.Admin, map[string]any{"url": "--upload-pack=evil"}); code != 400 || errorField(body, "field") != "url" {
		t.Fatalf("option-like url: %d %v", code, body)
	}
	zero := strings.Repeat("0", 40)
	payload := githubPayload("refs/heads/main", zero, sha, []string{"slipway.yaml", "src/main.go"})

	if code, body := e.deliver("hello", "ping", "d-ping", sign([]byte(secret), []byte(`{"zen":"hi"}`)), []byte(`{"zen":"hi"}`)); code != 200 {
		t.Fatalf("ping: %d %v", code, body)
	}
	if code, body := e.deliver("hello", "issues", "d-issue", sign([]byte(secret), []byte(`{}`)), []byte(`{}`)); code != 202 || !strings.Contains(fmt.Sprint(body["message"]), "ignored") {
		t.Fatalf("other event: %d %v", code, body)
	}
	tampered := bytes.Replace(payload, []byte("refs/heads/main"), []byte("refs/heads/evil"), 1)
	if code, body := e.deliver("hello", "push", "d-1", sign([]byte(secret), payload), tampered); code != 401 || errorField(body, "field") != "X-Hub-Signature-256" {
		t.Fatalf("tampered: %d %v", code, body)
	}
	if code, _ := e.deliver("hello", "push", "d-1", "", payload); code != 401 {
		t.Fatalf("unsigned: %d", code)
	}
	if code, _ := e.deliver("hello", "push", "d-1", sign([]byte("another-secret-entirely"), payload), payload); code != 401 {
		t.Fatalf("wrong secret: %d", code)
	}
	if code, _ := e.deliver("nosecret", "push", "d-1", sign([]byte(secret), payload), payload); code != 401 {
		t.Fatalf("app without secret: %d", code)
	}
	// An unknown app is refused like a bad signature: the endpoint does not reveal apps.
	if code, _ := e.deliver("missing", "push", "d-1", sign([]byte(secret), payload), payload); code != 401 {
		t.Fatalf("unknown app: %d", code)
	}
	if len(e.events("hello")) != 0 {
		t.Fatal("a refused delivery recorded an event")
	}

	code, body = e.deliver("hello", "push", "d-1", sign([]byte(secret), payload), payload)
	if code != 201 {
		t.Fatalf("valid push: %d %v", code, body)
	}
	ev := body["event"].(map[string]any)
	if ev["outcome"] != "run" || ev["source"] != "github" || ev["pushed_by"] != "octo" {
		t.Fatalf("event: %v", ev)
	}
	code, run := e.call("GET", fmt.Sprintf("/api/v1/runs/%d", int(ev["run_id"].(float64))), e.Admin, nil)
	if code != 200 || run["commit"] != sha || run["trigger"] != "github-push" {
		t.Fatalf("run: %d %v", code, run)
	}
	// The commit was fetched into the hosted repository.
	clone := filepath.Join(t.TempDir(), "c")
	w.git("clone", "-q", repoURL(e.URL, e.Admin, "hello"), clone)
	if got := (&gitWork{t: t, dir: clone, env: w.env}).git("rev-parse", "HEAD"); got != sha {
		t.Fatalf("hosted repo head %s, want %s", got, sha)
	}

	if code, body := e.deliver("hello", "push", "d-1", sign([]byte(secret), payload), payload); code != 409 || errorField(body, "field") != "X-GitHub-Delivery" {
		t.Fatalf("replayed delivery: %d %v", code, body)
	}
	// Paths filter uses the payload when git cannot diff: a docs-only push is filtered.
	sha2 := w.commit("docs", map[string]string{"docs/x.md": "x"})
	w.git("push", "-q", repoURL(up.URL, upTok, "upstream"), "main")
	p2 := githubPayload("refs/heads/main", sha, sha2, []string{"docs/x.md"})
	code, body = e.deliver("hello", "push", "d-2", sign([]byte(secret), p2), p2)
	if code != 201 || body["event"].(map[string]any)["outcome"] != "filtered" {
		t.Fatalf("docs-only push: %d %v", code, body)
	}
	// A commit the source does not have is recorded as an error, not a run.
	p3 := githubPayload("refs/heads/main", sha2, strings.Repeat("ab", 20), []string{"src/x.go"})
	if code, body := e.deliver("hello", "push", "d-3", sign([]byte(secret), p3), p3); code != 422 {
		t.Fatalf("unknown commit: %d %v", code, body)
	}
	// A branch deletion starts nothing.
	p4 := githubPayload("refs/heads/main", sha2, zero, nil)
	code, body = e.deliver("hello", "push", "d-4", sign([]byte(secret), p4), p4)
	if code != 201 || !strings.Contains(fmt.Sprint(body["event"].(map[string]any)["reason"]), "deleted") {
		t.Fatalf("delete: %d %v", code, body)
	}
	// Malformed payloads name the field.
	p5 := []byte(`{"ref":"main","before":"x","after":"y"}`)
	if code, body := e.deliver("hello", "push", "d-5", sign([]byte(secret), p5), p5); code != 400 || errorField(body, "field") != "ref" {
		t.Fatalf("bad ref: %d %v", code, body)
	}
	// Over 25 MB is refused before anything is read into memory.
	huge := bytes.Repeat([]byte("a"), 25<<20+1)
	if code, _ := e.deliver("hello", "push", "d-6", sign([]byte(secret), huge), huge); code != 413 {
		t.Fatalf("huge payload: %d", code)
	}
	evs := e.events("hello")
	if len(evs) != 4 {
		t.Fatalf("%d events, want 4 (run, filtered, fetch error, delete)", len(evs))
	}
	if evs[2]["outcome"] != "error" || evs[2]["delivery_id"] != "d-3" {
		t.Fatalf("fetch error event: %v", evs[2])
	}
}
