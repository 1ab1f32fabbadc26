package deploy

import (
	"time"

	"github.com/slipway-dev/slipway/internal/store"
	"github.com/slipway-dev/slipway/internal/task"
)

// Listed returns s's tasks as the newest pass listed them, and when that
// listing began: a page showing a service's tasks reads them without an
// engine call, as ECS's console shows what its scheduler last saw. Passes
// follow the engine's events, so the listing trails a task's start or
// death by a pass. ok is false until a pass has listed.
func (m *Manager) Listed(s store.Service) (tasks []task.Task, at time.Time, ok bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.listedAt.IsZero() {
		return nil, time.Time{}, false
	}
	for _, t := range m.lastTasks {
		if t.App == s.App && t.Env == s.Env && t.Service == s.Name {
			tasks = append(tasks, t)
		}
	}
	return tasks, m.listedAt, true
}
