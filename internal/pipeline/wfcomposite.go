package pipeline

import (
	"context"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"syscall"

	"github.com/slipway-dev/slipway/internal/build"
	"github.com/slipway-dev/slipway/internal/workflow"
	"github.com/slipway-dev/slipway/internal/workflow/expr"
)

// maxCompositeDepth bounds how deeply composite actions call composite
// actions (GitHub's runner stops at 9 levels; 10 here).
const maxCompositeDepth = 10

// stepScope is where steps run: the job itself, or one call of a
// composite action, whose steps see their own steps context and inputs.
type stepScope struct {
	file   string         // where the steps are written, for errors
	label  string         // "" for the job's steps; "3." for those of the action step 3 calls
	steps  map[string]any // the steps context
	failed *bool          // whether a step of the scope failed
	call   *compositeCall // nil for the job's steps
}

// compositeCall is one composite action while its steps run.
type compositeCall struct {
	inputs     map[string]any
	actionPath string         // the action's directory in the container
	env        map[string]any // the calling step's env context
	envFrom    int            // j.env entries from here on were added inside the action
	chain      []string       // the actions being run, outermost first ("./a")
}

// contexts adapts a job's contexts to the scope: a composite action's
// steps read its inputs, its own steps and github.action_path, and no
// secrets (GitHub gives composite actions none: pass them as inputs).
func (sc *stepScope) contexts(c map[string]any) map[string]any {
	c["steps"] = sc.steps
	if sc.call == nil {
		return c
	}
	c["inputs"] = sc.call.inputs
	delete(c, "secrets")
	if gh, ok := c["github"].(map[string]any); ok {
		gh["action_path"] = sc.call.actionPath
	}
	return c
}

// actionDir turns uses: ./path into the action's directory relative to the
// repository, refusing paths that leave it.
func actionDir(uses string) (string, error) {
	rel := path.Clean(strings.TrimPrefix(uses, "./"))
	if rel == ".." || strings.HasPrefix(rel, "../") || path.IsAbs(rel) {
		return "", fmt.Errorf("uses: %s is outside the repository; a local action is a directory of the checked-out repository", uses)
	}
	return rel, nil
}

// readAction reads and validates the action.yml (or action.yaml) in the
// repository directory rel, inside the checked-out workspace: opened
// through roots (no link leads out of the workspace), without blocking on
// a FIFO, and only if it is a regular file of at most 1 MiB.
func (j *jobRun) readAction(uses, rel string) (*workflow.Action, error) {
	root, err := os.OpenRoot(j.base)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	src, err := root.OpenRoot(filepath.Base(wfWorkspace))
	if err != nil {
		return nil, err
	}
	defer src.Close()
	for _, name := range []string{"action.yml", "action.yaml"} {
		file := path.Join(rel, name)
		f, err := src.OpenFile(file, os.O_RDONLY|syscall.O_NONBLOCK, 0)
		if isMissing(err) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		data, err := build.ReadRegular(f, file, workflow.MaxActionFileSize)
		f.Close()
		if err != nil {
			return nil, err
		}
		return workflow.ParseAction(file, data)
	}
	return nil, fmt.Errorf("uses: %s: no action.yml or action.yaml at %s; check out the repository first (actions/checkout)", uses, "./"+rel)
}

// composite runs a local composite action: its inputs from with (or
// their defaults), its steps in a scope of their own, then its outputs,
// which become the calling step's.
func (j *jobRun) composite(ctx context.Context, sc *stepScope, i int, s *workflow.Step, with map[string]string, env map[string]any, outputs map[string]string, callerEnv *expr.Env, ar *activeRun) string {
	rel, err := actionDir(s.Uses)
	if err != nil {
		return err.Error()
	}
	uses := "./" + rel
	var chain []string
	if sc.call != nil {
		chain = sc.call.chain
	}
	for _, c := range chain {
		if c == uses {
			return fmt.Sprintf("uses: %s calls itself (%s → %s): composite actions may not call each other in a cycle", uses, strings.Join(chain, " → "), uses)
		}
	}
	if len(chain) >= maxCompositeDepth {
		return fmt.Sprintf("uses: %s: composite actions nest over %d deep (%s)", uses, maxCompositeDepth, strings.Join(append(chain, uses), " → "))
	}
	a, err := j.readAction(s.Uses, rel)
	if err != nil {
		return err.Error()
	}
	if j.compositeSteps += len(a.Steps); len(j.wfa.job.job.Steps)+j.compositeSteps > maxJobSteps {
		return fmt.Sprintf("uses: %s: with its composite actions' steps the job runs over %d steps", uses, maxJobSteps)
	}
	// Inputs: what with gives, else the default; an input the action does
	// not declare is a warning, as on GitHub.
	var unexpected []string
	for name := range with {
		in := a.Input(name)
		if in == nil {
			unexpected = append(unexpected, name)
		} else if in.Deprecation != "" {
			fmt.Fprintf(j.logs, "##[warning]Input '%s' of %s has been deprecated with message: %s\n", in.Name, uses, in.Deprecation)
		}
	}
	if len(unexpected) > 0 {
		sort.Strings(unexpected)
		var valid []string
		for _, in := range a.Inputs {
			valid = append(valid, "'"+in.Name+"'")
		}
		fmt.Fprintf(j.logs, "##[warning]Unexpected input(s) '%s', valid inputs are [%s]\n", strings.Join(unexpected, "', '"), strings.Join(valid, ", "))
	}
	inputs := map[string]any{}
	var missing []string
	for _, in := range a.Inputs {
		key := strings.ToLower(in.Name)
		if v, ok := with[key]; ok {
			inputs[key] = v
			continue
		}
		if in.Required && in.Default == "" {
			// GitHub's runner does not enforce required: for composite
			// actions (the input is empty); a workflow that relies on that
			// must run here too, so this is said, not refused.
			missing = append(missing, in.Name)
			inputs[key] = ""
			continue
		}
		v, err := expr.Interpolate(in.Default, callerEnv)
		if err != nil {
			return fmt.Sprintf("%s: inputs.%s.default: %v", a.File, in.Name, err)
		}
		inputs[key] = v
	}
	if len(missing) > 0 {
		fmt.Fprintf(j.logs, "##[warning]%s: required input(s) %s not given (empty, as on GitHub): set each under with:\n", uses, strings.Join(missing, ", "))
	}
	failed := false
	inner := &stepScope{
		file:   a.File,
		label:  fmt.Sprintf("%s%d.", sc.label, i+1),
		steps:  map[string]any{},
		failed: &failed,
		call: &compositeCall{inputs: inputs, actionPath: path.Join(wfWorkspace, rel), env: env,
			envFrom: len(j.env), chain: append(append([]string(nil), chain...), uses)},
	}
	j.note("Composite action %s (%s, %d step(s))", uses, a.File, len(a.Steps))
	reason := ""
	for k, st := range a.Steps {
		if ctx.Err() != nil {
			if reason == "" {
				reason = ctx.Err().Error()
			}
			break
		}
		if why := j.step(ctx, inner, k, st, ar); why != "" && reason == "" {
			reason = why
		}
	}
	// The action's outputs, from its steps: what the caller reads as
	// steps.<id>.outputs.
	oenv := &expr.Env{Contexts: inner.contexts(j.contexts(env, "")), HashFiles: j.hashFiles, Status: expr.Status{Failed: failed}}
	for _, o := range a.Outputs {
		v, err := expr.Interpolate(o.Value, oenv)
		if err != nil {
			if reason == "" {
				reason = fmt.Sprintf("%s: outputs.%s: %v", a.File, o.Name, err)
			}
			continue
		}
		if j.outputBytes += len(o.Name) + len(v); j.outputBytes > maxJobOutputs {
			return fmt.Sprintf("%s: outputs: the job's step outputs hold over %d MiB", a.File, maxJobOutputs>>20)
		}
		outputs[o.Name] = v
	}
	return reason
}
