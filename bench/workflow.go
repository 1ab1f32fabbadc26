package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// workflowSteps is how many steps the bench's workflow job has.
const workflowSteps = 20

// workflowRun measures a GitHub Actions workflow: from git push returning
// to the run being recorded (the budget slipway.yaml runs have) and to its
// first step running, and the cost of a step: each step prints the clock
// as it starts, and the gap between two steps is set against the same
// command run the same way (bash -eo pipefail, one after another) in a
// bare shell and through docker exec into the same sandbox image.
func workflowRun(e *env) (map[string]any, string, error) {
	if err := e.start(); err != nil {
		return nil, "", err
	}
	var steps strings.Builder
	for i := range workflowSteps {
		fmt.Fprintf(&steps, "      - run: echo \"T%d=$(date +%%s%%N)\"\n", i)
	}
	wf := "on:\n  push:\n    branches: [main]\njobs:\n  steps:\n    runs-on: ubuntu-latest\n    steps:\n" + steps.String()
	r, err := newRepo(e, map[string]string{".github/workflows/bench.yml": wf})
	if err != nil {
		return nil, "", err
	}
	const runs = 5
	var recorded, firstStep, gaps []time.Duration
	for i := 1; i <= runs; i++ {
		os.WriteFile(filepath.Join(r.dir, "n.txt"), []byte(strconv.Itoa(i)), 0o644)
		if err := r.git("add", "-A"); err != nil {
			return nil, "", err
		}
		if err := r.git("commit", "-q", "-m", strconv.Itoa(i)); err != nil {
			return nil, "", err
		}
		if err := r.git("push", "-q", r.remote, "main"); err != nil {
			return nil, "", err
		}
		returned := time.Now()
		for {
			n, err := runCount(e)
			if err != nil {
				return nil, "", err
			}
			if n == i {
				break
			}
			if time.Since(returned) > 10*time.Second {
				return nil, "", fmt.Errorf("push %d: no run after 10s", i)
			}
			time.Sleep(time.Millisecond)
		}
		recorded = append(recorded, time.Since(returned))
		if _, err := e.waitRun(i); err != nil {
			return nil, "", err
		}
		stamps, err := stepStamps(e, i)
		if err != nil {
			return nil, "", err
		}
		if i == 1 {
			continue // the first run also makes the sandbox image
		}
		firstStep = append(firstStep, time.Unix(0, stamps[0]).Sub(returned))
		for k := 1; k < len(stamps); k++ {
			gaps = append(gaps, time.Duration(stamps[k]-stamps[k-1]))
		}
	}
	bare, err := shellGaps("bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", `echo "T=$(date +%s%N)"`)
	if err != nil {
		return nil, "", err
	}
	out, _ := exec.Command("docker", "images", "--filter", "label=slipway.sandbox", "--format", "{{.Repository}}:{{.Tag}}").Output()
	image := strings.TrimSpace(strings.SplitN(string(out), "\n", 2)[0])
	cid, err := exec.Command("docker", "run", "-d", "--rm", "--network", "host", "-u", "65534:65534", "-v", "/usr:/usr:ro", image, "sleep", "300").Output()
	if err != nil {
		return nil, "", fmt.Errorf("reference container: %v", err)
	}
	id := strings.TrimSpace(string(cid))
	defer exec.Command("docker", "rm", "-f", id).Run()
	dockerExec, err := shellGaps("docker", "exec", id, "bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", `echo "T=$(date +%s%N)"`)
	if err != nil {
		return nil, "", err
	}
	p50 := percentile(gaps, 0.5)
	f := map[string]any{"runs": runs - 1, "steps": workflowSteps,
		"run_recorded_after_push_p50_ms": ms(percentile(recorded, 0.5)), "run_recorded_after_push_max_ms": ms(percentile(recorded, 1)),
		"first_step_after_push_p50_ms": ms(percentile(firstStep, 0.5)), "first_step_after_push_max_ms": ms(percentile(firstStep, 1)),
		"step_p50_ms": ms(p50), "step_p90_ms": ms(percentile(gaps, 0.9)), "bare_shell_step_p50_ms": ms(percentile(bare, 0.5)),
		"docker_exec_step_p50_ms": ms(percentile(dockerExec, 0.5)), "step_overhead_p50_ms": ms(p50 - percentile(bare, 0.5)),
		"goal_recorded_ms": 200, "goal_step_overhead_ms": 50}
	return f, fmt.Sprintf("workflow run recorded %.1f ms p50 after git push (goal ≤ 200 ms), first step running %.0f ms p50; a step %.1f ms p50 against %.1f ms in a bare shell (overhead %.1f ms, goal ≤ 50 ms) and %.1f ms through docker exec",
		f["run_recorded_after_push_p50_ms"], f["first_step_after_push_p50_ms"], f["step_p50_ms"], f["bare_shell_step_p50_ms"], f["step_overhead_p50_ms"], f["docker_exec_step_p50_ms"]), nil
}

// stepStamps reads the clock each step of run id printed.
func stepStamps(e *env, id int) ([]int64, error) {
	var logs []struct {
		Line string `json:"line"`
	}
	if err := e.getJSON(fmt.Sprintf("/api/v1/runs/%d/logs?limit=1000", id), &logs); err != nil {
		return nil, err
	}
	var stamps []int64
	for _, l := range logs {
		_, v, ok := strings.Cut(l.Line, "=")
		if !ok || !strings.HasPrefix(l.Line, "T") {
			continue
		}
		if n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64); err == nil {
			stamps = append(stamps, n)
		}
	}
	if len(stamps) != workflowSteps {
		return nil, fmt.Errorf("run %d: %d of %d steps printed the clock", id, len(stamps), workflowSteps)
	}
	return stamps, nil
}

// shellGaps runs a command that prints T=<ns> workflowSteps times in a row
// and returns the gaps between the printed clocks.
func shellGaps(args ...string) ([]time.Duration, error) {
	var gaps []time.Duration
	var last int64
	for i := range workflowSteps {
		out, err := exec.Command(args[0], args[1:]...).Output()
		if err != nil {
			return nil, fmt.Errorf("%v: %v", args, err)
		}
		_, v, _ := strings.Cut(strings.TrimSpace(string(out)), "=")
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%v printed %q", args, out)
		}
		if i > 0 {
			gaps = append(gaps, time.Duration(n-last))
		}
		last = n
	}
	return gaps, nil
}
