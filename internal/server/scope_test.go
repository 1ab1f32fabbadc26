package server

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/slipway-dev/slipway/internal/auth"
	"github.com/slipway-dev/slipway/internal/store"
)

// scopedLists are the list routes a token limited to one app may call only
// with that app's filter; without one they answer 400 naming it.
var scopedLists = map[string]bool{
	"GET /api/v1/runs": true, "GET /api/v1/deployments": true, "GET /api/v1/services": true,
	"GET /api/v1/secrets": true, "GET /api/v1/images": true, "GET /api/v1/images/policy": true,
}

// TestAuthMatrixScopedTokens sends every API, git and registry route for
// app hello (or hello's run) with a deployer token limited to another app,
// and with a registry-only token of hello itself (a build's): each is
// refused before its handler runs.
func TestAuthMatrixScopedTokens(t *testing.T) {
	e := newEnv(t)
	e.createApp("hello")
	e.createApp("other")
	e.pushPipeline("hello", "main", map[string]string{
		"slipway.yaml":  manualOnly + "stages:\n  - name: Build\n    actions:\n      - {name: one, type: invoke, command: \"true\"}\n",
		"buildspec.yml": "version: 0.2\nphases:\n  build:\n    commands: [\"true\"]\n",
	})
	e.waitRun(e.startRun("hello", "main"), 60*time.Second) // run 1 is hello's
	code, body := e.call("POST", "/api/v1/tokens", e.Admin, map[string]string{"name": "other-deployer", "role": "deployer", "app": "other"})
	if code != http.StatusCreated || body["app"] != "other" {
		t.Fatalf("create a scoped token: %d %v", code, body)
	}
	otherApp := body["token"].(string)
	plain, hash := auth.NewToken()
	if _, err := e.srv.db.CreateToken(context.Background(), store.Token{ID: auth.NewID("tok_"), Name: "system:build:hello:1:1",
		Role: "deployer", App: "hello", RegistryOnly: true}, hash); err != nil {
		t.Fatal(err)
	}
	buildToken := plain
	send := func(method, path, token string) int {
		req, _ := http.NewRequest(method, e.URL+path, strings.NewReader("{}"))
		req.SetBasicAuth("x", token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, rt := range e.srv.Routes() {
		key := rt.Method + " " + rt.Pattern
		if rt.Role == auth.Public || rt.Session || rt.Role == auth.Admin {
			continue // public routes take no token; sessions are refused at sign-in; admin routes by role
		}
		path := samplePath(rt.Pattern)
		if strings.HasPrefix(path, "/v2/") {
			path = "/v2/hello/tags/list"
		}
		want := http.StatusForbidden
		switch {
		case scopedLists[key]:
			want = http.StatusBadRequest
		case key == "GET /api/v1/whoami":
			want = http.StatusOK
		case strings.Contains(rt.Pattern, "/deployments/{id}"):
			want = http.StatusNotFound // no deployment 1: whose it would be cannot be told
		}
		if got := send(rt.Method, path, otherApp); got != want {
			t.Errorf("%s %s with a token limited to app other: %d, want %d", rt.Method, path, got, want)
		}
		if !strings.HasPrefix(rt.Pattern, "/v2/") {
			if got := send(rt.Method, path, buildToken); got != http.StatusForbidden {
				t.Errorf("%s %s with a registry-only token: %d, want 403", rt.Method, path, got)
			}
		}
	}
	// The scoped token does reach its own app, and lists filtered to it.
	e.createApp("mine")
	_, mine := e.call("POST", "/api/v1/tokens", e.Admin, map[string]string{"name": "mine-viewer", "role": "viewer", "app": "mine"})
	for _, c := range []struct {
		path string
		want int
	}{
		{"/api/v1/apps/mine", 200}, {"/api/v1/runs?app=mine", 200}, {"/api/v1/runs?app=hello", 403},
		{"/api/v1/runs/1", 403}, {"/api/v1/apps", 403}, {"/api/v1/images?repository=mine/api", 200},
		{"/git/mine.git/info/refs?service=git-upload-pack", 200}, {"/v2/mine/tags/list", 404},
	} {
		if got := send("GET", c.path, mine["token"].(string)); got != c.want {
			t.Errorf("GET %s with a token limited to app mine: %d, want %d", c.path, got, c.want)
		}
	}
	// A deployer limited to hello's staging deploys there and reads the
	// app, but changes nothing that reaches production.
	code, body = e.call("POST", "/api/v1/tokens", e.Admin, map[string]string{"name": "hello-staging", "role": "deployer", "app": "hello", "env": "staging"})
	if code != http.StatusCreated || body["env"] != "staging" {
		t.Fatalf("create an environment token: %d %v", code, body)
	}
	staging := body["token"].(string)
	for _, c := range []struct {
		method, path string
		want         int
	}{
		{"POST", "/api/v1/apps/hello/envs/production/services", 403},
		{"POST", "/api/v1/apps/hello/envs/staging/services", 400}, // past the scope: the body is refused
		{"GET", "/api/v1/apps/hello/envs/production/services/web", 403},
		{"GET", "/api/v1/apps/hello/envs/staging/services/web", 404},
		{"GET", "/api/v1/services?app=hello&env=production", 403},
		{"GET", "/api/v1/runs/1", 200},
		{"POST", "/api/v1/apps/hello/runs", 403},
		{"POST", "/api/v1/runs/1/approve", 403},
		{"POST", "/git/hello.git/git-receive-pack", 403},
		{"GET", "/git/hello.git/info/refs?service=git-upload-pack", 200},
		{"POST", "/v2/hello/blobs/uploads/", 403},
	} {
		if got := send(c.method, c.path, staging); got != c.want {
			t.Errorf("%s %s with a token limited to hello/staging: %d, want %d", c.method, c.path, got, c.want)
		}
	}
	for _, req := range []map[string]string{{"name": "e1", "role": "deployer", "env": "staging"}, {"name": "e2", "role": "deployer", "app": "hello", "env": "qa"}} {
		if code, body := e.call("POST", "/api/v1/tokens", e.Admin, req); code != 400 || errorField(body, "field") != "env" {
			t.Errorf("create token %v: %d %v, want 400 naming env", req, code, body)
		}
	}
	// The web console lists every app: a limited token cannot sign in.
	if c, _ := e.signinRefused(mine["token"].(string)); c != http.StatusSeeOther {
		t.Errorf("sign-in with a limited token: %d", c)
	}
	// Bad requests name the field: an admin token cannot be limited, an unknown app is refused.
	for _, req := range []map[string]string{{"name": "x1", "role": "admin", "app": "hello"}, {"name": "x2", "role": "viewer", "app": "nope"}} {
		if code, body := e.call("POST", "/api/v1/tokens", e.Admin, req); code != 400 || errorField(body, "field") != "app" {
			t.Errorf("create token %v: %d %v, want 400 naming app", req, code, body)
		}
	}
	if code, body := e.call("POST", "/api/v1/tokens", e.Admin, map[string]string{"name": "system:mine", "role": "viewer"}); code != 400 || errorField(body, "field") != "name" {
		t.Errorf("a token named system:…: %d %v, want 400 naming name", code, body)
	}
}

// signinRefused posts token to the sign-in form and returns the status and
// where it sends the browser, failing the test unless it is back to the form.
func (e *testEnv) signinRefused(token string) (int, string) {
	e.t.Helper()
	c, _ := e.signin("")
	resp, err := c.Get(e.URL + "/signin")
	if err != nil {
		e.t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := csrfField.FindStringSubmatch(string(b))
	if m == nil {
		e.t.Fatal("no CSRF field on /signin")
	}
	resp, err = c.PostForm(e.URL+"/signin", url.Values{"csrf": {m[1]}, "token": {token}})
	if err != nil {
		e.t.Fatal(err)
	}
	resp.Body.Close()
	loc := resp.Header.Get("Location")
	if !strings.HasPrefix(loc, "/signin") {
		e.t.Errorf("sign-in with %s… went to %q, want back to /signin", token[:8], loc)
	}
	return resp.StatusCode, loc
}
