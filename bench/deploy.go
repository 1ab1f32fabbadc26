package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// deployUnderLoad runs 20 consecutive deployments of mixed strategies while
// clients hammer the service, and counts failed requests.
func deployUnderLoad(e *env) (map[string]any, string, error) {
	if err := e.start(); err != nil {
		return nil, "", err
	}
	defer cleanupBench(e)
	image, err := buildWebImage(e.dir)
	if err != nil {
		return nil, "", err
	}
	defer exec.Command("docker", "rmi", "-f", image).Run()
	if err := e.post("/api/v1/apps", `{"name":"bench"}`); err != nil {
		return nil, "", err
	}
	register := func(version string) (string, error) {
		body := fmt.Sprintf(`{"family":"bench","containerDefinitions":[{"name":"web","image":%q,"portMappings":[{"containerPort":8080}],"environment":[{"name":"VERSION","value":%q}],"memory":64,"stopTimeout":2}]}`, image, version)
		var out struct {
			Revision int `json:"revision"`
		}
		if err := e.postJSON("/api/v1/taskdefs", body, &out); err != nil {
			return "", err
		}
		return fmt.Sprintf("bench:%d", out.Revision), nil
	}
	td, err := register("0")
	if err != nil {
		return nil, "", err
	}
	port := strings.TrimPrefix(freeAddr(), "127.0.0.1:")
	svc := fmt.Sprintf(`{"name":"web","task_definition":%q,"desired_count":2,"load_balancer":{"container_name":"web","container_port":8080,"listener_port":%s,
		"health_check_path":"/health","health_check_interval":"1s","health_check_timeout":"800ms","healthy_threshold":2,"unhealthy_threshold":3,"deregistration_delay":"1s"}}`, td, port)
	if err := e.postJSON("/api/v1/apps/bench/envs/staging/services", svc, nil); err != nil {
		return nil, "", err
	}
	url := "http://127.0.0.1:" + port + "/"
	deadline := time.Now().Add(90 * time.Second)
	for {
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			return nil, "", fmt.Errorf("the service never served")
		}
		time.Sleep(200 * time.Millisecond)
	}
	var ok, failed atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 32}}
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := client.Get(url)
				if err != nil {
					failed.Add(1)
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					failed.Add(1)
				} else {
					ok.Add(1)
				}
			}
		}()
	}
	start := time.Now()
	strategies := []struct{ strategy, config string }{
		{"rolling", ""}, {"blue-green", "CodeDeployDefault.ECSAllAtOnce"}, {"blue-green", "Canary50Percent1Seconds"}, {"blue-green", "Linear50PercentEvery1Seconds"},
	}
	var switches []time.Duration
	for i := 1; i <= 20; i++ {
		td, err := register(fmt.Sprint(i))
		if err != nil {
			close(stop)
			return nil, "", err
		}
		s := strategies[(i-1)%len(strategies)]
		body := fmt.Sprintf(`{"task_definition":%q,"strategy":%q,"config":%q,"settings":{"termination_wait":"1s","circuit_breaker":true,"rollback":true}}`, td, s.strategy, s.config)
		var d struct {
			ID int `json:"id"`
		}
		if err := e.postJSON("/api/v1/apps/bench/envs/staging/services/web/deployments", body, &d); err != nil {
			close(stop)
			return nil, "", fmt.Errorf("deployment %d: %w", i, err)
		}
		sw, err := e.waitDeployment(d.ID)
		if err != nil {
			close(stop)
			return nil, "", err
		}
		if sw > 0 {
			switches = append(switches, sw)
		}
		fmt.Fprintf(os.Stderr, "  deployment %2d (%s %s) completed\n", i, s.strategy, s.config)
	}
	elapsed := time.Since(start)
	close(stop)
	wg.Wait()
	sort.Slice(switches, func(i, j int) bool { return switches[i] < switches[j] })
	total := ok.Load() + failed.Load()
	f := map[string]any{"deployments": 20, "requests": total, "failed": failed.Load(), "rps": float64(total) / elapsed.Seconds(),
		"seconds": elapsed.Seconds(), "green_healthy_to_switched_p50_ms": ms(switches[len(switches)/2]), "green_healthy_to_switched_max_ms": ms(switches[len(switches)-1]),
		"goal": "0 failed, switch ≤ 50 ms"}
	return f, fmt.Sprintf("20 deployments in %.0f s under %.0f req/s: %d requests, %d failed; green healthy → traffic switched p50 %.1f ms, max %.1f ms",
		elapsed.Seconds(), f["rps"], total, failed.Load(), f["green_healthy_to_switched_p50_ms"], f["green_healthy_to_switched_max_ms"]), nil
}

func (e *env) postJSON(path, body string, out any) error {
	req, _ := http.NewRequest("POST", e.url+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+e.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		return fmt.Errorf("POST %s: %s %s", path, resp.Status, b)
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}

// waitDeployment waits for COMPLETED and returns the time from "green is
// healthy" to the first production traffic shift (0 for rolling).
func (e *env) waitDeployment(id int) (time.Duration, error) {
	deadline := time.Now().Add(3 * time.Minute)
	for time.Now().Before(deadline) {
		req, _ := http.NewRequest("GET", fmt.Sprintf("%s/api/v1/deployments/%d", e.url, id), nil)
		req.Header.Set("Authorization", "Bearer "+e.token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, err
		}
		var d struct {
			State, Reason string
			Events        []struct {
				At      time.Time `json:"at"`
				Message string    `json:"message"`
			}
		}
		json.NewDecoder(resp.Body).Decode(&d)
		resp.Body.Close()
		switch d.State {
		case "COMPLETED":
			var healthy, shifted time.Time
			for _, ev := range d.Events {
				if strings.HasPrefix(ev.Message, "green is healthy") {
					healthy = ev.At
				}
				if strings.HasPrefix(ev.Message, "production traffic: green") && shifted.IsZero() {
					shifted = ev.At
				}
			}
			if healthy.IsZero() || shifted.IsZero() {
				return 0, nil
			}
			return shifted.Sub(healthy), nil
		case "IN_PROGRESS", "":
		default:
			return 0, fmt.Errorf("deployment %d %s: %s", id, d.State, d.Reason)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return 0, fmt.Errorf("deployment %d did not finish in 3 minutes", id)
}

func buildWebImage(dir string) (string, error) {
	out := filepath.Join(dir, "webimg")
	os.MkdirAll(out, 0o755)
	build := exec.Command("go", "build", "-o", filepath.Join(out, "web"), "./internal/server/testdata/webapp")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := build.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build webapp: %v %s", err, b)
	}
	os.WriteFile(filepath.Join(out, "Dockerfile"), []byte("FROM scratch\nLABEL slipway.bench=1\nCOPY web /web\nENTRYPOINT [\"/web\"]\n"), 0o644)
	image := fmt.Sprintf("slipway-bench-web:%d", time.Now().UnixNano())
	cmd := exec.Command("docker", "build", "-q", "-t", image, out)
	cmd.Env = append(os.Environ(), "DOCKER_BUILDKIT=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("docker build: %v %s", err, b)
	}
	return image, nil
}

// cleanupBench removes the bench app's containers, networks and proxy.
func cleanupBench(e *env) {
	if b, err := os.ReadFile(filepath.Join(e.dir, "data", "proxy.pid")); err == nil {
		exec.Command("kill", "-9", strings.TrimSpace(string(b))).Run()
	}
	out, _ := exec.Command("docker", "ps", "-aq", "--filter", "label=slipway.app=bench").Output()
	if ids := strings.Fields(string(out)); len(ids) > 0 {
		exec.Command("docker", append([]string{"rm", "-f"}, ids...)...).Run()
	}
	out, _ = exec.Command("docker", "network", "ls", "-q", "--filter", "label=slipway.app=bench").Output()
	if ids := strings.Fields(string(out)); len(ids) > 0 {
		exec.Command("docker", append([]string{"network", "rm"}, ids...)...).Run()
	}
}
