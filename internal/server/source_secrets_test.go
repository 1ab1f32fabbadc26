package server

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// authGitServer serves the bare repositories under a directory over smart
// HTTP (git http-backend) to one user and password only, as GitHub serves
// a private repository. While each request runs — the fetching git and its
// helpers are alive then — it looks for the password in the command line
// of every process.
type authGitServer struct {
	URL string // no userinfo

	mu       sync.Mutex
	user     string
	password string
	authed   int      // requests that carried the right credentials
	leaks    []string // processes whose argv held a password
	watch    []string // every password ever accepted, to look for
}

func newAuthGitServer(t *testing.T, root, user, password string) *authGitServer {
	t.Helper()
	if _, err := os.Stat("/proc/self/cmdline"); err != nil {
		t.Skip("no /proc: cannot read other processes' command lines")
	}
	gitPath, err := exec.LookPath("git")
	if err != nil {
		t.Skip("git is not installed")
	}
	g := &authGitServer{user: user, password: password, watch: []string{password}}
	backend := &cgi.Handler{
		Path: gitPath,
		Args: []string{"http-backend"},
		Env:  []string{"GIT_PROJECT_ROOT=" + root, "GIT_HTTP_EXPORT_ALL=1", "GIT_CONFIG_NOSYSTEM=1"},
	}
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g.scanProcesses()
		u, p, ok := r.BasicAuth()
		g.mu.Lock()
		good := ok && u == g.user && p == g.password
		if good {
			g.authed++
		}
		g.mu.Unlock()
		if !good {
			w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
			http.Error(w, "authentication required", http.StatusUnauthorized)
			return
		}
		backend.ServeHTTP(w, r)
	}))
	t.Cleanup(hs.Close)
	g.URL = hs.URL
	return g
}

// setPassword changes the password the server accepts.
func (g *authGitServer) setPassword(p string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.password = p
	g.watch = append(g.watch, p)
}

// scanProcesses records every process whose command line holds a password.
func (g *authGitServer) scanProcesses() {
	g.mu.Lock()
	watch := append([]string(nil), g.watch...)
	g.mu.Unlock()
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, f := range procs {
		b, err := os.ReadFile(f)
		if err != nil {
			continue // gone already
		}
		for _, pw := range watch {
			if bytes.Contains(b, []byte(pw)) {
				argv := strings.ReplaceAll(string(bytes.ReplaceAll(b, []byte{0}, []byte{' '})), pw, "<PASSWORD>")
				g.mu.Lock()
				g.leaks = append(g.leaks, fmt.Sprintf("%s: %s", filepath.Dir(f), argv))
				g.mu.Unlock()
			}
		}
	}
}

func (g *authGitServer) report() (authed int, leaks []string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.authed, append([]string(nil), g.leaks...)
}

func randomHex(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// rawJSON is v as the client received it, to search for what must not be there.
func rawJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// A source URL's credentials reach git and nothing else: not the API's
// answers, not push events, not error messages, not the process list.
func TestIntegrationSourceCredentialsStaySecret(t *testing.T) {
	root := t.TempDir()
	w := newWork(t)
	c1 := w.commit("first", map[string]string{"slipway.yaml": triggerSpec, "src/main.go": "package main"})
	w.git("clone", "-q", "--bare", w.dir, filepath.Join(root, "acme.git"))

	password := "pw-" + randomHex(t, 16)
	gs := newAuthGitServer(t, root, "ci-bot", password)
	srcURL := strings.Replace(gs.URL, "http://", "http://ci-bot:"+password+"@", 1) + "/acme.git"
	publicURL := gs.URL + "/acme.git"

	e := newEnv(t)
	e.createApp("hello")
	secret := "0123456789abcdef-webhook"
	noPassword := func(what, text string) {
		t.Helper()
		if strings.Contains(text, password) {
			t.Fatalf("%s holds the password: %s", what, text)
		}
		if strings.Contains(text, "ci-bot:") {
			t.Fatalf("%s holds the URL's userinfo: %s", what, text)
		}
	}

	// URLs that cannot be stored are refused without repeating the password.
	for _, bad := range []string{
		strings.Replace(gs.URL, "http://", "http://ci-bot:"+password+"@", 1) + ":notaport/acme.git",
		"ssh://git:" + password + "@example.com/acme.git",
		"http://ci-bot:" + password + "%0a@example.com/acme.git",
	} {
		code, body := e.call("PUT", "/api/v1/apps/hello/source", e.Admin, map[string]any{"url": bad})
		if code != http.StatusBadRequest || errorField(body, "field") != "url" {
			t.Fatalf("set-source %q: %d %v, want 400 on url", strings.ReplaceAll(bad, password, "<PASSWORD>"), code, body)
		}
		noPassword("the refusal", rawJSON(body))
	}

	code, body := e.call("PUT", "/api/v1/apps/hello/source", e.Admin, map[string]any{"url": srcURL, "webhook_secret": secret})
	if code != http.StatusOK {
		t.Fatalf("set-source: %d %v", code, body)
	}
	noPassword("the set-source answer", rawJSON(body))
	if body["source_url"] != publicURL || body["source_credentials_set"] != true {
		t.Fatalf("set-source answer: source_url %v, source_credentials_set %v; want %s, true", body["source_url"], body["source_credentials_set"], publicURL)
	}
	_, app := e.call("GET", "/api/v1/apps/hello", e.Admin, nil)
	noPassword("GET /api/v1/apps/hello", rawJSON(app))
	_, apps := e.call("GET", "/api/v1/apps", e.Admin, nil)
	noPassword("GET /api/v1/apps", rawJSON(apps))

	// The push is fetched with the credentials.
	zero := strings.Repeat("0", 40)
	p1 := githubPayload("refs/heads/main", zero, c1, []string{"slipway.yaml", "src/main.go"})
	code, body = e.deliver("hello", "push", "d-1", sign([]byte(secret), p1), p1)
	if code != http.StatusCreated || body["event"].(map[string]any)["outcome"] != "run" {
		t.Fatalf("push: %d %v", code, body)
	}
	noPassword("the delivery answer", rawJSON(body))

	// The source now refuses the stored password: the error says why and
	// where, without the password.
	gs.setPassword("pw-" + randomHex(t, 16))
	c2 := w.commit("second", map[string]string{"src/b.go": "package main"})
	w.git("push", "-q", filepath.Join(root, "acme.git"), "main")
	p2 := githubPayload("refs/heads/main", c1, c2, []string{"src/b.go"})
	code, body = e.deliver("hello", "push", "d-2", sign([]byte(secret), p2), p2)
	if code != http.StatusUnprocessableEntity || errorField(body, "code") != "fetch_failed" {
		t.Fatalf("push with a revoked password: %d %v", code, body)
	}
	noPassword("the fetch failure", rawJSON(body))
	if msg := errorField(body, "message"); !strings.Contains(msg, publicURL) {
		t.Fatalf("fetch failure %q does not name the source %s", msg, publicURL)
	}

	evs := e.events("hello")
	if len(evs) != 2 || evs[0]["outcome"] != "run" || evs[1]["outcome"] != "error" {
		t.Fatalf("events %v, want a run and an error", evs)
	}
	noPassword("the push events", rawJSON(evs))

	authed, leaks := gs.report()
	if authed == 0 {
		t.Fatal("git never sent the credentials")
	}
	if len(leaks) > 0 {
		t.Fatalf("the password was in the command line of a process while fetching:\n%s", strings.Join(leaks, "\n"))
	}

	// Setting the source without credentials clears them.
	code, body = e.call("PUT", "/api/v1/apps/hello/source", e.Admin, map[string]any{"url": publicURL})
	if code != http.StatusOK || body["source_url"] != publicURL || body["source_credentials_set"] == true {
		t.Fatalf("set-source without credentials: %d %v", code, body)
	}
}
