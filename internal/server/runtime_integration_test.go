package server

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/slipway-dev/slipway/internal/deploy"
	"github.com/slipway-dev/slipway/internal/lb"
	"github.com/slipway-dev/slipway/internal/notify/notifytest"
	"github.com/slipway-dev/slipway/internal/store"
	"github.com/slipway-dev/slipway/internal/testtool"
	"github.com/slipway-dev/slipway/internal/testtool/kubetest"
	"github.com/slipway-dev/slipway/internal/testtool/pgtest"
	"github.com/slipway-dev/slipway/internal/traffic"
)

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// raceServers (SLIPWAY_TEST_RACE=1) builds the server and proxy processes
// the tests start with the race detector; a race stops the process, so the
// test that started it fails.
var raceServers = os.Getenv("SLIPWAY_TEST_RACE") == "1"

// slipwayBinary builds cmd/slipway once per test process.
func slipwayBinary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "slipway-bin-")
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(dir, "slipway")
		cmd := exec.Command("go", "build", "-o", binPath, "github.com/slipway-dev/slipway/cmd/slipway")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if raceServers {
			cmd = exec.Command("go", "build", "-race", "-o", binPath, "github.com/slipway-dev/slipway/cmd/slipway")
			cmd.Env = append(os.Environ(), "CGO_ENABLED=1")
		}
		if out, err := cmd.CombinedOutput(); err != nil {
			binErr = fmt.Errorf("build: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

var (
	webOnce  sync.Once
	webImage string
	webErr   error
)

// webAppImage builds testdata/webapp into a FROM scratch image once.
func webAppImage(t *testing.T) string {
	t.Helper()
	webOnce.Do(func() {
		dir, err := os.MkdirTemp("", "slipway-web-")
		if err != nil {
			webErr = err
			return
		}
		defer os.RemoveAll(dir)
		build := exec.Command("go", "build", "-o", filepath.Join(dir, "web"), "./testdata/webapp")
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := build.CombinedOutput(); err != nil {
			webErr = fmt.Errorf("build webapp: %v %s", err, out)
			return
		}
		// A label step of its own: a cached step shared with other
		// packages' test images goes when they are removed, which fails a
		// build reusing it at that moment ("unknown parent image ID").
		os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte("FROM scratch\nLABEL slipway.test=1 slipway.test.image=web\nCOPY web /web\nENTRYPOINT [\"/web\"]\n"), 0o644)
		webImage = fmt.Sprintf("slipway-test-web:%d", time.Now().UnixNano())
		cmd := exec.Command("docker", "build", "-q", "-t", webImage, dir)
		cmd.Env = append(os.Environ(), "DOCKER_BUILDKIT=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			webErr = fmt.Errorf("docker build: %v %s", err, out)
		}
	})
	if webErr != nil {
		t.Fatal(webErr)
	}
	return webImage
}

func TestMain(m *testing.M) {
	code := pgtest.RunMain(testtool.RunFunc(func() int { return kubetest.RunMain(m) }))
	if webImage != "" {
		exec.Command("docker", "rmi", "-f", webImage).Run()
	}
	if binPath != "" {
		os.RemoveAll(filepath.Dir(binPath))
	}
	os.Exit(code)
}

// procServer is a slipway server running as a real process.
type procServer struct {
	*testEnv
	cmd  *exec.Cmd
	data string
	bin  string
	addr string
}

// targetHealthLog is what the load balancer process logged about its
// targets' health, for a failure report.
func (s *procServer) targetHealthLog() string {
	data, err := os.ReadFile(filepath.Join(s.data, "proxy.log"))
	if err != nil {
		return err.Error()
	}
	var lines []string
	for _, line := range strings.Split(string(data), "\n") {
		if strings.Contains(line, "target") {
			lines = append(lines, line)
		}
	}
	return strings.Join(lines, "\n")
}

// startProcServer starts a server process on data; it is killed when the
// test ends, before the cleanups registered earlier (such as cleanupRuntime).
func startProcServer(t *testing.T, bin, data, addr string) *procServer {
	t.Helper()
	return startProcServerEnv(t, bin, data, addr)
}

// startProcServerEnv is startProcServer with more environment variables.
func startProcServerEnv(t *testing.T, bin, data, addr string, env ...string) *procServer {
	t.Helper()
	if addr == "" {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr = ln.Addr().String()
		ln.Close()
	}
	logf, _ := os.OpenFile(filepath.Join(data, "server.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	cmd := exec.Command(bin, "server", "--addr", addr, "--data", data)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(os.Environ(), env...)
	if raceServers {
		cmd.Env = append(cmd.Env, "GORACE=halt_on_error=1")
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &procServer{testEnv: &testEnv{t: t, URL: "http://" + addr}, cmd: cmd, data: data, bin: bin, addr: addr}
	t.Cleanup(p.kill) // also when the test kills and restarts it: kill is idempotent
	if raceServers {
		t.Cleanup(func() {
			if log, _ := os.ReadFile(filepath.Join(data, "server.log")); bytes.Contains(log, []byte("WARNING: DATA RACE")) {
				t.Errorf("a server or proxy process reported a data race:\n%s", log[bytes.Index(log, []byte("WARNING: DATA RACE")):])
			}
		})
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		if resp, err := http.Get(p.URL + "/healthz"); err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("server did not start")
		}
		time.Sleep(20 * time.Millisecond)
	}
	tok, _ := os.ReadFile(filepath.Join(data, AdminTokenFile))
	p.Admin = strings.TrimSpace(string(tok))
	return p
}

// startProcApp starts a server process on a fresh data directory and
// creates an app named prefix and a number; what the app leaves on the
// engine, and its proxy, go when the test ends.
func startProcApp(t *testing.T, prefix string) (*procServer, string) {
	t.Helper()
	data := t.TempDir()
	app := fmt.Sprintf("%s%d", prefix, time.Now().UnixNano()%1e6)
	cleanupRuntime(t, app, data)
	srv := startProcServer(t, slipwayBinary(t), data, "")
	srv.createApp(app)
	return srv, app
}

// restart SIGKILLs the server and starts a new one on its data and address.
func (p *procServer) restart() *procServer {
	p.t.Helper()
	p.kill()
	return startProcServer(p.t, p.bin, p.data, p.addr)
}

// restartEnv is restart with environment variables for the new server.
func (p *procServer) restartEnv(env ...string) *procServer {
	p.t.Helper()
	p.kill()
	return startProcServerEnv(p.t, p.bin, p.data, p.addr, env...)
}

func (p *procServer) kill() {
	if p.cmd.ProcessState != nil {
		return // already killed and reaped
	}
	p.cmd.Process.Signal(syscall.SIGKILL)
	p.cmd.Wait()
}

// cleanupRuntime removes what a test's app left on the engine (containers,
// networks, images, the proxy) once the test ends: only what the server of
// data made, so a developer's own app of the same name on this engine stays.
func cleanupRuntime(t *testing.T, app, data string) {
	cleanupRuntimeDB(t, app, data, "")
}

// cleanupRuntimeDB is cleanupRuntime for a server whose state is in the
// PostgreSQL database at databaseURL.
func cleanupRuntimeDB(t *testing.T, app, data, databaseURL string) {
	t.Cleanup(func() {
		killProxies(data)
		filter, ok := ownedBy(app, data, databaseURL)
		if !ok {
			return
		}
		out, _ := exec.Command("docker", append([]string{"ps", "-aq"}, filter...)...).Output()
		if ids := strings.Fields(string(out)); len(ids) > 0 {
			exec.Command("docker", append([]string{"rm", "-f"}, ids...)...).Run()
		}
		out, _ = exec.Command("docker", append([]string{"network", "ls", "-q"}, filter...)...).Output()
		if ids := strings.Fields(string(out)); len(ids) > 0 {
			exec.Command("docker", append([]string{"network", "rm"}, ids...)...).Run()
		}
		removeImages(filter)
	})
}

// ownedBy is the docker --filter arguments for what the server of data made
// for app: its label and the installation's. False when that server never
// started, so it made nothing.
func ownedBy(app, data, databaseURL string) ([]string, bool) {
	if _, err := os.Stat(filepath.Join(data, "slipway.db")); err != nil && databaseURL == "" {
		return nil, false
	}
	db, err := store.OpenDatabase(context.Background(), data, databaseURL)
	if err != nil {
		return nil, false
	}
	defer db.Close()
	id, err := db.GetMeta(context.Background(), "installation_id")
	if err != nil {
		return nil, false
	}
	return []string{"--filter", "label=slipway.app=" + app, "--filter", "label=slipway.installation=" + id}, true
}

func webTaskDef(family, image, version string, extraEnv ...string) string {
	env := []map[string]string{{"name": "VERSION", "value": version}}
	for _, kv := range extraEnv {
		k, v, _ := strings.Cut(kv, "=")
		env = append(env, map[string]string{"name": k, "value": v})
	}
	b, _ := json.Marshal(map[string]any{"family": family, "containerDefinitions": []any{map[string]any{
		"name": "web", "image": image, "portMappings": []any{map[string]int{"containerPort": 8080}},
		"environment": env, "memory": 64, "stopTimeout": 2}}})
	return string(b)
}

func (e *testEnv) registerTaskDef(body string) int {
	e.t.Helper()
	code, resp := e.call("POST", "/api/v1/taskdefs", e.Admin, body)
	if code != 201 {
		e.t.Fatalf("register: %d %v", code, resp)
	}
	return int(resp["revision"].(float64))
}

func (e *testEnv) service(app, env, name string) map[string]any {
	e.t.Helper()
	code, body := e.call("GET", fmt.Sprintf("/api/v1/apps/%s/envs/%s/services/%s", app, env, name), e.Admin, nil)
	if code != 200 {
		e.t.Fatalf("service: %d %v", code, body)
	}
	return body
}

// waitService polls until cond holds for the service detail.
func (e *testEnv) waitService(app, env, name string, timeout time.Duration, what string, cond func(map[string]any) bool) map[string]any {
	e.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		d := e.service(app, env, name)
		if cond(d) {
			return d
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("service never %s: %v", what, d)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func events(d map[string]any) string {
	var b strings.Builder
	for _, e := range d["events"].([]any) {
		b.WriteString(e.(map[string]any)["message"].(string) + "\n")
	}
	return b.String()
}

func runningOf(d map[string]any, revision int) int {
	n := 0
	for _, t := range d["tasks"].([]any) {
		tm := t.(map[string]any)
		if tm["status"] == "RUNNING" && int(tm["revision"].(float64)) == revision {
			n++
		}
	}
	return n
}

// startLoad sends requests to url from 8 clients, each pausing 5 ms between
// requests, until stopped, or until the test ends, so a failing test leaves
// no clients behind. The pause leaves this 2-core machine's CPU to the
// control plane: without it the load took a third of every test's time and
// still only proved what several hundred requests a second prove (the
// benchmarks send at full speed).
func startLoad(t *testing.T, url string) *traffic.Load {
	l := traffic.Start(traffic.Options{URLs: []string{url}, Pause: 5 * time.Millisecond})
	t.Cleanup(func() { l.Stop() })
	return l
}

func TestIntegrationServicesOnDocker(t *testing.T) {
	image := webAppImage(t)
	srv, app := startProcApp(t, "svc")
	listener := freePort(t)

	// Bad input first: an invalid task definition names the path.
	if code, body := srv.call("POST", "/api/v1/taskdefs", srv.Admin, `{"family":"w","containerDefinitions":[{"name":"web","image":"x","portMappings":[{"containerPort":0}]}]}`); code != 400 || errorField(body, "field") != "containerDefinitions[0].portMappings[0].containerPort" {
		t.Fatalf("invalid taskdef: %d %v", code, body)
	}
	rev1 := srv.registerTaskDef(webTaskDef(app, image, "1"))
	lbSettings := map[string]any{"container_name": "web", "container_port": 8080, "listener_port": listener, "health_check_path": "/health",
		"health_check_interval": "1s", "health_check_timeout": "800ms", "healthy_threshold": 2, "unhealthy_threshold": 3, "deregistration_delay": "3s"}
	if code, body := srv.call("POST", "/api/v1/apps/"+app+"/envs/staging/services", srv.Admin, map[string]any{"name": "web", "task_definition": app,
		"desired_count": 2, "load_balancer": map[string]any{"container_name": "api", "container_port": 8080, "listener_port": listener}}); code != 400 || !strings.Contains(errorField(body, "message"), "no container \"api\"") {
		t.Fatalf("lb container missing: %d %v", code, body)
	}
	if code, body := srv.call("POST", "/api/v1/apps/"+app+"/envs/qa/services", srv.Admin, map[string]any{"name": "web", "task_definition": app}); code != 404 {
		t.Fatalf("unknown environment: %d %v", code, body)
	}
	code, created := srv.call("POST", "/api/v1/apps/"+app+"/envs/staging/services", srv.Admin, map[string]any{"name": "web", "task_definition": fmt.Sprintf("%s:%d", app, rev1),
		"desired_count": 2, "load_balancer": lbSettings})
	if code != 201 || created["deployment_id"] == nil {
		t.Fatalf("create service: %d %v", code, created)
	}
	d := srv.waitService(app, "staging", "web", 60*time.Second, "steady", func(d map[string]any) bool {
		return runningOf(d, rev1) == 2 && strings.Contains(events(d), "has reached a steady state")
	})
	// Its first rollout is a deployment of its own, with nothing before it
	// to roll back to.
	first := srv.waitDeployment(int(created["deployment_id"].(float64)), "COMPLETED", 10*time.Second)
	if first["from_family"] != "" || first["to_revision"] != float64(rev1) || !strings.Contains(fmt.Sprint(first["events"]), "rollout COMPLETED: 2 tasks") {
		t.Fatalf("first rollout: %v", first)
	}
	if code, body := srv.call("POST", "/api/v1/apps/"+app+"/envs/staging/services/web/rollback", srv.Admin, nil); code != 404 || !strings.Contains(errorField(body, "message"), "no completed deployment of another revision") {
		t.Fatalf("rollback of a new service: %d %v", code, body)
	}
	url := fmt.Sprintf("http://127.0.0.1:%d/", listener)
	if code, body := getURL(t, url); code != 200 || !strings.HasPrefix(body, "version=1") {
		t.Fatalf("through the load balancer: %d %s", code, body)
	}
	// `service ps` tells the containers' own health (none defined here)
	// from the load balancer's view of each task.
	ps := exec.Command(srv.bin, "service", "ps", "web", "--app", app, "--env", "staging")
	ps.Env = append(os.Environ(), "SLIPWAY_URL="+srv.URL, "SLIPWAY_TOKEN="+srv.Admin, "XDG_CONFIG_HOME="+t.TempDir())
	if out, err := ps.CombinedOutput(); err != nil || !strings.Contains(string(out), "TARGET") || strings.Count(string(out), "UNKNOWN  tg1 healthy") != 2 {
		t.Fatalf("service ps: %v\n%s", err, out)
	}
	// Labels carry everything needed to find the task again.
	out, _ := exec.Command("docker", "inspect", "--format", "{{json .Config.Labels}}", "slipway-"+d["tasks"].([]any)[0].(map[string]any)["id"].(string)+"-web").Output()
	for _, want := range []string{`"slipway.app":"` + app + `"`, `"slipway.env":"staging"`, `"slipway.service":"web"`, `"slipway.revision":"` + strconv.Itoa(rev1) + `"`, `"slipway.task":`} {
		if !bytes.Contains(out, []byte(want)) {
			t.Fatalf("labels %s lack %s", out, want)
		}
	}

	l := startLoad(t, url)
	// A killed task is replaced.
	victim := d["tasks"].([]any)[0].(map[string]any)["id"].(string)
	if out, err := exec.Command("docker", "kill", "slipway-"+victim+"-web").CombinedOutput(); err != nil {
		t.Fatalf("docker kill: %v %s", err, out)
	}
	srv.waitService(app, "staging", "web", 60*time.Second, "replaced the killed task", func(d map[string]any) bool {
		return strings.Contains(events(d), "task "+victim+" stopped: essential container web exited with code 137") && runningOf(d, rev1) == 2 &&
			strings.Count(events(d), "has reached a steady state") >= 2
	})
	// Changing the revision is a rolling deployment.
	update := func(rev int) int {
		code, body := srv.call("PATCH", "/api/v1/apps/"+app+"/envs/staging/services/web", srv.Admin, map[string]any{"task_definition": fmt.Sprintf("%s:%d", app, rev)})
		if code != 202 {
			t.Fatalf("update to revision %d: %d %v", rev, code, body)
		}
		return int(body["deployment"].(map[string]any)["id"].(float64))
	}
	// An unhealthy revision never gets traffic and never replaces the healthy one.
	revSick := srv.registerTaskDef(webTaskDef(app, image, "sick", "UNHEALTHY=1"))
	sick := update(revSick)
	srv.waitService(app, "staging", "web", 30*time.Second, "started the unhealthy revision", func(d map[string]any) bool { return runningOf(d, revSick) == 2 })
	time.Sleep(4 * time.Second) // several health check intervals
	if n := l.Served("version=sick"); n != 0 {
		t.Fatalf("the unhealthy revision served %d requests", n)
	}
	for _, tk := range srv.service(app, "staging", "web")["tasks"].([]any) {
		if tm := tk.(map[string]any); tm["revision"] == float64(revSick) && tm["target_health"] == "healthy" {
			t.Fatalf("the load balancer reports a task of the unhealthy revision healthy: %v", tm)
		} else if tm["revision"] == float64(rev1) && tm["target_health"] != "healthy" {
			t.Fatalf("a task of the healthy revision is not a healthy target: %v", tm)
		}
	}
	if d := srv.service(app, "staging", "web"); runningOf(d, rev1) != 2 {
		t.Fatalf("the healthy revision was replaced by an unhealthy one: %v", d["tasks"])
	}
	if code, body := srv.call("POST", "/api/v1/apps/"+app+"/envs/staging/services/web/deployments", srv.Admin, map[string]any{"task_definition": fmt.Sprintf("%s:%d", app, rev1)}); code != 409 || !strings.Contains(errorField(body, "message"), "in progress") {
		t.Fatalf("a second deployment while one runs: %d %v", code, body)
	}
	if code, _ := srv.call("POST", fmt.Sprintf("/api/v1/deployments/%d/stop", sick), srv.Admin, nil); code != 202 {
		t.Fatalf("stop: %d", code)
	}
	srv.waitDeployment(sick, "ROLLED_BACK", 30*time.Second)
	// A missing image trips the circuit breaker; the old tasks keep serving.
	revMissing := srv.registerTaskDef(webTaskDef(app, strings.TrimPrefix(srv.URL, "http://")+"/"+app+":does-not-exist", "missing"))
	missing := update(revMissing)
	d = srv.waitDeployment(missing, "ROLLED_BACK", 60*time.Second)
	if !strings.Contains(d["reason"].(string), "circuit breaker") {
		t.Fatalf("missing image: %v", d["reason"])
	}
	if ev := events(srv.service(app, "staging", "web")); !strings.Contains(ev, "unable to start a task: image not found") {
		t.Fatalf("no image event: %s", ev)
	}
	// A good revision rolls out under load; the server is SIGKILLed in the
	// middle of it, and the restarted one resumes the rollout.
	rev2 := srv.registerTaskDef(webTaskDef(app, image, "2"))
	rollout := update(rev2)
	srv.waitService(app, "staging", "web", 30*time.Second, "started the rollout", func(d map[string]any) bool { return runningOf(d, rev2) >= 1 })
	srv = srv.restart()
	d = srv.waitDeployment(rollout, "COMPLETED", 60*time.Second)
	if !strings.Contains(fmt.Sprint(d["events"]), "resuming the rollout") {
		t.Fatalf("the rollout completed without resuming: %v", d["events"])
	}
	// Once it is done, the server is SIGKILLed and restarted again.
	srv.waitService(app, "staging", "web", 60*time.Second, "rolled out revision 2", func(d map[string]any) bool {
		return runningOf(d, rev2) == 2 && runningOf(d, rev1) == 0 && len(d["tasks"].([]any)) == 2
	})
	before := srv.service(app, "staging", "web")
	srv.kill()
	time.Sleep(2 * time.Second) // traffic keeps flowing with no control plane
	srv = startProcServer(t, srv.bin, srv.data, srv.addr)
	time.Sleep(3 * time.Second) // a few reconcile passes
	after := srv.service(app, "staging", "web")
	ids := func(d map[string]any) string {
		var s []string
		for _, t := range d["tasks"].([]any) {
			s = append(s, t.(map[string]any)["id"].(string))
		}
		return strings.Join(s, ",")
	}
	if ids(before) != ids(after) {
		t.Fatalf("the restarted server did not adopt the running tasks: %s → %s", ids(before), ids(after))
	}
	// Deploying the revision already running replaces its tasks one at a
	// time (ECS's force new deployment): with at most 100% running, the old
	// tasks cannot be mistaken for new ones and drained all at once.
	code, body := srv.call("POST", "/api/v1/apps/"+app+"/envs/staging/services/web/deployments", srv.Admin, map[string]any{"task_definition": fmt.Sprintf("%s:%d", app, rev2),
		"settings": map[string]any{"minimum_healthy_percent": 50, "maximum_percent": 100}})
	if code != 201 {
		t.Fatalf("deploy the running revision: %d %v", code, body)
	}
	srv.waitDeployment(int(body["id"].(float64)), "COMPLETED", 60*time.Second)
	replaced := srv.waitService(app, "staging", "web", 60*time.Second, "replaced both tasks", func(d map[string]any) bool {
		return runningOf(d, rev2) == 2 && len(d["tasks"].([]any)) == 2
	})
	for _, id := range strings.Split(ids(after), ",") {
		if strings.Contains(ids(replaced), id) {
			t.Fatalf("task %s of the running revision was not replaced: %s → %s", id, ids(after), ids(replaced))
		}
	}
	after = replaced
	// Stopped once its old tasks have drained, a rolling deployment rolls
	// back with the new revision's healthy tasks serving until the old
	// revision's pass their checks again: the listener is never empty.
	revSlow := srv.registerTaskDef(webTaskDef(app, image, "3", "START_DELAY=3s"))
	code, body = srv.call("POST", "/api/v1/apps/"+app+"/envs/staging/services/web/deployments", srv.Admin, map[string]any{"task_definition": fmt.Sprintf("%s:%d", app, revSlow),
		"settings": map[string]any{"minimum_healthy_percent": 50, "maximum_percent": 100}})
	if code != 201 {
		t.Fatalf("deploy revision 3: %d %v", code, body)
	}
	slow := int(body["id"].(float64))
	for drained := false; !drained; time.Sleep(50 * time.Millisecond) {
		_, d := srv.call("GET", fmt.Sprintf("/api/v1/deployments/%d", slow), srv.Admin, nil)
		if d["state"] != "IN_PROGRESS" {
			t.Fatalf("the deployment ended before its old tasks drained: %v %v", d["state"], d["reason"])
		}
		drained = true
		for _, s := range d["layout"].(map[string]any)["sets"].([]any) {
			if set := s.(map[string]any); set["revision"] == float64(rev2) && set["desired"] != 0.0 {
				drained = false
			}
		}
	}
	if code, _ := srv.call("POST", fmt.Sprintf("/api/v1/deployments/%d/stop", slow), srv.Admin, nil); code != 202 {
		t.Fatalf("stop: %d", code)
	}
	for {
		_, d := srv.call("GET", fmt.Sprintf("/api/v1/deployments/%d", slow), srv.Admin, nil)
		if d["phase"] == "RollingBack" {
			break
		}
		if d["state"] != "IN_PROGRESS" {
			t.Fatalf("rolled back without keeping the new tasks serving: %v", d["events"])
		}
		time.Sleep(50 * time.Millisecond)
	}
	if code, body := srv.call("POST", fmt.Sprintf("/api/v1/deployments/%d/stop", slow), srv.Admin, nil); code != 409 || !strings.Contains(errorField(body, "message"), "already rolling back") {
		t.Fatalf("a second stop while rolling back: %d %v", code, body)
	}
	// The server is SIGKILLed while the rollback waits; the restarted one
	// rolls back again from where it was, the new tasks still serving.
	srv = srv.restart()
	d = srv.waitDeployment(slow, "ROLLED_BACK", 60*time.Second)
	if !strings.Contains(fmt.Sprint(d["events"]), "keep serving until") {
		t.Fatalf("rolled back without keeping the new tasks serving: %v", d["events"])
	}
	if d["reason"] != "stopped by a person" {
		t.Fatalf("the restart changed the rollback's reason: %v", d["reason"])
	}
	after = srv.waitService(app, "staging", "web", 30*time.Second, "back on revision 2 alone", func(d map[string]any) bool {
		return runningOf(d, rev2) == 2 && len(d["tasks"].([]any)) == 2
	})
	l.Stop()
	if l.Failed() != 0 {
		var timeline []string
		for _, e := range after["events"].([]any) {
			em := e.(map[string]any)
			at, _ := time.Parse(time.RFC3339Nano, em["at"].(string))
			timeline = append([]string{at.Local().Format("15:04:05.000") + " " + em["message"].(string)}, timeline...)
		}
		t.Fatalf("%d of %d requests failed:\n%s\nservice events:\n%s", l.Failed(), l.OK()+l.Failed(), strings.Join(l.Failures(), "\n"), strings.Join(timeline, "\n"))
	}
	if l.Served("version=2") == 0 || l.OK() < 500 {
		t.Fatalf("load: %d ok, %d on version 2", l.OK(), l.Served("version=2"))
	}
	t.Logf("%d requests, 0 failed, across a kill, an unhealthy revision, a missing image, a rollout resumed after a server SIGKILL, another SIGKILL, a redeployment of the running revision and a rollback after old tasks drained, SIGKILLed while it waited", l.OK())

	// A crashing container restarts with growing backoff, an event each time,
	// and the app's channel hears once that the service is unhealthy.
	inbox := notifytest.NewReceiver(t, 0)
	if code, body := srv.call("PUT", "/api/v1/apps/"+app+"/channels/ops", srv.Admin, map[string]any{"type": "webhook", "events": []string{"service.unhealthy"},
		"settings": map[string]any{"url": inbox.URL, "secret": "k"}}); code != 200 {
		t.Fatalf("channel: %d %v", code, body)
	}
	revCrash := srv.registerTaskDef(webTaskDef(app, image, "crash", "CRASH=1"))
	code, created = srv.call("POST", "/api/v1/apps/"+app+"/envs/production/services", srv.Admin, map[string]any{"name": "crasher", "task_definition": fmt.Sprintf("%s:%d", app, revCrash), "desired_count": 1})
	if code != 201 {
		t.Fatalf("crasher: %d %v", code, created)
	}
	// A task's own stop, not a deployment's note quoting one.
	taskStop := regexp.MustCompile(`(?m)^\(service crasher\) task \S+ stopped: essential container web exited with code 2$`)
	d = srv.waitService(app, "production", "crasher", 90*time.Second, "restarted the crashing task four times", func(d map[string]any) bool {
		return len(taskStop.FindAllString(events(d), -1)) >= 4
	})
	// The first rollout fails by its circuit breaker (3 failed launches for
	// one task) while the service keeps retrying.
	if first := srv.waitDeployment(int(created["deployment_id"].(float64)), "FAILED", 10*time.Second); !strings.Contains(fmt.Sprint(first["reason"]), "circuit breaker: 3 failed launches") || !strings.Contains(fmt.Sprint(first["reason"]), "exited with code 2") {
		t.Fatalf("first rollout of a crashing revision: %v", first)
	}
	var stops []time.Time
	for _, e := range d["events"].([]any) {
		em := e.(map[string]any)
		if taskStop.MatchString(em["message"].(string)) {
			at, _ := time.Parse(time.RFC3339Nano, em["at"].(string))
			stops = append([]time.Time{at}, stops...)
		}
	}
	// Backoff doubles (1 s, 2 s, 4 s …); reconcile passes are a second apart,
	// so compare gaps two doublings apart.
	if gap1, gap3 := stops[1].Sub(stops[0]), stops[3].Sub(stops[2]); gap3 < gap1+time.Second {
		t.Fatalf("no backoff between restarts: %s, then %s\n%s", gap1, gap3, events(d))
	}
	var unhealthy []string
	for _, r := range inbox.Requests() {
		if r.Header.Get("X-Slipway-Event") == "service.unhealthy" && strings.Contains(string(r.Body), "crasher") {
			unhealthy = append(unhealthy, string(r.Body))
		}
	}
	if len(unhealthy) != 1 || !strings.Contains(unhealthy[0], "service crasher in production is unhealthy") {
		t.Fatalf("service.unhealthy notices during a crash loop (want exactly one): %q", unhealthy)
	}
	if code, _ := srv.call("DELETE", "/api/v1/apps/"+app+"/envs/production/services/crasher", srv.Admin, nil); code != 204 {
		t.Fatalf("delete: %d", code)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, _ := exec.Command("docker", "ps", "-aq", "--filter", "label=slipway.app="+app, "--filter", "label=slipway.service=crasher").Output()
		if len(bytes.TrimSpace(out)) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a deleted service's tasks were not stopped")
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// waitDeployment polls a deployment until it reaches state.
func (e *testEnv) waitDeployment(id int, state string, timeout time.Duration) map[string]any {
	e.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		code, d := e.call("GET", fmt.Sprintf("/api/v1/deployments/%d", id), e.Admin, nil)
		if code == 200 && d["state"] == state {
			return d
		}
		if code == 200 && d["state"] != "IN_PROGRESS" {
			e.t.Fatalf("deployment %d ended %v, want %s: %v", id, d["state"], state, d["reason"])
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("deployment %d is %v after %s, want %s: %v", id, d["state"], timeout, state, d["events"])
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func freePort(t *testing.T) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func getURL(t *testing.T, url string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// killProxies SIGKILLs every `slipway proxy --data DATA` process and waits
// until each is gone (or a zombie). All of them, not only the one in
// proxy.pid: one started late would outlive the test and put files back
// into the data dir as the test's TempDir cleanup removes it.
func killProxies(data string) {
	want := "\x00proxy\x00--data\x00" + data + "\x00"
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		cmdline, err := os.ReadFile(p)
		if err != nil || !strings.Contains(string(cmdline), want) {
			continue
		}
		pid, err := strconv.Atoi(filepath.Base(filepath.Dir(p)))
		if err != nil {
			continue
		}
		syscall.Kill(pid, syscall.SIGKILL)
		for i := 0; i < 200; i++ {
			st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
			if err != nil || strings.Contains(string(st), ") Z ") {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// TestIntegrationHalfStartedTaskIsReplaced: a server killed between
// creating a task's containers and starting them leaves a task that is
// neither running nor stopped. The restarted server replaces it instead of
// counting it as the service's task forever.
func TestIntegrationHalfStartedTaskIsReplaced(t *testing.T) {
	image := webAppImage(t)
	srv, app := startProcApp(t, "half")
	rev := srv.registerTaskDef(webTaskDef(app, image, "1"))
	if code, body := srv.call("POST", "/api/v1/apps/"+app+"/envs/staging/services", srv.Admin, map[string]any{"name": "web", "task_definition": fmt.Sprintf("%s:%d", app, rev), "desired_count": 1}); code != 201 {
		t.Fatalf("service: %d %v", code, body)
	}
	d := srv.waitService(app, "staging", "web", 60*time.Second, "running", func(d map[string]any) bool { return runningOf(d, rev) == 1 })
	old := d["tasks"].([]any)[0].(map[string]any)["id"].(string)
	srv.kill()
	// What the killed server would have left: the task's container created
	// with all its labels, never started.
	out, err := exec.Command("docker", "inspect", "--format", "{{json .Config.Labels}}", "slipway-"+old+"-web").Output()
	if err != nil {
		t.Fatalf("inspect: %v", err)
	}
	var labels map[string]string
	if err := json.Unmarshal(out, &labels); err != nil {
		t.Fatal(err)
	}
	half := "0123456789ab"
	labels["slipway.task"] = half
	args := []string{"create", "--name", "slipway-" + half + "-web"}
	for k, v := range labels {
		args = append(args, "--label", k+"="+v)
	}
	if out, err := exec.Command("docker", append(args, image)...).CombinedOutput(); err != nil {
		t.Fatalf("docker create: %v %s", err, out)
	}
	if out, err := exec.Command("docker", "rm", "-f", "slipway-"+old+"-web").CombinedOutput(); err != nil {
		t.Fatalf("docker rm: %v %s", err, out)
	}
	srv = startProcServer(t, srv.bin, srv.data, srv.addr)
	srv.waitService(app, "staging", "web", 60*time.Second, "replaced the half-started task", func(d map[string]any) bool {
		return runningOf(d, rev) == 1 && strings.Contains(events(d), "task "+half+" was left half-started")
	})
	if out, _ := exec.Command("docker", "ps", "-aq", "--filter", "label=slipway.task="+half).Output(); len(bytes.TrimSpace(out)) > 0 {
		t.Fatalf("the half-started task's container is still there: %s", out)
	}
}

// TestIntegrationAKilledProxyIsStartedAgainByTheNextCall: control calls no
// longer ping the proxy first, so a proxy that died is found by the call
// itself, which starts a new one and puts its table in force.
func TestIntegrationAKilledProxyIsStartedAgainByTheNextCall(t *testing.T) {
	data := t.TempDir()
	t.Cleanup(func() { killProxies(data) })
	p := deploy.NewProxy(data, slipwayBinary(t))
	ctx := context.Background()
	table := func(port int) lb.Config {
		return lb.Config{
			Listeners:    map[string]lb.Listener{"web": {Addr: fmt.Sprintf("127.0.0.1:%d", port), Routes: []lb.Route{{TargetGroup: "web.tg1", Weight: 100}}}},
			TargetGroups: map[string]lb.TargetGroup{"web.tg1": {}},
		}
	}
	pid := func() int {
		t.Helper()
		n, err := p.Client().Ping(ctx)
		if err != nil {
			t.Fatalf("no proxy answers: %v", err)
		}
		return n
	}
	if err := p.Apply(ctx, table(freePort(t))); err != nil {
		t.Fatalf("first apply, which starts the proxy: %v", err)
	}
	first := pid()
	killProxies(data)
	second := table(freePort(t))
	if err := p.Apply(ctx, second); err != nil {
		t.Fatalf("apply after the proxy was killed: %v", err)
	}
	if n := pid(); n == first {
		t.Fatalf("the killed proxy (pid %d) still answers", n)
	}
	cfg, err := p.Client().Config(ctx)
	if err != nil || cfg.Listeners["web"].Addr != second.Listeners["web"].Addr {
		t.Fatalf("the new proxy's table: %+v %v, want listener %s", cfg.Listeners, err, second.Listeners["web"].Addr)
	}
	killProxies(data)
	if _, err := p.State(ctx, time.Second); err != nil {
		t.Fatalf("state after the proxy was killed: %v", err)
	}
}

// A listener port another program takes (here: held before the service's
// row is written, past the API's check) holds back only its own service:
// the other services' listeners are applied, the service gets one event,
// and its listener binds once the port is free again.
func TestIntegrationATakenListenerPortHoldsBackOnlyItsService(t *testing.T) {
	dir := t.TempDir()
	cleanupRuntime(t, "ports", dir)
	e := newEnvWith(t, Config{DataDir: dir, ProxyBinary: slipwayBinary(t)})
	e.createApp("ports")
	rev := e.registerTaskDef(webTaskDef("ports-web", "127.0.0.1:1/ports:1", "1"))
	held, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	heldPort := held.Addr().(*net.TCPAddr).Port
	ctx := context.Background()
	if _, err := e.srv.db.CreateService(ctx, store.Service{App: "ports", Env: "staging", Name: "blocked", Family: "ports-web", Revision: rev,
		LoadBalancer: &store.LoadBalancer{ContainerName: "web", ContainerPort: 8080, ListenerPort: heldPort}}); err != nil {
		t.Fatal(err)
	}
	okPort := freePort(t)
	if code, body := e.call("POST", "/api/v1/apps/ports/envs/staging/services", e.Admin, map[string]any{"name": "open", "task_definition": fmt.Sprintf("ports-web:%d", rev), "desired_count": 0,
		"load_balancer": map[string]any{"container_name": "web", "container_port": 8080, "listener_port": okPort}}); code != 201 {
		t.Fatalf("create the other service: %d %v", code, body)
	}
	answers := func(port int) bool {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
		if err == nil {
			c.Close()
		}
		return err == nil
	}
	deadline := time.Now().Add(30 * time.Second)
	for !answers(okPort) {
		if time.Now().After(deadline) {
			t.Fatalf("the other service's listener never bound; server events: %s", events(e.service("ports", "staging", "blocked")))
		}
		time.Sleep(100 * time.Millisecond)
	}
	want := fmt.Sprintf("load balancer cannot listen on 127.0.0.1:%d", heldPort)
	e.waitService("ports", "staging", "blocked", 10*time.Second, "an event about its port", func(d map[string]any) bool { return strings.Contains(events(d), want) })
	time.Sleep(2500 * time.Millisecond) // passes go on failing to bind it…
	if n := strings.Count(events(e.service("ports", "staging", "blocked")), want); n != 1 {
		t.Fatalf("%d events about the taken port, want 1: %s", n, events(e.service("ports", "staging", "blocked")))
	}
	held.Close() // …until the port is free
	e.waitService("ports", "staging", "blocked", 10*time.Second, "its listener bound again", func(d map[string]any) bool {
		return strings.Contains(events(d), fmt.Sprintf("load balancer listens on 127.0.0.1:%d again", heldPort))
	})
	if !answers(heldPort) {
		t.Fatalf("port %d does not answer after it was freed", heldPort)
	}
	// Or the service moves to a free port, and the event says so.
	held, err = net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	if _, err := e.srv.db.CreateService(ctx, store.Service{App: "ports", Env: "production", Name: "moved", Family: "ports-web", Revision: rev,
		LoadBalancer: &store.LoadBalancer{ContainerName: "web", ContainerPort: 8080, ListenerPort: held.Addr().(*net.TCPAddr).Port}}); err != nil {
		t.Fatal(err)
	}
	e.srv.deploy.Wake()
	e.waitService("ports", "production", "moved", 10*time.Second, "an event about its port", func(d map[string]any) bool {
		return strings.Contains(events(d), "load balancer cannot listen on "+held.Addr().String())
	})
	newPort := freePort(t)
	if code, body := e.call("PATCH", "/api/v1/apps/ports/envs/production/services/moved", e.Admin, map[string]any{"load_balancer": map[string]any{"container_name": "web", "container_port": 8080, "listener_port": newPort}}); code != 200 {
		t.Fatalf("move the service: %d %v", code, body)
	}
	e.waitService("ports", "production", "moved", 10*time.Second, "its listener on the new port", func(d map[string]any) bool {
		return strings.Contains(events(d), fmt.Sprintf("load balancer listens on 127.0.0.1:%d (not on %s)", newPort, held.Addr()))
	})
	// Changing a service onto a port another program holds is refused too.
	code, body := e.call("PATCH", "/api/v1/apps/ports/envs/staging/services/open", e.Admin, map[string]any{"load_balancer": map[string]any{"container_name": "web", "container_port": 8080, "listener_port": held.Addr().(*net.TCPAddr).Port}})
	if code != 400 || errorField(body, "field") != "load_balancer.listener_port" || !strings.Contains(errorField(body, "message"), held.Addr().String()+" is in use by another program") {
		t.Fatalf("update onto a port in use: %d %v", code, body)
	}
}

// A server that adopts a proxy started from another build (as after an
// upgrade of the binary) says so, with how to restart it; one started from
// its own build passes without a word.
func TestIntegrationAProxyOfAnotherBuildIsReported(t *testing.T) {
	bin := slipwayBinary(t)
	other := filepath.Join(t.TempDir(), "slipway-other")
	b, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	// The same program with other bytes: an ELF file runs with data after its end.
	if err := os.WriteFile(other, append(b, []byte("another build")...), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, proxyBin string
		warned         bool
	}{{"another build", other, true}, {"the same build", bin, false}} {
		dir := t.TempDir()
		cleanupRuntime(t, "none", dir)
		proxy := exec.Command(c.proxyBin, "proxy", "--data", dir)
		if err := proxy.Start(); err != nil {
			t.Fatal(err)
		}
		client := lb.NewClient(filepath.Join(dir, "proxy.sock"))
		deadline := time.Now().Add(10 * time.Second)
		for {
			if _, err := client.Ping(context.Background()); err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: the proxy does not answer", c.name)
			}
			time.Sleep(20 * time.Millisecond)
		}
		var logs syncBuffer
		e := newEnvWith(t, Config{DataDir: dir, ProxyBinary: bin, Log: slog.New(slog.NewTextHandler(&logs, nil))})
		want := "the load balancer runs another slipway build than this server"
		wantPID := fmt.Sprintf("pid=%d", proxy.Process.Pid)
		time.Sleep(time.Second) // the check runs beside the server's start
		if got := logs.String(); strings.Contains(got, want) != c.warned || (c.warned && !strings.Contains(got, wantPID)) {
			t.Errorf("%s: warned %v, want %v:\n%s", c.name, strings.Contains(got, want), c.warned, got)
		}
		e.stop()
		proxy.Process.Kill()
		proxy.Wait()
	}
}
