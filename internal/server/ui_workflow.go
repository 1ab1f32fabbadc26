package server

import (
	"context"
	"sync"

	"github.com/slipway-dev/slipway/internal/store"
	"github.com/slipway-dev/slipway/internal/workflow"
)

// needsCache keeps the job graph of the workflows run pages show: the
// file at a commit never changes, and a live page asks on every update.
type needsCache struct {
	mu sync.Mutex
	m  map[string]map[string][]string
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
