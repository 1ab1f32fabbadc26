package source

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/slipway-dev/slipway/internal/store"
)

func TestSplitSource(t *testing.T) {
	cases := []struct {
		name, raw, public string
		user, password    string
		creds             bool
		err               string // part of the error; "" for none
	}{
		{name: "https with a token", raw: "https://ci:tok3n@github.com/acme/x.git", public: "https://github.com/acme/x.git", user: "ci", password: "tok3n", creds: true},
		{name: "token as the user name", raw: "https://tok3n@github.com/acme/x.git", public: "https://github.com/acme/x.git", user: "tok3n", creds: true},
		{name: "no credentials", raw: "https://github.com/acme/x.git", public: "https://github.com/acme/x.git"},
		{name: "ssh with a user name", raw: "ssh://git@github.com/acme/x.git", public: "ssh://git@github.com/acme/x.git"},
		{name: "scp-like", raw: "git@github.com:acme/x.git", public: "git@github.com:acme/x.git"},
		{name: "path", raw: "/srv/git/x.git", public: "/srv/git/x.git"},
		{name: "ssh with a password", raw: "ssh://git:tok3n@github.com/acme/x.git", err: "deploy key"},
		{name: "option", raw: "--upload-pack=evil", err: "not a git URL"},
		{name: "empty", raw: "", err: "not a git URL"},
		{name: "line break", raw: "https://github.com/acme/x.git\n", err: "not a git URL"},
		{name: "escaped line break in the password", raw: "https://ci:tok3n%0A@github.com/acme/x.git", err: "line break"},
		{name: "bad port", raw: "https://ci:tok3n@github.com:x/acme/x.git", err: "does not parse"},
		{name: "bad escape in the password", raw: "https://ci:tok%zz3n@github.com/acme/x.git", err: "not valid URL syntax"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			public, creds, err := splitSource(c.raw)
			if c.err != "" {
				var se *SourceURLError
				if !errors.As(err, &se) || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("err = %v, want a *SourceURLError saying %q", err, c.err)
				}
				for _, part := range []string{"tok3n", "%zz", "ci:"} {
					if strings.Contains(err.Error(), part) {
						t.Fatalf("error %q shows the credentials", err)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if public != c.public || (creds != nil) != c.creds {
				t.Fatalf("split = %q, %+v; want %q, credentials %v", public, creds, c.public, c.creds)
			}
			if creds != nil && (creds.Username != c.user || creds.Password != c.password) {
				t.Fatalf("credentials %+v, want %q %q", creds, c.user, c.password)
			}
		})
	}
}

func TestScrub(t *testing.T) {
	both := &sourceCredentials{Username: "ci", Password: "p@ss w/rd"}
	token := &sourceCredentials{Username: "ghp_abcdef123456"}
	basic := base64.StdEncoding.EncodeToString([]byte("ci:p@ss w/rd"))
	cases := []struct {
		name  string
		creds *sourceCredentials
		in    string
		want  string
	}{
		{"URL userinfo", nil, "fatal: unable to access 'https://ci:x@github.com/acme/x.git/': 403", "fatal: unable to access 'https://***@github.com/acme/x.git/': 403"},
		{"ssh URL userinfo", nil, "ssh://git@github.com/x", "ssh://***@github.com/x"},
		{"no URL", nil, "error: object abc is missing", "error: object abc is missing"},
		{"password as is", both, "bad password p@ss w/rd here", "bad password *** here"},
		{"password query-escaped", both, "p%40ss+w%2Frd", "***"},
		{"password path-escaped", both, "p@ss%20w%2Frd", "***"},
		{"basic auth header", both, "Authorization: Basic " + basic, "Authorization: Basic ***"},
		{"user name beside a password stays", both, "user ci refused", "user ci refused"},
		{"token as the user name", token, "token ghp_abcdef123456 revoked", "token *** revoked"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := c.creds.scrub(c.in); got != c.want {
				t.Fatalf("scrub(%q) = %q, want %q", c.in, got, c.want)
			}
		})
	}
}

// authGitServer serves the bare repositories under root over smart HTTP to
// one user and password only, and while each request runs — the fetching
// git and its helpers are alive then — records every process whose command
// line holds the password.
type authGitServer struct {
	URL string

	user, first string // first: the password at the start
	mu          sync.Mutex
	password    string
	authed      int
	leaks       []string
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
	g := &authGitServer{user: user, first: password, password: password}
	backend := &cgi.Handler{Path: gitPath, Args: []string{"http-backend"},
		Env: []string{"GIT_PROJECT_ROOT=" + root, "GIT_HTTP_EXPORT_ALL=1", "GIT_CONFIG_NOSYSTEM=1"}}
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g.scan()
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

// scan looks for the first password: the one the source URL holds.
func (g *authGitServer) scan() {
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, f := range procs {
		b, err := os.ReadFile(f)
		if err != nil || !bytes.Contains(b, []byte(g.first)) {
			continue
		}
		argv := strings.ReplaceAll(string(bytes.ReplaceAll(b, []byte{0}, []byte{' '})), g.first, "<PASSWORD>")
		g.mu.Lock()
		g.leaks = append(g.leaks, filepath.Dir(f)+": "+argv)
		g.mu.Unlock()
	}
}

func (g *authGitServer) setPassword(p string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.password = p
}

func (g *authGitServer) report() (authed int, leaks []string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.authed, append([]string(nil), g.leaks...)
}

// The fetch authenticates with the source URL's credentials, stored
// sealed or, as older versions stored them, in the URL, and no process's
// command line holds the password meanwhile.
func TestFetchGivesCredentialsToGitOutsideItsCommandLine(t *testing.T) {
	cases := []struct {
		name   string
		legacy bool // the URL stored with its credentials, as before they were sealed
	}{
		{name: "sealed"},
		{name: "stored in the URL by an older version", legacy: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctx := context.Background()
			root := t.TempDir()
			work := t.TempDir()
			gitIn(t, work, "init", "-q", "-b", "main")
			gitIn(t, work, "commit", "-q", "--allow-empty", "-m", "first")
			sha := gitIn(t, work, "rev-parse", "HEAD")
			gitIn(t, work, "clone", "-q", "--bare", work, filepath.Join(root, "acme.git"))

			b := make([]byte, 16)
			_, _ = rand.Read(b)
			password := "pw-" + hex.EncodeToString(b)
			gs := newAuthGitServer(t, root, "ci-bot", password)
			rawURL := strings.Replace(gs.URL, "http://", "http://ci-bot:"+password+"@", 1) + "/acme.git"

			s, db := testService(t, t.TempDir(), newKey(t))
			addApp(t, s, db, gs.URL+"/acme.git")
			src, err := s.SealSource(rawURL)
			if err != nil {
				t.Fatal(err)
			}
			if c.legacy {
				src = store.AppSource{URL: rawURL}
			}
			if _, err := db.SetAppSource(ctx, "hello", src, nil, true); err != nil {
				t.Fatal(err)
			}
			app, err := db.GetApp(ctx, "hello")
			if err != nil {
				t.Fatal(err)
			}
			if shown, _ := json.Marshal(app); bytes.Contains(shown, []byte(password)) {
				t.Fatalf("the app shows the password: %s", shown)
			}
			if err := s.fetch(ctx, app, RefUpdate{Ref: "refs/heads/main", Old: ZeroSHA, New: sha}); err != nil {
				t.Fatalf("fetch: %v", err)
			}
			if authed, leaks := gs.report(); authed == 0 {
				t.Fatal("git never sent the credentials")
			} else if len(leaks) > 0 {
				t.Fatalf("the password was in the command line of a process while fetching:\n%s", strings.Join(leaks, "\n"))
			}

			// A refused password: the error names the source, not the password.
			gs.setPassword("pw-changed")
			err = s.fetch(ctx, app, RefUpdate{Ref: "refs/heads/main", Old: ZeroSHA, New: sha})
			if err == nil || !strings.Contains(err.Error(), gs.URL+"/acme.git") || strings.Contains(err.Error(), password) || strings.Contains(err.Error(), "ci-bot:") {
				t.Fatalf("fetch with a refused password: %v", err)
			}
		})
	}
}

// Credentials older versions stored in the URL are sealed at start.
func TestNewServiceSealsCredentialsStoredInTheClear(t *testing.T) {
	ctx := context.Background()
	dir, key := t.TempDir(), newKey(t)
	s, db := testService(t, dir, key)
	addApp(t, s, db, "https://github.com/acme/x.git")
	for _, a := range []string{"scp", "ssh"} {
		if _, err := db.CreateApp(ctx, store.App{Name: a}); err != nil {
			t.Fatal(err)
		}
	}
	stored := map[string]string{
		"hello": "https://ci:tok3n@github.com/acme/x.git",
		"scp":   "git@github.com:acme/x.git",        // an '@' that is no credential
		"ssh":   "ssh://git:tok3n@github.com/x.git", // a password git cannot use: left, and logged
	}
	for app, u := range stored {
		if _, err := db.SetAppSource(ctx, app, store.AppSource{URL: u}, nil, true); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()

	s, db = testService(t, dir, key)
	src, err := db.GetAppSource(ctx, "hello")
	if err != nil {
		t.Fatal(err)
	}
	if src.URL != "https://github.com/acme/x.git" || len(src.Credentials) == 0 {
		t.Fatalf("after the start: %+v, want the URL without credentials and them sealed", src)
	}
	from, creds, err := s.openSource(src)
	if err != nil || from != src.URL || creds == nil || creds.Username != "ci" || creds.Password != "tok3n" {
		t.Fatalf("openSource = %q, %+v, %v", from, creds, err)
	}
	for _, app := range []string{"scp", "ssh"} {
		if src, _ := db.GetAppSource(ctx, app); src.URL != stored[app] || src.Credentials != nil {
			t.Errorf("%s: %+v, want it untouched", app, src)
		}
	}
}
