package server

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"
)

// testEnv is a real server on a loopback port over a real SQLite file.
type testEnv struct {
	t     *testing.T
	srv   *Server
	http  *httptest.Server
	URL   string
	Admin string
}

func quietLog() *slog.Logger {
	if os.Getenv("SLIPWAY_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func newEnv(t *testing.T) *testEnv {
	t.Helper()
	return newEnvAt(t, t.TempDir())
}

func newEnvAt(t *testing.T, dir string) *testEnv {
	t.Helper()
	return newEnvWith(t, Config{DataDir: dir})
}

// newEnvWith starts an in-process server with cfg (a quiet log unless set).
func newEnvWith(t *testing.T, cfg Config) *testEnv {
	t.Helper()
	dir := cfg.DataDir
	if cfg.Log == nil {
		cfg.Log = quietLog()
	}
	srv, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatalf("start server: %v", err)
	}
	hs := httptest.NewServer(srv.Handler())
	srv.SetAddr(hs.Listener.Addr().String())
	e := &testEnv{t: t, srv: srv, http: hs, URL: hs.URL}
	t.Cleanup(e.stop)
	b, err := os.ReadFile(filepath.Join(dir, AdminTokenFile))
	if err != nil {
		t.Fatalf("read admin token: %v", err)
	}
	e.Admin = strings.TrimSpace(string(b))
	return e
}

func (e *testEnv) stop() {
	if e.http != nil {
		e.http.Close()
		e.srv.Close()
		e.http = nil
	}
}

// call sends a JSON request and returns the status and decoded body.
func (e *testEnv) call(method, path, token string, body any) (int, map[string]any) {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		buf, _ := json.Marshal(b)
		rd = bytes.NewReader(buf)
	}
	req, err := http.NewRequest(method, e.URL+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	out := map[string]any{}
	if len(raw) > 0 && raw[0] == '{' {
		if err := json.Unmarshal(raw, &out); err != nil {
			e.t.Fatalf("%s %s: response is not JSON: %s", method, path, raw)
		}
	} else if len(raw) > 0 && raw[0] == '[' {
		var list []any
		_ = json.Unmarshal(raw, &list)
		out["items"] = list
	}
	return resp.StatusCode, out
}

// token creates a token with the given role and returns its secret.
// deploymentTimeline lists the events of every deployment of app in time
// order, for a failure report that has to say what was going on when.
func (e *testEnv) deploymentTimeline(app string) string {
	e.t.Helper()
	req, _ := http.NewRequest("GET", e.URL+"/api/v1/deployments?app="+app, nil)
	req.Header.Set("Authorization", "Bearer "+e.Admin)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	var list []struct {
		ID int `json:"id"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&list)
	var lines []string
	for _, d := range list {
		_, detail := e.call("GET", fmt.Sprintf("/api/v1/deployments/%d", d.ID), e.Admin, nil)
		evs, _ := detail["events"].([]any)
		for _, ev := range evs {
			em := ev.(map[string]any)
			at, _ := time.Parse(time.RFC3339Nano, fmt.Sprint(em["at"]))
			lines = append(lines, fmt.Sprintf("%s deployment %d: %v", at.Local().Format("15:04:05.000"), d.ID, em["message"]))
		}
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// metrics is the /metrics page as an admin reads it.
func (e *testEnv) metrics() string {
	e.t.Helper()
	req, _ := http.NewRequest("GET", e.URL+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+e.Admin)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func (e *testEnv) token(name, role string) string {
	e.t.Helper()
	code, body := e.call("POST", "/api/v1/tokens", e.Admin, map[string]string{"name": name, "role": role})
	if code != http.StatusCreated {
		e.t.Fatalf("create token %s: %d %v", name, code, body)
	}
	return body["token"].(string)
}

func (e *testEnv) createApp(name string) {
	e.t.Helper()
	if code, body := e.call("POST", "/api/v1/apps", e.Admin, map[string]string{"name": name}); code != http.StatusCreated {
		e.t.Fatalf("create app %s: %d %v", name, code, body)
	}
}

// buildOnHost makes app's builds run on the host executor (an admin's
// choice), for tests of host processes and paths.
func (e *testEnv) buildOnHost(app string) {
	e.t.Helper()
	if code, body := e.call("PUT", "/api/v1/apps/"+app+"/build", e.Admin, map[string]string{"executor": "host"}); code != http.StatusOK {
		e.t.Fatalf("set %s's executor to host: %d %v", app, code, body)
	}
}

func errorField(body map[string]any, key string) string {
	e, _ := body["error"].(map[string]any)
	s, _ := e[key].(string)
	return s
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// Token is token() for tests that read better with an exported name.
func (e *testEnv) Token(name, role string) string { return e.token(name, role) }

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// signin signs in to the web UI with token ("" leaves the client signed
// out) and returns a client that keeps the session cookie and does not
// follow redirects, and the session's CSRF token.
func (e *testEnv) signin(token string) (*http.Client, string) {
	e.t.Helper()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	if token == "" {
		return c, ""
	}
	form := func(path string) string {
		resp, err := c.Get(e.URL + path)
		if err != nil {
			e.t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		m := csrfField.FindStringSubmatch(string(b))
		if m == nil {
			e.t.Fatalf("no CSRF field on %s (%d)", path, resp.StatusCode)
		}
		return m[1]
	}
	resp, err := c.PostForm(e.URL+"/signin", url.Values{"csrf": {form("/signin")}, "token": {token}})
	if err != nil {
		e.t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/apps" {
		e.t.Fatalf("sign in: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	return c, form("/apps")
}
