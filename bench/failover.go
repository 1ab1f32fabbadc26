package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/slipway-dev/slipway/internal/traffic"
)

// failoverLeaseTTL is the servers' --lease-ttl in chaos-failover: short, so
// the rounds are quick; the default is 10 s.
const failoverLeaseTTL = 3 * time.Second

// chaosFailover runs two servers on one PostgreSQL database and one data
// directory. Each round starts a run and a blue/green deployment through
// the server holding the control lease, SIGKILLs it at a random moment of
// both, times how long the other takes to say it controls (GET
// /api/v1/status), then starts the killed one again as the standby. It
// reports the takeover times, runs lost or stuck, deployments that neither
// completed nor rolled back, and failed requests to the app's listener
// (8 clients throughout). SLIPWAY_BENCH_FAILOVER_ROUNDS sets the number
// of rounds (20).
func chaosFailover(e *env) (map[string]any, string, error) {
	rounds := 20
	if v := os.Getenv("SLIPWAY_BENCH_FAILOVER_ROUNDS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return nil, "", fmt.Errorf("SLIPWAY_BENCH_FAILOVER_ROUNDS %q: want a positive number", v)
		}
		rounds = n
	}
	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, 1))
	dsn, err := postgresDatabase("chaos-failover")
	if err != nil {
		return nil, "", err
	}
	environ := []string{"SLIPWAY_LEASE_TTL=" + failoverLeaseTTL.String()}
	// Both on e.dir/data; e is the first, so main's e.stop finds it too.
	e.database, e.environ, e.log = dsn, environ, filepath.Join(e.dir, "server-a.log")
	srv := [2]*env{e, {bin: e.bin, dir: e.dir, database: dsn, environ: environ, log: filepath.Join(e.dir, "server-b.log")}}
	names := [2]string{"A", "B"}
	defer func() {
		srv[1].stop()
		cleanupBench(srv[0]) // stops srv[0] first, then the proxy and the containers
	}()
	if err := srv[0].start(); err != nil {
		return nil, "", fmt.Errorf("start server A: %w", err)
	}
	if st, err := srv[0].status(); err != nil || !st.Controlling {
		return nil, "", fmt.Errorf("server A, started first, does not control: %+v %v", st, err)
	}
	if err := srv[1].start(); err != nil {
		return nil, "", fmt.Errorf("start server B: %w", err)
	}
	if st, err := srv[1].status(); err != nil || st.Controlling {
		return nil, "", fmt.Errorf("server B, started second, is not the standby: %+v %v", st, err)
	}
	ws, err := startWebService(srv[0])
	if err != nil {
		return nil, "", err
	}
	// A pipeline of two stages, about 4 s in all (as long as the moments
	// the kill is drawn from), queued so every run executes.
	work := filepath.Join(e.dir, "work")
	os.MkdirAll(work, 0o755)
	os.WriteFile(filepath.Join(work, "slipway.yaml"), []byte("on: {}\nmode: queued\nstages:\n  - name: Build\n    actions:\n      - {name: compile, type: invoke, command: 'sleep 2; echo built'}\n  - name: Ship\n    actions:\n      - {name: ship, type: invoke, command: 'sleep 1.5; echo shipped'}\n"), 0o644)
	for _, args := range [][]string{{"init", "-q", "-b", "main"}, {"add", "."}, {"-c", "user.name=b", "-c", "user.email=b@x", "commit", "-qm", "x"},
		{"push", "-q", strings.Replace(srv[0].url, "http://", "http://b:"+srv[0].token+"@", 1) + "/git/bench.git", "main"}} {
		cmd := exec.Command("git", args...)
		cmd.Dir = work
		if out, err := cmd.CombinedOutput(); err != nil {
			return nil, "", fmt.Errorf("git %v: %v %s", args, err, out)
		}
	}
	l := traffic.Start(traffic.Options{URLs: []string{ws.url}, Clients: 8, Pause: 2 * time.Millisecond})
	defer l.Stop() // on an early return; the end stops it first

	ctl := 0 // the index of the server holding the control lease
	var runIDs, depIDs []int
	var takeovers []time.Duration
	var stuckDeps, badDeps []string
	var standbyControlled, killsInRun, killsInDeployment int
	depStates := map[string]int{}
	configs := []string{"CodeDeployDefault.ECSAllAtOnce", "Canary50Percent2Seconds", "Linear50PercentEvery1Seconds"}
	start := time.Now()
	for i := 1; i <= rounds; i++ {
		c, s := srv[ctl], srv[1-ctl]
		var run struct {
			ID int `json:"id"`
		}
		if err := c.postJSON("/api/v1/apps/bench/runs", `{"ref":"main"}`, &run); err != nil {
			return nil, "", fmt.Errorf("round %d: start run through %s: %w", i, names[ctl], err)
		}
		runIDs = append(runIDs, run.ID)
		ws.e = c
		td, err := ws.register(fmt.Sprint(i))
		if err != nil {
			return nil, "", fmt.Errorf("round %d: %w", i, err)
		}
		depID, err := ws.deploy(td, "blue-green", configs[i%len(configs)])
		if err != nil {
			return nil, "", fmt.Errorf("round %d: deploy through %s: %w", i, names[ctl], err)
		}
		depIDs = append(depIDs, depID)
		// Kill the controlling server at a random moment of the run and the deployment.
		after := time.Duration(rng.Int64N(int64(4 * time.Second)))
		time.Sleep(after)
		// What was in flight, as the controlling server saw it a moment
		// before: the kill may land after a run or a deployment ended.
		var r fullRun
		if c.getJSON(fmt.Sprintf("/api/v1/runs/%d", run.ID), &r) == nil && r.EndedAt == nil {
			killsInRun++
		}
		if state, err := c.deploymentState(depID); err == nil && state == "IN_PROGRESS" {
			killsInDeployment++
		}
		c.cmd.Process.Kill()
		killed := time.Now()
		c.cmd.Wait()
		c.cmd = nil
		for {
			if st, err := s.status(); err == nil && st.Controlling {
				break
			}
			if time.Since(killed) > time.Minute {
				return nil, "", fmt.Errorf("round %d: server %s did not take over within a minute of %s's SIGKILL", i, names[1-ctl], names[ctl])
			}
			time.Sleep(10 * time.Millisecond)
		}
		takeover := time.Since(killed)
		takeovers = append(takeovers, takeover)
		// The killed server comes back as the standby.
		if err := c.start(); err != nil {
			return nil, "", fmt.Errorf("round %d: restart server %s: %w", i, names[ctl], err)
		}
		if st, err := c.status(); err != nil || st.Controlling {
			standbyControlled++
			fmt.Fprintf(os.Stderr, "  round %2d: restarted server %s is not the standby: %+v %v\n", i, names[ctl], st, err)
		}
		ctl = 1 - ctl
		// The next deployment needs this one ended: it resumes or rolls back.
		state, err := srv[ctl].waitDeploymentEnd(depID, 2*time.Minute)
		if err != nil {
			stuckDeps = append(stuckDeps, fmt.Sprintf("%d (%s)", depID, state))
			fmt.Fprintf(os.Stderr, "  round %2d: %v\n", i, err)
			break // the next round's deployment would be refused behind it
		}
		depStates[state]++
		if state != "COMPLETED" && state != "ROLLED_BACK" {
			badDeps = append(badDeps, fmt.Sprintf("%d (%s)", depID, state))
		}
		fmt.Fprintf(os.Stderr, "  round %2d: %s killed %.1f s in; %s controlling %.2f s later; %s restarted as standby; run %d, deployment %d %s\n",
			i, names[1-ctl], after.Seconds(), names[ctl], takeover.Seconds(), names[1-ctl], run.ID, depID, state)
	}
	// Every run must end (succeeded, or failed with "control plane restarted").
	deadline := time.Now().Add(2 * time.Minute)
	var lost, stuck []int
	endStates, endReasons := map[string]int{}, map[string]int{}
	for _, id := range runIDs {
		for {
			var r fullRun
			err := srv[ctl].getJSON(fmt.Sprintf("/api/v1/runs/%d", id), &r)
			if err != nil && strings.Contains(err.Error(), "404") {
				lost = append(lost, id)
				break
			}
			if err == nil && r.EndedAt != nil {
				endStates[r.State]++
				if r.Reason != "" {
					endReasons[r.Reason]++
				}
				break
			}
			if time.Now().After(deadline) {
				stuck = append(stuck, id)
				fmt.Fprintf(os.Stderr, "  run %d still %s\n", id, r.State)
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	elapsed := time.Since(start)
	total, failed := l.Stop()
	var takeoverS []float64
	for _, d := range takeovers {
		takeoverS = append(takeoverS, d.Seconds())
	}
	p50, worst := percentile(takeovers, 0.5), percentile(takeovers, 1)
	f := map[string]any{"rounds": rounds, "rounds_done": len(takeovers), "seed": seed, "lease_ttl_s": failoverLeaseTTL.Seconds(), "servers": 2, "postgres": pgSettings,
		"takeover_p50_ms": ms(p50), "takeover_max_ms": ms(worst), "takeover_min_ms": ms(percentile(takeovers, 0)), "takeovers_s": takeoverS,
		"takeover_p50_vs_lease_ttl": p50.Seconds() / failoverLeaseTTL.Seconds(),
		"restarted_not_standby":     standbyControlled, "kills_during_run": killsInRun, "kills_during_deployment": killsInDeployment,
		"runs": len(runIDs), "runs_lost": len(lost), "runs_stuck": len(stuck), "run_end_states": endStates, "run_end_reasons": endReasons,
		"deployments": len(depIDs), "deployments_stuck": len(stuckDeps), "deployments_not_completed_or_rolled_back": len(badDeps), "deployment_end_states": depStates,
		"requests": total, "requests_failed": failed, "first_failures": l.Failures(), "seconds": elapsed.Seconds(),
		"goal": "every run ends, every deployment completes or rolls back, 0 failed requests"}
	return f, fmt.Sprintf("%d SIGKILLs of the controlling server (lease TTL %v; %d during a run, %d during a deployment): takeover p50 %.2f s, max %.2f s; %d runs: %d lost, %d stuck (ended %v); %d blue/green deployments: %d stuck, %d neither completed nor rolled back (%v); %d app requests, %d failed",
		len(takeovers), failoverLeaseTTL, killsInRun, killsInDeployment, p50.Seconds(), worst.Seconds(), len(runIDs), len(lost), len(stuck), endStates, len(depIDs), len(stuckDeps), len(badDeps), depStates, total, failed), nil
}

type serverStatus struct {
	Server      string `json:"server"`
	Controlling bool   `json:"controlling"`
}

// status is the server's own GET /api/v1/status, which it answers itself
// even when another holds the control lease.
func (e *env) status() (serverStatus, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	var st serverStatus
	err := e.api.Do(ctx, "GET", "/api/v1/status", nil, &st)
	return st, err
}

// deploymentState is the deployment's state now.
func (e *env) deploymentState(id int) (string, error) {
	var d struct {
		State string `json:"state"`
	}
	err := e.getJSON(fmt.Sprintf("/api/v1/deployments/%d", id), &d)
	return d.State, err
}
