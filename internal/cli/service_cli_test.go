package cli

import (
	"encoding/json"
	"os"
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
	if _, _, err := slipway(t, "", append([]string{"service", "create", "web", "--taskdef", "shop-web:1", "--desired", "0"}, svc...)...); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name     string
		args     []string
		wantOut  string
		wantRev  float64
		wantFrom float64
	}{
		{"a new revision", []string{"--taskdef", "shop-web:2"}, "Deployment 1:", 2, 1},
		{"the same revision, forced", []string{"--force-new-deployment"}, "Deployment 2:", 2, 2},
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
	out, _, err := slipway(t, "", append([]string{"service", "update", "web", "--force-new-deployment", "-o", "json"}, svc...)...)
	var started map[string]map[string]any
	if err != nil || json.Unmarshal([]byte(out), &started) != nil || started["deployment"]["id"] != 3.0 || started["service"]["name"] != "web" {
		t.Fatalf("update -o json: %q %v", out, err)
	}
}
