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
	var action, total, ref []time.Duration
	for i := 1; i <= runs; i++ {
		if err := r.commitAndPush(strconv.Itoa(i)); err != nil {
			return nil, "", err
		}
		d, err := e.waitRun(i)
		if err != nil {
			return nil, "", err
		}
		a := d.Actions[0]
		action = append(action, a.EndedAt.Sub(*a.StartedAt))
		total = append(total, d.EndedAt.Sub(d.CreatedAt))
		start := time.Now()
		if out, err := exec.Command("bash", "-c", "set -e\necho hello").CombinedOutput(); err != nil {
			return nil, "", fmt.Errorf("reference: %v %s", err, out)
		}
		ref = append(ref, time.Since(start))
	}
	p50a, p50r := percentile(action, 0.5), percentile(ref, 0.5)
	f := map[string]any{"runs": runs, "action_p50_ms": ms(p50a), "action_p90_ms": ms(percentile(action, 0.9)),
		"bare_shell_p50_ms": ms(p50r), "overhead_p50_ms": ms(p50a - p50r), "action_vs_bare_shell": ms(p50a) / ms(p50r),
		"run_queued_to_end_p50_ms": ms(percentile(total, 0.5)), "goal_overhead_ms": 50}
	return f, fmt.Sprintf("echo-only action %.1f ms p50 vs bare shell %.1f ms (%.1f×): overhead %.1f ms (goal ≤ 50 ms); queued→ended %.1f ms p50",
		f["action_p50_ms"], f["bare_shell_p50_ms"], f["action_vs_bare_shell"], f["overhead_p50_ms"], f["run_queued_to_end_p50_ms"]), nil
}

// logDelay: a build prints its clock every 20 ms; a follower on the SSE
// stream notes when each line arrives.
func logDelay(e *env) (map[string]any, string, error) {
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
