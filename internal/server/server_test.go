package server

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/slipway-dev/slipway/internal/auth"
	"github.com/slipway-dev/slipway/internal/store"
)

// publicRoutes are the only routes allowed without a token. A new route that
// forgets its role shows up here as a failure, not as an open door.
var publicRoutes = map[string]bool{
	"GET /healthz":             true,
	"POST /hooks/github/{app}": true, // authenticated by the HMAC signature instead
	"GET /signin":              true, // the sign-in form
	"POST /signin":             true, // checks the token it is given (and a double-submit CSRF cookie)
	"GET /static/":             true, // the UI's embedded CSS and JavaScript
}

// readOnlyPosts are the non-GET routes a viewer may call because they only read.
var readOnlyPosts = map[string]bool{
	"POST /git/{repo}/git-upload-pack": true, // fetch/clone negotiation
}

var wildcard = regexp.MustCompile(`\{([a-z]+)\.*\}`)

func samplePath(pattern string) string {
	pattern = strings.ReplaceAll(pattern, "{$}", "")
	return wildcard.ReplaceAllStringFunc(pattern, func(w string) string {
		switch w {
		case "{repo}":
			return "hello.git"
		case "{id}":
			return "1"
		}
		return "hello"
	})
}

func TestAuthMatrixCoversEveryRoute(t *testing.T) {
	e := newEnv(t)
	e.createApp("hello")
	viewer := e.token("matrix-viewer", "viewer")
	revoked := e.token("matrix-revoked", "admin")
	if code, _ := e.call("DELETE", "/api/v1/tokens/matrix-revoked", e.Admin, nil); code != http.StatusOK {
		t.Fatalf("revoke: %d", code)
	}
	routes := e.srv.Routes()
	if len(routes) < 10 {
		t.Fatalf("only %d routes enumerated", len(routes))
	}
	viewerUI, _ := e.signin(viewer)
	adminUI, _ := e.signin(e.Admin)
	anonUI, _ := e.signin("")
	for _, rt := range routes {
		key := rt.Method + " " + rt.Pattern
		if rt.Role == auth.Public {
			if !publicRoutes[key] {
				t.Errorf("%s needs no credentials; give it a role or add it to publicRoutes with a reason", key)
			}
			continue
		}
		if rt.Method != "GET" && rt.Role <= auth.Viewer && !readOnlyPosts[key] && key != "POST /signout" {
			t.Errorf("%s changes state but a viewer may call it; viewers only read", key)
		}
		if rt.Session {
			checkSessionRoute(t, e, rt, anonUI, viewerUI, adminUI)
			continue
		}
		path := samplePath(rt.Pattern)
		if strings.HasSuffix(path, "/info/refs") {
			path += "?service=git-upload-pack"
		}
		cases := []struct {
			name  string
			token string
			basic bool
			want  int
		}{
			{"no token", "", false, http.StatusUnauthorized},
			{"bad token", "slw_not-a-real-token", false, http.StatusUnauthorized},
			{"bad token as basic auth", "slw_not-a-real-token", true, http.StatusUnauthorized},
			{"revoked token", revoked, false, http.StatusUnauthorized},
		}
		if rt.Role > auth.Viewer {
			cases = append(cases, struct {
				name  string
				token string
				basic bool
				want  int
			}{"viewer on write route", viewer, rt.Basic, http.StatusForbidden})
		}
		for _, c := range cases {
			req, _ := http.NewRequest(rt.Method, e.URL+path, strings.NewReader("{}"))
			if c.token != "" {
				if c.basic {
					req.SetBasicAuth("anyone", c.token)
				} else {
					req.Header.Set("Authorization", "Bearer "+c.token)
				}
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != c.want {
				t.Errorf("%s (%s): got %d, want %d", key, c.name, resp.StatusCode, c.want)
			}
			if c.want == http.StatusUnauthorized {
				wantScheme := "Bearer"
				if rt.Basic {
					wantScheme = "Basic"
				}
				if h := resp.Header.Get("WWW-Authenticate"); !strings.HasPrefix(h, wantScheme) {
					t.Errorf("%s (%s): WWW-Authenticate %q, want %s challenge", key, c.name, h, wantScheme)
				}
			}
			if resp.Header.Get("X-Request-Id") == "" {
				t.Errorf("%s (%s): no X-Request-Id", key, c.name)
			}
		}
	}
}

// checkSessionRoute: without a session a browser is sent to sign in (pages)
// or refused (forms, live streams), a Bearer token does not stand in for a
// session, a viewer session may not use write forms, and no form passes
// without the session's CSRF token.
func checkSessionRoute(t *testing.T, e *testEnv, rt Route, anon, viewer, admin *http.Client) {
	t.Helper()
	key := rt.Method + " " + rt.Pattern
	path := samplePath(rt.Pattern)
	do := func(c *http.Client, bearer string) *http.Response {
		req, _ := http.NewRequest(rt.Method, e.URL+path, strings.NewReader("csrf=wrong"))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if bearer != "" {
			req.Header.Set("Authorization", "Bearer "+bearer)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	wantAnon := http.StatusForbidden
	if rt.Method == "GET" && !strings.HasPrefix(rt.Pattern, "/ui/") {
		wantAnon = http.StatusSeeOther
	}
	for _, bearer := range []string{"", e.Admin} {
		resp := do(anon, bearer)
		if resp.StatusCode != wantAnon || (wantAnon == http.StatusSeeOther && !strings.HasPrefix(resp.Header.Get("Location"), "/signin")) {
			t.Errorf("%s without a session (bearer %v): %d %s, want %d", key, bearer != "", resp.StatusCode, resp.Header.Get("Location"), wantAnon)
		}
	}
	if rt.Role > auth.Viewer {
		if resp := do(viewer, ""); resp.StatusCode != http.StatusForbidden {
			t.Errorf("%s (viewer session): %d, want 403", key, resp.StatusCode)
		}
	}
	if rt.Method != "GET" {
		if resp := do(admin, ""); resp.StatusCode != http.StatusForbidden {
			t.Errorf("%s (admin session, wrong CSRF token): %d, want 403", key, resp.StatusCode)
		}
	}
}

func TestTokenLifecycle(t *testing.T) {
	e := newEnv(t)
	dep := e.token("ci", "deployer")
	if !strings.HasPrefix(dep, "slw_") {
		t.Fatalf("token %q lacks prefix", dep)
	}
	code, who := e.call("GET", "/api/v1/whoami", dep, nil)
	if code != 200 || who["role"] != "deployer" || who["name"] != "ci" {
		t.Fatalf("whoami: %d %v", code, who)
	}
	// A deployer is not an admin.
	if code, _ := e.call("POST", "/api/v1/tokens", dep, map[string]string{"name": "x", "role": "admin"}); code != http.StatusForbidden {
		t.Fatalf("deployer created a token: %d", code)
	}
	// Duplicate names and unknown roles are refused with the field named.
	code, body := e.call("POST", "/api/v1/tokens", e.Admin, map[string]string{"name": "ci", "role": "viewer"})
	if code != http.StatusConflict {
		t.Fatalf("duplicate name: %d %v", code, body)
	}
	code, body = e.call("POST", "/api/v1/tokens", e.Admin, map[string]string{"name": "y", "role": "root"})
	if code != http.StatusBadRequest || errorField(body, "field") != "role" {
		t.Fatalf("bad role: %d %v", code, body)
	}
	// The list never shows secrets.
	code, list := e.call("GET", "/api/v1/tokens", e.Admin, nil)
	if code != 200 || len(list["items"].([]any)) != 3 { // admin, system:pipeline, ci
		t.Fatalf("list: %d %v", code, list)
	}
	if strings.Contains(fmt.Sprint(list), dep) {
		t.Fatal("token list leaks a secret")
	}
	if code, _ := e.call("DELETE", "/api/v1/tokens/ci", e.Admin, nil); code != 200 {
		t.Fatalf("revoke: %d", code)
	}
	code, body = e.call("GET", "/api/v1/whoami", dep, nil)
	if code != http.StatusUnauthorized || !strings.Contains(errorField(body, "message"), "revoked") {
		t.Fatalf("revoked token still works: %d %v", code, body)
	}
	if code, _ := e.call("DELETE", "/api/v1/tokens/nope", e.Admin, nil); code != http.StatusNotFound {
		t.Fatalf("revoke unknown: %d", code)
	}
}

func TestBadInput(t *testing.T) {
	e := newEnv(t)
	cases := []struct {
		name, method, path string
		body               any
		wantCode           int
		wantField          string
		wantMsg            string
	}{
		{"unknown route", "GET", "/api/v1/nothing", nil, 404, "", "no route"},
		{"wrong method", "PATCH", "/api/v1/apps", nil, 405, "", "use GET or POST"},
		{"malformed JSON", "POST", "/api/v1/apps", `{"name": `, 400, "", "malformed JSON"},
		{"syntax error", "POST", "/api/v1/apps", `{"name" "x"}`, 400, "", "malformed JSON at byte"},
		{"empty body", "POST", "/api/v1/apps", "", 400, "", "empty"},
		{"unknown field", "POST", "/api/v1/apps", `{"nmae": "x"}`, 400, "nmae", "unknown field"},
		{"unknown nested field", "POST", "/api/v1/apps/any/envs/staging/services/web/deployments",
			`{"task_definition": "web:1", "settings": {"alarms": [{"metric": "p99_ms", "threshold": 100, "windw": "1m"}]}}`,
			400, "settings.alarms[0].windw", "unknown field \"settings.alarms[0].windw\""},
		{"wrong type", "POST", "/api/v1/apps", `{"name": 5}`, 400, "name", "must be a JSON string"},
		{"wrong type in an array", "POST", "/api/v1/apps/any/envs/staging/services/web/deployments",
			`{"task_definition": "web:1", "settings": {"alarms": [{"metric": "p99_ms", "threshold": 100}, {"metric": "error_rate", "threshold": "0.1"}]}}`,
			400, "settings.alarms[1].threshold", "must be a JSON number"},
		{"oversized body", "POST", "/api/v1/apps", `{"name": "` + strings.Repeat("a", 2<<20) + `"}`, 413, "", "limit"},
		{"bad app name", "POST", "/api/v1/apps", `{"name": "Hello_World"}`, 400, "name", "^[a-z0-9][a-z0-9-]{0,62}$"},
		{"bad run id", "GET", "/api/v1/runs/abc", nil, 400, "id", "positive number"},
		{"unknown run", "GET", "/api/v1/runs/99", nil, 404, "", "run 99"},
		{"bad limit", "GET", "/api/v1/runs?limit=0", nil, 400, "limit", "1 to 500"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, body := e.call(c.method, c.path, e.Admin, c.body)
			if code != c.wantCode {
				t.Fatalf("status %d, want %d: %v", code, c.wantCode, body)
			}
			if got := errorField(body, "field"); got != c.wantField {
				t.Errorf("field %q, want %q", got, c.wantField)
			}
			if msg := errorField(body, "message"); !strings.Contains(msg, c.wantMsg) {
				t.Errorf("message %q does not contain %q", msg, c.wantMsg)
			}
			if errorField(body, "code") == "" {
				t.Errorf("no error code in %v", body)
			}
		})
	}
}

func TestPanicBecomes500WithRequestID(t *testing.T) {
	e := newEnv(t)
	h := e.srv.observe(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic("boom") }))
	hs := httptestServer(t, h)
	resp, err := http.Get(hs + "/x")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	id := resp.Header.Get("X-Request-Id")
	buf := make([]byte, 512)
	n, _ := resp.Body.Read(buf)
	if resp.StatusCode != 500 || id == "" || !strings.Contains(string(buf[:n]), id) {
		t.Fatalf("got %d id=%q body=%s", resp.StatusCode, id, buf[:n])
	}
}

func httptestServer(t *testing.T, h http.Handler) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: h}
	go hs.Serve(ln)
	t.Cleanup(func() { hs.Close() })
	return "http://" + ln.Addr().String()
}

func TestDataSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	e := newEnvAt(t, dir)
	admin := e.Admin
	dep := e.token("ci", "deployer")
	e.createApp("hello")
	e.stop()

	e2 := newEnvAt(t, dir)
	if e2.Admin != admin {
		t.Fatal("restart replaced the admin token")
	}
	code, who := e2.call("GET", "/api/v1/whoami", dep, nil)
	if code != 200 || who["name"] != "ci" {
		t.Fatalf("token lost across restart: %d %v", code, who)
	}
	if code, _ := e2.call("GET", "/api/v1/apps/hello", admin, nil); code != 200 {
		t.Fatalf("app lost across restart: %d", code)
	}
	_, list := e2.call("GET", "/api/v1/tokens", admin, nil)
	if n := len(list["items"].([]any)); n != 3 {
		t.Fatalf("%d tokens after restart, want 3 (admin, ci and one pipeline token: no second admin)", n)
	}
	st, err := os.Stat(filepath.Join(dir, AdminTokenFile))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("admin token file mode: %v %v", st.Mode(), err)
	}
}

// A second server on a data directory in use is refused before it touches
// anything, naming the one that runs; once that one stops, it may start.
func TestASecondServerOnOneDataDirectoryIsRefused(t *testing.T) {
	dir := t.TempDir()
	e := newEnvAt(t, dir)
	before, err := os.ReadFile(filepath.Join(dir, AdminTokenFile))
	if err != nil {
		t.Fatal(err)
	}
	_, err = New(context.Background(), Config{DataDir: dir, Log: quietLog()})
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("another slipway server (process %d) uses the data directory %s", os.Getpid(), dir)) {
		t.Fatalf("second server on %s: %v", dir, err)
	}
	if code, _ := e.call("GET", "/api/v1/whoami", e.Admin, nil); code != 200 {
		t.Fatalf("the first server after the refusal: %d", code)
	}
	e.stop()
	e2 := newEnvAt(t, dir)
	if e2.Admin != strings.TrimSpace(string(before)) {
		t.Fatal("the admin token changed")
	}
}

func TestConcurrentWritersLeaveConsistentStore(t *testing.T) {
	e := newEnv(t)
	const writers = 50
	var wg sync.WaitGroup
	errs := make(chan string, writers*2)
	for i := 0; i < writers; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			if code, body := e.call("POST", "/api/v1/apps", e.Admin, map[string]string{"name": fmt.Sprintf("app-%d", i)}); code != 201 {
				errs <- fmt.Sprintf("app %d: %d %v", i, code, body)
			}
			if code, body := e.call("POST", "/api/v1/tokens", e.Admin, map[string]string{"name": fmt.Sprintf("tok-%d", i), "role": "viewer"}); code != 201 {
				errs <- fmt.Sprintf("token %d: %d %v", i, code, body)
			}
		}(i)
	}
	wg.Wait()
	close(errs)
	for msg := range errs {
		t.Error(msg)
	}
	_, apps := e.call("GET", "/api/v1/apps", e.Admin, nil)
	if n := len(apps["items"].([]any)); n != writers {
		t.Fatalf("%d apps, want %d", n, writers)
	}
	for _, a := range apps["items"].([]any) {
		if envs := a.(map[string]any)["environments"].([]any); len(envs) != 2 {
			t.Fatalf("app %v has environments %v", a.(map[string]any)["name"], envs)
		}
	}
	_, toks := e.call("GET", "/api/v1/tokens", e.Admin, nil)
	if n := len(toks["items"].([]any)); n != writers+2 { // plus admin and system:pipeline
		t.Fatalf("%d tokens, want %d", n, writers+2)
	}
}

func TestGracefulShutdownFinishesInFlightRequests(t *testing.T) {
	srv, err := New(context.Background(), Config{DataDir: t.TempDir(), Log: quietLog(), ShutdownGrace: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	inner := srv.handler
	started := make(chan struct{})
	srv.handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			close(started)
			time.Sleep(500 * time.Millisecond)
			w.Write([]byte("finished"))
			return
		}
		inner.ServeHTTP(w, r)
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	result := make(chan string, 1)
	go func() {
		resp, err := http.Get("http://" + ln.Addr().String() + "/slow")
		if err != nil {
			result <- "error: " + err.Error()
			return
		}
		defer resp.Body.Close()
		b := make([]byte, 64)
		n, _ := resp.Body.Read(b)
		result <- string(b[:n])
	}()
	<-started
	cancel() // as SIGTERM does in `slipway server`
	if got := <-result; got != "finished" {
		t.Fatalf("in-flight request got %q", got)
	}
	if err := <-done; err != nil {
		t.Fatalf("serve: %v", err)
	}
	if _, err := http.Get("http://" + ln.Addr().String() + "/healthz"); err == nil {
		t.Fatal("server still accepts requests after shutdown")
	}
}

func TestMetricsCountRequestsByRoute(t *testing.T) {
	e := newEnv(t)
	e.call("GET", "/api/v1/apps", e.Admin, nil)
	e.call("GET", "/api/v1/apps", "", nil)
	text := e.metrics()
	for _, want := range []string{
		`slipway_http_requests_total{code="200",method="GET",route="GET /api/v1/apps"} 1`,
		`slipway_http_requests_total{code="401",method="GET",route="GET /api/v1/apps"} 1`,
		"process_resident_memory_bytes",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

func TestUISessionLifecycle(t *testing.T) {
	e := newEnv(t)
	viewer := e.token("ui-viewer", "viewer")
	get := func(c *http.Client, path string) (int, string) {
		resp, err := c.Get(e.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode, resp.Header.Get("Location")
	}
	c, _ := e.signin(viewer)
	if code, _ := get(c, "/apps"); code != http.StatusOK {
		t.Fatalf("signed in: %d", code)
	}
	// Revoking the token ends its sessions.
	if code, _ := e.call("DELETE", "/api/v1/tokens/ui-viewer", e.Admin, nil); code != http.StatusOK {
		t.Fatalf("revoke: %d", code)
	}
	if code, loc := get(c, "/apps"); code != http.StatusSeeOther || !strings.HasPrefix(loc, "/signin") {
		t.Fatalf("after the token was revoked: %d %s", code, loc)
	}
	// Signing out ends the session; a forged next= never leaves the site.
	c, csrf := e.signin(e.Admin)
	resp, err := c.PostForm(e.URL+"/signout", url.Values{"csrf": {csrf}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if code, loc := get(c, "/apps"); resp.StatusCode != http.StatusSeeOther || code != http.StatusSeeOther || !strings.HasPrefix(loc, "/signin") {
		t.Fatalf("after sign-out: %d, then %d %s", resp.StatusCode, code, loc)
	}
	for _, next := range []string{"//evil.example/x", "https://evil.example/", "/\\evil.example"} {
		page, err := c.Get(e.URL + "/signin")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(page.Body)
		page.Body.Close()
		form := csrfField.FindStringSubmatch(string(body))
		resp, err := c.PostForm(e.URL+"/signin", url.Values{"csrf": {form[1]}, "token": {e.Admin}, "next": {next}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if loc := resp.Header.Get("Location"); loc != "/apps" {
			t.Fatalf("next=%q redirected to %q", next, loc)
		}
	}
	// A sign-in form without its cookie's CSRF token is refused.
	fresh, _ := e.signin("")
	resp, err = fresh.PostForm(e.URL+"/signin", url.Values{"csrf": {"forged"}, "token": {e.Admin}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if loc := resp.Header.Get("Location"); !strings.HasPrefix(loc, "/signin") {
		t.Fatalf("forged sign-in went to %q", loc)
	}
}

// The apps page shows each app's newest run, whichever order the runs of
// different apps were created in, and "none yet" for an app without runs.
func TestUIAppsShowNewestRunPerApp(t *testing.T) {
	e := newEnv(t)
	for _, app := range []string{"alpha", "beta", "gamma"} {
		e.createApp(app)
	}
	ctx := context.Background()
	newest := map[string]int64{}
	for _, app := range []string{"alpha", "beta", "alpha", "beta", "alpha"} {
		// Ended runs, so the engine leaves them alone.
		r, err := e.srv.db.CreateRun(ctx, store.Run{App: app, State: "succeeded", Trigger: "manual", Ref: "refs/heads/main", Commit: strings.Repeat("a", 40)})
		if err != nil {
			t.Fatal(err)
		}
		newest[app] = r.ID
	}
	c, _ := e.signin(e.Admin)
	resp, err := c.Get(e.URL + "/apps")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /apps: %d", resp.StatusCode)
	}
	cards := map[string]string{}
	for _, part := range strings.Split(string(body), `<h2 id="app-`)[1:] {
		name, _, _ := strings.Cut(part, `"`)
		cards[name] = part
	}
	for app, id := range newest {
		lastRun := regexp.MustCompile(`Last run:\s*<a href="/runs/(\d+)"`).FindStringSubmatch(cards[app])
		if lastRun == nil || lastRun[1] != fmt.Sprint(id) {
			t.Errorf("%s: last run %v, want #%d", app, lastRun, id)
		}
	}
	if !strings.Contains(cards["gamma"], "none yet") {
		t.Errorf("gamma has no runs but its card says: %.200s", cards["gamma"])
	}
}

// The deployment page says which side the test listener reaches by the
// task set the deployment started, which a redeployment of the running
// revision has on both sides under the same revision.
func TestUIDeploymentNamesTheTestListenersSide(t *testing.T) {
	e := newEnv(t)
	e.createApp("shop")
	ctx := context.Background()
	cases := []struct {
		name     string
		from, to int
		sets     []store.TaskSet
		test     string
		want     string
	}{
		{"green on test", 3, 4, []store.TaskSet{{Group: "tg1", Family: "web", Revision: 3}, {Group: "tg2", Family: "web", Revision: 4}}, "tg2", "green"},
		{"blue on test", 3, 4, []store.TaskSet{{Group: "tg1", Family: "web", Revision: 3}, {Group: "tg2", Family: "web", Revision: 4}}, "tg1", "blue"},
		{"same revision, blue on test", 3, 3, []store.TaskSet{{Group: "tg1", Family: "web", Revision: 3}, {Group: "tg2", Family: "web", Revision: 3, Generation: -1}}, "tg1", "blue"},
		{"same revision, green on test", 3, 3, []store.TaskSet{{Group: "tg1", Family: "web", Revision: 3}, {Group: "tg2", Family: "web", Revision: 3, Generation: -1}}, "tg2", "green"},
	}
	for n, c := range cases {
		// A service each: a service has one deployment in progress at most.
		name := fmt.Sprintf("web%d", n)
		if _, err := e.srv.db.CreateService(ctx, store.Service{App: "shop", Env: "staging", Name: name, Family: "web", Revision: 3}); err != nil {
			t.Fatal(err)
		}
		d, err := e.srv.db.CreateDeployment(ctx, store.Deployment{App: "shop", Env: "staging", Service: name, Strategy: "blue-green", Config: "CodeDeployDefault.ECSAllAtOnce",
			FromFamily: "web", FromRevision: c.from, ToFamily: "web", ToRevision: c.to, Phase: "AllowTestTraffic", State: store.DeployInProgress})
		if err != nil {
			t.Fatal(err)
		}
		for i := range c.sets {
			if c.sets[i].Generation == -1 {
				c.sets[i].Generation = d.ID // the set this deployment started
			}
		}
		svc := store.Service{App: "shop", Env: "staging", Name: name, Family: "web", Revision: 3,
			Layout: &store.Layout{Sets: c.sets, Prod: []store.Weight{{Group: "tg1", Weight: 100}}, Test: c.test}}
		if _, err := e.srv.db.UpdateService(ctx, svc); err != nil {
			t.Fatal(err)
		}
		v, err := e.srv.deploymentView(ctx, d.ID)
		if err != nil || v.TestColor != c.want {
			t.Errorf("%s: test listener → %q, %v; want %q", c.name, v.TestColor, err, c.want)
		}
	}
}

// "Replace tasks" on a service page redeploys the running revision; a
// viewer sees no button and may not post the form. The service has 0
// tasks, so the engine does no work.
func TestUIReplaceTasks(t *testing.T) {
	e := newEnv(t)
	e.createApp("shop")
	rev := e.registerTaskDef(`{"family": "shop-web", "containerDefinitions": [{"name": "web", "image": "127.0.0.1:1/shop:1"}]}`)
	if code, body := e.call("POST", "/api/v1/apps/shop/envs/staging/services", e.Admin, map[string]any{"name": "web", "task_definition": fmt.Sprintf("shop-web:%d", rev), "desired_count": 0}); code != 201 {
		t.Fatalf("service: %d %v", code, body)
	}
	page := func(c *http.Client) string {
		resp, err := c.Get(e.URL + "/services/shop/staging/web")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return string(b)
	}
	post := func(c *http.Client, csrf, service string) *http.Response {
		resp, err := c.PostForm(e.URL+"/services/shop/staging/"+service+"/replace-tasks", url.Values{"csrf": {csrf}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	viewer, viewerCSRF := e.signin(e.token("v", "viewer"))
	if strings.Contains(page(viewer), "Replace tasks") {
		t.Fatal("a viewer is offered Replace tasks")
	}
	if resp := post(viewer, viewerCSRF, "web"); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("a viewer's post: %d", resp.StatusCode)
	}
	admin, csrf := e.signin(e.Admin)
	if !strings.Contains(page(admin), "Replace tasks") {
		t.Fatal("no Replace tasks button for an admin")
	}
	if resp := post(admin, csrf, "nothing"); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("an unknown service: %d", resp.StatusCode)
	}
	resp := post(admin, csrf, "web")
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusSeeOther || loc != "/deployments/2" || !strings.Contains(flashOf(t, resp).Msg, "replaces the tasks") {
		t.Fatalf("replace tasks (deployment 1 was the service's first rollout): %d %s", resp.StatusCode, loc)
	}
	d := e.waitDeployment(2, "COMPLETED", 20*time.Second)
	if d["strategy"] != "rolling" || d["from_revision"] != float64(rev) || d["to_revision"] != float64(rev) || d["created_by"] != "admin" {
		t.Fatalf("deployment: %v", d)
	}
	// While another deployment runs, the page says so and nothing starts.
	running, err := e.srv.db.CreateDeployment(context.Background(), store.Deployment{App: "shop", Env: "staging", Service: "web", Strategy: "rolling",
		Config: "CodeDeployDefault.ECSAllAtOnce", FromFamily: "shop-web", FromRevision: rev, ToFamily: "shop-web", ToRevision: rev, Phase: "Rolling"})
	if err != nil {
		t.Fatal(err)
	}
	// Nor can the service be scaled: the deployment sized its sets already.
	if code, body := e.call("PATCH", "/api/v1/apps/shop/envs/staging/services/web", e.Admin, map[string]any{"desired_count": 3}); code != 409 || !strings.Contains(errorField(body, "message"), fmt.Sprintf("deployment %d of service web is still in progress", running.ID)) {
		t.Fatalf("scale while deployment %d runs: %d %v", running.ID, code, body)
	}
	resp = post(admin, csrf, "web")
	loc = resp.Header.Get("Location")
	if resp.StatusCode != http.StatusSeeOther || loc != "/services/shop/staging/web" || !strings.Contains(flashOf(t, resp).Err, fmt.Sprintf("deployment %d of service web is still in progress", running.ID)) {
		t.Fatalf("replace tasks while deployment %d runs: %d %s", running.ID, resp.StatusCode, loc)
	}
}

// A service event repeated word for word is one line on the service page,
// with how many times and when last, and count and last_at in the API; the
// message stays escaped. The service has 0 tasks, so nothing more is said
// after its steady state and its first rollout's end, in either order.
func TestRepeatedServiceEventsShowTheirCount(t *testing.T) {
	e := newEnv(t)
	e.createApp("shop")
	rev := e.registerTaskDef(`{"family": "shop-web", "containerDefinitions": [{"name": "web", "image": "127.0.0.1:1/shop:1"}]}`)
	if code, body := e.call("POST", "/api/v1/apps/shop/envs/staging/services", e.Admin, map[string]any{"name": "web", "task_definition": fmt.Sprintf("shop-web:%d", rev), "desired_count": 0}); code != 201 {
		t.Fatalf("service: %d %v", code, body)
	}
	ctx := context.Background()
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		evs, err := e.srv.db.ListServiceEvents(ctx, "shop", "staging", "web", 10)
		var steady, completed bool
		for _, ev := range evs {
			steady = steady || strings.HasSuffix(ev.Message, "has reached a steady state")
			completed = completed || strings.Contains(ev.Message, "rollout COMPLETED")
		}
		if steady && completed {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the first rollout did not settle: %+v %v", evs, err)
		}
	}
	const msg = `(service web) unable to start a task: image <b>"x"</b> not found`
	for range 3 {
		if err := e.srv.db.AddServiceEvent(ctx, "shop", "staging", "web", msg); err != nil {
			t.Fatal(err)
		}
	}
	evs, _ := e.srv.db.ListServiceEvents(ctx, "shop", "staging", "web", 1)

	viewer, _ := e.signin(e.token("v", "viewer"))
	resp, err := viewer.Get(e.URL + "/services/shop/staging/web")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	page := string(b)
	last := evs[0].LastAt.UTC()
	want := `(service web) unable to start a task: image &lt;b&gt;&#34;x&#34;&lt;/b&gt; not found <span class="repeats">×3, last <time datetime="` + last.Format(time.RFC3339) + `" title="` + last.Format("2006-01-02 15:04:05 UTC") + `" data-rel>` + last.Format("2006-01-02 15:04:05 UTC") + `</time></span>`
	if !strings.Contains(page, want) {
		t.Fatalf("the page lacks %q:\n%s", want, page)
	}
	if n := strings.Count(page, `class="repeats"`); n != 1 { // the other events happened once
		t.Fatalf("%d events with a count on the page:\n%s", n, page)
	}

	code, body := e.call("GET", "/api/v1/apps/shop/envs/staging/services/web", e.Admin, nil)
	events, _ := body["events"].([]any)
	if code != 200 || len(events) < 2 {
		t.Fatalf("service detail: %d %v", code, body)
	}
	newest, _ := events[0].(map[string]any)
	if newest["message"] != msg || newest["count"] != float64(3) || newest["last_at"] != evs[0].LastAt.Format(time.RFC3339Nano) || newest["at"] == newest["last_at"] {
		t.Fatalf("the repeated event: %v", newest)
	}
	if once, _ := events[1].(map[string]any); once["count"] != float64(1) || once["last_at"] != once["at"] {
		t.Fatalf("an event that happened once: %v", once)
	}
}

// A service, or its app, cannot be deleted while one of its deployments
// runs: the deployment would be left in progress for ever, and a service
// made again under the name could never deploy. An app's unfinished runs
// hold it too.
func TestDeleteRefusedWhileADeploymentRuns(t *testing.T) {
	e := newEnv(t)
	e.createApp("shop")
	ctx := context.Background()
	if _, err := e.srv.db.CreateService(ctx, store.Service{App: "shop", Env: "staging", Name: "web", Family: "web", Revision: 1}); err != nil {
		t.Fatal(err)
	}
	d, err := e.srv.db.CreateDeployment(ctx, store.Deployment{App: "shop", Env: "staging", Service: "web", Strategy: "rolling", Config: "CodeDeployDefault.ECSAllAtOnce",
		FromFamily: "web", FromRevision: 1, ToFamily: "web", ToRevision: 2, Phase: "Rolling"})
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/api/v1/apps/shop/envs/staging/services/web", "/api/v1/apps/shop"} {
		code, body := e.call("DELETE", path, e.Admin, nil)
		if msg := errorField(body, "message"); code != 409 || !strings.Contains(msg, fmt.Sprintf("deployment %d of service web is still in progress", d.ID)) || !strings.Contains(msg, "slipway deploy stop") {
			t.Fatalf("DELETE %s while deployment %d runs: %d %v", path, d.ID, code, body)
		}
	}
	d.State = store.DeployRolledBack
	if err := e.srv.db.UpdateDeployment(ctx, d, "rolled back"); err != nil {
		t.Fatal(err)
	}
	// Nor can an app with a run that has not ended.
	run, err := e.srv.db.CreateRun(ctx, store.Run{App: "shop", State: store.RunWaiting, Trigger: "manual", Ref: "refs/heads/main", Commit: strings.Repeat("a", 40)})
	if err != nil {
		t.Fatal(err)
	}
	// A state conflict is told as one: its code, and no "already exists" after it.
	if code, body := e.call("DELETE", "/api/v1/apps/shop", e.Admin, nil); code != 409 || errorField(body, "code") != "conflict" ||
		errorField(body, "message") != fmt.Sprintf("run %d of app shop is waiting; cancel it first (slipway run cancel %d)", run.ID, run.ID) {
		t.Fatalf("DELETE the app while run %d waits: %d %v", run.ID, code, body)
	}
	if err := e.srv.db.SetRunState(ctx, run.ID, store.RunCancelled, "cancelled"); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/api/v1/apps/shop/envs/staging/services/web", "/api/v1/apps/shop"} {
		if code, body := e.call("DELETE", path, e.Admin, nil); code != 204 && code != 200 {
			t.Fatalf("DELETE %s once the deployment ended: %d %v", path, code, body)
		}
	}
}

// A listener port another program holds is refused when the service is
// made, naming the field, rather than accepted and then failing the load
// balancer's routing table for every service.
func TestServiceOnAListenerPortInUseIsRefused(t *testing.T) {
	e := newEnv(t)
	e.createApp("shop")
	rev := e.registerTaskDef(webTaskDef("shop-web", "127.0.0.1:1/shop:1", "1"))
	held, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	port := held.Addr().(*net.TCPAddr).Port
	for _, field := range []string{"listener_port", "test_listener_port"} {
		lb := map[string]any{"container_name": "web", "container_port": 8080, "listener_port": freePort(t)}
		lb[field] = port
		code, body := e.call("POST", "/api/v1/apps/shop/envs/staging/services", e.Admin, map[string]any{"name": "web", "task_definition": fmt.Sprintf("shop-web:%d", rev), "desired_count": 0, "load_balancer": lb})
		if code != 400 || errorField(body, "field") != "load_balancer."+field || !strings.Contains(errorField(body, "message"), fmt.Sprintf("127.0.0.1:%d is in use by another program", port)) {
			t.Fatalf("%s on a port in use: %d %v", field, code, body)
		}
	}
	if code, _ := e.call("GET", "/api/v1/apps/shop/envs/staging/services/web", e.Admin, nil); code != 404 {
		t.Fatalf("the refused service exists: %d", code)
	}
}

// flashOf is the one-time message a form's answer carries to the page it
// redirects to (in a cookie, never in the URL).
func flashOf(t *testing.T, resp *http.Response) flash {
	t.Helper()
	for _, c := range resp.Cookies() {
		if c.Name == flashCookie {
			var f flash
			b, err := base64.RawURLEncoding.DecodeString(c.Value)
			if err != nil || json.Unmarshal(b, &f) != nil {
				t.Fatalf("flash cookie %q", c.Value)
			}
			return f
		}
	}
	return flash{}
}

// A link cannot make a page speak in Slipway's voice: messages in the URL
// are not shown; a form's outcome is shown once, from its cookie.
func TestFlashIsNotTakenFromTheURL(t *testing.T) {
	e := newEnv(t)
	admin, _ := e.signin(e.Admin)
	resp, err := admin.Get(e.URL + "/tokens?msg=Your+account+is+suspended%2C+call+555&err=Enter+your+token+at+evil.example")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || strings.Contains(string(body), "suspended") || strings.Contains(string(body), "evil.example") {
		t.Fatalf("a message from the URL was shown: %d\n%s", resp.StatusCode, body)
	}
}
