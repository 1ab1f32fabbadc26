package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

type runDetail struct {
	State     string     `json:"state"`
	CreatedAt time.Time  `json:"created_at"`
	StartedAt *time.Time `json:"started_at"`
	EndedAt   *time.Time `json:"ended_at"`
	Actions   []struct {
		StartedAt *time.Time `json:"started_at"`
		EndedAt   *time.Time `json:"ended_at"`
	} `json:"actions"`
}

func (e *env) run(id int) (runDetail, error) {
	var d runDetail
	return d, e.getJSON(fmt.Sprintf("/api/v1/runs/%d", id), &d)
}

func (e *env) waitRun(id int) (runDetail, error) {
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		d, err := e.run(id)
		if err != nil {
			return d, err
		}
		if d.EndedAt != nil {
			if d.State != "succeeded" {
				return d, fmt.Errorf("run %d %s", id, d.State)
			}
			return d, nil
		}
		time.Sleep(5 * time.Millisecond)
	}
	return runDetail{}, fmt.Errorf("run %d did not end", id)
}

// actionOverhead: an action whose buildspec only echoes, against the same
// echo run directly by a shell in this process (the reference).
func actionOverhead(e *env) (map[string]any, string, error) {
	if err := e.start(); err != nil {
		return nil, "", err
	}
	r, err := newRepo(e, map[string]string{
		"slipway.yaml":  "on:\n  push:\n    branches: [main]\nstages:\n  - name: B\n    actions: [{name: echo, type: build}]\n",
		"buildspec.yml": "version: 0.2\nphases:\n  build:\n    commands:\n      - echo hello\n",
	})
	if err != nil {
		return nil, "", err
	}
	const runs = 20
	// measure pushes runs commits and times each run's action against a
	// reference command run in the same loop.
	run := 0
	measure := func(ref []string) (action, total, refs []time.Duration, err error) {
		for range runs {
			run++
			if err := r.commitAndPush(strconv.Itoa(run)); err != nil {
				return nil, nil, nil, err
			}
			d, err := e.waitRun(run)
			if err != nil {
				return nil, nil, nil, err
			}
			a := d.Actions[0]
			action = append(action, a.EndedAt.Sub(*a.StartedAt))
			total = append(total, d.EndedAt.Sub(d.CreatedAt))
			start := time.Now()
			if out, err := exec.Command(ref[0], ref[1:]...).CombinedOutput(); err != nil {
				return nil, nil, nil, fmt.Errorf("reference %v: %v %s", ref, err, out)
			}
			refs = append(refs, time.Since(start))
		}
		return action, total, refs, nil
	}
	// The sandbox (the default) against the least a container costs on this
	// engine: docker run of the same echo in the same image and mounts.
	out, err := exec.Command("docker", "images", "--filter", "label=slipway.sandbox", "--format", "{{.Repository}}:{{.Tag}}").Output()
	image := strings.TrimSpace(strings.SplitN(string(out), "\n", 2)[0])
	if err != nil || image == "" {
		// The server makes the image at its first build.
		if err := r.commitAndPush("warm"); err != nil {
			return nil, "", err
		}
		run++
		if _, err := e.waitRun(run); err != nil {
			return nil, "", err
		}
		out, _ = exec.Command("docker", "images", "--filter", "label=slipway.sandbox", "--format", "{{.Repository}}:{{.Tag}}").Output()
		image = strings.TrimSpace(strings.SplitN(string(out), "\n", 2)[0])
	}
	sbAction, sbTotal, dockerRun, err := measure([]string{"docker", "run", "--rm", "--network", "host", "-u", "65534:65534", "-v", "/usr:/usr:ro", image, "sh", "-c", "echo hello"})
	if err != nil {
		return nil, "", err
	}
	// The host executor (an admin's per-app choice) against a bare shell.
	if err := e.api.Do(context.Background(), "PUT", "/api/v1/apps/bench/build", map[string]string{"executor": "host"}, nil); err != nil {
		return nil, "", err
	}
	action, total, ref, err := measure([]string{"bash", "-c", "set -e\necho hello"})
	if err != nil {
		return nil, "", err
	}
	p50a, p50r := percentile(action, 0.5), percentile(ref, 0.5)
	p50s, p50d := percentile(sbAction, 0.5), percentile(dockerRun, 0.5)
	f := map[string]any{"runs": runs, "action_p50_ms": ms(p50a), "action_p90_ms": ms(percentile(action, 0.9)),
		"bare_shell_p50_ms": ms(p50r), "overhead_p50_ms": ms(p50a - p50r), "action_vs_bare_shell": ms(p50a) / ms(p50r),
		"run_queued_to_end_p50_ms": ms(percentile(total, 0.5)), "goal_overhead_ms": 50,
		"sandbox_action_p50_ms": ms(p50s), "sandbox_action_p90_ms": ms(percentile(sbAction, 0.9)), "docker_run_p50_ms": ms(p50d),
		"sandbox_vs_docker_run": ms(p50s) / ms(p50d), "sandbox_run_queued_to_end_p50_ms": ms(percentile(sbTotal, 0.5)), "goal_sandbox_vs_docker_run": 1.5}
	return f, fmt.Sprintf("sandboxed echo-only action %.1f ms p50 vs docker run of it %.1f ms (%.2f×, goal ≤ 1.5×); on the host executor %.1f ms vs bare shell %.1f ms: overhead %.1f ms (goal ≤ 50 ms)",
		f["sandbox_action_p50_ms"], f["docker_run_p50_ms"], f["sandbox_vs_docker_run"], f["action_p50_ms"], f["bare_shell_p50_ms"], f["overhead_p50_ms"]), nil
}

// logDelay: a build prints its clock every 20 ms; a follower on the SSE
// stream notes when each line arrives. On SQLite and on PostgreSQL.
func logDelay(e *env) (map[string]any, string, error) {
	return onBoth(e, "log-delay", logDelayOn, []string{"delay_p50_ms", "delay_p99_ms"})
}

func logDelayOn(e *env) (map[string]any, string, error) {
	if err := e.start(); err != nil {
		return nil, "", err
	}
	r, err := newRepo(e, map[string]string{
		"slipway.yaml":  "on:\n  push:\n    branches: [main]\nstages:\n  - name: B\n    actions: [{name: talk, type: build}]\n",
		"buildspec.yml": "version: 0.2\nphases:\n  build:\n    commands:\n      - for i in $(seq 200); do date +%s%N; sleep 0.02; done\n",
	})
	if err != nil {
		return nil, "", err
	}
	if err := r.commitAndPush("1"); err != nil {
		return nil, "", err
	}
	resp, err := e.api.Stream(context.Background(), "/api/v1/runs/1/logs?follow=true", "text/event-stream")
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	var delays []time.Duration
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok {
			continue
		}
		var l struct {
			Line string `json:"line"`
		}
		if json.Unmarshal([]byte(line), &l) != nil {
			continue
		}
		ns, err := strconv.ParseInt(strings.TrimSpace(l.Line), 10, 64)
		if err != nil {
			continue // the runner's own lines
		}
		delays = append(delays, time.Since(time.Unix(0, ns)))
	}
	if len(delays) < 150 {
		return nil, "", fmt.Errorf("only %d timed lines arrived", len(delays))
	}
	f := map[string]any{"lines": len(delays), "delay_p50_ms": ms(percentile(delays, 0.5)), "delay_p99_ms": ms(percentile(delays, 0.99)),
		"delay_max_ms": ms(percentile(delays, 1)), "goal_p99_ms": 250}
	return f, fmt.Sprintf("line printed → follower received: p50 %.1f ms, p99 %.1f ms (goal ≤ 250 ms) over %d lines", f["delay_p50_ms"], f["delay_p99_ms"], len(delays)), nil
}
