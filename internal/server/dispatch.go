package server

import (
	"errors"
	"net/http"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/slipway-dev/slipway/internal/store"
	"github.com/slipway-dev/slipway/internal/workflow"
)

// Limits on a workflow_dispatch's inputs, as GitHub's.
const (
	maxDispatchInputs     = 25
	maxDispatchInputBytes = 65535
)

// dispatchWorkflow starts a run of a workflow by hand, as GitHub's
// workflow_dispatch event does.
func (s *Server) dispatchWorkflow(w http.ResponseWriter, r *http.Request, app, ref, commit string, req startRunRequest) {
	file := req.Workflow
	if !strings.Contains(file, "/") {
		file = workflow.Dir + "/" + file
	}
	if !workflow.IsWorkflowFile(file) {
		s.writeError(w, r, errBadRequest("workflow", "%q is not a workflow file; name one in %s, e.g. deploy.yml", req.Workflow, workflow.Dir))
		return
	}
	data, err := s.source.ReadFile(r.Context(), app, commit, file)
	if err != nil {
		s.writeError(w, r, errBadRequest("workflow", "commit %s has no %s", commit[:12], file))
		return
	}
	wf, err := workflow.Parse(file, data)
	if err != nil {
		s.writeError(w, r, &apiError{Status: http.StatusUnprocessableEntity, Code: "invalid_workflow", Field: "workflow", Message: err.Error()})
		return
	}
	if wf.Dispatch == nil {
		s.writeError(w, r, errBadRequest("workflow", "%s has no on.workflow_dispatch trigger, so it cannot be run by hand; add `workflow_dispatch:` under on:", path.Base(file)))
		return
	}
	inputs, err := dispatchInputs(wf.Dispatch, req.Inputs)
	if err != nil {
		var ae *apiError
		if errors.As(err, &ae) {
			s.writeError(w, r, ae)
			return
		}
		s.writeError(w, r, errBadRequest("inputs", "%v", err))
		return
	}
	tok, _ := Caller(r.Context())
	run, err := s.db.CreateRun(r.Context(), store.Run{App: app, State: store.RunQueued, Trigger: "dispatch:" + tok.Name, Ref: ref, Commit: commit,
		Workflow: file, Inputs: inputs})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.engine.Wake()
	writeJSON(w, http.StatusCreated, run)
}

// dispatchInputs checks given inputs against the workflow's declared ones
// and fills defaults: an unknown name, a missing required input, a choice
// not among the options or a boolean or number that is not one is refused.
func dispatchInputs(d *workflow.Dispatch, given map[string]string) (map[string]string, error) {
	if len(given) > maxDispatchInputs {
		return nil, errBadRequest("inputs", "%d inputs given; at most %d", len(given), maxDispatchInputs)
	}
	size := 0
	for k, v := range given {
		size += len(k) + len(v)
	}
	if size > maxDispatchInputBytes {
		return nil, errBadRequest("inputs", "the inputs hold %d bytes; at most %d", size, maxDispatchInputBytes)
	}
	declared := map[string]workflow.Input{}
	var names []string
	for _, in := range d.Inputs {
		declared[in.Name] = in
		names = append(names, in.Name)
	}
	out := map[string]string{}
	for k, v := range given {
		in, ok := declared[k]
		if !ok {
			return nil, errBadRequest("inputs."+k, "the workflow declares no input %q; it declares %s", k, orNone(names))
		}
		switch in.Type {
		case "boolean":
			if v != "true" && v != "false" {
				return nil, errBadRequest("inputs."+k, "%q is not a boolean; give true or false", v)
			}
		case "number":
			if _, err := strconv.ParseFloat(v, 64); err != nil {
				return nil, errBadRequest("inputs."+k, "%q is not a number", v)
			}
		case "choice":
			if !slices.Contains(in.Options, v) {
				return nil, errBadRequest("inputs."+k, "%q is not one of the options %s", v, strings.Join(in.Options, ", "))
			}
		}
		out[k] = v
	}
	for _, in := range d.Inputs {
		if _, ok := out[in.Name]; ok {
			continue
		}
		if in.Required && in.Default == "" {
			return nil, errBadRequest("inputs."+in.Name, "input %s is required", in.Name)
		}
		out[in.Name] = in.Default
	}
	return out, nil
}

func orNone(names []string) string {
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}
