package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/slipway-dev/slipway/internal/server"
)

// slipway runs the CLI in-process and returns stdout, stderr and the error.
func slipway(t *testing.T, stdin string, args ...string) (string, string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	root := NewRoot()
	root.SetArgs(args)
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetIn(strings.NewReader(stdin))
	err := root.ExecuteContext(context.Background())
	return out.String(), errOut.String(), err
}

// testEnv is a server started for one test.
type testEnv struct {
	URL, Admin, Data string
}

// pushURL is the app's git URL with the admin token as the password.
func (e testEnv) pushURL(app string) string {
	return strings.Replace(e.URL, "http://", "http://x:"+e.Admin+"@", 1) + "/git/" + app + ".git"
}

// testServer starts a server on loopback with a fresh data dir and a
// fresh CLI config dir.
func testServer(t *testing.T) testEnv {
	t.Helper()
	data := t.TempDir()
	srv, err := server.New(context.Background(), server.Config{DataDir: data, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(func() { hs.Close(); srv.Close() })
	token, err := os.ReadFile(filepath.Join(data, server.AdminTokenFile))
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	return testEnv{URL: hs.URL, Admin: strings.TrimSpace(string(token)), Data: data}
}

// loggedIn is testServer with SLIPWAY_URL and SLIPWAY_TOKEN set to it.
func loggedIn(t *testing.T) testEnv {
	t.Helper()
	e := testServer(t)
	t.Setenv("SLIPWAY_URL", e.URL)
	t.Setenv("SLIPWAY_TOKEN", e.Admin)
	return e
}

func TestCLIAgainstServer(t *testing.T) {
	env := testServer(t)
	t.Setenv("SLIPWAY_URL", "")
	t.Setenv("SLIPWAY_TOKEN", "")

	if _, _, err := slipway(t, "", "app", "list"); err == nil || !strings.Contains(err.Error(), "not logged in") {
		t.Fatalf("before login: %v", err)
	}
	if _, _, err := slipway(t, "", "login", env.URL, "--token", "slw_bogus"); err == nil || !strings.Contains(err.Error(), "token is not valid") {
		t.Fatalf("bad login: %v", err)
	}
	if _, _, err := slipway(t, "", "login", env.URL, "--token", env.Admin); err != nil {
		t.Fatalf("login: %v", err)
	}
	cfg, _ := configPath()
	if st, err := os.Stat(cfg); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("config file: %v %v", st, err)
	}

	out, _, err := slipway(t, "", "token", "create", "--name", "ci", "--role", "deployer")
	if err != nil || !strings.HasPrefix(out, "slw_") {
		t.Fatalf("token create: %q %v", out, err)
	}
	out, _, err = slipway(t, "", "token", "list", "-o", "json")
	var toks []map[string]any
	if err != nil || json.Unmarshal([]byte(out), &toks) != nil || len(toks) != 3 {
		t.Fatalf("token list json: %q %v", out, err)
	}
	if _, _, err := slipway(t, "", "token", "list", "-o", "yaml"); err == nil || !strings.Contains(err.Error(), "--output") {
		t.Fatalf("bad output format: %v", err)
	}

	if _, _, err := slipway(t, "", "app", "create", "Bad_Name"); err == nil || !strings.Contains(err.Error(), "^[a-z0-9][a-z0-9-]{0,62}$") {
		t.Fatalf("bad app name: %v", err)
	}
	if out, _, err := slipway(t, "", "app", "create", "hello"); err != nil || !strings.Contains(out, "/git/hello.git") {
		t.Fatalf("app create: %q %v", out, err)
	}
	if out, _, err := slipway(t, "", "app", "show", "hello", "-o", "json"); err != nil || !strings.Contains(out, `"staging"`) {
		t.Fatalf("app show: %q %v", out, err)
	}
	if _, _, err := slipway(t, "", "app", "set-source", "hello", "--url", "https://example.com/x.git", "--webhook-secret-stdin"); err == nil || !strings.Contains(err.Error(), "stdin was empty") {
		t.Fatalf("empty secret: %v", err)
	}
	if out, _, err := slipway(t, "0123456789abcdef0123\n", "app", "set-source", "hello", "--url", "https://example.com/x.git", "--webhook-secret-stdin"); err != nil || !strings.Contains(out, "/hooks/github/hello") {
		t.Fatalf("set-source: %q %v", out, err)
	}
	if out, _, err := slipway(t, "", "app", "events", "hello", "-o", "json"); err != nil || strings.TrimSpace(out) != "[]" {
		t.Fatalf("events: %q %v", out, err)
	}
	if out, _, err := slipway(t, "", "run", "list"); err != nil || !strings.Contains(out, "STATE") {
		t.Fatalf("run list: %q %v", out, err)
	}
	if _, _, err := slipway(t, "", "run", "show", "7"); err == nil || !strings.Contains(err.Error(), "run 7") {
		t.Fatalf("run show missing: %v", err)
	}
	if _, _, err := slipway(t, "", "app", "delete", "hello"); err == nil || !strings.Contains(err.Error(), "--yes") {
		t.Fatalf("delete without --yes: %v", err)
	}
	if _, _, err := slipway(t, "", "app", "delete", "hello", "--yes"); err != nil {
		t.Fatalf("delete: %v", err)
	}
	if _, _, err := slipway(t, "", "app", "show", "hello"); err == nil {
		t.Fatal("deleted app still shown")
	}
	if _, err := os.Stat(filepath.Join(env.Data, "git", "hello.git")); !os.IsNotExist(err) {
		t.Fatalf("repository data not removed: %v", err)
	}
	if _, _, err := slipway(t, "", "token", "revoke", "ci"); err != nil {
		t.Fatalf("revoke: %v", err)
	}
	if out, _, err := slipway(t, "", "completion", "bash"); err != nil || !strings.Contains(out, "slipway") {
		t.Fatalf("completion: %v", err)
	}
}

func TestCLIRunWatchAndFollow(t *testing.T) {
	env := loggedIn(t)
	if _, _, err := slipway(t, "", "app", "create", "cli"); err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	git := func(args ...string) {
		cmd := exec.Command("git", args...)
		cmd.Dir = work
		cmd.Env = append(os.Environ(), "HOME="+work, "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@x", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@x")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v %s", args, err, out)
		}
	}
	git("init", "-q", "-b", "main")
	os.WriteFile(filepath.Join(work, "slipway.yaml"), []byte("on: {}\nstages:\n  - name: B\n    actions:\n      - {name: ok, type: invoke, command: 'echo hello-from-run; sleep 0.3'}\n  - name: C\n    actions:\n      - {name: bad, type: invoke, command: 'exit 3'}\n"), 0o644)
	git("add", ".")
	git("commit", "-qm", "x")
	git("push", "-q", env.pushURL("cli"), "main")

	out, _, err := slipway(t, "", "run", "start", "cli", "--ref", "main", "--watch")
	if err == nil || !strings.Contains(err.Error(), "run 1 failed") || !strings.Contains(out, "succeeded B/ok") || !strings.Contains(out, "failed    C/bad") {
		t.Fatalf("watch: err=%v\n%s", err, out)
	}
	out, errOut, err := slipway(t, "", "run", "logs", "1", "--follow")
	if err != nil || !strings.Contains(out, "B/ok | hello-from-run") || !strings.Contains(errOut, "run 1 failed") {
		t.Fatalf("follow: %v\n%s\n%s", err, out, errOut)
	}
	// JSON: one object per line, with the action's name, followed or not.
	for _, follow := range []bool{false, true} {
		args := []string{"run", "logs", "1", "-o", "json"}
		if follow {
			args = append(args, "--follow")
		}
		out, _, err := slipway(t, "", args...)
		lines := strings.Split(strings.TrimSpace(out), "\n")
		var first struct {
			ID       int64  `json:"id"`
			ActionID int64  `json:"action_id"`
			Action   string `json:"action"`
			At       string `json:"at"`
			Line     string `json:"line"`
		}
		if err != nil || len(lines) < 3 || json.Unmarshal([]byte(lines[0]), &first) != nil || first.Action != "B/ok" || first.At == "" || first.ID == 0 {
			t.Fatalf("logs -o json (follow %v): %v %+v\n%s", follow, err, first, out)
		}
		if !strings.Contains(out, `"action":"B/ok","line":"hello-from-run"`) && !strings.Contains(out, `"line":"hello-from-run","action":"B/ok"`) {
			t.Fatalf("logs -o json (follow %v) lacks the build's line:\n%s", follow, out)
		}
	}
	out, _, err = slipway(t, "", "run", "logs", "1", "--action", "bad")
	if err != nil || strings.Contains(out, "hello-from-run") || !strings.Contains(out, "C/bad") {
		t.Fatalf("logs --action: %v\n%s", err, out)
	}
	if _, _, err := slipway(t, "", "run", "logs", "1", "--action", "nope"); err == nil {
		t.Fatal("unknown action accepted")
	}
	out, _, err = slipway(t, "", "run", "show", "1")
	if err != nil || !strings.Contains(out, "stage C failed: action bad") || !strings.Contains(out, "SourceArtifact") {
		t.Fatalf("show: %v\n%s", err, out)
	}
	tarPath := filepath.Join(t.TempDir(), "src.tar")
	if _, _, err := slipway(t, "", "artifact", "get", "1", "SourceArtifact", "-o", tarPath); err != nil {
		t.Fatalf("artifact get: %v", err)
	}
	if st, err := os.Stat(tarPath); err != nil || st.Size() == 0 {
		t.Fatalf("artifact file: %v", err)
	}
	if _, _, err := slipway(t, "", "artifact", "get", "1", "Missing", "-o", tarPath); err == nil || !strings.Contains(err.Error(), "no artifact Missing") {
		t.Fatalf("missing artifact: %v", err)
	}
}

// A server whose port is taken stops before it makes its data directory or
// starts anything.
func TestCLIServerOnABusyPort(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	data := filepath.Join(t.TempDir(), "data")
	_, _, err = slipway(t, "", "server", "--addr", ln.Addr().String(), "--data", data)
	if err == nil || !strings.Contains(err.Error(), "listen on "+ln.Addr().String()+" (--addr)") {
		t.Fatalf("server on a busy port: %v", err)
	}
	if _, err := os.Stat(data); !os.IsNotExist(err) {
		t.Fatalf("the data directory was made: %v", err)
	}
}
