package main

import (
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// chaosRestart SIGKILLs the server at random moments while runs and
// blue/green deployments are in flight, 30 times, restarting it each time;
// it reports runs and deployments lost or stuck, and the app requests that
// failed while the control plane was down (the load balancer keeps serving).
func chaosRestart(e *env) (map[string]any, string, error) {
	const rounds = 30
	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, 1))
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
	// A pipeline of two short stages, queued so every run executes.
	work := e.dir + "/work"
	os.MkdirAll(work, 0o755)
	os.WriteFile(work+"/slipway.yaml", []byte("on: {}\nmode: queued\nstages:\n  - name: Build\n    actions:\n      - {name: compile, type: invoke, command: 'sleep 0.7; echo built'}\n  - name: Ship\n    actions:\n      - {name: ship, type: invoke, command: 'sleep 0.3; echo shipped'}\n"), 0o644)
	for _, args := range [][]string{{"init", "-q", "-b", "main"}, {"add", "."}, {"-c", "user.name=b", "-c", "user.email=b@x", "commit", "-qm", "x"},
		{"push", "-q", strings.Replace(e.url, "http://", "http://b:"+e.token+"@", 1) + "/git/bench.git", "main"}} {
		cmd := exec.Command("git", args...)
		cmd.Dir = work
		if out, err := cmd.CombinedOutput(); err != nil {
			return nil, "", fmt.Errorf("git %v: %v %s", args, err, out)
		}
	}
	register := func(version int) (string, error) {
		body := fmt.Sprintf(`{"family":"bench","containerDefinitions":[{"name":"web","image":%q,"portMappings":[{"containerPort":8080}],"environment":[{"name":"VERSION","value":"%d"}],"memory":64,"stopTimeout":2}]}`, image, version)
		var out struct {
			Revision int `json:"revision"`
		}
		if err := e.postJSON("/api/v1/taskdefs", body, &out); err != nil {
			return "", err
		}
		return fmt.Sprintf("bench:%d", out.Revision), nil
	}
	td, err := register(0)
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
	if err := waitServing(url, 90*time.Second); err != nil {
		return nil, "", err
	}

	var ok, failed atomic.Int64
	var failMu sync.Mutex
	var failures []string
	stop := make(chan struct{})
	var wg sync.WaitGroup
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 8}}
	for i := 0; i < 8; i++ {
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
				if err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != 200 {
						err = fmt.Errorf("status %s", resp.Status)
					}
				}
				if err != nil {
					failed.Add(1)
					failMu.Lock()
					if len(failures) < 5 {
						failures = append(failures, time.Now().Format("15:04:05.000")+" "+err.Error())
					}
					failMu.Unlock()
					continue
				}
				ok.Add(1)
				time.Sleep(2 * time.Millisecond)
			}
		}()
	}

	var runIDs, depIDs []int
	var stuckDeps []string
	depStates := map[string]int{}
	configs := []string{"CodeDeployDefault.ECSAllAtOnce", "Canary50Percent2Seconds", "Linear50PercentEvery1Seconds"}
	start := time.Now()
	var downtime time.Duration
	for i := 1; i <= rounds; i++ {
		var run struct {
			ID int `json:"id"`
		}
		if err := e.postJSON("/api/v1/apps/bench/runs", `{"ref":"main"}`, &run); err != nil {
			close(stop)
			return nil, "", fmt.Errorf("round %d: start run: %w", i, err)
		}
		runIDs = append(runIDs, run.ID)
		td, err := register(i)
		if err != nil {
			close(stop)
			return nil, "", err
		}
		var dep struct {
			ID int `json:"id"`
		}
		body := fmt.Sprintf(`{"task_definition":%q,"strategy":"blue-green","config":%q,"settings":{"termination_wait":"1s","circuit_breaker":true,"rollback":true}}`, td, configs[i%len(configs)])
		if err := e.postJSON("/api/v1/apps/bench/envs/staging/services/web/deployments", body, &dep); err != nil {
			close(stop)
			return nil, "", fmt.Errorf("round %d: deploy: %w", i, err)
		}
		depIDs = append(depIDs, dep.ID)
		// Kill at a random moment of the run and the deployment.
		time.Sleep(time.Duration(rng.Int64N(int64(4 * time.Second))))
		down := time.Now()
		e.cmd.Process.Kill()
		e.cmd.Wait()
		e.cmd = nil
		if err := e.start(); err != nil {
			close(stop)
			return nil, "", fmt.Errorf("round %d: restart: %w", i, err)
		}
		downtime += time.Since(down)
		// The next deployment needs this one ended: it resumes or rolls back.
		state, err := e.waitDeploymentEnd(dep.ID, 2*time.Minute)
		if err != nil {
			stuckDeps = append(stuckDeps, fmt.Sprintf("%d (%s)", dep.ID, state))
		} else {
			depStates[state]++
		}
		fmt.Fprintf(os.Stderr, "  round %2d: killed, restarted; run %d, deployment %d\n", i, run.ID, dep.ID)
	}
	// Every run must end (succeeded, or failed with "control plane restarted").
	deadline := time.Now().Add(2 * time.Minute)
	var lost, stuck []int
	endStates := map[string]int{}
	for _, id := range runIDs {
		for {
			var r fullRun
			err := e.getJSON(fmt.Sprintf("/api/v1/runs/%d", id), &r)
			if err != nil && strings.Contains(err.Error(), "404") {
				lost = append(lost, id)
				break
			}
			if err == nil && r.EndedAt != nil {
				endStates[r.State]++
				break
			}
			if time.Now().After(deadline) {
				stuck = append(stuck, id)
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	elapsed := time.Since(start)
	close(stop)
	wg.Wait()
	total := ok.Load() + failed.Load()
	f := map[string]any{"rounds": rounds, "seed": seed, "runs": len(runIDs), "runs_lost": len(lost), "runs_stuck": len(stuck), "run_end_states": endStates,
		"deployments": len(depIDs), "deployments_stuck": len(stuckDeps), "deployment_end_states": depStates, "requests": total, "requests_failed": failed.Load(),
		"control_plane_down_s": downtime.Seconds(), "seconds": elapsed.Seconds(), "first_failures": failures, "goal": "0 lost or stuck, 0 failed requests"}
	return f, fmt.Sprintf("%d SIGKILLs during %d runs and %d blue/green deployments: %d runs lost, %d stuck, %d deployments stuck (runs ended %v, deployments %v); %d app requests, %d failed (control plane down %.1f s in all)",
		rounds, len(runIDs), len(depIDs), len(lost), len(stuck), len(stuckDeps), endStates, depStates, total, failed.Load(), downtime.Seconds()), nil
}

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

// waitDeploymentEnd waits for any final state.
func (e *env) waitDeploymentEnd(id int, timeout time.Duration) (string, error) {
	deadline := time.Now().Add(timeout)
	state := ""
	for time.Now().Before(deadline) {
		var d struct {
			State string `json:"state"`
		}
		if err := e.getJSON(fmt.Sprintf("/api/v1/deployments/%d", id), &d); err == nil {
			state = d.State
			if state != "IN_PROGRESS" {
				return state, nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return state, fmt.Errorf("deployment %d still %s", id, state)
}
