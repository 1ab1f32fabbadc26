package cli

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A service of 0 tasks starts no container, so this drives the CLI's
// service update and its deployments without the engine doing work.
func TestCLIServiceUpdateStartsDeployments(t *testing.T) {
	env := loggedIn(t)
	if _, _, err := slipway(t, "", "app", "create", "shop"); err != nil {
		t.Fatal(err)
	}
	td := filepath.Join(t.TempDir(), "taskdef.json")
	if err := os.WriteFile(td, []byte(`{"family": "shop-web", "containerDefinitions": [{"name": "web", "image": "`+strings.TrimPrefix(env.URL, "http://")+`/shop:1", "essential": true}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, _, err := slipway(t, "", "taskdef", "register", td); err != nil {
			t.Fatal(err)
		}
	}
	svc := []string{"--app", "shop", "--env", "staging"}
	out, _, err := slipway(t, "", append([]string{"service", "create", "web", "--taskdef", "shop-web:1", "--desired", "0", "--wait"}, svc...)...)
	if err != nil || !strings.Contains(out, "(deployment 1 rolls it out") || !strings.Contains(out, "rollout COMPLETED: 0 tasks of shop-web:1 healthy") {
		t.Fatalf("create, following the first rollout: %q %v", out, err)
	}
	if out, _, err := slipway(t, "", "deploy", "show", "1"); err != nil || !strings.Contains(out, "(new service) → shop-web:1") {
		t.Fatalf("the first rollout: %q %v", out, err)
	}
	cases := []struct {
		name     string
		args     []string
		wantOut  string
		wantRev  float64
		wantFrom float64
	}{
		{"a new revision", []string{"--taskdef", "shop-web:2"}, "Deployment 2:", 2, 1},
		{"the same revision, forced", []string{"--force-new-deployment"}, "Deployment 3:", 2, 2},
		{"a count alone", []string{"--desired", "0"}, "", 0, 0},
	}
	for _, c := range cases {
		out, _, err := slipway(t, "", append(append([]string{"service", "update", "web"}, svc...), c.args...)...)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if !strings.Contains(out, "Updated service web:") || !strings.Contains(out, "× shop-web:") {
			t.Fatalf("%s: output %q lacks the service", c.name, out)
		}
		if c.wantOut == "" {
			if strings.Contains(out, "Deployment") {
				t.Fatalf("%s started a deployment: %q", c.name, out)
			}
			continue
		}
		if !strings.Contains(out, c.wantOut) || !strings.Contains(out, "rolling to shop-web:2") {
			t.Fatalf("%s: output %q, want %q rolling to shop-web:2", c.name, out, c.wantOut)
		}
		id := strings.TrimSuffix(c.wantOut[len("Deployment "):], ":")
		var d map[string]any
		deadline := time.Now().Add(20 * time.Second)
		for {
			out, _, err := slipway(t, "", "deploy", "show", id, "-o", "json")
			if err != nil || json.Unmarshal([]byte(out), &d) != nil {
				t.Fatalf("%s: deploy show: %q %v", c.name, out, err)
			}
			if d["state"] != "IN_PROGRESS" || time.Now().After(deadline) {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if d["state"] != "COMPLETED" || d["to_revision"] != c.wantRev || d["from_revision"] != c.wantFrom {
			t.Fatalf("%s: deployment %v", c.name, d)
		}
	}
	// JSON output is the server's answer: the service and the deployment.
	out, _, err = slipway(t, "", append([]string{"service", "update", "web", "--force-new-deployment", "-o", "json"}, svc...)...)
	var started map[string]map[string]any
	if err != nil || json.Unmarshal([]byte(out), &started) != nil || started["deployment"]["id"] != 4.0 || started["service"]["name"] != "web" {
		t.Fatalf("update -o json: %q %v", out, err)
	}
}

// Without --app, service commands take SLIPWAY_APP, else the app whose
// hosted repository the working directory's clone points at.
func TestCLIServiceCommandsFindTheirApp(t *testing.T) {
	env := loggedIn(t)
	for _, app := range []string{"shop", "blog"} {
		if _, _, err := slipway(t, "", "app", "create", app); err != nil {
			t.Fatal(err)
		}
	}
	td := filepath.Join(t.TempDir(), "taskdef.json")
	if err := os.WriteFile(td, []byte(`{"family": "web", "containerDefinitions": [{"name": "web", "image": "`+strings.TrimPrefix(env.URL, "http://")+`/shop:1"}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := slipway(t, "", "taskdef", "register", td); err != nil {
		t.Fatal(err)
	}
	if _, _, err := slipway(t, "", "service", "create", "web", "--app", "shop", "--env", "staging", "--taskdef", "web:1", "--desired", "0"); err != nil {
		t.Fatal(err)
	}
	show := func() (string, error) {
		out, _, err := slipway(t, "", "service", "show", "web", "--env", "staging", "-o", "json")
		return out, err
	}
	t.Chdir(t.TempDir()) // no clone here
	if _, err := show(); err == nil || !strings.Contains(err.Error(), "--app is required") || !strings.Contains(err.Error(), "SLIPWAY_APP") {
		t.Fatalf("outside a clone: %v", err)
	}
	clone := func(remotes ...string) {
		dir := t.TempDir()
		t.Chdir(dir)
		if b, err := exec.Command("git", "init", "-q").CombinedOutput(); err != nil {
			t.Fatalf("git init: %v %s", err, b)
		}
		for i, r := range remotes {
			if b, err := exec.Command("git", "remote", "add", fmt.Sprint("r", i), r).CombinedOutput(); err != nil {
				t.Fatalf("git remote add: %v %s", err, b)
			}
		}
	}
	clone(env.pushURL("shop"), "https://github.com/acme/shop.git")
	if out, err := show(); err != nil || !strings.Contains(out, `"app": "shop"`) {
		t.Fatalf("in a clone of shop: %q %v", out, err)
	}
	clone(env.pushURL("shop"), env.pushURL("blog"))
	if _, err := show(); err == nil || !strings.Contains(err.Error(), "several apps (blog, shop)") {
		t.Fatalf("in a clone of two apps: %v", err)
	}
	// The variable wins over the clone, and --app over both.
	t.Setenv("SLIPWAY_APP", "blog")
	if _, err := show(); err == nil || !strings.Contains(err.Error(), "web in blog/staging: not found") {
		t.Fatalf("with SLIPWAY_APP=blog: %v", err)
	}
	if out, _, err := slipway(t, "", "service", "show", "web", "--app", "shop", "--env", "staging", "-o", "json"); err != nil || !strings.Contains(out, `"app": "shop"`) {
		t.Fatalf("--app shop: %q %v", out, err)
	}
}

// service show puts how many times in a row an event happened, and when
// last, after its first line; an event that happened once, or one from a
// server that does not count repeats, shows as before.
func TestServiceShowCountsRepeatedEvents(t *testing.T) {
	at := time.Date(2026, 12, 7, 4, 0, 0, 0, time.UTC)
	last := at.Add(31*time.Minute + 10*time.Second)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"app": "shop", "environment": "staging", "name": "web", "tasks": [], "events": [
			{"id": 3, "at": %q, "last_at": %q, "count": 262, "message": "(service web) task 3f2a stopped: exit 1\nlast output"},
			{"id": 2, "at": %q, "last_at": %q, "count": 1, "message": "(service web) started 1 task"},
			{"id": 1, "at": %q, "message": "(service web) has reached a steady state"}]}`,
			at.Format(time.RFC3339), last.Format(time.RFC3339), at.Format(time.RFC3339), at.Format(time.RFC3339), at.Format(time.RFC3339))
	}))
	defer srv.Close()
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	t.Setenv("SLIPWAY_URL", srv.URL)
	t.Setenv("SLIPWAY_TOKEN", "slw_test")
	out, _, err := slipway(t, "", "service", "show", "web", "--app", "shop", "--env", "staging")
	if err != nil {
		t.Fatal(err)
	}
	if want := "(service web) task 3f2a stopped: exit 1 ×262, last " + humanTime(last) + "\n"; !strings.Contains(out, want) {
		t.Fatalf("output lacks %q:\n%s", want, out)
	}
	if strings.Count(out, "×") != 1 || !strings.Contains(out, "  last output\n") {
		t.Fatalf("output:\n%s", out)
	}
}

func TestParseTaskLogLine(t *testing.T) {
	at := time.Date(2026, 12, 3, 5, 42, 57, 772422248, time.UTC)
	cases := []struct {
		in   string
		want taskLogLine
	}{
		{"5096f9ffbd37/web | 2026-12-03T05:42:57.772422248Z listening on :8080", taskLogLine{Task: "5096f9ffbd37", Container: "web", At: at, Line: "listening on :8080"}},
		{"5096f9ffbd37/web | 2026-12-03T05:42:57.772422248Z a | b", taskLogLine{Task: "5096f9ffbd37", Container: "web", At: at, Line: "a | b"}},
		{"5096f9ffbd37/web | no timestamp here", taskLogLine{Task: "5096f9ffbd37", Container: "web", Line: "no timestamp here"}},
		{"5096f9ffbd37/web | 2026-12-03T05:42:57.772422248Z", taskLogLine{Task: "5096f9ffbd37", Container: "web", Line: "2026-12-03T05:42:57.772422248Z"}},
		{"a line without a source", taskLogLine{Line: "a line without a source"}},
	}
	for _, c := range cases {
		if got := parseTaskLogLine(c.in); got != c.want {
			t.Errorf("%q: %+v, want %+v", c.in, got, c.want)
		}
	}
}
