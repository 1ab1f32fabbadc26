package server

import (
	"context"
	"sync"

	"github.com/slipway-dev/slipway/internal/store"
	"github.com/slipway-dev/slipway/internal/workflow"
)

// needsCache keeps what run pages read from git at a commit, which never
// changes, while a live page asks on every update: the job graph of the
// workflows they show, and commits' subjects and authors (see
// ui_commits.go).
type needsCache struct {
	mu sync.Mutex
	m  map[string]map[string][]string

	commitsMu sync.Mutex
	commits   map[string]commitInfo
}

// maxNeedsCached bounds the cache; it starts over when full.
const maxNeedsCached = 256

// workflowNeeds returns, for a workflow run, the jobs each job needs (nil
// for other runs, or when the file cannot be read).
func (s *Server) workflowNeeds(ctx context.Context, r store.Run) map[string][]string {
	if r.Workflow == "" {
		return nil
	}
	key := r.App + "\x00" + r.Commit + "\x00" + r.Workflow
	s.needs.mu.Lock()
	if n, ok := s.needs.m[key]; ok {
		s.needs.mu.Unlock()
		return n
	}
	s.needs.mu.Unlock()
	data, err := s.source.ReadFile(ctx, r.App, r.Commit, r.Workflow)
	if err != nil {
		return nil
	}
	wf, err := workflow.Parse(r.Workflow, data)
	if err != nil {
		return nil
	}
	n := map[string][]string{}
	for _, j := range wf.Jobs {
		n[j.ID] = j.Needs
	}
	s.needs.mu.Lock()
	if s.needs.m == nil || len(s.needs.m) >= maxNeedsCached {
		s.needs.m = map[string]map[string][]string{}
	}
	s.needs.m[key] = n
	s.needs.mu.Unlock()
	return n
}
