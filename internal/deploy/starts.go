package deploy

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/slipway-dev/slipway/internal/store"
	"github.com/slipway-dev/slipway/internal/task"
)

// Task starts run in the background, several at once: one at a time, losing
// every task of a machine took half a second per task to converge. The
// bounds keep the engine from thrashing and keep one service from taking
// every slot: each service has at most perServiceStarts in flight and waits
// its turn for the shared ones, in the order the passes asked.
const (
	// DefaultStartConcurrency is how many task starts run at once unless
	// the manager says otherwise.
	DefaultStartConcurrency = 8
	perServiceStarts        = 4
	// stopConcurrency bounds the engine calls that stop and remove tasks.
	stopConcurrency = 16
)

// pendingStart is a task being started: known by id before the engine
// lists it, so that a pass neither takes it for one left half-started nor
// starts another in its place.
type pendingStart struct {
	service string // key(s)
	set     string // store.TaskSet.Key()
	memMiB  int    // what it reserves, once known
	// done: Start returned; the entry goes once a listing taken after
	// that shows the task (or its absence).
	done bool
}

// snapshotStarts copies the pending starts; a pass takes it before listing
// the engine's tasks.
func (m *Manager) snapshotStarts() map[string]pendingStart {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make(map[string]pendingStart, len(m.starting))
	for id, p := range m.starting {
		out[id] = p
	}
	return out
}

// forgetDoneStarts drops the starts that had returned when snap was taken:
// the listing taken after snap holds them.
func (m *Manager) forgetDoneStarts(snap map[string]pendingStart) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for id, p := range snap {
		if p.done {
			delete(m.starting, id)
		}
	}
}

// flights counts a pass's snapshot of starts not yet returned, by service
// and by service and set.
type flights struct {
	services map[string]int
	sets     map[string]int // service key + "/" + set key
}

func countFlights(snap map[string]pendingStart) flights {
	f := flights{services: map[string]int{}, sets: map[string]int{}}
	for _, p := range snap {
		if !p.done {
			f.services[p.service]++
			f.sets[p.service+"/"+p.set]++
		}
	}
	return f
}

// of is how many starts of a service, and of one of its sets, are in flight.
func (f flights) of(service, set string) (ofService, ofSet int) {
	return f.services[service], f.sets[service+"/"+set]
}

// Counts are a service's tasks as of the last pass, summed over its sets,
// and those being started.
type Counts struct{ Running, Healthy, Pending int }

// CountsOf returns the counts of each service in one look at the
// manager's state: a list of hundreds of services must not queue for its
// lock once per service behind a reconcile pass.
func (m *Manager) CountsOf(svcs []store.Service) []Counts {
	m.mu.Lock()
	defer m.mu.Unlock()
	pending := map[string]int{}
	for _, p := range m.starting {
		if !p.done {
			pending[p.service]++
		}
	}
	out := make([]Counts, len(svcs))
	for i, s := range svcs {
		k := key(s)
		for _, st := range m.setStatus[k] {
			out[i].Running += st.Running
			out[i].Healthy += st.Healthy
		}
		out[i].Pending = pending[k]
	}
	return out
}

// launch starts n tasks of set for service s in the background, under the
// manager's lifetime.
func (m *Manager) launch(rt task.Backend, s store.Service, ss *serviceState, set store.TaskSet, n int) {
	ctx := m.life
	for range n {
		id := task.NewTaskID()
		m.mu.Lock()
		m.starting[id] = pendingStart{service: key(s), set: set.Key()}
		m.mu.Unlock()
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			// No wake when it started, unless a deployment waits for it:
			// the next poll (every second while a service is short) lists
			// it; a wake per start made a pass per start, which at hundreds
			// of starts took a fifth of a core.
			select {
			case m.startSem <- struct{}{}:
			case <-ctx.Done():
				m.startDone(id)
				return
			}
			t, err := m.startTask(ctx, rt, s, set, id)
			<-m.startSem
			m.startDone(id)
			if err != nil {
				if ctx.Err() == nil {
					m.startFailed(ctx, s, ss, set, err)
					m.Wake()
				}
				return
			}
			m.event(ctx, s, "started 1 task (%s) of %s:%d", t.ID, set.Family, set.Revision)
			if m.healthWaiters.Load() > 0 {
				m.hurryPass(false) // a deployment waits: register the task with the load balancer now
			}
			// Followed at once: a task that writes and exits before the
			// next pass keeps its output too.
			m.logs.Follow(rt, t)
		}()
	}
}

func (m *Manager) startDone(id string) {
	m.mu.Lock()
	if p, ok := m.starting[id]; ok {
		p.done = true
		m.starting[id] = p
	}
	m.mu.Unlock()
}

// startFailed records a failed start against its service alone: an event
// (repeats collapse into one), the service's backoff, the set's failure
// count for the circuit breaker, and for a resource the machine ran out
// of, a warning naming it.
func (m *Manager) startFailed(ctx context.Context, s store.Service, ss *serviceState, set store.TaskSet, err error) {
	why := fmt.Sprintf("unable to start a task: %v", err)
	var ce *task.CapacityError
	if errors.As(err, &ce) {
		m.Log.Warn("a task cannot start: the machine is out of a resource; the service keeps the tasks it has",
			"resource", ce.Resource, "app", s.App, "env", s.Env, "service", s.Name, "err", err)
	}
	m.event(ctx, s, "%s", why)
	m.failed(ctx, s, ss, why)
	m.setFailedBecause(s, set, why)
}

// reserveMemory checks that a task of need MiB fits the machine beside the
// tasks running and starting, and counts it as starting if so. Checked and
// counted under one lock, so concurrent starts cannot together overshoot.
func (m *Manager) reserveMemory(ctx context.Context, rt task.Backend, id string, need int) error {
	if need <= 0 {
		return nil
	}
	if _, err := rt.MemoryMiB(ctx); err != nil {
		return nil // unknown: let the engine decide
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	reserved := 0
	for _, t := range m.lastTasks {
		if t.Runtime != rt.Key() && (t.Runtime != "" || rt.Key() != task.DockerKey) {
			continue // on another machine
		}
		if _, starting := m.starting[t.ID]; starting {
			continue // counted below
		}
		if at, stopping := m.stopping[t.ID]; stopping && !at.IsZero() {
			continue // stopped and removed
		}
		if t.Status() != "STOPPED" {
			reserved += t.ReservedMemoryMiB
		}
	}
	for other, p := range m.starting {
		if other != id {
			reserved += p.memMiB
		}
	}
	if err := rt.CheckMemory(ctx, need, reserved); err != nil {
		return err
	}
	if p, ok := m.starting[id]; ok {
		p.memMiB = need
		m.starting[id] = p
	}
	return nil
}

// engineReachable notes whether the engine answered a pass: its loss is
// one warning, not an error a second, and services keep their state
// meanwhile (nothing is stopped or counted as failed on its account).
func (m *Manager) engineReachable(err error) {
	m.mu.Lock()
	was := m.engineDown
	m.engineDown = err != nil
	m.mu.Unlock()
	switch {
	case err != nil && !was:
		m.Log.Warn("the Docker engine does not answer; services keep their tasks and state, and reconciling resumes when it answers", "err", err)
	case err == nil && was:
		m.Log.Info("the Docker engine answers again; reconciling resumes")
	}
}

// pruneNetworks removes environment networks no service uses any longer.
func (m *Manager) pruneNetworks(ctx context.Context) error {
	services, err := m.Store.ListServices(ctx, "", "")
	if err != nil {
		return err
	}
	m.mu.Lock()
	engineUsed := m.lastTasks != nil
	m.mu.Unlock()
	if !engineUsed {
		return nil // a server without services never needs the engine
	}
	used := map[string]bool{}
	for _, s := range services {
		used[s.App+"/"+s.Env] = true
	}
	rt, err := m.Runtime(ctx)
	if err != nil {
		return nil
	}
	pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	return rt.PruneNetworks(pctx, func(app, env string) bool { return used[app+"/"+env] })
}
