package deploy

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/slipway-dev/slipway/internal/store"
	"github.com/slipway-dev/slipway/internal/task"
	"github.com/slipway-dev/slipway/internal/taskdef"
)

// EnvRuntimes says where environments run their tasks when not on the
// local Docker engine (Manager.Runtime).
type EnvRuntimes interface {
	// RuntimeOf returns the runtime of app's environment env; nil for the
	// local Docker engine.
	RuntimeOf(ctx context.Context, app, env string) (task.Backend, error)
	// Runtimes returns every runtime some environment uses other than the
	// local Docker engine, so that tasks of deleted services are found there.
	Runtimes(ctx context.Context) ([]task.Backend, error)
}

// RuntimeOf returns the backend app's environment env runs its tasks on.
func (m *Manager) RuntimeOf(ctx context.Context, app, env string) (task.Backend, error) {
	if m.Environments != nil {
		b, err := m.Environments.RuntimeOf(ctx, app, env)
		if err != nil || b != nil {
			return b, err
		}
	}
	rt, err := m.Runtime(ctx)
	if err != nil {
		return nil, err
	}
	return rt, nil
}

// backendOf is the backend that listed t (nil: none this manager knows).
func (m *Manager) backendOf(t task.Task) task.Backend {
	m.mu.Lock()
	defer m.mu.Unlock()
	k := t.Runtime
	if k == "" {
		k = task.DockerKey
	}
	return m.backends[k]
}

// listTimeout bounds the listing of a runtime other than the local engine.
const listTimeout = 10 * time.Second

// listing is one pass's view of every backend's tasks.
type listing struct {
	all []task.Task
	// of holds each service's backend (by key(s)); a service missing
	// from it is not reconciled this pass.
	of map[string]task.Backend
}

// listAll lists the tasks of every backend a service or a task may be on.
// The local engine not answering ends the pass (ok false), as before
// there were other runtimes; another runtime not answering keeps its
// tasks of the last listing, so the load balancer keeps its targets, and
// leaves its services alone until it answers.
func (m *Manager) listAll(ctx context.Context, services []store.Service) (l listing, ok bool, err error) {
	l.of = map[string]task.Backend{}
	backends := map[string]task.Backend{}
	var others []task.Backend
	if m.Environments != nil {
		if others, err = m.Environments.Runtimes(ctx); err != nil {
			return l, false, err
		}
	}
	for _, b := range others {
		backends[b.Key()] = b
	}
	needDocker := false
	broken := map[string]bool{}
	for _, s := range services {
		var b task.Backend
		if m.Environments != nil {
			b, err = m.Environments.RuntimeOf(ctx, s.App, s.Env)
			if err != nil {
				m.runtimeDown(ctx, s.App+"/"+s.Env, fmt.Errorf("environment %s of app %s: %w", s.Env, s.App, err))
				broken[key(s)] = true
				continue
			}
			m.runtimeUp(s.App + "/" + s.Env)
		}
		if b == nil {
			needDocker = true
			continue
		}
		backends[b.Key()] = b
		l.of[key(s)] = b
	}
	m.mu.Lock()
	had := m.lastTasks != nil
	m.mu.Unlock()
	if needDocker || had {
		rt, err := m.Runtime(ctx)
		if err != nil && needDocker {
			return l, false, err
		}
		if err == nil {
			backends[task.DockerKey] = rt
			for _, s := range services {
				if _, on := l.of[key(s)]; !on && !broken[key(s)] {
					l.of[key(s)] = rt
				}
			}
		}
	}
	m.mu.Lock()
	m.backends = backends
	previous := m.lastTasks
	m.mu.Unlock()
	m.watch(backends)
	// Together, and another runtime within listTimeout: a cluster that is
	// slow or gone must not hold up the services everywhere else.
	type result struct {
		ts  []task.Task
		err error
	}
	results := make(map[string]*result, len(backends))
	var wg sync.WaitGroup
	for k, b := range backends {
		r := &result{}
		results[k] = r
		wg.Add(1)
		go func() {
			defer wg.Done()
			lctx := ctx
			if k != task.DockerKey {
				var cancel context.CancelFunc
				lctx, cancel = context.WithTimeout(ctx, listTimeout)
				defer cancel()
			}
			r.ts, r.err = b.List(lctx, nil)
		}()
	}
	wg.Wait()
	if r, ok := results[task.DockerKey]; ok {
		m.engineReachable(r.err)
		if r.err != nil {
			return l, false, nil // said once by engineReachable; the next pass tries again
		}
	}
	for k, r := range results {
		if k == task.DockerKey {
			l.all = append(l.all, r.ts...)
			continue
		}
		if r.err != nil {
			m.runtimeDown(ctx, k, r.err)
			for _, t := range previous {
				if t.Runtime == k {
					l.all = append(l.all, t)
				}
			}
			for sk, sb := range l.of {
				if sb.Key() == k {
					delete(l.of, sk)
				}
			}
			continue
		}
		m.runtimeUp(k)
		l.all = append(l.all, r.ts...)
	}
	return l, true, nil
}

// runtimeDown notes, once until it answers again, a runtime that did not.
func (m *Manager) runtimeDown(ctx context.Context, k string, err error) {
	m.mu.Lock()
	was := m.downRuntimes[k]
	if m.downRuntimes == nil {
		m.downRuntimes = map[string]bool{}
	}
	m.downRuntimes[k] = true
	m.mu.Unlock()
	if !was {
		m.Log.Warn("a runtime does not answer; its services keep their tasks and state, and reconciling them resumes when it answers", "runtime", k, "err", err)
	}
}

func (m *Manager) runtimeUp(k string) {
	m.mu.Lock()
	was := m.downRuntimes[k]
	delete(m.downRuntimes, k)
	m.mu.Unlock()
	if was {
		m.Log.Info("a runtime answers again; reconciling its services resumes", "runtime", k)
	}
}

// onRuntime returns the tasks of s that run on its environment's runtime
// rt, and drains and stops those left on another one (of an environment
// whose runtime changed).
func (m *Manager) onRuntime(ctx context.Context, s store.Service, rt task.Backend, tasks []task.Task) []task.Task {
	out := tasks[:0:0]
	for _, t := range tasks {
		k := t.Runtime
		if k == "" {
			k = task.DockerKey
		}
		if k == rt.Key() {
			out = append(out, t)
			continue
		}
		if other := m.backendOf(t); other != nil && !m.isStopping(t.ID) {
			m.event(ctx, s, "draining task %s: the environment now runs its tasks on %s", t.ID, rt.Key())
			m.stopTask(ctx, other, s, t, m.drainDelay(s), "runtime changed")
		}
	}
	return out
}

// noUsage says once per service that its runtime measures no CPU or
// memory, so auto scaling by them holds (by request count it works).
func (m *Manager) noUsage(s store.Service, rt task.Backend) {
	m.mu.Lock()
	if m.toldNoUsage == nil {
		m.toldNoUsage = map[string]bool{}
	}
	told := m.toldNoUsage[key(s)]
	m.toldNoUsage[key(s)] = true
	m.mu.Unlock()
	if !told {
		m.event(m.life, s, "auto scaling by CPU or memory cannot measure tasks on runtime %s (its metrics API does not answer); scaling by request count works", rt.Key())
	}
}

// TaskDefChecker is a runtime that can tell up front that it cannot run a
// task definition (a Kubernetes pod has no form for some ECS fields).
type TaskDefChecker interface {
	CheckTaskDef(def *taskdef.TaskDef) error
}

// CheckRuntime refuses a revision that app's environment env cannot run,
// when a service or deployment names it, not when its first task starts.
func (m *Manager) CheckRuntime(ctx context.Context, app, env, family string, revision int) error {
	if m.Environments == nil {
		return nil
	}
	b, err := m.Environments.RuntimeOf(ctx, app, env)
	if err != nil || b == nil {
		return nil // Docker, or not usable now: the start says so
	}
	c, ok := b.(TaskDefChecker)
	if !ok {
		return nil
	}
	def, err := m.revision(ctx, family, revision)
	if err != nil {
		return err
	}
	if err := c.CheckTaskDef(def); err != nil {
		return &FieldError{Field: "task_definition", Detail: fmt.Sprintf("%s:%d cannot run in environment %s, whose tasks run on %s: %v", family, revision, env, b.Key(), err)}
	}
	return nil
}
