package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/slipway-dev/slipway/internal/container"
	"github.com/slipway-dev/slipway/internal/deploy"
	"github.com/slipway-dev/slipway/internal/traffic"
)

// deployUnderLoad runs 20 consecutive deployments of mixed strategies while
// clients hammer the service, and counts failed requests.
func deployUnderLoad(e *env) (map[string]any, string, error) {
	return withWebService(e, func(ws *webService) (map[string]any, string, error) {
		l := traffic.Start(traffic.Options{URLs: []string{ws.url}, Clients: 16})
		defer l.Stop() // on an early return; the end stops it first
		start := time.Now()
		strategies := []struct{ strategy, config string }{
			{"rolling", ""}, {"blue-green", "CodeDeployDefault.ECSAllAtOnce"}, {"blue-green", "Canary50Percent1Seconds"}, {"blue-green", "Linear50PercentEvery1Seconds"},
		}
		var switches []time.Duration
		for i := 1; i <= 20; i++ {
			td, err := ws.register(fmt.Sprint(i))
			if err != nil {
				return nil, "", err
			}
			s := strategies[(i-1)%len(strategies)]
			id, err := ws.deploy(td, s.strategy, s.config)
			if err != nil {
				return nil, "", fmt.Errorf("deployment %d: %w", i, err)
			}
			sw, err := e.waitDeployment(id)
			if err != nil {
				return nil, "", err
			}
			if sw > 0 {
				switches = append(switches, sw)
			}
			fmt.Fprintf(os.Stderr, "  deployment %2d (%s %s) completed\n", i, s.strategy, s.config)
		}
		elapsed := time.Since(start)
		total, failed := l.Stop()
		sort.Slice(switches, func(i, j int) bool { return switches[i] < switches[j] })
		f := map[string]any{"deployments": 20, "requests": total, "failed": failed, "rps": float64(total) / elapsed.Seconds(),
			"seconds": elapsed.Seconds(), "green_healthy_to_switched_p50_ms": ms(switches[len(switches)/2]), "green_healthy_to_switched_max_ms": ms(switches[len(switches)-1]),
			"first_failures": l.Failures(), "goal": "0 failed, switch ≤ 50 ms"}
		return f, fmt.Sprintf("20 deployments in %.0f s under %.0f req/s: %d requests, %d failed; green healthy → traffic switched p50 %.1f ms, max %.1f ms",
			elapsed.Seconds(), f["rps"], total, failed, f["green_healthy_to_switched_p50_ms"], f["green_healthy_to_switched_max_ms"]), nil
	})
}

// waitDeployment waits for COMPLETED and returns the time from "green is
// healthy" to the first production traffic shift (0 for rolling).
func (e *env) waitDeployment(id int) (time.Duration, error) {
	deadline := time.Now().Add(3 * time.Minute)
	for time.Now().Before(deadline) {
		var d struct {
			State, Reason string
			Events        []struct {
				At      time.Time `json:"at"`
				Message string    `json:"message"`
			}
		}
		if err := e.getJSON(fmt.Sprintf("/api/v1/deployments/%d", id), &d); err != nil {
			return 0, err
		}
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

// cleanupBench removes the bench app's containers, networks, proxy and the
// engine's copies of the images its registry held.
// The server goes first: while it runs it would start a new proxy in
// place of the one stopped here.
func cleanupBench(e *env) {
	e.stop()
	if err := deploy.NewProxy(filepath.Join(e.dir, "data"), e.bin).Stop(context.Background()); err != nil {
		fmt.Fprintf(os.Stderr, "  stop the bench's proxy: %v\n", err)
	}
	out, _ := exec.Command("docker", "ps", "-aq", "--filter", "label=slipway.app=bench").Output()
	if ids := strings.Fields(string(out)); len(ids) > 0 {
		exec.Command("docker", append([]string{"rm", "-f"}, ids...)...).Run()
	}
	out, _ = exec.Command("docker", "network", "ls", "-q", "--filter", "label=slipway.app=bench").Output()
	if ids := strings.Fields(string(out)); len(ids) > 0 {
		exec.Command("docker", append([]string{"network", "rm"}, ids...)...).Run()
	}
	for _, f := range e.afterCleanup {
		f()
	}
	e.afterCleanup = nil
	if eng, err := container.Connect(context.Background()); err == nil && e.url != "" {
		if err := eng.RemoveRegistryImages(context.Background(), strings.TrimPrefix(e.url, "http://")); err != nil {
			fmt.Fprintf(os.Stderr, "  remove the bench's images: %v\n", err)
		}
	}
}
