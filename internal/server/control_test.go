package server

import (
	"context"
	"database/sql"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/slipway-dev/slipway/internal/store"
	"github.com/slipway-dev/slipway/internal/testtool/pgtest"
)

// Review: a lone SQLite server (no other server can exist: the data
// directory's lock) now stops its control loops, killing the builds in
// progress, when its single write connection is held up for more than nine
// tenths of the lease TTL (10 s by default: a disk stall, a long write, a
// sqlite3 shell holding the write lock). Before the change nothing stopped.
func TestLoneSQLiteServerKeepsItsLoopsThroughAWriteStall(t *testing.T) {
	dir := t.TempDir()
	e := newEnvWith(t, Config{DataDir: dir, LeaseTTL: time.Second})
	if !e.srv.controlling() {
		t.Fatal("a lone SQLite server does not control after New")
	}
	other, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "slipway.db")+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	ctx := context.Background()
	conn, err := other.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		t.Fatal(err)
	}
	stopped := false
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		if !e.srv.controlling() {
			stopped = true
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := conn.ExecContext(ctx, "ROLLBACK"); err != nil {
		t.Fatal(err)
	}
	if stopped {
		t.Errorf("the lone SQLite server stopped its control loops (and killed its builds) during a %s write stall", 3*time.Second)
	}
}

type seen struct {
	mu   sync.Mutex
	reqs []*http.Request
}

func (s *seen) paths() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, r := range s.reqs {
		out = append(out, r.Method+" "+r.URL.RequestURI())
	}
	return out
}

// takeLease moves the control lease from e's server to a made-up server
// registered at url, and waits until e's server has stopped its loops.
func takeLease(t *testing.T, e *testEnv, id, url string) {
	t.Helper()
	ctx := context.Background()
	db := e.srv.db
	if _, err := db.RegisterServer(ctx, store.Server{ID: id, Host: "fake", URL: url, Version: "x"}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		for _, l := range mustLeases(t, db) {
			if l.Name == ControlLease && l.Holder != id {
				_ = db.ReleaseLease(ctx, ControlLease, l.Holder)
			}
		}
		if _, ok, err := db.AcquireLease(ctx, ControlLease, id, time.Minute); err == nil && ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("could not take the lease")
		}
	}
	e.srv.forgetController()
	for e.srv.controlling() {
		if time.Now().After(deadline) {
			t.Fatal("the server kept its loops")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func mustLeases(t *testing.T, db *store.DB) []store.Lease {
	ls, err := db.ListLeases(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return ls
}

func get(t *testing.T, url string, hdr map[string]string) (int, string, http.Header) {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }, Timeout: 10 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

// Review: what a server without the lease serves itself and what it passes
// on, for the path tricks; and what a 503 tells an unauthenticated client.
func TestStandbyForwarding(t *testing.T) {
	e := newEnvWith(t, Config{DataDir: t.TempDir(), DatabaseURL: pgtest.New(t), LeaseTTL: time.Second})
	rec := &seen{}
	holder := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec.mu.Lock()
		rec.reqs = append(rec.reqs, r.Clone(context.Background()))
		rec.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"forwarded":true}`)
	}))
	defer holder.Close()
	takeLease(t, e, "srv_fakeholder", holder.URL)

	auth := map[string]string{"Authorization": "Bearer " + e.Admin}
	cases := []struct {
		path    string
		forward bool
	}{
		{"/api/v1/tokens", true},
		{"/healthzX", true},
		{"/v2", true},
		{"//api/v1/tokens", true},
		{"/git/../api/v1/tokens", false},     // the local mux redirects to /api/v1/tokens
		{"/git/%2e%2e/api/v1/tokens", false}, // local 404
		{"/git%2F..%2Fapi/v1/tokens", false},
		{"/api/v1/status", false},
		{"/api/v1/status/../tokens", false},
	}
	for _, c := range cases {
		before := len(rec.paths())
		code, body, h := get(t, e.URL+c.path, auth)
		forwarded := len(rec.paths()) > before
		t.Logf("%-30s -> %d forwarded=%v loc=%q body=%.80s", c.path, code, forwarded, h.Get("Location"), strings.TrimSpace(body))
		if forwarded != c.forward {
			t.Errorf("%s: forwarded=%v, want %v", c.path, forwarded, c.forward)
		}
		if !c.forward && code == http.StatusOK && !strings.HasPrefix(c.path, "/api/v1/status") {
			t.Errorf("%s answered 200 locally: %s", c.path, body)
		}
	}
	for _, r := range rec.reqs {
		t.Logf("holder saw %s %s Authorization=%t Forwarded-By=%q XFF=%q Host=%q", r.Method, r.URL.RequestURI(), r.Header.Get("Authorization") != "", r.Header.Get(forwardedBy), r.Header.Get("X-Forwarded-For"), r.Host)
		if ok, _ := e.srv.forwarded(r); !ok {
			t.Errorf("the holder cannot tell %s was passed on by a server of this installation", r.URL.Path)
		}
	}

	// The fleet's gauges come only from the server running the loops.
	if _, body, _ := get(t, e.URL+"/metrics", nil); strings.Contains(body, "slipway_service_desired_tasks") {
		t.Errorf("a standby exports fleet gauges:\n%.400s", body)
	}

	// A spoofed X-Slipway-Forwarded-By is reflected in the 503.
	code, body, _ := get(t, e.URL+"/api/v1/apps", map[string]string{forwardedBy: "<script>x</script>"})
	t.Logf("spoofed forwarded-by -> %d %s", code, body)

	// A holder advertised without a port (accepted by --advertise-url's
	// check): every API request 503s, and the 503 tells an
	// unauthenticated client the holder's internal URL.
	takeLease(t, e, "srv_noport", "https://ctl.internal.example")
	code, body, _ = get(t, e.URL+"/api/v1/apps", nil)
	t.Logf("no-port holder, no credentials -> %d %s", code, body)
	if strings.Contains(body, "ctl.internal.example") {
		t.Errorf("an unauthenticated client learns the holder's internal URL: %s", body)
	}
	if code == http.StatusServiceUnavailable && strings.Contains(body, "missing port") {
		t.Errorf("a holder whose --advertise-url has no port is never reachable: %s", body)
	}
}

// A session cookie is Secure when the browser spoke HTTPS to the server that
// passed the request on, which only a server of this installation can say.
func TestForwardedHTTPSMakesCookiesSecure(t *testing.T) {
	e := newEnvWith(t, Config{DataDir: t.TempDir()})
	cases := []struct {
		name       string
		proof      string
		proto      string
		wantSecure bool
	}{
		{"passed on over https", e.srv.forwardProof(), "https", true},
		{"passed on over http", e.srv.forwardProof(), "http", false},
		{"a client claiming https", "", "https", false},
		{"a wrong proof", strings.Repeat("0", 64), "https", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "http://slipway.test/", nil)
			r.Header.Set("X-Forwarded-Proto", c.proto)
			if c.proof != "" {
				r.Header.Set(forwardedBy, "srv_other")
				r.Header.Set(forwardProof, c.proof)
			}
			w := httptest.NewRecorder()
			e.srv.setCookie(w, r, "s", "v", time.Minute)
			cookies := w.Result().Cookies()
			if len(cookies) != 1 || cookies[0].Secure != c.wantSecure {
				t.Fatalf("cookies %+v, want Secure %v", cookies, c.wantSecure)
			}
		})
	}
}

// A browser asking for a page that does not exist gets an HTML page saying
// so; an API client still gets JSON, wherever it asks.
func TestUnknownPathsAnswerAsTheClientReads(t *testing.T) {
	e := newEnvWith(t, Config{DataDir: t.TempDir()})
	browser := "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
	cases := []struct {
		path, accept string
		wantType     string
		wantBody     string
	}{
		{"/nope", browser, "text/html", "There is no page at /nope."},
		{"/apps/x/nope/deeper", browser, "text/html", "Not found"},
		{"/nope", "", "application/json", `"not_found"`},
		{"/api/v1/nope", browser, "application/json", `"not_found"`},
		{"/v2/nope/tags/list", browser, "application/json", `"errors"`},
	}
	for _, c := range cases {
		t.Run(c.path+" "+c.accept, func(t *testing.T) {
			hdr := map[string]string{}
			if c.accept != "" {
				hdr["Accept"] = c.accept
			}
			code, body, h := get(t, e.URL+c.path, hdr)
			if code != http.StatusNotFound && !strings.HasPrefix(c.path, "/v2/") {
				t.Fatalf("%d %s", code, body)
			}
			if !strings.HasPrefix(h.Get("Content-Type"), c.wantType) || !strings.Contains(body, c.wantBody) {
				t.Fatalf("%s %q, want %s with %q:\n%.300s", h.Get("Content-Type"), c.path, c.wantType, c.wantBody, body)
			}
		})
	}
}
