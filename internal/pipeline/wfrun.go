package pipeline

import (
	"context"
	"encoding/json"
	"fmt"
	"github.com/slipway-dev/slipway/internal/slipwayfile"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/slipway-dev/slipway/internal/store"
	"github.com/slipway-dev/slipway/internal/workflow"
	"github.com/slipway-dev/slipway/internal/workflow/expr"
)

// A run of a GitHub Actions workflow (.github/workflows/X.yml) is shown as
// Slipway runs are: each job is a stage (named by its id), each matrix
// combination of it an action of type "job", preceded by an approval
// action when the job names an environment. Jobs start as soon as the
// jobs they need have ended, not stage by stage.

// actionJob is the action type of a workflow job.
const actionJob = "job"

// StateSkipped ends a job whose if: was false or whose needs failed.
const StateSkipped = "skipped"

const stateSkipped = StateSkipped

// Bounds on one workflow run: GitHub's own limits are 256 combinations
// per matrix and 1000 steps per job.
const (
	maxJobRuns  = 512
	maxJobSteps = 1000
)

// defaultJobTimeout is GitHub's default timeout-minutes.
const defaultJobTimeout = 360 * time.Minute

// wfPlan is a workflow made ready to run: its jobs with their matrices
// expanded.
type wfPlan struct {
	wf   *workflow.Workflow
	jobs []*wfJob
}

type wfJob struct {
	wf      *workflow.Workflow
	job     *workflow.Job
	combos  []wfCombo
	gate    bool // environment: → a person approves before the job runs
	timeout time.Duration
	// failFast and maxParallel are strategy's settings (true, 0: none).
	failFast    bool
	maxParallel int
	continueOn  bool
}

type wfCombo struct {
	name   string
	matrix map[string]any
}

// wfAction is what a job action needs beyond Action's fields.
type wfAction struct {
	job   *wfJob
	combo wfCombo
	needs map[string]any
}

// loadWorkflowSpec reads the run's workflow at its commit and lays it out
// as stages and actions.
func (e *Engine) loadWorkflowSpec(ctx context.Context, r store.Run) (*runSpec, error) {
	data, err := e.Source.ReadFile(ctx, r.App, r.Commit, r.Workflow)
	if err != nil {
		return nil, fmt.Errorf("no %s at commit %s", r.Workflow, shortSHA(r.Commit))
	}
	wf, err := workflow.Parse(r.Workflow, data)
	if err != nil {
		return nil, err
	}
	plan, err := planWorkflow(wf, e.runContexts(r, wf, ""))
	if err != nil {
		return nil, err
	}
	total := 0
	for _, j := range plan.jobs {
		total += len(j.combos)
		if n := len(j.job.Steps); n > maxJobSteps {
			return nil, fmt.Errorf("%s: jobs.%s has %d steps; at most %d", wf.File, j.job.ID, n, maxJobSteps)
		}
	}
	if total > maxJobRuns {
		return nil, fmt.Errorf("%s: the workflow makes %d job runs (jobs × matrix combinations); at most %d", wf.File, total, maxJobRuns)
	}
	spec := &runSpec{Spec: &slipwayfile.Spec{Mode: workflowMode(wf)}, plan: plan}
	for _, j := range plan.jobs {
		st := Stage{Name: j.job.ID}
		if j.gate {
			st.Actions = append(st.Actions, Action{Name: "approve " + j.job.Environment.Name, Type: "approval", RunOrder: 1,
				Timeout: Duration{Duration: slipwayfile.DefaultApprovalTimeout}, Message: fmt.Sprintf("job %s deploys to environment %s", j.job.ID, j.job.Environment.Name)})
		}
		for _, c := range j.combos {
			st.Actions = append(st.Actions, Action{Name: c.name, Type: actionJob, RunOrder: 2, Timeout: Duration{Duration: j.timeout}})
		}
		spec.Stages = append(spec.Stages, st)
	}
	return spec, nil
}

// workflowMode maps concurrency: to a run mode. GitHub runs workflows in
// parallel unless they share a concurrency group; a group keeps one
// running (queued), and cancel-in-progress lets the newest win
// (superseded: the older run ends at its next job boundary).
func workflowMode(wf *workflow.Workflow) string {
	c := wf.Concurrency
	if c == nil || c.Group == "" {
		return slipwayfile.ModeParallel
	}
	if c.CancelInProgress == "true" {
		return slipwayfile.ModeSuperseded
	}
	return slipwayfile.ModeQueued
}

// planWorkflow expands each job's matrix with the contexts known before
// any job runs (github, inputs, vars).
func planWorkflow(wf *workflow.Workflow, contexts map[string]any) (*wfPlan, error) {
	plan := &wfPlan{wf: wf}
	env := &expr.Env{Contexts: contexts}
	for _, j := range wf.Order() {
		wj := &wfJob{wf: wf, job: j, gate: j.Environment != nil && j.Environment.Name != "", timeout: defaultJobTimeout, failFast: true}
		if j.TimeoutMinutes != "" {
			n, err := evalNumber(j.TimeoutMinutes, env)
			if err != nil || n <= 0 {
				return nil, fmt.Errorf("%s: jobs.%s.timeout-minutes: %q is not a positive number of minutes", wf.File, j.ID, j.TimeoutMinutes)
			}
			wj.timeout = time.Duration(n * float64(time.Minute))
		}
		if j.ContinueOnError != "" {
			v, err := evalValue(j.ContinueOnError, env)
			if err != nil {
				return nil, fmt.Errorf("%s: jobs.%s.continue-on-error: %v", wf.File, j.ID, err)
			}
			wj.continueOn = expr.Truthy(v)
		}
		combos := []map[string]any{{}}
		if s := j.Strategy; s != nil {
			if s.FailFast != "" {
				v, err := evalValue(s.FailFast, env)
				if err != nil {
					return nil, fmt.Errorf("%s: jobs.%s.strategy.fail-fast: %v", wf.File, j.ID, err)
				}
				wj.failFast = expr.Truthy(v)
			}
			if s.MaxParallel != "" {
				n, err := evalNumber(s.MaxParallel, env)
				if err != nil || n < 1 {
					return nil, fmt.Errorf("%s: jobs.%s.strategy.max-parallel: %q is not a positive number", wf.File, j.ID, s.MaxParallel)
				}
				wj.maxParallel = int(n)
			}
			if s.Matrix != nil {
				m, err := evalMatrix(s.Matrix, env)
				if err != nil {
					return nil, fmt.Errorf("%s: jobs.%s.strategy.matrix: %v", wf.File, j.ID, err)
				}
				keys := s.MatrixKeys()
				if keys == nil {
					for k := range m {
						if k != "include" && k != "exclude" {
							keys = append(keys, k)
						}
					}
					sort.Strings(keys)
				}
				if combos, err = workflow.ExpandMatrix(m, keys); err != nil {
					return nil, fmt.Errorf("%s: jobs.%s.strategy.matrix: %v", wf.File, j.ID, err)
				}
			}
		}
		seen := map[string]bool{}
		for _, m := range combos {
			name, err := comboName(j, m, contexts)
			if err != nil {
				return nil, fmt.Errorf("%s: jobs.%s.name: %v", wf.File, j.ID, err)
			}
			for base, n := name, 2; seen[name]; n++ {
				name = fmt.Sprintf("%s #%d", base, n)
			}
			seen[name] = true
			wj.combos = append(wj.combos, wfCombo{name: name, matrix: m})
		}
		plan.jobs = append(plan.jobs, wj)
	}
	return plan, nil
}

// comboName is how GitHub names a job run: its name (which may use the
// matrix), with the matrix values in brackets when the name does not.
func comboName(j *workflow.Job, m map[string]any, contexts map[string]any) (string, error) {
	name := j.Name
	if name == "" {
		name = j.ID
	}
	if strings.Contains(name, "${{") {
		c := withContext(contexts, "matrix", m)
		return expr.Interpolate(name, &expr.Env{Contexts: c})
	}
	if len(m) == 0 {
		return name, nil
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	if s := j.Strategy; s != nil && s.MatrixKeys() != nil {
		keys = orderLike(keys, s.MatrixKeys())
	} else {
		sort.Strings(keys)
	}
	vals := make([]string, 0, len(keys))
	for _, k := range keys {
		v := m[k]
		if _, isMap := v.(map[string]any); isMap {
			b, _ := json.Marshal(v)
			vals = append(vals, string(b))
			continue
		}
		vals = append(vals, expr.String(v))
	}
	return fmt.Sprintf("%s (%s)", name, strings.Join(vals, ", ")), nil
}

// orderLike sorts keys as they come in order, those not in it after them.
func orderLike(keys, order []string) []string {
	pos := map[string]int{}
	for i, k := range order {
		pos[k] = i
	}
	sort.SliceStable(keys, func(a, b int) bool {
		pa, oka := pos[keys[a]]
		pb, okb := pos[keys[b]]
		switch {
		case oka && okb:
			return pa < pb
		case oka != okb:
			return oka
		}
		return keys[a] < keys[b]
	})
	return keys
}

func withContext(contexts map[string]any, name string, v any) map[string]any {
	c := make(map[string]any, len(contexts)+1)
	for k, x := range contexts {
		c[k] = x
	}
	c[name] = v
	return c
}

// evalValue evaluates a setting that is an expression or a literal.
func evalValue(s string, env *expr.Env) (any, error) {
	t := strings.TrimSpace(s)
	if inner, ok := wholeExpression(t); ok {
		return expr.Eval(inner, env)
	}
	if strings.Contains(t, "${{") {
		return expr.Interpolate(t, env)
	}
	switch t {
	case "true":
		return true, nil
	case "false":
		return false, nil
	}
	if n, err := strconv.ParseFloat(t, 64); err == nil {
		return n, nil
	}
	return t, nil
}

func evalNumber(s string, env *expr.Env) (float64, error) {
	v, err := evalValue(s, env)
	if err != nil {
		return 0, err
	}
	switch x := v.(type) {
	case float64:
		return x, nil
	case string:
		return strconv.ParseFloat(strings.TrimSpace(x), 64)
	}
	return 0, fmt.Errorf("%v is not a number", v)
}

// wholeExpression reports whether s is exactly one ${{ }} and returns what
// is inside.
func wholeExpression(s string) (string, bool) {
	if !strings.HasPrefix(s, "${{") || !strings.HasSuffix(s, "}}") {
		return "", false
	}
	inner := s[3 : len(s)-2]
	if strings.Contains(inner, "${{") {
		return "", false
	}
	return inner, true
}

// evalMatrix evaluates the ${{ }} in a matrix; a value that is one whole
// expression keeps its type (fromJSON gives lists and objects).
func evalMatrix(raw any, env *expr.Env) (map[string]any, error) {
	v, err := evalTree(raw, env)
	if err != nil {
		return nil, err
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("the matrix is %s, not an object of lists", expr.String(v))
	}
	return m, nil
}

func evalTree(v any, env *expr.Env) (any, error) {
	switch x := v.(type) {
	case string:
		if inner, ok := wholeExpression(strings.TrimSpace(x)); ok {
			return expr.Eval(inner, env)
		}
		if strings.Contains(x, "${{") {
			return expr.Interpolate(x, env)
		}
		return x, nil
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			var err error
			if out[i], err = evalTree(e, env); err != nil {
				return nil, err
			}
		}
		return out, nil
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			var err error
			if out[k], err = evalTree(e, env); err != nil {
				return nil, err
			}
		}
		return out, nil
	case int:
		return float64(x), nil
	case int64:
		return float64(x), nil
	}
	return v, nil
}

// statusFunc finds an if: that decides for itself after a failure.
var statusFunc = regexp.MustCompile(`(?i)\b(success|failure|always|cancelled)\s*\(`)

// wfResult is how a job ended, as needs.<job>.result says.
type wfResult struct {
	result  string // success, failure, cancelled, skipped
	outputs map[string]string
	failure string // why it failed the run ("": it did not)
}

// executeWorkflow runs a workflow's jobs: each starts when every job it
// needs has ended, then runs if its if: holds (by default: they all
// succeeded).
func (e *Engine) executeWorkflow(ctx context.Context, r store.Run, spec *runSpec, ar *activeRun) (string, string) {
	actions, err := e.Store.ListActions(ctx, r.ID)
	if err != nil {
		return store.RunFailed, "list actions: " + err.Error()
	}
	if err := e.storeSource(ctx, r); err != nil {
		return store.RunFailed, err.Error()
	}
	plan := spec.plan
	done := map[string]chan struct{}{}
	// Job ids match without regard to case, as in needs: on GitHub.
	id := strings.ToLower
	for _, j := range plan.jobs {
		done[id(j.job.ID)] = make(chan struct{})
	}
	var mu sync.Mutex
	results := map[string]wfResult{}
	var wg sync.WaitGroup
	for si, j := range plan.jobs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer close(done[id(j.job.ID)])
			for _, n := range j.job.Needs {
				if ch, ok := done[id(n)]; ok {
					<-ch
				}
			}
			mu.Lock()
			needs := map[string]any{}
			var needResults []string
			for _, n := range j.job.Needs {
				res := results[id(n)]
				outs := map[string]any{}
				for k, v := range res.outputs {
					outs[k] = v
				}
				needs[n] = map[string]any{"result": res.result, "outputs": outs}
				needResults = append(needResults, res.result)
			}
			mu.Unlock()
			res := e.runWorkflowJob(ctx, r, spec.Stages[si], j, actions, needs, needResults, ar)
			mu.Lock()
			results[id(j.job.ID)] = res
			mu.Unlock()
		}()
	}
	wg.Wait()
	if ar.cancelled.Load() {
		return store.RunCancelled, "cancelled"
	}
	var failures []string
	for _, j := range plan.jobs {
		if f := results[id(j.job.ID)].failure; f != "" {
			failures = append(failures, fmt.Sprintf("job %s failed: %s", j.job.ID, f))
		}
	}
	if len(failures) > 0 {
		return store.RunFailed, strings.Join(failures, "; ")
	}
	return store.RunSucceeded, ""
}

// runWorkflowJob decides whether a job runs, waits for its approval, runs
// its matrix combinations and returns its result.
func (e *Engine) runWorkflowJob(ctx context.Context, r store.Run, st Stage, j *wfJob, rows []store.Action, needs map[string]any, needResults []string, ar *activeRun) wfResult {
	// A job that already succeeded (before a retry or a restart) keeps its
	// outputs, read back from the run's variables.
	allDone := true
	for _, a := range st.Actions {
		if findAction(rows, st.Name, a.Name).State != store.RunSucceeded {
			allDone = false
		}
	}
	if allDone {
		return wfResult{result: "success", outputs: e.jobOutputs(ctx, r.ID, j.job.ID)}
	}
	if ar.cancelled.Load() || ctx.Err() != nil {
		return wfResult{result: "cancelled"}
	}
	failed, skippedNeed := false, false
	for _, res := range needResults {
		switch res {
		case "failure", "cancelled":
			failed = true
		case stateSkipped:
			skippedNeed = true
		}
	}
	run := true
	why := ""
	cond := j.job.If
	if skippedNeed && !statusFunc.MatchString(cond) {
		run, why = false, "a job it needs was skipped"
	} else {
		env := &expr.Env{Contexts: withContext(e.runContexts(r, j.wf, j.job.ID), "needs", needs), Status: expr.Status{Failed: failed}}
		ok, err := expr.If(cond, env)
		if err != nil {
			reason := fmt.Sprintf("jobs.%s.if: %v", j.job.ID, err)
			e.skipJob(ctx, st, rows, store.RunFailed, reason)
			return wfResult{result: "failure", failure: reason}
		}
		if !ok {
			run, why = false, "if: is false"
			if cond == "" && failed {
				why = "a job it needs failed"
			}
		}
	}
	if !run {
		e.skipJob(ctx, st, rows, stateSkipped, why)
		return wfResult{result: stateSkipped}
	}
	var gate *Action
	var combos []Action
	for _, a := range st.Actions {
		if a.Type == "approval" {
			gate = &a
			continue
		}
		// What performJob runs for the action: its matrix combination.
		for _, c := range j.combos {
			if c.name == a.Name {
				ar.jobs.Store(findAction(rows, st.Name, a.Name).ID, &wfAction{job: j, combo: c, needs: needs})
			}
		}
		combos = append(combos, a)
	}
	fail := func(reason string) wfResult {
		if j.continueOn {
			return wfResult{result: "failure"}
		}
		return wfResult{result: "failure", failure: reason}
	}
	if gate != nil && findAction(rows, st.Name, gate.Name).State != store.RunSucceeded {
		if reason := e.runAction(ctx, r, *gate, findAction(rows, st.Name, gate.Name), ar); reason != "" {
			for _, a := range combos {
				e.endAction(findAction(rows, st.Name, a.Name), stateSkipped, "not approved", nil)
			}
			if ar.cancelled.Load() {
				return wfResult{result: "cancelled"}
			}
			return fail("environment " + j.job.Environment.Name + ": " + reason)
		}
	}
	// Matrix combinations run side by side, at most max-parallel at once;
	// with fail-fast the first failure cancels the rest.
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	limit := len(combos)
	if j.maxParallel > 0 {
		limit = j.maxParallel
	}
	sem := make(chan struct{}, limit)
	var mu sync.Mutex
	var failures []string
	var wg sync.WaitGroup
	for _, a := range combos {
		row := findAction(rows, st.Name, a.Name)
		if row.State == store.RunSucceeded {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case sem <- struct{}{}:
			case <-cctx.Done():
				e.endAction(row, store.RunCancelled, "not started: another combination failed (fail-fast)", nil)
				return
			}
			defer func() { <-sem }()
			if cctx.Err() != nil {
				e.endAction(row, store.RunCancelled, "not started: another combination failed (fail-fast)", nil)
				return
			}
			if reason := e.runAction(cctx, r, a, row, ar); reason != "" {
				mu.Lock()
				failures = append(failures, fmt.Sprintf("%s: %s", a.Name, reason))
				mu.Unlock()
				if j.failFast {
					cancel()
				}
			}
		}()
	}
	wg.Wait()
	outputs := e.jobOutputs(ctx, r.ID, j.job.ID)
	if ar.cancelled.Load() {
		return wfResult{result: "cancelled", outputs: outputs}
	}
	if len(failures) > 0 {
		sort.Strings(failures)
		res := fail(strings.Join(failures, "; "))
		res.outputs = outputs
		return res
	}
	return wfResult{result: "success", outputs: outputs}
}

// skipJob ends every action of a job that does not run.
func (e *Engine) skipJob(ctx context.Context, st Stage, rows []store.Action, state, reason string) {
	for _, a := range st.Actions {
		row := findAction(rows, st.Name, a.Name)
		if row.ID != 0 && row.State != store.RunSucceeded {
			e.endAction(row, state, reason, nil)
		}
	}
}

// jobOutputs reads the outputs a job stored as the run's variables.
func (e *Engine) jobOutputs(ctx context.Context, runID int64, job string) map[string]string {
	vars, err := e.Store.ListVariables(ctx, runID)
	if err != nil {
		return nil
	}
	out := map[string]string{}
	for _, v := range vars {
		if v.Action == job {
			out[v.Name] = v.Value
		}
	}
	return out
}
