package server

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// signinNext signs in with token through the real form, posting next, and
// returns the Location the server answers with, unparsed: Go's client
// refuses some of the hostile ones that browsers follow.
func signinNext(t *testing.T, e *testEnv, token, next string) string {
	t.Helper()
	c, _ := e.signin("")
	page, err := c.Get(e.URL + "/signin?next=" + url.QueryEscape(next))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(page.Body)
	page.Body.Close()
	form := csrfField.FindStringSubmatch(string(body))
	if form == nil {
		t.Fatalf("no CSRF field on /signin (%d)", page.StatusCode)
	}
	values := url.Values{"csrf": {form[1]}, "token": {token}, "next": {next}}
	req, _ := http.NewRequest("POST", e.URL+"/signin", strings.NewReader(values.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for _, ck := range c.Jar.Cookies(req.URL) {
		req.AddCookie(ck)
	}
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign in with next=%q: %d", next, resp.StatusCode)
	}
	return resp.Header.Get("Location")
}

func TestSigninNextStaysOnSite(t *testing.T) {
	e := newEnv(t)
	cases := []struct {
		name, next, want string
	}{
		{"app page", "/runs/7", "/runs/7"},
		{"page with query", "/runs?app=hello&state=failed", "/runs?app=hello&state=failed"},
		{"service page", "/services/hello/prod/web", "/services/hello/prod/web"},
		{"empty", "", "/apps"},
		{"root-relative twice", "//evil.example", "/apps"},
		{"backslash after slash", "/\\evil.example", "/apps"},
		{"tab between slashes", "/\t/evil.example", "/apps"},
		{"newline between slashes", "/\n/evil.example", "/apps"},
		{"carriage return between slashes", "/\r/evil.example", "/apps"},
		{"NUL", "/\x00/evil.example", "/apps"},
		{"DEL", "/\x7f/evil.example", "/apps"},
		{"C1 control", "/\u0085/evil.example", "/apps"},
		{"backslash after a dot segment", "/./\\evil.example", "/apps"},
		{"backslash later in the path", "/apps/\\\\evil.example", "/apps"},
		{"absolute URL", "https://evil.example", "/apps"},
		{"absolute URL with a path", "https://evil.example/apps", "/apps"},
		{"javascript scheme", "javascript:alert(1)", "/apps"},
		{"relative path", "apps", "/apps"},
		{"bad escape", "/apps%zz", "/apps"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := signinNext(t, e, e.Admin, c.next); got != c.want {
				t.Fatalf("next=%q redirected to %q, want %q", c.next, got, c.want)
			}
		})
	}
}

// rawDeliver posts a webhook delivery and returns the status and the body as sent.
func (e *testEnv) rawDeliver(app, id, signature string, body []byte) (int, string) {
	e.t.Helper()
	req, _ := http.NewRequest("POST", e.URL+"/hooks/github/"+app, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-GitHub-Event", "push")
	req.Header.Set("X-GitHub-Delivery", id)
	if signature != "" {
		req.Header.Set("X-Hub-Signature-256", signature)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// Every delivery that cannot be verified gets one answer, so the webhook
// endpoint does not tell which apps exist or which have a secret.
func TestIntegrationWebhookRefusalsDoNotRevealApps(t *testing.T) {
	e := newEnv(t)
	e.createApp("hello")
	e.createApp("nosecret")
	secret := []byte("0123456789abcdef-webhook")
	if code, body := e.call("PUT", "/api/v1/apps/hello/source", e.Admin, map[string]any{"url": t.TempDir(), "webhook_secret": string(secret)}); code != 200 {
		t.Fatalf("set-source: %d %v", code, body)
	}
	zero := strings.Repeat("0", 40)
	payload := githubPayload("refs/heads/main", zero, strings.Repeat("ab", 20), []string{"src/a.go"})

	cases := []struct {
		name, app, signature string
	}{
		{"unknown app", "missing", sign(secret, payload)},
		{"unknown app, unsigned", "missing", ""},
		{"name no app can have", "Not_An_App", sign(secret, payload)},
		{"wrong secret", "hello", sign([]byte("another-secret-entirely"), payload)},
		{"unsigned", "hello", ""},
		{"not hex", "hello", "sha256=zz"},
		{"app without a secret", "nosecret", sign(secret, payload)},
	}
	var wantCode int
	var wantBody string
	for i, c := range cases {
		code, body := e.rawDeliver(c.app, fmt.Sprintf("d-%d", i), c.signature, payload)
		if i == 0 {
			wantCode, wantBody = code, body
			if code != http.StatusUnauthorized {
				t.Fatalf("%s: %d %s, want 401", c.name, code, body)
			}
			continue
		}
		if code != wantCode || body != wantBody {
			t.Errorf("%s: %d %s\nwant the same as %s: %d %s", c.name, code, body, cases[0].name, wantCode, wantBody)
		}
	}
	if len(e.events("hello")) != 0 {
		t.Fatal("a refused delivery recorded an event")
	}
}

// A correctly signed push payload sent again must not build the commit it
// names once more: not under a new delivery id, not after a restart (the
// accepted digests are in the database), and a different payload naming an
// old commit builds nothing once the ref has moved on.
func TestIntegrationWebhookReplayBuildsNothingOld(t *testing.T) {
	dir := t.TempDir()
	e := newEnvAt(t, dir)
	e.createApp("hello")
	secret := []byte("0123456789abcdef-webhook")
	src := newWork(t) // the "GitHub" repository: a plain repository on disk
	c1 := src.commit("first", map[string]string{"slipway.yaml": triggerSpec, "src/main.go": "package main"})
	if code, body := e.call("PUT", "/api/v1/apps/hello/source", e.Admin, map[string]any{"url": src.dir, "webhook_secret": string(secret)}); code != 200 {
		t.Fatalf("set-source: %d %v", code, body)
	}
	zero := strings.Repeat("0", 40)
	p1 := githubPayload("refs/heads/main", zero, c1, []string{"slipway.yaml", "src/main.go"})
	code, body := e.deliver("hello", "push", "d-1", sign(secret, p1), p1)
	if code != http.StatusCreated || body["event"].(map[string]any)["outcome"] != "run" {
		t.Fatalf("first push: %d %v", code, body)
	}

	// The same body under a new delivery id is the same push.
	code, body = e.deliver("hello", "push", "d-1-again", sign(secret, p1), p1)
	if code != http.StatusConflict || errorField(body, "code") != "duplicate_delivery" {
		t.Fatalf("replayed payload: %d %v", code, body)
	}

	// The branch moves on; its own push is built.
	c2 := src.commit("second", map[string]string{"src/b.go": "package main"})
	p2 := githubPayload("refs/heads/main", c1, c2, []string{"src/b.go"})
	if code, body := e.deliver("hello", "push", "d-2", sign(secret, p2), p2); code != http.StatusCreated || body["event"].(map[string]any)["outcome"] != "run" {
		t.Fatalf("second push: %d %v", code, body)
	}

	// A restart does not forget the accepted payloads.
	e.stop()
	e = newEnvAt(t, dir)
	code, body = e.deliver("hello", "push", "d-1-after-restart", sign(secret, p1), p1)
	if code != http.StatusConflict || errorField(body, "code") != "duplicate_delivery" || !strings.Contains(errorField(body, "message"), "already accepted") {
		t.Fatalf("replay after restart: %d %v", code, body)
	}

	// Another payload announcing c1 (say, an old delivery redone) is
	// recorded with the reason it starts nothing, since main is now at c2.
	p1b := githubPayload("refs/heads/main", zero, c1, []string{"src/main.go"})
	code, body = e.deliver("hello", "push", "d-1-other-payload", sign(secret, p1b), p1b)
	if code != http.StatusCreated {
		t.Fatalf("old commit in another payload: %d %v", code, body)
	}
	ev := body["event"].(map[string]any)
	reason, _ := ev["reason"].(string)
	if ev["outcome"] != "filtered" || ev["run_id"] != nil || !strings.Contains(reason, c2[:12]) || !strings.Contains(reason, c1[:12]) {
		t.Fatalf("old commit in another payload recorded %v", ev)
	}
	_, runs := e.call("GET", "/api/v1/runs?app=hello", e.Admin, nil)
	perCommit := map[any]int{}
	for _, it := range runs["items"].([]any) {
		perCommit[it.(map[string]any)["commit"]]++
	}
	if len(perCommit) != 2 || perCommit[c1] != 1 || perCommit[c2] != 1 {
		t.Fatalf("runs per commit %v, want c1 and c2 once each", perCommit)
	}
}

// A huge slipway.yaml is refused before it is read whole, and the push is
// still recorded with the reason.
func TestIntegrationOversizedPipelineFileIsRecorded(t *testing.T) {
	e := newEnv(t)
	e.createApp("hello")
	deployer := e.token("pusher", "deployer")
	w := newWork(t)
	big := triggerSpec + "# " + strings.Repeat("x", 2<<20) + "\n"
	c := w.commit("huge pipeline", map[string]string{"slipway.yaml": big, "src/a.go": "package a"})
	w.git("push", "-q", repoURL(e.URL, deployer, "hello"), "main")
	evs := e.events("hello")
	if len(evs) != 1 {
		t.Fatalf("%d events, want 1", len(evs))
	}
	reason, _ := evs[0]["reason"].(string)
	if evs[0]["outcome"] != "error" || evs[0]["new_sha"] != c || !strings.Contains(reason, "slipway.yaml") || !strings.Contains(reason, "1 MiB") {
		t.Fatalf("event: %v", evs[0])
	}
}

// A fetch request body is a few KiB; a viewer cannot fill the disk with one.
func TestIntegrationGitFetchBodyIsCapped(t *testing.T) {
	dir := t.TempDir()
	e := newEnvAt(t, dir)
	e.createApp("hello")
	viewer := e.token("view", "viewer")
	spool := filepath.Join(dir, "git", ".spool")
	body := make([]byte, 20<<20)
	if _, err := rand.Read(body); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name    string
		chunked bool
	}{
		{"chunked", true},
		{"with Content-Length", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var rd io.Reader = bytes.NewReader(body)
			if c.chunked {
				rd = io.MultiReader(rd) // hides the length: the client sends it chunked
			}
			req, _ := http.NewRequest("POST", e.URL+"/git/hello.git/git-upload-pack", rd)
			req.SetBasicAuth("ci", viewer)
			req.Header.Set("Content-Type", "application/x-git-upload-pack-request")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusRequestEntityTooLarge {
				t.Fatalf("20 MiB upload-pack body: %d, want 413", resp.StatusCode)
			}
			left, err := os.ReadDir(spool)
			if err != nil && !os.IsNotExist(err) {
				t.Fatal(err)
			}
			if len(left) != 0 {
				t.Fatalf("%d files left in %s", len(left), spool)
			}
		})
	}
}
