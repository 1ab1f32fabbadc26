package source

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/slipway-dev/slipway/internal/store"
	"github.com/slipway-dev/slipway/internal/workflow"
)

// maxWorkflows bounds how many workflow files one commit may hold.
const maxWorkflows = 100

// ListWorkflows lists the workflow files (.github/workflows/*.yml and
// *.yaml) at a commit.
func (s *Service) ListWorkflows(ctx context.Context, app, commit string) ([]string, error) {
	out, err := s.git(ctx, app, "ls-tree", "--name-only", "-z", commit+":"+workflow.Dir)
	if err != nil {
		return nil, nil // no such directory
	}
	var files []string
	for _, name := range strings.Split(string(out), "\x00") {
		if p := workflow.Dir + "/" + name; name != "" && workflow.IsWorkflowFile(p) {
			files = append(files, p)
		}
	}
	if len(files) > maxWorkflows {
		return nil, fmt.Errorf("%s holds %d workflow files; at most %d are read", workflow.Dir, len(files), maxWorkflows)
	}
	return files, nil
}

// evaluateWorkflows starts a run for each workflow whose on.push matches.
// A workflow with errors starts nothing: each error is named with its file,
// line and column, and the workflows that matched still start.
func (s *Service) evaluateWorkflows(ctx context.Context, app, source string, up RefUpdate, commit string, fallbackChanged []string) ([]*store.Run, outcome) {
	files, err := s.ListWorkflows(ctx, app, commit)
	if err != nil {
		return nil, outcome{store.OutcomeError, err.Error()}
	}
	if len(files) == 0 {
		return nil, outcome{store.OutcomeFiltered, fmt.Sprintf("no slipway.yaml and no %s/*.yml at commit %s; add one to start runs", workflow.Dir, short(commit))}
	}
	changed, err := s.changedPaths(ctx, app, up, commit)
	if err != nil {
		if fallbackChanged == nil {
			return nil, outcome{store.OutcomeError, "cannot list changed files: " + err.Error()}
		}
		changed = fallbackChanged
	}
	var runs []*store.Run
	var problems, skipped []string
	for _, f := range files {
		data, err := s.ReadFile(ctx, app, commit, f)
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s: %v", f, err))
			continue
		}
		wf, err := workflow.Parse(f, data)
		if err != nil {
			var errs workflow.Errors
			if errors.As(err, &errs) {
				for _, e := range errs {
					problems = append(problems, e.Error())
				}
			} else {
				problems = append(problems, fmt.Sprintf("%s: %v", f, err))
			}
			continue
		}
		run, why := wf.MatchPush(up.Ref, changed)
		if !run {
			skipped = append(skipped, fmt.Sprintf("%s: %s", f, why))
			continue
		}
		runs = append(runs, &store.Run{App: app, State: store.RunQueued, Trigger: pushTrigger(source), Ref: up.Ref, Commit: commit, Workflow: f})
	}
	switch {
	case len(problems) > 0:
		return runs, outcome{store.OutcomeError, strings.Join(problems, "\n")}
	case len(runs) > 0:
		return runs, outcome{store.OutcomeRun, ""}
	}
	return nil, outcome{store.OutcomeFiltered, strings.Join(skipped, "\n")}
}
