package server

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer collects the server's log for inspection.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestIntegrationSecrets(t *testing.T) {
	const dbPass = "pw-Hq7-unusual-4411"
	const apiKey = "key-Zx9-rarely-8822"
	dir := t.TempDir()
	var serverLog syncBuffer
	cleanupRuntime(t, "vault", dir) // registered first: runs after the server stopped, so nothing restarts the proxy
	e := newEnvWith(t, Config{DataDir: dir, ProxyBinary: slipwayBinary(t), Log: slog.New(slog.NewTextHandler(&serverLog, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	e.createApp("vault")
	var responses strings.Builder
	call := func(method, path, token string, body any) (int, map[string]any) {
		code, resp := e.call(method, path, token, body)
		raw, _ := json.Marshal(resp)
		responses.Write(raw)
		return code, resp
	}

	viewer := e.token("viewer", "viewer")
	if code, _ := call("PUT", "/api/v1/secrets/db-password", viewer, map[string]string{"app": "vault", "value": dbPass}); code != 403 {
		t.Fatalf("viewer set a secret: %d", code)
	}
	for _, tc := range []struct {
		path  string
		body  map[string]string
		field string
	}{
		{"/api/v1/secrets/bad:name", map[string]string{"value": "x"}, "name"},
		{"/api/v1/secrets/ok", map[string]string{"value": ""}, "value"},
		{"/api/v1/secrets/ok", map[string]string{"app": "nope", "value": "x"}, "app"},
		{"/api/v1/secrets/ok", map[string]string{"app": "vault", "env": "qa", "value": "x"}, "env"},
		{"/api/v1/secrets/ok", map[string]string{"env": "staging", "value": "x"}, "env"},
	} {
		if code, body := call("PUT", tc.path, e.Admin, tc.body); code != 400 || errorField(body, "field") != tc.field {
			t.Errorf("PUT %s %v: %d %v, want 400 naming %s", tc.path, tc.body, code, body, tc.field)
		}
	}
	if code, body := call("PUT", "/api/v1/secrets/db-password", e.Admin, map[string]string{"app": "vault", "value": "old-value-1"}); code != 200 || body["version"] != 1.0 {
		t.Fatalf("set: %d %v", code, body)
	}
	if code, body := call("PUT", "/api/v1/secrets/db-password", e.Admin, map[string]string{"app": "vault", "value": dbPass}); code != 200 || body["version"] != 2.0 {
		t.Fatalf("second set: %d %v", code, body)
	}
	call("PUT", "/api/v1/secrets/prod/api-key", e.Admin, map[string]string{"value": apiKey})
	code, list := call("GET", "/api/v1/secrets?app=vault", viewer, nil)
	if items, _ := list["items"].([]any); code != 200 || len(items) != 2 {
		t.Fatalf("list: %d %v", code, list)
	}

	// A build gets both through the seeds' buildspec syntax and never prints them.
	e.pushPipeline("vault", "main", map[string]string{
		"slipway.yaml": manualOnly + "stages:\n  - name: Build\n    actions:\n      - {name: use, type: build}\n",
		"buildspec.yml": `version: 0.2
env:
  secrets-manager:
    DB_PASS: "arn:aws:secretsmanager:us-east-1:123456789012:secret:db-password-AbCdEf"
  parameter-store:
    API_KEY: /prod/api-key
phases:
  build:
    commands:
      - test "$DB_PASS" = "` + dbPass + `"
      - test "$API_KEY" = "` + apiKey + `"
      - echo "password is $DB_PASS and key is $API_KEY"
`})
	id := e.startRun("vault", "main")
	run := e.waitRun(id, 30*time.Second)
	logs := e.logText(id)
	if run["state"] != "succeeded" || !strings.Contains(logs, "password is *** and key is ***") {
		t.Fatalf("build with secrets: %v %v\n%s", run["state"], run["reason"], logs)
	}

	e.pushPipeline("vault", "missing", map[string]string{
		"slipway.yaml":  manualOnly + "stages:\n  - name: Build\n    actions:\n      - {name: use, type: build}\n",
		"buildspec.yml": "version: 0.2\nenv:\n  secrets-manager:\n    X: nowhere:key\nphases:\n  build:\n    commands: [\"true\"]\n"})
	run = e.waitRun(e.startRun("vault", "missing"), 30*time.Second)
	if run["state"] != "failed" || !strings.Contains(run["reason"].(string), "env.secrets-manager.X: secret nowhere is not set for app vault") {
		t.Fatalf("missing build secret: %v %v", run["state"], run["reason"])
	}

	// A task gets the secret as an environment variable (the web app reports
	// it as its version), and the service's log shows it masked.
	image := webAppImage(t)
	td := map[string]any{"family": "vault-web", "containerDefinitions": []any{map[string]any{
		"name": "web", "image": image, "portMappings": []any{map[string]int{"containerPort": 8080}}, "memory": 64, "stopTimeout": 2,
		"secrets": []any{map[string]string{"name": "VERSION", "valueFrom": "arn:aws:secretsmanager:us-east-1:123456789012:secret:db-password-AbCdEf"}}}}}
	body, _ := json.Marshal(td)
	rev := e.registerTaskDef(string(body))
	td["containerDefinitions"].([]any)[0].(map[string]any)["secrets"] = []any{map[string]string{"name": "VERSION", "valueFrom": "arn:slipway:secret:no-such-secret"}}
	body, _ = json.Marshal(td)
	badRev := e.registerTaskDef(string(body))

	if code, body := call("POST", "/api/v1/apps/vault/envs/staging/services", e.Admin, map[string]any{"name": "bad", "task_definition": fmt.Sprintf("vault-web:%d", badRev)}); code != 400 ||
		!strings.Contains(errorField(body, "message"), "secret no-such-secret is not set") {
		t.Fatalf("service with an unknown secret: %d %v", code, body)
	}
	if code, body := call("POST", "/api/v1/apps/vault/envs/staging/services", e.Admin, map[string]any{"name": "web", "task_definition": fmt.Sprintf("vault-web:%d", rev),
		"load_balancer": map[string]any{"container_name": "web", "container_port": 8080, "listener_port": freePort(t), "health_check_path": "/health"}}); code != 201 {
		t.Fatalf("create service: %d %v", code, body)
	}
	d := e.waitService("vault", "staging", "web", 60*time.Second, "running", func(d map[string]any) bool { return runningOf(d, rev) == 1 })
	endpoint := d["tasks"].([]any)[0].(map[string]any)["endpoint"].(string)
	var answer string
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get("http://" + endpoint + "/"); err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			answer = string(b)
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !strings.Contains(answer, "version="+dbPass) {
		t.Fatalf("the task did not get its secret: %q", answer)
	}
	req, _ := http.NewRequest("GET", e.URL+"/api/v1/apps/vault/envs/staging/services/web/logs", nil)
	req.Header.Set("Authorization", "Bearer "+e.Admin)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	svcLogs, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(svcLogs), "version ***") || strings.Contains(string(svcLogs), dbPass) {
		t.Fatalf("service log not masked: %s", svcLogs)
	}
	// A deployment to a revision naming an unknown secret fails before any task starts.
	if code, body := call("POST", "/api/v1/apps/vault/envs/staging/services/web/deployments", e.Admin, map[string]any{"task_definition": fmt.Sprintf("vault-web:%d", badRev)}); code != 400 ||
		errorField(body, "field") != "task_definition" || !strings.Contains(errorField(body, "message"), "no-such-secret") {
		t.Fatalf("deploy with an unknown secret: %d %v", code, body)
	}
	if d := e.service("vault", "staging", "web"); runningOf(d, badRev) != 0 {
		t.Fatal("a task of the bad revision started")
	}
	call("GET", fmt.Sprintf("/api/v1/runs/%d", id), e.Admin, nil)
	call("GET", "/api/v1/apps/vault/envs/staging/services/web", e.Admin, nil)

	// Removing works per scope.
	if code, _ := call("DELETE", "/api/v1/secrets/prod/api-key?app=vault", e.Admin, nil); code != 404 {
		t.Fatalf("remove in the wrong scope: %d", code)
	}
	if code, _ := call("DELETE", "/api/v1/secrets/prod/api-key", e.Admin, nil); code != 200 {
		t.Fatalf("remove: %d", code)
	}

	// The values are nowhere in clear: API answers, the server log, the database files.
	e.stop()
	for _, v := range []string{dbPass, apiKey, "old-value-1"} {
		if strings.Contains(responses.String(), v) {
			t.Errorf("an API response holds %q", v)
		}
		if strings.Contains(serverLog.String(), v) {
			t.Errorf("the server log holds %q", v)
		}
		files, _ := filepath.Glob(filepath.Join(dir, "slipway.db*"))
		for _, f := range files {
			b, _ := os.ReadFile(f)
			if bytes.Contains(b, []byte(v)) {
				t.Errorf("%s holds %q", filepath.Base(f), v)
			}
		}
	}
}
