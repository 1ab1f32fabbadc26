package main

import (
	"cmp"
	"fmt"
	"net/http"
	"os/exec"
	"strings"
	"time"
)

// webService is the test web app running as service "web" of app "bench"
// behind the load balancer, for the benchmarks that deploy under load.
type webService struct {
	e     *env
	image string
	url   string
	// name is the service's ("web" when empty), family its task
	// definition's ("bench" when empty); cpu (units) and memory (MiB) are
	// its container's (none and 64 when 0).
	name, family string
	cpu, memory  int
	// defaultChecks: the load balancer's default health checks (every 5 s)
	// rather than every second, as a fleet of services would run.
	defaultChecks bool
}

// withWebService starts the server and the web service, runs measure, and
// removes what the benchmark made, also when it fails.
func withWebService(e *env, measure func(*webService) (map[string]any, string, error)) (map[string]any, string, error) {
	if err := e.start(); err != nil {
		return nil, "", err
	}
	defer cleanupBench(e)
	ws, err := startWebService(e)
	if err != nil {
		return nil, "", err
	}
	return measure(ws)
}

// startWebService builds the image, creates the app and the service (two
// tasks, 1 s health checks) and waits until it serves.
func startWebService(e *env) (*webService, error) {
	image, err := buildWebImage(e.dir)
	if err != nil {
		return nil, err
	}
	ws := &webService{e: e, image: image}
	// The image goes after cleanupBench has removed the containers that use
	// it; removed before, it would only lose its tag and stay.
	e.afterCleanup = append(e.afterCleanup, ws.close)
	if err := e.post("/api/v1/apps", `{"name":"bench"}`); err != nil {
		return nil, err
	}
	if err := ws.create(strings.TrimPrefix(freeAddr(), "127.0.0.1:")); err != nil {
		return nil, err
	}
	if err := waitServing(ws.url, 90*time.Second); err != nil {
		return nil, err
	}
	return ws, nil
}

// create registers the first revision and creates the service in app
// bench's staging: two tasks behind a listener on port, health checks on
// /health every second. It returns as the API answers, before any task runs.
func (ws *webService) create(port string) error {
	td, err := ws.register("0")
	if err != nil {
		return err
	}
	checks := `"health_check_interval":"1s","health_check_timeout":"800ms","healthy_threshold":2,"unhealthy_threshold":3,"deregistration_delay":"1s"`
	if ws.defaultChecks {
		checks = `"healthy_threshold":2`
	}
	svc := fmt.Sprintf(`{"name":%q,"task_definition":%q,"desired_count":2,"load_balancer":{"container_name":"web","container_port":8080,"listener_port":%s,
		"health_check_path":"/health",%s}}`, ws.service(), td, port, checks)
	if err := ws.e.postJSON("/api/v1/apps/bench/envs/staging/services", svc, nil); err != nil {
		return err
	}
	ws.url = "http://127.0.0.1:" + port + "/"
	return nil
}

func (ws *webService) service() string { return cmp.Or(ws.name, "web") }

// register adds a revision whose tasks report version.
func (ws *webService) register(version string) (string, error) {
	family, cpu := cmp.Or(ws.family, "bench"), ""
	if ws.cpu > 0 {
		cpu = fmt.Sprintf(`"cpu":%d,`, ws.cpu)
	}
	body := fmt.Sprintf(`{"family":%q,"containerDefinitions":[{"name":"web","image":%q,"portMappings":[{"containerPort":8080}],"environment":[{"name":"VERSION","value":%q}],%s"memory":%d,"stopTimeout":2}]}`,
		family, ws.image, version, cpu, cmp.Or(ws.memory, 64))
	var out struct {
		Revision int `json:"revision"`
	}
	if err := ws.e.postJSON("/api/v1/taskdefs", body, &out); err != nil {
		return "", err
	}
	return fmt.Sprintf("%s:%d", family, out.Revision), nil
}

// deploy starts a deployment of taskdef and returns its id.
func (ws *webService) deploy(taskdef, strategy, config string) (int, error) {
	body := fmt.Sprintf(`{"task_definition":%q,"strategy":%q,"config":%q,"settings":{"termination_wait":"1s","circuit_breaker":true,"rollback":true}}`, taskdef, strategy, config)
	var d struct {
		ID int `json:"id"`
	}
	err := ws.e.postJSON("/api/v1/apps/bench/envs/staging/services/"+ws.service()+"/deployments", body, &d)
	return d.ID, err
}

func (ws *webService) close() { exec.Command("docker", "rmi", "-f", ws.image).Run() }

func waitServing(url string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("%s never served", url)
}
