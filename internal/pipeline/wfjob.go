package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/slipway-dev/slipway/internal/build"
	"github.com/slipway-dev/slipway/internal/container"
	"github.com/slipway-dev/slipway/internal/sandbox"
	"github.com/slipway-dev/slipway/internal/store"
	"github.com/slipway-dev/slipway/internal/workflow"
	"github.com/slipway-dev/slipway/internal/workflow/expr"
)

// Where a job's files are, as its steps see them.
const (
	wfWorkspace = build.ContainerRoot + "/src"     // GITHUB_WORKSPACE: the checked-out commit
	wfTemp      = build.ContainerRoot + "/_temp"   // RUNNER_TEMP
	wfRunner    = build.ContainerRoot + "/_runner" // per-step command files
)

// runnerLabels are the runs-on labels Slipway's build sandbox answers to.
var runnerLabels = []string{"ubuntu-latest", "ubuntu-24.04", "ubuntu-22.04", "linux", "x64", "self-hosted", "slipway"}

// maxFileCommand bounds what a step may write to $GITHUB_OUTPUT,
// $GITHUB_ENV, $GITHUB_PATH and $GITHUB_STEP_SUMMARY (GitHub's limit for
// a summary is 1 MiB).
const maxFileCommand = 1 << 20

// jobRun is one workflow job (one matrix combination) while it runs.
type jobRun struct {
	e      *Engine
	r      store.Run
	row    store.Action
	wfa    *wfAction
	logs   io.Writer
	box    *container.Box
	runner *stepRunner
	// base is the host directory mounted at build.ContainerRoot.
	base    string
	home    string
	token   string
	secrets map[string]any
	// env is what $GITHUB_ENV and configure-aws-credentials added, in
	// order; paths is what $GITHUB_PATH added, newest first.
	env   []workflow.EnvVar
	paths []string
	steps map[string]any
	// summary and annotations end in the action's report.
	summary     strings.Builder
	annotations []store.Annotation
	failed      bool
	// caches are the actions/cache steps to save after a successful job.
	caches []cacheSave
	// baseVars is the environment every step starts from (jobVars).
	baseVars map[string]string
	// cacheRefs are the refs actions/cache restores from (cacheScopes).
	cacheRefs []string
	// What the job has kept so far, against the bounds.
	masks, envBytes, outputBytes int
	// compositeSteps counts the steps of the composite actions the job
	// called, against maxJobSteps; compositeRuns numbers their run steps.
	compositeSteps, compositeRuns int
	maskWarned, summaryCut        bool
}

func (j *jobRun) mask(values ...string) {
	if j.masks += len(values); j.masks > maxMasks {
		if !j.maskWarned {
			j.maskWarned = true
			fmt.Fprintf(j.logs, "##[warning]The job adds over %d values to mask; later ones are not masked\n", maxMasks)
		}
		return
	}
	if m, ok := j.logs.(interface{ AddSecrets(...string) }); ok {
		m.AddSecrets(values...)
	}
}

// Bounds on what one job keeps in the server's memory.
const (
	maxMasks      = 1000
	maxJobEnv     = 4 << 20 // what $GITHUB_ENV adds, in all
	maxJobOutputs = 4 << 20 // step outputs, in all
	maxJobPaths   = 256     // $GITHUB_PATH entries
)

// performJob runs one workflow job in the build sandbox: each run step is
// a script run by its shell, each uses step one of the built-in actions.
func (e *Engine) performJob(ctx context.Context, r store.Run, w *wfAction, row store.Action, logs io.Writer, ar *activeRun) (*int, string) {
	job := w.job.job
	j := &jobRun{e: e, r: r, row: row, wfa: w, logs: logs, steps: map[string]any{}}
	defer func() {
		// Kept beside the log, and masked as it is.
		summary := j.summary.String()
		if m, ok := logs.(interface{ Mask(string) string }); ok {
			summary = m.Mask(summary)
			for i := range j.annotations {
				a := &j.annotations[i]
				a.Message, a.Title, a.File = m.Mask(a.Message), m.Mask(a.Title), m.Mask(a.File)
			}
		}
		if err := e.Store.SetActionReport(context.WithoutCancel(ctx), row.ID, summary, j.annotations); err != nil {
			e.Log.Warn("store a job's summary", "action", row.ID, "err", err)
		}
	}()
	// What fails a job before its first step: a runner it cannot have,
	// a secret that is not set.
	base := j.contexts(nil, "")
	env := &expr.Env{Contexts: base}
	var labels []string
	for _, l := range job.RunsOn {
		v, err := expr.Interpolate(l, env)
		if err != nil {
			return nil, "runs-on: " + err.Error()
		}
		labels = append(labels, v)
	}
	for _, l := range labels {
		if !slices.Contains(runnerLabels, strings.ToLower(l)) {
			msg := fmt.Sprintf("runs-on: no executor has the label %q; Slipway's build sandbox answers to %s", l, strings.Join(runnerLabels, ", "))
			fmt.Fprintln(logs, "##[error]"+msg)
			return nil, msg
		}
	}
	if err := j.resolveSecrets(ctx); err != nil {
		fmt.Fprintln(logs, "##[error]"+err.Error())
		return nil, err.Error()
	}
	app, err := e.Store.GetApp(ctx, r.App)
	if err != nil {
		return nil, err.Error()
	}
	j.baseVars = j.jobVars(app)
	src, err := e.workspace(ctx, r, Action{}, row)
	if err != nil {
		return nil, err.Error()
	}
	j.base = filepath.Dir(src)
	defer os.RemoveAll(j.base)
	if j.home, err = e.buildHome(ctx, r); err != nil {
		return nil, err.Error()
	}
	for _, d := range []string{"_temp", "_runner"} {
		if err := os.MkdirAll(filepath.Join(j.base, d), 0o700); err != nil {
			return nil, err.Error()
		}
	}
	token, dropToken, err := e.buildToken(ctx, r, row)
	if err != nil {
		return nil, err.Error()
	}
	defer dropToken()
	j.token = token
	j.mask(e.credentialForms(token)...)
	j.secrets["GITHUB_TOKEN"] = token
	// The registry credential for docker push in run steps, written
	// before the sandbox starts so that its user is handed it.
	if _, err := e.dockerEnv(r, j.base, build.ContainerRoot, token); err != nil {
		return nil, err.Error()
	}
	fmt.Fprintf(logs, "[slipway] Job %s of %s, commit %s, in the build sandbox (runs-on: %s)\n", job.ID, w.job.wf.File, shortSHA(r.Commit), strings.Join(labels, ", "))
	box, err := e.startSandbox(ctx, r, Action{Name: row.Name}, app, j.base, logs)
	if err != nil {
		fmt.Fprintf(logs, "[slipway] %v\n", err)
		return nil, err.Error()
	}
	defer box.Remove()
	j.box = box
	j.runner = startRunner(ctx, box, j.stepEnv(nil, nil), logs)
	defer j.runner.close()
	if app.Build.Executor == store.ExecutorHost {
		fmt.Fprintf(logs, "[slipway] Workflow jobs always run in the sandbox (the app's executor=host applies to slipway.yaml builds only)\n")
	}
	reason := ""
	top := &stepScope{file: w.job.wf.File, steps: j.steps, failed: &j.failed}
	for i, s := range job.Steps {
		if ctx.Err() != nil {
			break
		}
		if why := j.step(ctx, top, i, s, ar); why != "" && reason == "" {
			reason = why
		}
	}
	if ctx.Err() != nil && reason == "" {
		reason = ctx.Err().Error()
	}
	if reason == "" {
		for _, c := range j.caches {
			j.saveCache(ctx, c)
		}
	}
	if err := j.storeOutputs(ctx); err != nil && reason == "" {
		reason = err.Error()
	}
	if reason != "" {
		code := 1
		return &code, reason
	}
	code := 0
	return &code, ""
}

// contexts are what expressions in the job read; env is the env context.
func (j *jobRun) contexts(env map[string]any, status string) map[string]any {
	w := j.wfa
	c := j.e.runContexts(j.r, w.job.wf, w.job.job.ID)
	c["needs"] = w.needs
	matrix := map[string]any{}
	for k, v := range w.combo.matrix {
		matrix[k] = v
	}
	c["matrix"] = matrix
	c["secrets"] = j.secrets
	c["steps"] = j.steps
	if env == nil {
		env = map[string]any{}
	}
	c["env"] = env
	if status == "" {
		status = "success"
	}
	c["job"] = map[string]any{"status": status}
	c["runner"] = map[string]any{"os": "Linux", "arch": "X64", "name": "slipway", "environment": "self-hosted", "temp": wfTemp, "tool_cache": wfTemp + "/tool"}
	index := 0
	for i, cb := range w.job.combos {
		if cb.name == w.combo.name {
			index = i
		}
	}
	c["strategy"] = map[string]any{"fail-fast": w.job.failFast, "job-index": float64(index), "job-total": float64(len(w.job.combos)), "max-parallel": float64(max(w.job.maxParallel, len(w.job.combos)))}
	if gh, ok := c["github"].(map[string]any); ok {
		gh["token"] = j.token
		gh["workspace"] = wfWorkspace
	}
	return c
}

// runContexts are the contexts known for a run before any job runs.
func (e *Engine) runContexts(r store.Run, wf *workflow.Workflow, job string) map[string]any {
	refName, refType := r.Ref, "branch"
	if n, ok := strings.CutPrefix(r.Ref, "refs/tags/"); ok {
		refName, refType = n, "tag"
	} else if n, ok := strings.CutPrefix(r.Ref, "refs/heads/"); ok {
		refName = n
	}
	event := "push"
	if strings.HasPrefix(r.Trigger, "manual:") || strings.HasPrefix(r.Trigger, "dispatch:") {
		event = "workflow_dispatch"
	}
	actor := r.Trigger
	if _, who, ok := strings.Cut(r.Trigger, ":"); ok {
		actor = who
	}
	inputs := map[string]any{}
	if wf != nil && wf.Dispatch != nil {
		for _, in := range wf.Dispatch.Inputs {
			v, ok := r.Inputs[in.Name]
			if !ok {
				v = in.Default
			}
			switch in.Type {
			case "boolean":
				inputs[in.Name] = v == "true"
			case "number":
				if n, err := strconv.ParseFloat(v, 64); err == nil {
					inputs[in.Name] = n
					continue
				}
				inputs[in.Name] = v
			default:
				inputs[in.Name] = v
			}
		}
	}
	name, file := "", ""
	if wf != nil {
		name, file = wf.Name, wf.File
	}
	eventBody := map[string]any{"ref": r.Ref, "after": r.Commit, "repository": map[string]any{"name": r.App, "full_name": r.App},
		"head_commit": map[string]any{"id": r.Commit}}
	if event == "workflow_dispatch" {
		eventBody = map[string]any{"ref": r.Ref, "inputs": inputs, "workflow": file, "repository": map[string]any{"name": r.App, "full_name": r.App}}
	}
	server := strings.TrimSuffix(strings.TrimSuffix(e.runURL(r.ID), fmt.Sprintf("/runs/%d", r.ID)), "/")
	return map[string]any{
		"github": map[string]any{
			"ref": r.Ref, "ref_name": refName, "ref_type": refType, "ref_protected": false, "sha": r.Commit,
			"event_name": event, "event": eventBody, "repository": r.App, "repository_owner": "slipway",
			"run_id": strconv.FormatInt(r.ID, 10), "run_number": strconv.FormatInt(r.ID, 10), "run_attempt": "1",
			"actor": actor, "triggering_actor": actor, "workflow": name, "workflow_ref": r.App + "/" + file + "@" + r.Ref,
			"job": job, "server_url": server, "api_url": server + "/api/v1", "action": "", "retention_days": "90",
			"workspace": wfWorkspace,
		},
		"inputs": inputs,
		"vars":   map[string]any{},
	}
}

// secretRef finds secrets.NAME and secrets['NAME'] in a job's text.
var secretRef = regexp.MustCompile(`(?i)\bsecrets\s*(?:\.\s*([A-Za-z_][A-Za-z0-9_]*)|\[\s*'([^']+)'\s*\])`)

// resolveSecrets reads from the secret store every secret the job names
// (the job's environment first, then the app's, then global ones); one that
// is not set fails the job before its first step.
func (j *jobRun) resolveSecrets(ctx context.Context) error {
	j.secrets = map[string]any{}
	job := j.wfa.job.job
	var texts []string
	add := func(vs ...string) { texts = append(texts, vs...) }
	for _, v := range j.wfa.job.wf.Env {
		add(v.Value)
	}
	for _, v := range job.Env {
		add(v.Value)
	}
	for _, v := range job.Outputs {
		add(v.Value)
	}
	add(job.If, job.Name)
	for _, s := range job.Steps {
		add(s.If, s.Name, s.Run, s.WorkingDirectory, s.Shell)
		for _, v := range s.With {
			add(v.Value)
		}
		for _, v := range s.Env {
			add(v.Value)
		}
	}
	envName := ""
	if job.Environment != nil {
		envName = job.Environment.Name
	}
	names := map[string]bool{}
	for _, t := range texts {
		if !strings.Contains(t, "${{") && !strings.Contains(t, "secrets") {
			continue
		}
		for _, m := range secretRef.FindAllStringSubmatch(t, -1) {
			n := m[1] + m[2]
			if !strings.EqualFold(n, "GITHUB_TOKEN") {
				names[n] = true
			}
		}
	}
	sorted := make([]string, 0, len(names))
	for n := range names {
		sorted = append(sorted, n)
	}
	sort.Strings(sorted)
	var missing []string
	for _, n := range sorted {
		if j.e.Secrets == nil {
			return fmt.Errorf("secrets.%s: this server was started without the secret store", n)
		}
		v, found, err := j.e.Secrets.Lookup(ctx, n, j.r.App, envName)
		if err != nil {
			return fmt.Errorf("secrets.%s: %w", n, err)
		}
		if !found {
			missing = append(missing, n)
			continue
		}
		j.secrets[n] = v
		j.mask(v)
	}
	if len(missing) > 0 {
		return fmt.Errorf("secrets %s not set for app %s: set each in Slipway's secret store (for the app, environment %q, or globally)",
			strings.Join(missing, ", "), j.r.App, envName)
	}
	return nil
}

// step runs one step of scope sc (the job's, or a composite action's) and
// returns why it failed ("": it did not).
func (j *jobRun) step(ctx context.Context, sc *stepScope, i int, s *workflow.Step, ar *activeRun) string {
	job := j.wfa.job.job
	id := s.ID
	if id == "" {
		id = fmt.Sprintf("__step%d", i+1)
	}
	status := "success"
	if *sc.failed {
		status = "failure"
	}
	// env: the workflow's, the job's, then what steps added, then the
	// step's. In a composite action: the calling step's, then what its
	// steps added, then the step's.
	envCtx := map[string]any{}
	exprEnv := func() *expr.Env {
		return &expr.Env{Contexts: sc.contexts(j.contexts(envCtx, status)), HashFiles: j.hashFiles,
			Status: expr.Status{Failed: *sc.failed, Cancelled: ar.cancelled.Load()}}
	}
	layers := []workflow.Env{j.wfa.job.wf.Env, job.Env, workflow.Env(j.env)}
	if c := sc.call; c != nil {
		for k, v := range c.env {
			envCtx[k] = v
		}
		layers = []workflow.Env{workflow.Env(j.env[min(c.envFrom, len(j.env)):])}
	}
	for _, layer := range layers {
		for _, v := range layer {
			val, err := expr.Interpolate(v.Value, exprEnv())
			if err != nil {
				return j.stepError(sc, id, s, i, fmt.Sprintf("env.%s: %v", v.Name, err))
			}
			envCtx[v.Name] = val
		}
	}
	name := s.Name
	if name == "" {
		switch {
		case s.Uses != "":
			name = s.Uses
		default:
			name = "Run " + firstLine(s.Run)
		}
	}
	if n, err := expr.Interpolate(name, exprEnv()); err == nil {
		name = n
	}
	ok, err := expr.If(s.If, exprEnv())
	if err != nil {
		return j.stepError(sc, id, s, i, "if: "+err.Error())
	}
	if !ok {
		fmt.Fprintf(j.logs, "[slipway] Step %s%d skipped: %s (if: %s)\n", sc.label, i+1, name, orDefault(s.If, "success()"))
		sc.steps[id] = map[string]any{"outputs": map[string]any{}, "outcome": stateSkipped, "conclusion": stateSkipped}
		return ""
	}
	for _, v := range s.Env {
		val, err := expr.Interpolate(v.Value, exprEnv())
		if err != nil {
			return j.stepError(sc, id, s, i, fmt.Sprintf("env.%s: %v", v.Name, err))
		}
		envCtx[v.Name] = val
	}
	with := map[string]string{}
	for _, v := range s.With {
		val, err := expr.Interpolate(v.Value, exprEnv())
		if err != nil {
			return j.stepError(sc, id, s, i, fmt.Sprintf("with.%s: %v", v.Name, err))
		}
		with[strings.ToLower(v.Name)] = val
	}
	timeout := time.Duration(0)
	if s.TimeoutMinutes != "" {
		n, err := evalNumber(s.TimeoutMinutes, exprEnv())
		if err != nil || n <= 0 {
			return j.stepError(sc, id, s, i, fmt.Sprintf("timeout-minutes: %q is not a positive number", s.TimeoutMinutes))
		}
		timeout = time.Duration(n * float64(time.Minute))
	}
	continueOn := false
	if s.ContinueOnError != "" {
		v, err := evalValue(s.ContinueOnError, exprEnv())
		if err != nil {
			return j.stepError(sc, id, s, i, "continue-on-error: "+err.Error())
		}
		continueOn = expr.Truthy(v)
	}
	if sc.call == nil {
		fmt.Fprintf(j.logs, "##[group]%s\n", name)
	} else { // inside the calling step's group
		fmt.Fprintf(j.logs, "[slipway] Step %s%d: %s\n", sc.label, i+1, name)
	}
	start := time.Now()
	sctx := ctx
	if timeout > 0 {
		var cancel context.CancelFunc
		sctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	outputs := map[string]string{}
	var failure string
	if s.Uses != "" {
		failure = j.uses(sctx, sc, i, s, with, envCtx, outputs, exprEnv(), ar)
	} else {
		failure = j.run(sctx, sc, i, s, envCtx, exprEnv(), outputs)
	}
	if failure != "" && errors.Is(sctx.Err(), context.DeadlineExceeded) && ctx.Err() == nil {
		failure = fmt.Sprintf("timed out after %s (%s)", timeout, failure)
	}
	if sc.call == nil {
		fmt.Fprintf(j.logs, "##[endgroup]\n")
	}
	outcome, conclusion := "success", "success"
	if failure != "" {
		outcome, conclusion = "failure", "failure"
		if continueOn {
			conclusion = "success"
		}
		fmt.Fprintf(j.logs, "##[error]Step %s%d (%s) failed after %s: %s%s\n", sc.label, i+1, name, time.Since(start).Round(time.Millisecond), failure,
			map[bool]string{true: " (continue-on-error: the job goes on)"}[continueOn])
	}
	outs := map[string]any{}
	for k, v := range outputs {
		outs[k] = v
	}
	sc.steps[id] = map[string]any{"outputs": outs, "outcome": outcome, "conclusion": conclusion}
	if conclusion == "failure" {
		*sc.failed = true
		return fmt.Sprintf("step %s%d (%s): %s", sc.label, i+1, name, failure)
	}
	return ""
}

func (j *jobRun) stepError(sc *stepScope, id string, s *workflow.Step, i int, msg string) string {
	msg = fmt.Sprintf("%s:%d:%d: step %s%d: %s", sc.file, s.Line, s.Col, sc.label, i+1, msg)
	fmt.Fprintln(j.logs, "##[error]"+msg)
	sc.steps[id] = map[string]any{"outputs": map[string]any{}, "outcome": "failure", "conclusion": "failure"}
	*sc.failed = true
	return msg
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return s
}

func orDefault(s, d string) string {
	if strings.TrimSpace(s) == "" {
		return d
	}
	return s
}

// shells maps shell: to the command GitHub runs a step's script with.
var shells = map[string]string{
	"bash":   "bash --noprofile --norc -eo pipefail {0}",
	"sh":     "sh -e {0}",
	"python": "python3 {0}",
}

// run runs a run: step's script with its shell in the sandbox, then reads
// what it wrote to the command files.
func (j *jobRun) run(ctx context.Context, sc *stepScope, i int, s *workflow.Step, envCtx map[string]any, env *expr.Env, outputs map[string]string) string {
	job := j.wfa.job.job
	script, err := expr.Interpolate(s.Run, env)
	if err != nil {
		return fmt.Sprintf("run: %v", err)
	}
	// A composite action's steps name their shell (ParseAction checks it)
	// and take no defaults.run of the workflow or the job, as on GitHub.
	defaults := []workflow.Defaults{job.Defaults, j.wfa.job.wf.Defaults}
	n := i + 1 // the step's directory of command files
	if sc.call != nil {
		defaults = nil
		j.compositeRuns++
		n = maxJobSteps + j.compositeRuns
	}
	var shellDefault, wdDefault []string
	for _, d := range defaults {
		shellDefault, wdDefault = append(shellDefault, d.Shell), append(wdDefault, d.WorkingDirectory)
	}
	shell := firstNonEmpty(append(append([]string{s.Shell}, shellDefault...), "bash")...)
	template, ok := shells[shell]
	if !ok {
		if !strings.Contains(shell, "{0}") {
			return fmt.Sprintf("shell: %q is not available on this executor; use bash, sh, python or a command with {0}", shell)
		}
		template = shell
	}
	wd := firstNonEmpty(append([]string{s.WorkingDirectory}, wdDefault...)...)
	if wd, err = expr.Interpolate(wd, env); err != nil {
		return "working-directory: " + err.Error()
	}
	dir := wfWorkspace
	if wd != "" {
		dir = path.Join(wfWorkspace, wd)
		if path.IsAbs(wd) {
			dir = path.Clean(wd)
		}
	}
	stepDir := fmt.Sprintf("%s/%d", wfRunner, n)
	scriptFile := stepDir + "/script"
	if shell == "python" {
		scriptFile += ".py"
	} else {
		scriptFile += ".sh"
	}
	argv := strings.Fields(strings.ReplaceAll(template, "{0}", scriptFile))
	files := map[string]string{"GITHUB_OUTPUT": stepDir + "/output", "GITHUB_ENV": stepDir + "/env", "GITHUB_PATH": stepDir + "/path", "GITHUB_STEP_SUMMARY": stepDir + "/summary"}
	withPath := files
	if sc.call != nil {
		withPath = map[string]string{"GITHUB_ACTION_PATH": sc.call.actionPath}
		for k, v := range files {
			withPath[k] = v
		}
	}
	vars := j.stepEnv(envCtx, withPath)
	// The sandbox's own user makes the step's files (the server writes
	// nothing a step could have turned into a link), then the shell runs.
	empty := []string{files["GITHUB_OUTPUT"], files["GITHUB_ENV"], files["GITHUB_PATH"], files["GITHUB_STEP_SUMMARY"]}
	out := newStepOutput(j.logs, j.mask, outputs, &j.annotations)
	code, err := j.runner.run(ctx, scriptFile, script, argv, vars, dir, empty, out)
	out.Close()
	if ferr := j.readFileCommands(n, outputs); ferr != nil && err == nil && code == 0 {
		return ferr.Error()
	}
	if err != nil {
		return err.Error()
	}
	if code != 0 {
		return fmt.Sprintf("exit code %d", code)
	}
	return ""
}

func firstNonEmpty(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}

// jobVars is the environment every step of the job starts from: the
// sandbox's, the registry's, GitHub's variables for the run and job.
// Worked out once a job (app is the job's app, as read at its start).
func (j *jobRun) jobVars(app store.App) map[string]string {
	w := j.wfa
	vars := map[string]string{}
	for _, kv := range j.e.sandboxEnv(Action{}, store.App{}, false) {
		k, v, _ := strings.Cut(kv, "=")
		vars[k] = v
	}
	if reg, err := j.e.registry(); err == nil {
		vars["DOCKER_CONFIG"] = build.ContainerRoot + "/docker"
		vars["SLIPWAY_REGISTRY"] = reg.Host
	}
	if app.Build.DockerAccess {
		vars["PATH"] = sandbox.ShimDir + ":" + vars["PATH"]
	}
	gh := j.e.runContexts(j.r, w.job.wf, w.job.job.ID)["github"].(map[string]any)
	for k, v := range map[string]string{
		"CI": "true", "GITHUB_ACTIONS": "true", "GITHUB_WORKSPACE": wfWorkspace, "GITHUB_SHA": j.r.Commit, "GITHUB_REF": j.r.Ref,
		"GITHUB_REF_NAME": gh["ref_name"].(string), "GITHUB_REF_TYPE": gh["ref_type"].(string), "GITHUB_REPOSITORY": j.r.App,
		"GITHUB_REPOSITORY_OWNER": "slipway", "GITHUB_RUN_ID": gh["run_id"].(string), "GITHUB_RUN_NUMBER": gh["run_number"].(string),
		"GITHUB_RUN_ATTEMPT": "1", "GITHUB_EVENT_NAME": gh["event_name"].(string), "GITHUB_JOB": w.job.job.ID,
		"GITHUB_ACTOR": gh["actor"].(string), "GITHUB_WORKFLOW": w.job.wf.Name, "GITHUB_SERVER_URL": gh["server_url"].(string),
		"GITHUB_API_URL": gh["api_url"].(string), "RUNNER_OS": "Linux", "RUNNER_ARCH": "X64", "RUNNER_NAME": "slipway",
		"RUNNER_TEMP": wfTemp, "RUNNER_TOOL_CACHE": wfTemp + "/tool", "SLIPWAY_APP": j.r.App, "SLIPWAY_RUN_ID": gh["run_id"].(string),
		"SLIPWAY_COMMIT": j.r.Commit, "SLIPWAY_REF": j.r.Ref, "HOME": sandbox.Home,
	} {
		vars[k] = v
	}
	return vars
}

// stepEnv is a step's process environment: the runner's variables, the
// sandbox's, then env: (workflow, job, step) as evaluated.
func (j *jobRun) stepEnv(envCtx map[string]any, files map[string]string) []string {
	vars := maps.Clone(j.baseVars)
	if vars == nil {
		vars = map[string]string{}
	}
	if len(j.paths) > 0 {
		vars["PATH"] = strings.Join(j.paths, ":") + ":" + vars["PATH"]
	}
	for k, v := range files {
		vars[k] = v
	}
	for k, v := range envCtx {
		vars[k] = expr.String(v)
	}
	env := make([]string, 0, len(vars))
	for k, v := range vars {
		env = append(env, k+"="+v)
	}
	sort.Strings(env)
	return env
}

// readFileCommands reads what step n wrote to $GITHUB_OUTPUT, $GITHUB_ENV,
// $GITHUB_PATH and $GITHUB_STEP_SUMMARY.
func (j *jobRun) readFileCommands(n int, outputs map[string]string) error {
	read := func(name string) (string, error) {
		// Inside the workspace's root: a link the step left at _runner/N
		// cannot lead the server's read elsewhere.
		b, err := readSpecFileLimit(j.base, path.Join("_runner", strconv.Itoa(n), name), maxFileCommand)
		if isMissing(err) {
			return "", nil
		}
		if err != nil {
			return "", fmt.Errorf("$GITHUB_%s: %w", strings.ToUpper(name), err)
		}
		return string(b), nil
	}
	text, err := read("output")
	if err != nil {
		return err
	}
	kvs, err := parseFileCommands(text)
	if err != nil {
		return fmt.Errorf("$GITHUB_OUTPUT: %w", err)
	}
	for _, kv := range kvs {
		if j.outputBytes += len(kv[0]) + len(kv[1]); j.outputBytes > maxJobOutputs {
			return fmt.Errorf("$GITHUB_OUTPUT: the job's step outputs hold over %d MiB", maxJobOutputs>>20)
		}
		outputs[kv[0]] = kv[1]
	}
	if text, err = read("env"); err != nil {
		return err
	}
	if kvs, err = parseFileCommands(text); err != nil {
		return fmt.Errorf("$GITHUB_ENV: %w", err)
	}
	for _, kv := range kvs {
		if j.envBytes += len(kv[0]) + len(kv[1]); j.envBytes > maxJobEnv {
			return fmt.Errorf("$GITHUB_ENV: the job's environment grew over %d MiB", maxJobEnv>>20)
		}
		j.env = append(j.env, workflow.EnvVar{Name: kv[0], Value: escapeExpr(kv[1])})
	}
	if text, err = read("path"); err != nil {
		return err
	}
	for _, p := range strings.Split(text, "\n") {
		if p = strings.TrimSpace(p); p != "" {
			if len(j.paths) >= maxJobPaths {
				return fmt.Errorf("$GITHUB_PATH: the job adds over %d directories", maxJobPaths)
			}
			j.paths = append([]string{p}, j.paths...)
		}
	}
	if text, err = read("summary"); err != nil {
		return err
	}
	if strings.TrimSpace(text) != "" && !j.summaryCut {
		if j.summary.Len()+len(text) > store.MaxActionSummary {
			j.summaryCut = true // the store says where it was cut
			text = text[:max(0, store.MaxActionSummary-j.summary.Len())] + strings.Repeat(" ", 1)
		}
		j.summary.WriteString(text)
		if !strings.HasSuffix(text, "\n") {
			j.summary.WriteString("\n")
		}
	}
	return nil
}

// escapeExpr keeps a value a step wrote to $GITHUB_ENV from being read as
// an expression when later steps' env is evaluated.
func escapeExpr(v string) string {
	if !strings.Contains(v, "${{") {
		return v
	}
	return "${{ '" + strings.ReplaceAll(v, "'", "''") + "' }}"
}

// storeOutputs evaluates the job's outputs: and keeps them with the run
// for needs.<job>.outputs. An output holding a secret is left out, as on
// GitHub.
func (j *jobRun) storeOutputs(ctx context.Context) error {
	job := j.wfa.job.job
	if len(job.Outputs) == 0 {
		return nil
	}
	env := &expr.Env{Contexts: j.contexts(nil, ""), Status: expr.Status{Failed: j.failed}}
	var vs []store.Variable
	for _, o := range job.Outputs {
		v, err := expr.Interpolate(o.Value, env)
		if err != nil {
			return fmt.Errorf("jobs.%s.outputs.%s: %v", job.ID, o.Name, err)
		}
		if j.holdsSecret(v) {
			fmt.Fprintf(j.logs, "##[warning]Output %s holds a secret and is left out\n", o.Name)
			continue
		}
		vs = append(vs, store.Variable{Action: job.ID, Name: o.Name, Value: v})
	}
	if len(vs) == 0 {
		return nil
	}
	return j.e.Store.PutVariables(ctx, j.r.ID, vs)
}

func (j *jobRun) holdsSecret(v string) bool {
	for _, s := range j.secrets {
		if str, ok := s.(string); ok && len(str) >= 4 && strings.Contains(v, str) {
			return true
		}
	}
	return false
}

// hashFiles implements hashFiles() over the workspace.
func (j *jobRun) hashFiles(patterns []string) (string, error) {
	return hashWorkspaceFiles(j.base, patterns)
}
