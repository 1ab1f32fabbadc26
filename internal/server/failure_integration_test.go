package server

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/slipway-dev/slipway/internal/container/containertest"
)

// logsOf reads a service's stored task output through the API.
func (e *testEnv) logsOf(app, env, name, query, accept string) string {
	e.t.Helper()
	req, _ := http.NewRequest("GET", fmt.Sprintf("%s/api/v1/apps/%s/envs/%s/services/%s/logs?%s", e.URL, app, env, name, query), nil)
	req.Header.Set("Authorization", "Bearer "+e.Admin)
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		e.t.Fatalf("logs?%s: %d %s", query, resp.StatusCode, b)
	}
	return string(b)
}

// cli runs the slipway binary as a client of the server.
func (p *procServer) cli(args ...string) (string, error) {
	p.t.Helper()
	cmd := exec.Command(p.bin, args...)
	cmd.Env = append(os.Environ(), "SLIPWAY_URL="+p.URL, "SLIPWAY_TOKEN="+p.Admin, "XDG_CONFIG_HOME="+p.t.TempDir())
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestIntegrationFailedDeploymentsSayWhy: a blue/green deployment of a
// revision whose entrypoint does not exist, and a rolling one of a revision
// that exits 3 after printing why, each roll back with a reason that names
// the engine's error, the exit code and the last output; the deployment
// shows it in the API and the CLI; and the crashed tasks' output stays in
// the service's log after they are gone, selectable by task and time.
func TestIntegrationFailedDeploymentsSayWhy(t *testing.T) {
	image := webAppImage(t)
	busybox := containertest.BusyboxImage(t)
	srv, app := startProcApp(t, "why")
	prodPort, testPort := freePort(t), freePort(t)
	rev1 := srv.registerTaskDef(webTaskDef(app, image, "1"))
	if code, body := srv.call("POST", "/api/v1/apps/"+app+"/envs/staging/services", srv.Admin, map[string]any{"name": "web", "task_definition": fmt.Sprintf("%s:%d", app, rev1), "desired_count": 1,
		"load_balancer": map[string]any{"container_name": "web", "container_port": 8080, "listener_port": prodPort, "test_listener_port": testPort, "health_check_path": "/health",
			"health_check_interval": "1s", "health_check_timeout": "800ms", "healthy_threshold": 2, "unhealthy_threshold": 3, "deregistration_delay": "1s"}}); code != 201 {
		t.Fatalf("service: %d %v", code, body)
	}
	srv.waitService(app, "staging", "web", 60*time.Second, "steady", func(d map[string]any) bool {
		return runningOf(d, rev1) == 1 && strings.Contains(events(d), "steady state")
	})
	deploy := func(body map[string]any) int {
		t.Helper()
		code, resp := srv.call("POST", "/api/v1/apps/"+app+"/envs/staging/services/web/deployments", srv.Admin, body)
		if code != 201 {
			t.Fatalf("deploy: %d %v", code, resp)
		}
		return int(resp["id"].(float64))
	}
	register := func(c map[string]any) int {
		t.Helper()
		c["name"], c["portMappings"], c["memory"], c["stopTimeout"] = "web", []any{map[string]int{"containerPort": 8080}}, 64, 2
		b, _ := json.Marshal(map[string]any{"family": app, "containerDefinitions": []any{c}})
		code, resp := srv.call("POST", "/api/v1/taskdefs", srv.Admin, string(b))
		if code != 201 {
			t.Fatalf("register: %d %v", code, resp)
		}
		// The awslogs group and prefix are used, the region is not.
		if got := fmt.Sprint(resp["ignored_fields"]); c["logConfiguration"] != nil && got != "[containerDefinitions[0].logConfiguration.options.awslogs-region]" {
			t.Fatalf("ignored fields: %s", got)
		}
		return int(resp["revision"].(float64))
	}

	// Blue/green: green's entrypoint does not exist.
	typo := register(map[string]any{"image": image, "entryPoint": []string{"/app-typo"}})
	bg := srv.waitDeployment(deploy(map[string]any{"task_definition": fmt.Sprintf("%s:%d", app, typo), "strategy": "blue-green", "settings": map[string]any{"timeout": "60s"}}), "ROLLED_BACK", 90*time.Second)
	for _, want := range []string{"green task failed", "container web could not start", `exec: "/app-typo"`, "no such file or directory", "exit code 127"} {
		if !strings.Contains(bg["reason"].(string), want) {
			t.Fatalf("blue/green reason lacks %q: %s", want, bg["reason"])
		}
	}

	// Rolling: the task prints why and exits 3, three times (the circuit breaker).
	boom := register(map[string]any{"image": busybox, "command": []string{"sh", "-c", "echo starting; echo 'boom: config missing' >&2; exit 3"},
		"logConfiguration": map[string]any{"logDriver": "awslogs", "options": map[string]any{"awslogs-group": "/ecs/why", "awslogs-stream-prefix": "boom", "awslogs-region": "eu-west-1"}}})
	rolling := srv.waitDeployment(deploy(map[string]any{"task_definition": fmt.Sprintf("%s:%d", app, boom), "settings": map[string]any{"circuit_breaker": true, "rollback": true, "timeout": "90s"}}),
		"ROLLED_BACK", 120*time.Second)
	reason := rolling["reason"].(string)
	for _, want := range []string{"circuit breaker", "exited with code 3", "last output: ", "boom: config missing"} {
		if !strings.Contains(reason, want) {
			t.Fatalf("rolling reason lacks %q: %s", want, reason)
		}
	}
	// Each crash is a service event: the exit on its first line, the output on the next.
	stop := regexp.MustCompile(`\(service web\) task (\S+) stopped: essential container web exited with code 3\nlast output: .*boom: config missing`)
	d := srv.service(app, "staging", "web")
	m := stop.FindStringSubmatch(events(d))
	if m == nil {
		t.Fatalf("no event of a crash with its output:\n%s", events(d))
	}
	crashed := m[1]
	if out, err := srv.cli("service", "show", "web", "--app", app, "--env", "staging"); err != nil ||
		!regexp.MustCompile(`(?m)^\s+last output: .*boom: config missing$`).MatchString(out) {
		t.Fatalf("service show: %v\n%s", err, out)
	}

	// The deployment shows why, for people and for scripts.
	id := fmt.Sprint(rolling["id"].(float64))
	out, err := srv.cli("deploy", "show", id)
	if err != nil || !strings.Contains(out, "exited with code 3") || !regexp.MustCompile(`(?m)^(Last output:)?\s+boom: config missing$`).MatchString(out) || !strings.Contains(out, "\nLast output: ") {
		t.Fatalf("deploy show: %v\n%s", err, out)
	}
	out, err = srv.cli("deploy", "show", id, "-o", "json")
	var shown struct{ Reason string }
	if err != nil || json.Unmarshal([]byte(out), &shown) != nil || shown.Reason != reason {
		t.Fatalf("deploy show -o json: %v\n%s", err, out)
	}
	// And the web console's deployment page.
	ui, _ := srv.signin(srv.Admin)
	if resp, err := ui.Get(srv.URL + "/deployments/" + id); err != nil {
		t.Fatal(err)
	} else {
		page, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.Contains(string(page), "exited with code 3") || !strings.Contains(string(page), "boom: config missing") {
			t.Fatalf("the deployment page does not say why (%d):\n%s", resp.StatusCode, page)
		}
	}

	// The crashed tasks are gone; their output is not.
	srv.waitService(app, "staging", "web", 30*time.Second, "back on revision 1 alone", func(d map[string]any) bool {
		for _, tk := range d["tasks"].([]any) {
			if int(tk.(map[string]any)["revision"].(float64)) != rev1 {
				return false
			}
		}
		return runningOf(d, rev1) == 1
	})
	all := srv.logsOf(app, "staging", "web", "", "")
	if strings.Count(all, "boom: config missing") < 3 || !strings.Contains(all, crashed+"/web | ") || !strings.Contains(all, "listening on :8080, version 1") {
		t.Fatalf("service logs:\n%s", all)
	}
	// One task's lines, as JSON, named as the task definition's awslogs options say.
	sc := bufio.NewScanner(strings.NewReader(srv.logsOf(app, "staging", "web", "task="+crashed+"&since=10m", "application/x-ndjson")))
	var lines []string
	for sc.Scan() {
		var l struct{ Task, Container, Source, Line, LogGroup, LogStream string }
		var raw map[string]any
		if err := json.Unmarshal(sc.Bytes(), &raw); err != nil {
			t.Fatalf("%v: %s", err, sc.Text())
		}
		l.Task, l.Container, l.Source, l.Line = raw["task"].(string), raw["container"].(string), raw["source"].(string), raw["line"].(string)
		l.LogGroup, l.LogStream = raw["log_group"].(string), raw["log_stream"].(string)
		if l.Task != crashed || l.Container != "web" || l.LogGroup != "/ecs/why" || l.LogStream != "boom/web/"+crashed {
			t.Fatalf("a line of task %s: %s", crashed, sc.Text())
		}
		lines = append(lines, l.Source+": "+l.Line)
	}
	if len(lines) != 2 || !strings.Contains(strings.Join(lines, "\n"), "stderr: boom: config missing") {
		t.Fatalf("task %s's lines: %q", crashed, lines)
	}
	if got := srv.logsOf(app, "staging", "web", "since="+time.Now().Add(time.Hour).Format(time.RFC3339), ""); got != "" {
		t.Fatalf("lines from the future: %q", got)
	}
	// The CLI: one task's lines, since a while ago.
	out, err = srv.cli("service", "logs", "web", "--app", app, "--env", "staging", "--task", crashed, "--since", "10m")
	if err != nil || strings.Count(out, "\n") != 2 || !strings.Contains(out, crashed+"/web | ") || !strings.Contains(out, "boom: config missing") {
		t.Fatalf("service logs --task: %v\n%s", err, out)
	}
	if out, err := srv.cli("service", "logs", "web", "--app", app, "--env", "staging", "--since", "yesterday"); err == nil || !strings.Contains(out, "--since \"yesterday\" must be") {
		t.Fatalf("a bad --since: %v\n%s", err, out)
	}
}
