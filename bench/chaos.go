package main

import (
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/slipway-dev/slipway/internal/traffic"
)

// chaosRestart SIGKILLs the server at random moments while runs and
// blue/green deployments are in flight, 30 times, restarting it each time;
// it reports runs and deployments lost or stuck, and the app requests that
// failed while the control plane was down (the load balancer keeps serving).
func chaosRestart(e *env) (map[string]any, string, error) {
	const rounds = 30
	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, 1))
	return withWebService(e, func(ws *webService) (map[string]any, string, error) {
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
		l := traffic.Start(traffic.Options{URLs: []string{ws.url}, Clients: 8, Pause: 2 * time.Millisecond})
		defer l.Stop() // on an early return; the end stops it first

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
				return nil, "", fmt.Errorf("round %d: start run: %w", i, err)
			}
			runIDs = append(runIDs, run.ID)
			td, err := ws.register(fmt.Sprint(i))
			if err != nil {
				return nil, "", err
			}
			depID, err := ws.deploy(td, "blue-green", configs[i%len(configs)])
			if err != nil {
				return nil, "", fmt.Errorf("round %d: deploy: %w", i, err)
			}
			depIDs = append(depIDs, depID)
			// Kill at a random moment of the run and the deployment.
			time.Sleep(time.Duration(rng.Int64N(int64(4 * time.Second))))
			down := time.Now()
			e.cmd.Process.Kill()
			e.cmd.Wait()
			e.cmd = nil
			if err := e.start(); err != nil {
				return nil, "", fmt.Errorf("round %d: restart: %w", i, err)
			}
			downtime += time.Since(down)
			// The next deployment needs this one ended: it resumes or rolls back.
			state, err := e.waitDeploymentEnd(depID, 2*time.Minute)
			if err != nil {
				stuckDeps = append(stuckDeps, fmt.Sprintf("%d (%s)", depID, state))
				fmt.Fprintf(os.Stderr, "  round %2d: %v\n", i, err)
				break // the next round's deployment would be refused behind it
			}
			depStates[state]++
			fmt.Fprintf(os.Stderr, "  round %2d: killed, restarted; run %d, deployment %d\n", i, run.ID, depID)
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
		total, failed := l.Stop()
		f := map[string]any{"rounds": rounds, "seed": seed, "runs": len(runIDs), "runs_lost": len(lost), "runs_stuck": len(stuck), "run_end_states": endStates,
			"deployments": len(depIDs), "deployments_stuck": len(stuckDeps), "deployment_end_states": depStates, "requests": total, "requests_failed": failed,
			"control_plane_down_s": downtime.Seconds(), "seconds": elapsed.Seconds(), "first_failures": l.Failures(), "goal": "0 lost or stuck, 0 failed requests"}
		return f, fmt.Sprintf("%d SIGKILLs during %d runs and %d blue/green deployments: %d runs lost, %d stuck, %d deployments stuck (runs ended %v, deployments %v); %d app requests, %d failed (control plane down %.1f s in all)",
			rounds, len(runIDs), len(depIDs), len(lost), len(stuck), len(stuckDeps), endStates, depStates, total, failed, downtime.Seconds()), nil
	})
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
	var d struct {
		Events []struct {
			Phase   string `json:"phase"`
			Message string `json:"message"`
		} `json:"events"`
	}
	_ = e.getJSON(fmt.Sprintf("/api/v1/deployments/%d", id), &d)
	var last []string
	for _, ev := range d.Events[max(0, len(d.Events)-6):] {
		last = append(last, ev.Phase+": "+ev.Message)
	}
	return state, fmt.Errorf("deployment %d still %s after %s; its last events: %s", id, state, timeout, strings.Join(last, " | "))
}
