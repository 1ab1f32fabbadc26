package deploy

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"reflect"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/slipway-dev/slipway/internal/lb"
	"github.com/slipway-dev/slipway/internal/notify"
	"github.com/slipway-dev/slipway/internal/secret"
	"github.com/slipway-dev/slipway/internal/store"
	"github.com/slipway-dev/slipway/internal/task"
	"github.com/slipway-dev/slipway/internal/taskdef"
)

// Store is what the service manager needs from the state store.
type Store interface {
	store.RuntimeStore
	store.TaskLogStore
}

// DefaultLogRetention is how long task output is kept unless the manager
// says otherwise.
const DefaultLogRetention = 7 * 24 * time.Hour

// logRetentionEvery is how often output past its retention is deleted.
const logRetentionEvery = time.Hour

// logDrainWait bounds how long a stopping task's containers stay for the
// collector to read their last lines.
const logDrainWait = 5 * time.Second

// SecretResolver turns a container's secrets into values (nil: none allowed).
type SecretResolver func(ctx context.Context, app, env string, c taskdef.Container) (map[string]string, error)

// Manager reconciles every service towards its desired state.
type Manager struct {
	Store Store
	// Runtime is the local Docker engine; Environments the runtimes of
	// environments elsewhere (nil: every environment runs on Docker).
	Runtime      func(context.Context) (*task.Runtime, error)
	Environments EnvRuntimes
	Proxy        *Proxy
	Secrets      SecretResolver
	Log          *slog.Logger
	// Notifier tells the app's channels when a service turns unhealthy.
	Notifier *notify.Notifier
	// LogRetention is how long task output is kept (0: DefaultLogRetention).
	LogRetention time.Duration
	// StartConcurrency bounds the task starts in flight (0: DefaultStartConcurrency).
	StartConcurrency int
	// Edge is the shared listeners services claim hosts on; Certs serves
	// their certificates (nil: none).
	Edge  Edge
	Certs CertSource
	// claimMu holds a check of ports and hosts and the write that claims
	// them together, so two changes cannot both pass the check.
	claimMu sync.Mutex

	wake   chan struct{}
	passMu sync.Mutex // one reconcile pass at a time
	mu     sync.Mutex
	state  map[string]*serviceState
	// stopping holds the tasks being drained and stopped (zero time), and
	// for a minute those stopped (when): a pass that listed a task before
	// it was removed must not take it for a task that just stopped.
	stopping map[string]time.Time
	// setFailures counts failed launches per task set, and setCauses says
	// why the newest failed; setStatus holds each set's running and
	// healthy counts as of the last pass.
	setFailures map[string]int
	setCauses   map[string]string
	setStatus   map[string]map[string]SetStatus // service key → set key →
	// logs keeps the tasks' output in the store.
	logs   *task.Collector
	usage  map[string][]usageSample // each task's CPU time samples over its auto scaling window
	use    map[string]Utilization   // each service's CPU and memory as last measured
	lastLB *lb.Config
	// lastTasks is the newest listing of tasks from the engine; lbMu
	// serialises changes to the load balancer.
	lastTasks []task.Task
	listedAt  time.Time // when the listing of lastTasks began
	lbMu      sync.Mutex
	// unbound holds, under lbMu, the listeners the load balancer could not
	// bind, so each failure is one service event, not one a pass.
	unbound map[string]lb.ListenError
	// lostClaims are the host claims left out of the table, under lbMu, so
	// each is one event, not one a pass.
	lostClaims map[string]bool
	stop       context.CancelFunc
	wg         sync.WaitGroup
	// starting holds the tasks being started, by id (under mu); startSem
	// and stopSem bound the engine work in flight.
	starting   map[string]pendingStart
	startSem   chan struct{}
	stopSem    chan struct{}
	engineDown bool // the last pass found the engine not answering
	// watching: the engine's event stream is open, so passes poll less.
	watching atomic.Bool
	watched  map[string]watchedBackend // backends whose events are followed, by key (under mu)
	// backends are those of the newest pass by key, downRuntimes those
	// (or environments) that did not answer it (under mu).
	backends     map[string]task.Backend
	downRuntimes map[string]bool
	toldNoUsage  map[string]bool // services told their runtime measures no usage
	allSteady    atomic.Bool     // every service was steady at the last pass
	// healthWaiters counts deployments waiting for new tasks to pass the
	// load balancer's checks: while one waits, a task start wakes a pass,
	// which registers the task with the load balancer at once.
	healthWaiters atomic.Int32
	// urgent: a caller of Reconcile waits on the next pass, which then
	// does not wait out minPassGap (that spacing is for batching wakes).
	urgent atomic.Bool
	// soon: a task started while a deployment waits for new tasks; the
	// pass that registers it keeps only waitedPassGap from the last one.
	// hurry tells a pass waiting out its gap that urgent or soon was set.
	soon  atomic.Bool
	hurry chan struct{}
	// lbNow is the load balancer's state lbStateNow last asked for, at lbNowAt.
	lbNowMu sync.Mutex
	lbNow   lb.State
	lbNowAt time.Time
	// passStarted and passDone number the passes begun and ended, under
	// passMu2; passCond wakes the callers of Reconcile waiting for one.
	passMu2     sync.Mutex
	passCond    *sync.Cond
	passStarted uint64
	passDone    uint64
	passErr     error
	// life is the manager's own context: task starts run under it, not
	// under that of a caller who asked for a pass and may go away.
	life context.Context
}

// serviceState is what the reconciler remembers of a service between
// passes; mu guards it, since task starts that fail in the background
// count their failures into it.
type serviceState struct {
	mu          sync.Mutex
	failures    int
	lastFailure time.Time
	nextStart   time.Time
	steady      bool
	// alerted: a service.unhealthy notice went out during the current spell of failures.
	alerted bool
}

func key(s store.Service) string { return s.App + "/" + s.Env + "/" + s.Name }

// Names used in the load balancer's table.
func targetGroupName(s store.Service) string { return s.App + "." + s.Env + "." + s.Name }
func listenerName(s store.Service) string    { return s.App + "." + s.Env + "." + s.Name }
func testListenerName(s store.Service) string {
	return s.App + "." + s.Env + "." + s.Name + ".test"
}

// Start runs the reconciler until Close.
func (m *Manager) Start(ctx context.Context) {
	m.wake, m.hurry = make(chan struct{}, 1), make(chan struct{}, 1)
	m.state = map[string]*serviceState{}
	m.stopping = map[string]time.Time{}
	m.setFailures = map[string]int{}
	m.setStatus = map[string]map[string]SetStatus{}
	m.usage = map[string][]usageSample{}
	m.starting = map[string]pendingStart{}
	n := m.StartConcurrency
	if n <= 0 {
		n = DefaultStartConcurrency
	}
	m.startSem, m.stopSem = make(chan struct{}, n), make(chan struct{}, stopConcurrency)
	m.passCond = sync.NewCond(&m.passMu2)
	ctx, m.stop = context.WithCancel(ctx)
	m.life = ctx
	m.logs = &task.Collector{Sink: logSink{m.Store}, Log: m.Log, Mask: func(ctx context.Context, t task.Task) *strings.Replacer {
		return m.secretMasker(ctx, t.App, t.Env, t.Family, t.Revision)
	}}
	m.logs.Start(context.WithoutCancel(ctx))
	if m.Proxy != nil {
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			if info, stale := m.Proxy.StaleBuild(ctx); stale {
				m.Log.Warn("the load balancer runs another slipway build than this server and keeps serving with it; restart it at a quiet moment to upgrade it",
					"pid", info.PID, "restart", fmt.Sprintf("kill %d (this server starts the new build within a second; new connections are refused meanwhile)", info.PID))
			}
		}()
	}
	m.reconcileLoop(ctx)
	m.every(ctx, autoscaleEvery, nil, "auto scaling", m.autoscale)
	m.every(ctx, logRetentionEvery, nil, "task log retention", m.expireTaskLogs)
	m.every(ctx, time.Minute, nil, "prune task networks", m.pruneNetworks)
}

// every runs step now and then each interval, or sooner when wake fires
// (nil: never), until ctx ends; Close waits for it.
func (m *Manager) every(ctx context.Context, interval time.Duration, wake <-chan struct{}, what string, step func(context.Context) error) {
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			if err := step(ctx); err != nil && ctx.Err() == nil {
				m.Log.Error(what, "err", err)
			}
			select {
			case <-ctx.Done():
				return
			case <-wake:
			case <-t.C:
			}
		}
	}()
}

// Passes run on a wake (a change through the API, a task start ending, an
// engine event) and else every pollEvery; every second while the engine's
// event stream is not open, since then nothing else says that a task died.
const (
	pollEvery          = 5 * time.Second
	pollEveryUnwatched = time.Second
)

// minPassGap spaces passes that wakes ask for: a pass lists every task,
// and during a mass start every task's start wakes it; waiting a moment
// lets one pass serve many wakes and the deployments waiting on them.
const minPassGap = 250 * time.Millisecond

// waitedPassGap replaces minPassGap for the pass after a task start that a
// deployment waits for: the task is registered with the load balancer
// within this rather than a quarter second.
const waitedPassGap = 50 * time.Millisecond

// reconcileLoop runs the reconcile passes until ctx ends.
func (m *Manager) reconcileLoop(ctx context.Context) {
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		for {
			began := time.Now()
			m.runPass(ctx)
			// Health the load balancer sees raises no engine event: while a
			// service is short of healthy tasks, look every second.
			wait := pollEveryUnwatched
			if m.watching.Load() && m.allSteady.Load() {
				wait = pollEvery
			}
			select {
			case <-ctx.Done():
				return
			case <-m.wake:
				if !m.waitGap(ctx, began) {
					return
				}
			case <-time.After(wait):
			}
		}
	}()
}

// waitGap waits until the next pass may begin after one that began at
// began: minPassGap later, waitedPassGap for a start a deployment waits
// for, at once for a caller of Reconcile; hurry shortens a wait under way.
// It is false when ctx ended.
func (m *Manager) waitGap(ctx context.Context, began time.Time) bool {
	for {
		gap := minPassGap
		if m.soon.Load() {
			gap = waitedPassGap
		}
		if m.urgent.Load() {
			gap = 0
		}
		wait := time.Until(began.Add(gap))
		if wait <= 0 {
			break
		}
		select {
		case <-ctx.Done():
			return false
		case <-m.hurry:
			continue
		case <-time.After(wait):
		}
		break
	}
	// The pass about to begin serves them.
	m.urgent.Store(false)
	m.soon.Store(false)
	return true
}

// hurryPass wakes a pass that should not wait out minPassGap: urgent for
// a caller of Reconcile, else soon.
func (m *Manager) hurryPass(urgent bool) {
	if urgent {
		m.urgent.Store(true)
	} else {
		m.soon.Store(true)
	}
	select {
	case m.hurry <- struct{}{}:
	default:
	}
	m.Wake()
}

// runPass makes one pass and tells those waiting for it how it went.
func (m *Manager) runPass(ctx context.Context) {
	m.passMu2.Lock()
	m.passStarted++
	gen := m.passStarted
	m.passMu2.Unlock()
	err := m.pass(ctx)
	if err != nil && ctx.Err() == nil {
		m.Log.Error("reconcile services", "err", err)
	}
	m.passMu2.Lock()
	m.passDone, m.passErr = gen, err
	m.passCond.Broadcast()
	m.passMu2.Unlock()
}

// Reconcile returns once a pass that began after the call has ended (its
// error, if any): deployments call it to have a layout change applied to
// the load balancer before they announce it. Callers at the same moment
// share one pass. Without a running loop (tests), it makes the pass itself.
func (m *Manager) Reconcile(ctx context.Context) error {
	if m.wake == nil || m.life == nil || m.life.Err() != nil {
		return m.pass(ctx)
	}
	m.passMu2.Lock()
	want := m.passStarted + 1
	m.passMu2.Unlock()
	m.hurryPass(true)
	broadcast := func() {
		m.passMu2.Lock()
		m.passCond.Broadcast()
		m.passMu2.Unlock()
	}
	defer context.AfterFunc(ctx, broadcast)()
	defer context.AfterFunc(m.life, broadcast)()
	m.passMu2.Lock()
	defer m.passMu2.Unlock()
	for m.passDone < want && ctx.Err() == nil && m.life.Err() == nil {
		m.passCond.Wait()
	}
	if err := cmp.Or(ctx.Err(), m.life.Err()); err != nil {
		return err
	}
	return m.passErr
}

// watchedBackend is a backend whose events are followed, and how to stop.
type watchedBackend struct {
	b      task.Backend
	cancel context.CancelFunc
}

// watch follows the events of the backends of a pass: each one's from its
// first use until it is no longer used, or is replaced under its key (an
// environment's runtime configured anew). Only the local engine's stream
// sets the poll rate: it is the one every server has.
func (m *Manager) watch(backends map[string]task.Backend) {
	if m.life == nil {
		return // no loop (tests): nothing to wake
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.watched == nil {
		m.watched = map[string]watchedBackend{}
	}
	for k, w := range m.watched {
		if b, ok := backends[k]; !ok || b != w.b {
			w.cancel()
			delete(m.watched, k)
		}
	}
	for k, b := range backends {
		if _, ok := m.watched[k]; ok {
			continue
		}
		ctx, cancel := context.WithCancel(m.life)
		m.watched[k] = watchedBackend{b, cancel}
		up := func(bool) {}
		if k == task.DockerKey {
			up = m.watching.Store
		}
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			b.Watch(ctx, m.Wake, up)
		}()
	}
}

// Close stops the reconciler; tasks and the load balancer keep running.
func (m *Manager) Close() {
	if m.stop != nil {
		m.stop()
		m.wg.Wait()
		m.logs.Close()
	}
}

// Wake asks for a reconcile now.
func (m *Manager) Wake() {
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

func (m *Manager) event(ctx context.Context, s store.Service, format string, args ...any) {
	msg := fmt.Sprintf("(service %s) ", s.Name) + fmt.Sprintf(format, args...)
	if err := m.Store.AddServiceEvent(ctx, s.App, s.Env, s.Name, msg); err != nil {
		m.Log.Error("record service event", "err", err)
	}
	m.Log.Info("service event", "app", s.App, "env", s.Env, "message", msg)
}

// Event records a service event in the reconciler's words, for changes
// made through the API.
func (m *Manager) Event(ctx context.Context, s store.Service, format string, args ...any) {
	m.event(ctx, s, format, args...)
}

// pass makes one pass over all services.
func (m *Manager) pass(ctx context.Context) error {
	m.passMu.Lock()
	defer m.passMu.Unlock()
	services, err := m.Store.ListServices(ctx, "", "")
	if err != nil {
		return err
	}
	if len(services) == 0 && m.lastLB == nil {
		return nil // nothing to run: do not require Docker or the proxy
	}
	// Taken before the listing: a start that returns in between is then
	// either still pending here or in the listing, never neither.
	snap := m.snapshotStarts()
	listedAt := time.Now()
	listed, ok, err := m.listAll(ctx, services)
	if err != nil || !ok {
		return err
	}
	all := listed.all
	m.forgetDoneStarts(snap)
	m.mu.Lock()
	m.lastTasks, m.listedAt = all, listedAt
	m.mu.Unlock()
	// Before any task of this listing is stopped and removed, so its last
	// lines are read first.
	m.logs.Sync(m.backendOf, all)
	var lbState lb.State
	needLB := false
	for _, s := range services {
		needLB = needLB || s.LoadBalancer != nil
	}
	if needLB {
		if lbState, err = m.Proxy.State(ctx, 10*time.Second); err != nil {
			return err
		}
	}
	byService := map[string][]task.Task{}
	for _, t := range all {
		k := t.App + "/" + t.Env + "/" + t.Service
		byService[k] = append(byService[k], t)
	}
	failures := m.failuresOf(ctx, all, snap)
	flights := countFlights(snap)
	known := map[string]bool{}
	allSteady := true
	for _, s := range services {
		known[key(s)] = true
		rt := listed.of[key(s)]
		if rt == nil {
			continue // its runtime did not answer: left as it was
		}
		if err := m.reconcileService(ctx, rt, s, m.onRuntime(ctx, s, rt, byService[key(s)]), lbState, snap, flights, failures); err != nil {
			m.Log.Error("reconcile service", "service", key(s), "err", err)
		}
		m.mu.Lock()
		ss := m.state[key(s)]
		m.mu.Unlock()
		ss.mu.Lock()
		allSteady = allSteady && ss.steady
		ss.mu.Unlock()
	}
	m.allSteady.Store(allSteady)
	m.mu.Lock()
	for k := range m.setStatus {
		if !known[k] {
			delete(m.setStatus, k) // of a deleted service
		}
	}
	m.mu.Unlock()
	// Tasks of deleted services are drained and stopped.
	for k, ts := range byService {
		if !known[k] {
			for _, t := range ts {
				if p, ok := snap[t.ID]; ok && !p.done {
					continue // stopped once its start returns
				}
				if rt := m.backendOf(t); rt != nil {
					m.stopTask(ctx, rt, store.Service{App: t.App, Env: t.Env, Name: t.Service}, t, 0, "service deleted")
				}
			}
		}
	}
	return m.applyLB(ctx, all)
}

// ApplyRoutes sends the load balancer the routing that the stored layouts
// imply, over the newest listing of tasks: a traffic shift then waits
// neither for a reconcile pass in progress nor for the engine.
func (m *Manager) ApplyRoutes(ctx context.Context) error {
	m.mu.Lock()
	listed := m.lastTasks != nil
	m.mu.Unlock()
	if !listed {
		if err := m.Reconcile(ctx); err != nil {
			return err
		}
	}
	// Also when no service needs it: an ACME challenge for the control
	// plane's own host must be answered by a load balancer all the same.
	return m.applyLB(ctx, nil)
}

// groupOf treats tasks from before target groups existed as the default group.
func groupOf(t task.Task) string {
	if t.Group == "" {
		return store.DefaultGroup
	}
	return t.Group
}

// inSet tells whether task t is one of set's.
func inSet(t task.Task, set store.TaskSet) bool {
	return groupOf(t) == set.Group && t.Family == set.Family && t.Revision == set.Revision && t.Generation == set.Generation
}

// TargetGroupName is the load balancer's name of a service's target group
// (tg1 or tg2), under which its state and request counts are reported.
func TargetGroupName(s store.Service, group string) string { return targetGroupName(s) + "." + group }

// healthy reports whether a task counts as healthy: passing the load
// balancer's checks when the service has one, its container checks otherwise.
func (m *Manager) healthy(s store.Service, t task.Task, st lb.State) bool {
	if t.Status() != "RUNNING" || t.Health() == "UNHEALTHY" {
		return false
	}
	if s.LoadBalancer == nil {
		return t.Health() != "UNKNOWN" || !t.HasHealthCheck()
	}
	return TargetHealth(st, s, t) == lb.StateHealthy
}

// TargetHealth is the load balancer's view of task t of service s: its
// target's state in the task's target group (initial, healthy, unhealthy
// or draining), "" when the task is no target there.
func TargetHealth(st lb.State, s store.Service, t task.Task) string {
	if s.LoadBalancer == nil {
		return ""
	}
	ep := t.Endpoint(s.LoadBalancer.ContainerName, s.LoadBalancer.ContainerPort)
	for _, ts := range st.TargetGroups[TargetGroupName(s, groupOf(t))].Targets {
		if ts.Addr == ep {
			return ts.State
		}
	}
	return ""
}

// SetFailures counts failed launches of one task set (the circuit breaker
// reads it). Sets are told apart by generation too, so the crashes of the
// tasks a forced new deployment replaces never count against their successors.
func (m *Manager) SetFailures(s store.Service, set store.TaskSet) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.setFailures[key(s)+"/"+set.Key()]
}

func (m *Manager) setFailed(s store.Service, set store.TaskSet) {
	m.setFailedBecause(s, set, "")
}

// setFailedBecause counts a failed launch of set and, when why is said,
// keeps it as the set's newest failure.
func (m *Manager) setFailedBecause(s store.Service, set store.TaskSet, why string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	k := key(s) + "/" + set.Key()
	m.setFailures[k]++
	if why != "" {
		if m.setCauses == nil {
			m.setCauses = map[string]string{}
		}
		m.setCauses[k] = why
	}
}

// SetFailureCause says why the newest failed launch of a task set failed
// ("" when none did, or it was not told): what a deployment's reason quotes.
func (m *Manager) SetFailureCause(s store.Service, set store.TaskSet) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.setCauses[key(s)+"/"+set.Key()]
}

// setOf is the task set t was started for.
func setOf(t task.Task) store.TaskSet {
	return store.TaskSet{Group: groupOf(t), Family: t.Family, Revision: t.Revision, Generation: t.Generation}
}

// SetStatus is how many tasks of a set run and pass health checks.
type SetStatus struct {
	Running, Healthy int
}

// Status reports each task set of a service, as of the last reconcile.
func (m *Manager) Status(s store.Service) map[string]SetStatus {
	m.mu.Lock()
	defer m.mu.Unlock()
	return maps.Clone(m.setStatus[key(s)])
}

// HealthyNow counts the tasks of set, in the newest listing, that the load
// balancer finds healthy now: a deployment waiting for a new set learns
// within one of the load balancer's checks (not at the next pass) that a
// pass would find it healthy, and asks for one.
func (m *Manager) HealthyNow(ctx context.Context, s store.Service, set store.TaskSet) (int, error) {
	if s.LoadBalancer == nil {
		return 0, nil
	}
	m.mu.Lock()
	var listed []task.Task
	for _, t := range m.lastTasks {
		if t.App == s.App && t.Env == s.Env && t.Service == s.Name && inSet(t, set) {
			listed = append(listed, t)
		}
	}
	m.mu.Unlock()
	if len(listed) < set.Desired {
		return 0, nil // not all listed, so not all registered with the load balancer yet
	}
	st, err := m.lbStateNow(ctx)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, t := range listed {
		if !m.isStopping(t.ID) && m.healthy(s, t, st) {
			n++
		}
	}
	return n, nil
}

// lbStateNow is the load balancer's state, as asked at most lbStateAge
// ago: deployments waiting at once (25 in the scale bench) poll every
// 50 ms, and one answer lists every target of every service.
func (m *Manager) lbStateNow(ctx context.Context) (lb.State, error) {
	m.lbNowMu.Lock()
	defer m.lbNowMu.Unlock()
	if time.Since(m.lbNowAt) < lbStateAge {
		return m.lbNow, nil
	}
	st, err := m.Proxy.Client().State(ctx, 0)
	if err != nil {
		return st, err
	}
	m.lbNow, m.lbNowAt = st, time.Now()
	return st, nil
}

// lbStateAge is how old a state lbStateNow may answer with: below the
// load balancer's 50 ms between checks of a starting target.
const lbStateAge = 25 * time.Millisecond

// WaitingForHealth tells the manager that a deployment waits for new tasks
// to pass health checks until done is called.
func (m *Manager) WaitingForHealth() (done func()) {
	m.healthWaiters.Add(1)
	return func() { m.healthWaiters.Add(-1) }
}

func (m *Manager) reconcileService(ctx context.Context, rt task.Backend, s store.Service, tasks []task.Task, st lb.State, snap map[string]pendingStart, flights flights, failures map[string]*task.Failure) error {
	m.mu.Lock()
	ss := m.state[key(s)]
	if ss == nil {
		ss = &serviceState{}
		m.state[key(s)] = ss
	}
	m.mu.Unlock()
	layout := s.EffectiveLayout()
	bySet := make([][]task.Task, len(layout.Sets))
	strays := 0
	for _, t := range tasks {
		if m.isStopping(t.ID) {
			continue
		}
		m.forgetStopped(t.ID)
		if p, ok := snap[t.ID]; ok && !p.done {
			continue // being started: counted as pending below
		}
		if t.Status() == "STOPPED" {
			f := failures[t.ID]
			headline := t.StoppedReason()
			if f != nil {
				headline = f.Headline()
			}
			// The headline stands alone on the event's first line; the
			// output follows on the next.
			m.event(ctx, s, "task %s stopped: %s%s", t.ID, headline, outputLine(f))
			why := fmt.Sprintf("task %s stopped: %s%s", t.ID, headline, lastOutput(f))
			m.failed(ctx, s, ss, why)
			m.setFailedBecause(s, setOf(t), why)
			m.stopTask(ctx, rt, s, t, 0, "stopped")
			continue
		}
		if t.Status() == "PROVISIONING" {
			// Tasks being started are left out above: one still being
			// provisioned here was left half-started by a control plane that
			// stopped. It would hold its set's place without ever serving.
			// Not the revision's fault, so no failure is counted.
			m.event(ctx, s, "task %s was left half-started by a stopped control plane; replacing it", t.ID)
			m.stopTask(ctx, rt, s, t, 0, "half-started")
			continue
		}
		if t.Health() == "UNHEALTHY" {
			f := failures[t.ID]
			check := ""
			if f != nil && f.Health != "" {
				check = fmt.Sprintf(" (container %s: %s)", f.Container, f.Health)
			}
			m.event(ctx, s, "task %s failed its container health check%s; replacing it%s", t.ID, check, outputLine(f))
			why := fmt.Sprintf("task %s failed its container health check%s%s", t.ID, check, lastOutput(f))
			m.failed(ctx, s, ss, why)
			m.setFailedBecause(s, setOf(t), why)
			m.stopTask(ctx, rt, s, t, m.drainDelay(s), "unhealthy")
			continue
		}
		matched := false
		for i, set := range layout.Sets {
			if inSet(t, set) {
				bySet[i] = append(bySet[i], t)
				matched = true
				break
			}
		}
		if !matched {
			strays++
			m.event(ctx, s, "draining task %s of %s:%d", t.ID, t.Family, t.Revision)
			m.stopTask(ctx, rt, s, t, m.drainDelay(s), "replaced")
		}
	}
	steady := strays == 0
	status := map[string]SetStatus{}
	for i, set := range layout.Sets {
		running := bySet[i]
		healthy := 0
		serving := map[string]bool{}
		for _, t := range running {
			if m.healthy(s, t, st) {
				healthy++
				serving[t.ID] = true
			}
		}
		ofService, ofSet := flights.of(key(s), set.Key())
		ss.mu.Lock()
		due := time.Now().After(ss.nextStart)
		ss.mu.Unlock()
		if short := set.Desired - len(running) - ofSet; short > 0 && due {
			m.launch(rt, s, ss, set, min(short, perServiceStarts-ofService))
		}
		if ofSet > 0 {
			steady = false
		}
		if extra := len(running) - set.Desired; extra > 0 {
			// Tasks that serve stay longest: the ones not (yet) passing
			// health checks go first, then the newest.
			sort.SliceStable(running, func(i, j int) bool {
				if si, sj := serving[running[i].ID], serving[running[j].ID]; si != sj {
					return sj
				}
				return running[i].CreatedAt.After(running[j].CreatedAt)
			})
			for _, t := range running[:extra] {
				if serving[t.ID] {
					healthy--
				}
				m.event(ctx, s, "draining task %s (scaling in to %d)", t.ID, set.Desired)
				m.stopTask(ctx, rt, s, t, m.drainDelay(s), "scaled in")
			}
			running = running[extra:]
		}
		status[set.Key()] = SetStatus{Running: len(running), Healthy: healthy}
		steady = steady && len(running) == set.Desired && healthy == set.Desired
	}
	m.mu.Lock()
	m.setStatus[key(s)] = status
	m.mu.Unlock()
	ss.mu.Lock()
	reached := steady && !ss.steady
	// A crash loop looks steady for a moment after each start: failures are
	// forgotten only after a quiet spell, so the backoff keeps growing.
	if steady && time.Since(ss.lastFailure) > 30*time.Second {
		ss.failures = 0
		ss.alerted = false // the next failure is news again
	}
	ss.steady = steady
	ss.mu.Unlock()
	if reached {
		m.event(ctx, s, "has reached a steady state")
	}
	return nil
}

// failuresOf reads from the engine, several at a time, why each task of
// the listing that stopped or failed its health check did, its secrets
// masked (no entry when the engine cannot tell). Read one by one, losing
// every task of a machine made a pass take a second per ten tasks.
func (m *Manager) failuresOf(ctx context.Context, all []task.Task, snap map[string]pendingStart) map[string]*task.Failure {
	var mu sync.Mutex
	out := map[string]*task.Failure{}
	maskers := map[string]*strings.Replacer{}
	masker := func(t task.Task) *strings.Replacer {
		k := fmt.Sprintf("%s/%s/%s:%d", t.App, t.Env, t.Family, t.Revision)
		mu.Lock()
		r, ok := maskers[k]
		mu.Unlock()
		if !ok {
			r = m.secretMasker(ctx, t.App, t.Env, t.Family, t.Revision)
			mu.Lock()
			maskers[k] = r
			mu.Unlock()
		}
		return r
	}
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	for _, t := range all {
		if p, ok := snap[t.ID]; (ok && !p.done) || m.isStopping(t.ID) || (t.Status() != "STOPPED" && t.Health() != "UNHEALTHY") {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			rt := m.backendOf(t)
			if rt == nil {
				return
			}
			if f := rt.Failure(ctx, t); f != nil {
				f.Mask(masker(t))
				mu.Lock()
				out[t.ID] = f
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return out
}

// outputLine is a failure's last output as a service event's second line.
func outputLine(f *task.Failure) string {
	if f == nil || len(f.Output) == 0 {
		return ""
	}
	return "\nlast output: " + f.OutputText()
}

// lastOutput is a failure's last output, to end a one-line reason.
func lastOutput(f *task.Failure) string {
	if f == nil || len(f.Output) == 0 {
		return ""
	}
	return "; last output: " + f.OutputText()
}

// secretMasker masks the secrets a revision's containers get in app's
// environment (nil: none). A secret that no longer resolves cannot be
// masked, and is left out.
func (m *Manager) secretMasker(ctx context.Context, app, env, family string, revision int) *strings.Replacer {
	if m.Secrets == nil {
		return nil
	}
	def, err := m.revision(ctx, family, revision)
	if err != nil {
		return nil
	}
	var values []string
	for _, c := range def.ContainerDefinitions {
		if len(c.Secrets) == 0 {
			continue
		}
		vals, err := m.Secrets(ctx, app, env, c)
		if err != nil {
			m.Log.Warn("secrets of a task's output cannot be masked", "app", app, "env", env, "container", c.Name, "err", err)
			continue
		}
		for _, v := range vals {
			values = append(values, v)
		}
	}
	return secret.Masker(values)
}

// FlushTaskLogs returns once the output read from tasks so far is in the store.
func (m *Manager) FlushTaskLogs(ctx context.Context) error { return m.logs.Flush(ctx) }

// TaskLogsAppended returns a channel closed the next time task output is
// stored (nil, never closed, when the manager does not collect it).
func (m *Manager) TaskLogsAppended() <-chan struct{} { return m.logs.Appended() }

// expireTaskLogs deletes task output older than the retention.
func (m *Manager) expireTaskLogs(ctx context.Context) error {
	keep := m.LogRetention
	if keep <= 0 {
		keep = DefaultLogRetention
	}
	n, err := m.Store.DeleteTaskLogsBefore(ctx, time.Now().Add(-keep))
	if n > 0 {
		m.Log.Info("task log retention", "deleted_lines", n, "older_than", keep.String())
	}
	return err
}

// logSink keeps collected task output in the store.
type logSink struct{ store store.TaskLogStore }

func (s logSink) AppendLogs(ctx context.Context, lines []task.LogLine) error {
	rows := make([]store.TaskLogLine, len(lines))
	for i, l := range lines {
		rows[i] = store.TaskLogLine{App: l.App, Env: l.Env, Service: l.Service, Task: l.Task, Container: l.Container,
			Group: l.Group, Stream: l.Stream, Source: l.Source, At: l.At, Line: l.Text}
	}
	return s.store.AppendTaskLogs(ctx, rows)
}

func (s logSink) LastLogAt(ctx context.Context, taskID, container string) (time.Time, error) {
	return s.store.LastTaskLogAt(ctx, taskID, container)
}

// revision reads and parses a stored task definition revision.
func (m *Manager) revision(ctx context.Context, family string, revision int) (*taskdef.TaskDef, error) {
	rev, err := m.Store.GetTaskDef(ctx, family, revision)
	if err != nil {
		return nil, err
	}
	def, _, err := taskdef.Parse(rev.Body)
	if err != nil {
		return nil, fmt.Errorf("task definition %s:%d no longer parses: %w", family, revision, err)
	}
	return def, nil
}

func (m *Manager) startTask(ctx context.Context, rt task.Backend, s store.Service, set store.TaskSet, id string) (task.Task, error) {
	def, err := m.revision(ctx, set.Family, set.Revision)
	if err != nil {
		return task.Task{}, err
	}
	if err := m.reserveMemory(ctx, rt, id, def.ReservedMemoryMiB()); err != nil {
		return task.Task{}, err
	}
	spec := task.Spec{ID: id, App: s.App, Env: s.Env, Service: s.Name, Group: set.Group, Family: set.Family, Revision: set.Revision, Generation: set.Generation, Def: def, Secrets: map[string]map[string]string{}}
	for _, c := range def.ContainerDefinitions {
		if len(c.Secrets) == 0 {
			continue
		}
		if m.Secrets == nil {
			return task.Task{}, fmt.Errorf("container %s uses secrets and this server has no secret store", c.Name)
		}
		vals, err := m.Secrets(ctx, s.App, s.Env, c)
		if err != nil {
			return task.Task{}, err
		}
		spec.Secrets[c.Name] = vals
	}
	return rt.Start(ctx, spec)
}

// CreateService records a new service once every secret its revision names
// resolves, and reconciles it at once.
func (m *Manager) CreateService(ctx context.Context, svc store.Service) (store.Service, error) {
	if err := m.CheckSecrets(ctx, svc.App, svc.Env, svc.Family, svc.Revision); err != nil {
		return svc, err
	}
	if err := m.CheckCapacity(ctx, svc.App, svc.Env, svc.Family, svc.Revision); err != nil {
		return svc, err
	}
	if err := m.CheckRuntime(ctx, svc.App, svc.Env, svc.Family, svc.Revision); err != nil {
		return svc, err
	}
	err := m.ClaimAndSave(ctx, svc, func(ctx context.Context) error {
		var err error
		svc, err = m.Store.CreateService(ctx, svc)
		return err
	})
	if err == nil {
		m.Wake()
	}
	return svc, err
}

// ListenerError is a listener port that another service or another
// program holds.
type ListenerError struct {
	Field  string // load_balancer.listener_port or load_balancer.test_listener_port
	Detail string // what is wrong with the port, after the field
}

func (e *ListenerError) Error() string { return e.Field + ": " + e.Detail }

// CheckListeners refuses listener ports of svc that another service
// already listens on, or that another program on this machine holds (the
// load balancer could not bind them, and one listener it cannot bind holds
// back the routing table of every service). Ports svc listens on already
// are its own.
func (m *Manager) CheckListeners(ctx context.Context, svc store.Service) error {
	l := svc.LoadBalancer
	if l == nil {
		return nil
	}
	services, err := m.Store.ListServices(ctx, "", "")
	if err != nil {
		return err
	}
	if err := m.checkEdge(svc, services); err != nil {
		return err
	}
	ports := []struct {
		field string
		port  int
	}{{"load_balancer.listener_port", l.ListenerPort}, {"load_balancer.test_listener_port", l.TestListenerPort}}
	own := map[int]bool{}
	for _, o := range services {
		if o.LoadBalancer == nil {
			continue
		}
		if o.App == svc.App && o.Env == svc.Env && o.Name == svc.Name {
			own[o.LoadBalancer.ListenerPort], own[o.LoadBalancer.TestListenerPort] = true, true
			continue
		}
		for _, theirs := range []int{o.LoadBalancer.ListenerPort, o.LoadBalancer.TestListenerPort} {
			for _, p := range ports {
				if theirs != 0 && theirs == p.port {
					return &ListenerError{Field: p.field, Detail: fmt.Sprintf("port %d is already the listener of service %s in %s/%s", p.port, o.Name, o.App, o.Env)}
				}
			}
		}
	}
	for _, p := range ports {
		if p.port == 0 || own[p.port] {
			continue
		}
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p.port))
		if err != nil {
			return &ListenerError{Field: p.field, Detail: fmt.Sprintf("127.0.0.1:%d is in use by another program (%v); choose a free port", p.port, errors.Unwrap(err))}
		}
		ln.Close()
	}
	return nil
}

// CheckSecrets resolves every secret a task definition revision names in
// the app's environment, so a missing one fails a deployment before any
// task starts, naming the secret.
func (m *Manager) CheckSecrets(ctx context.Context, app, env, family string, revision int) error {
	def, err := m.revision(ctx, family, revision)
	if err != nil {
		return err
	}
	for _, c := range def.ContainerDefinitions {
		if len(c.Secrets) == 0 {
			continue
		}
		if m.Secrets == nil {
			return fmt.Errorf("container %s uses secrets and this server has no secret store", c.Name)
		}
		if _, err := m.Secrets(ctx, app, env, c); err != nil {
			return fmt.Errorf("%s:%d: %w", family, revision, err)
		}
	}
	return nil
}

// FieldError is a request refused for the value of one field.
type FieldError struct {
	Field, Detail string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Detail }

// CheckCapacity refuses a revision one task of which reserves more memory
// than the engine's machine has: no task of it could ever start, and the
// deployment would only churn.
func (m *Manager) CheckCapacity(ctx context.Context, app, env, family string, revision int) error {
	def, err := m.revision(ctx, family, revision)
	if err != nil {
		return err
	}
	need := def.ReservedMemoryMiB()
	if need == 0 || m.Runtime == nil {
		return nil
	}
	rt, err := m.RuntimeOf(ctx, app, env)
	if err != nil {
		return nil // no engine yet: the start says so
	}
	total, err := rt.MemoryMiB(ctx)
	if err != nil || total == 0 || need <= total {
		return nil
	}
	return &FieldError{Field: "task_definition", Detail: fmt.Sprintf("%s:%d reserves %d MiB of memory per task and the machine has %d MiB; lower the containers' memory or memoryReservation (or the task-level memory)", family, revision, need, total)}
}

func (m *Manager) failed(ctx context.Context, s store.Service, ss *serviceState, why string) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if !ss.alerted {
		ss.alerted = true
		m.Notifier.Notify(ctx, notify.Event{Kind: notify.ServiceUnhealthy, App: s.App, Path: "/services/" + s.App + "/" + s.Env + "/" + s.Name,
			Title:  fmt.Sprintf("%s: service %s in %s is unhealthy", s.App, s.Name, s.Env),
			Text:   why,
			Fields: map[string]string{"environment": s.Env, "service": s.Name, "revision": fmt.Sprintf("%s:%d", s.Family, s.Revision)}})
	}
	ss.failures++
	ss.lastFailure = time.Now()
	backoff := time.Duration(1<<min(ss.failures-1, 6)) * time.Second // 1s, 2s, … 64s
	if backoff > time.Minute {
		backoff = time.Minute
	}
	ss.nextStart = time.Now().Add(backoff)
	ss.steady = false
}

func (m *Manager) drainDelay(s store.Service) time.Duration {
	if s.LoadBalancer == nil {
		return 0
	}
	d, err := time.ParseDuration(s.LoadBalancer.DeregistrationDelay)
	if err != nil {
		return 5 * time.Second
	}
	return d
}

func (m *Manager) isStopping(id string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	at, ok := m.stopping[id]
	// Removed before the newest listing began, and listed all the same: the
	// engine finished a create that a killed control plane had asked for
	// after the removal. It is a task to handle again, not a stale entry.
	return ok && (at.IsZero() || !m.listedAt.After(at))
}

// forgetStopped drops a stopped task's entry once a listing shows it
// again, so that stopping it again is not taken for a repeat.
func (m *Manager) forgetStopped(id string) {
	m.mu.Lock()
	if at, ok := m.stopping[id]; ok && !at.IsZero() {
		delete(m.stopping, id)
	}
	m.mu.Unlock()
}

// stopTask takes the task out of the load balancer at once, lets its
// in-flight requests finish for up to delay, then stops it.
func (m *Manager) stopTask(ctx context.Context, rt task.Backend, s store.Service, t task.Task, delay time.Duration, why string) {
	m.mu.Lock()
	if _, ok := m.stopping[t.ID]; ok {
		m.mu.Unlock()
		return
	}
	m.stopping[t.ID] = time.Time{}
	m.mu.Unlock()
	go func() {
		ctx := context.WithoutCancel(ctx)
		if delay > 0 {
			m.Wake() // the next pass removes it from the target group
			deadline := time.Now().Add(delay)
			for time.Now().Before(deadline) {
				time.Sleep(100 * time.Millisecond)
				if st, err := m.Proxy.Client().State(ctx, time.Second); err == nil && TargetHealth(st, s, t) == "" {
					break
				}
			}
		}
		// Stopped first and removed once its last lines are read.
		m.stopSem <- struct{}{}
		err := rt.HaltTask(ctx, t)
		<-m.stopSem
		if err == nil {
			m.logs.Wait(t.ID, logDrainWait)
			m.stopSem <- struct{}{}
			err = rt.RemoveTask(ctx, t)
			<-m.stopSem
		}
		if err != nil {
			m.Log.Error("stop task", "task", t.ID, "err", err)
		} else if why != "stopped" {
			m.event(ctx, s, "stopped task %s (%s)", t.ID, why)
		}
		m.mu.Lock()
		now := time.Now()
		for id, at := range m.stopping {
			if !at.IsZero() && now.Sub(at) > time.Minute {
				delete(m.stopping, id)
			}
		}
		if err != nil {
			delete(m.stopping, t.ID) // still there: the next pass tries again
		} else {
			m.stopping[t.ID] = now
		}
		m.mu.Unlock()
		m.Wake()
	}()
}

// applyLB sends the routing table the services' layouts imply, when it
// changed. all is this pass's listing of tasks, nil for the newest one (no
// second engine round trip; a task started during the pass joins at the
// next one, which it wakes). Layouts are read here, under lbMu, so that of
// two changes the one applied last is never the older.
func (m *Manager) applyLB(ctx context.Context, all []task.Task) error {
	m.lbMu.Lock()
	defer m.lbMu.Unlock()
	if all == nil {
		m.mu.Lock()
		all = m.lastTasks
		m.mu.Unlock()
	}
	// Read the services again rather than take the pass's list: a deployment
	// may have moved a layout while the pass talked to the engine, and the
	// routes must follow the stored layout, not a stale one.
	services, err := m.Store.ListServices(ctx, "", "")
	if err != nil {
		return err
	}
	cfg := lb.Config{Listeners: map[string]lb.Listener{}, TargetGroups: map[string]lb.TargetGroup{}}
	owner := map[string]store.Service{} // listener name → its service
	edge := edgeRules{edge: m.Edge}
	byService := map[string][]task.Task{}
	for _, t := range all {
		k := t.App + "/" + t.Env + "/" + t.Service
		byService[k] = append(byService[k], t)
	}
	for _, s := range services {
		l := s.LoadBalancer
		if l == nil {
			continue
		}
		layout := s.EffectiveLayout()
		tasks := byService[key(s)]
		// Every group the layout names gets a target group, even an empty one.
		groups := map[string][]string{layout.Test: nil}
		for _, set := range layout.Sets {
			groups[set.Group] = nil
		}
		for _, w := range layout.Prod {
			groups[w.Group] = nil
		}
		for _, t := range tasks {
			if m.isStopping(t.ID) || t.Status() != "RUNNING" {
				continue
			}
			inLayout := false
			for _, set := range layout.Sets {
				inLayout = inLayout || inSet(t, set)
			}
			if ep := t.Endpoint(l.ContainerName, l.ContainerPort); ep != "" && inLayout {
				groups[groupOf(t)] = append(groups[groupOf(t)], ep)
			}
		}
		for g, targets := range groups {
			sort.Strings(targets)
			cfg.TargetGroups[TargetGroupName(s, g)] = lb.TargetGroup{Targets: targets, HealthCheck: healthCheckOf(l), DeregistrationDelay: lb.Duration{Duration: m.drainDelay(s)}}
		}
		var prod []lb.Route
		for _, w := range layout.Prod {
			prod = append(prod, lb.Route{TargetGroup: TargetGroupName(s, w.Group), Weight: w.Weight})
		}
		test := []lb.Route{{TargetGroup: TargetGroupName(s, layout.Test), Weight: 100}}
		// A port of a shared listener is refused as a service's own when
		// claimed; one that slipped past is left out, not sent to make the
		// shared listener (every app's hosts) fail.
		for _, p := range []int{l.ListenerPort, l.TestListenerPort} {
			if p != 0 && m.Edge.usesPort(p) {
				edge.lost = append(edge.lost, lostClaim{s, fmt.Sprintf("listener port %d is not served: it is a shared listener's port; choose another", p)})
			}
		}
		if l.ListenerPort != 0 && !m.Edge.usesPort(l.ListenerPort) {
			cfg.Listeners[listenerName(s)] = lb.Listener{Addr: fmt.Sprintf("127.0.0.1:%d", l.ListenerPort), Routes: prod}
			owner[listenerName(s)] = s
		}
		if l.TestListenerPort != 0 && !m.Edge.usesPort(l.TestListenerPort) {
			cfg.Listeners[testListenerName(s)] = lb.Listener{Addr: fmt.Sprintf("127.0.0.1:%d", l.TestListenerPort), Routes: test}
			owner[testListenerName(s)] = s
		}
		edge.add(s, prod, test)
	}
	if err := edge.apply(ctx, &cfg, m.Certs); err != nil {
		return err
	}
	lost := map[string]bool{}
	for _, lc := range edge.lost {
		k := key(lc.s) + " " + lc.why
		if !m.lostClaims[k] {
			m.event(ctx, lc.s, "%s", lc.why)
		}
		lost[k] = true
	}
	m.lostClaims = lost
	for _, name := range []string{EdgeHTTP, EdgeHTTPS} {
		for _, r := range cfg.Listeners[name].Rules {
			if _, ok := owner[name]; !ok {
				owner[name] = edge.owner[r.Host+r.PathPrefix]
			}
		}
	}
	m.mu.Lock()
	same := m.lastLB != nil && reflect.DeepEqual(*m.lastLB, cfg)
	m.mu.Unlock()
	if same {
		return nil
	}
	if len(cfg.Listeners) == 0 && !m.Proxy.Running(ctx) {
		return nil
	}
	applied, err := m.applyBindable(ctx, cfg, owner)
	if err != nil {
		return fmt.Errorf("configure the load balancer: %w", err)
	}
	m.mu.Lock()
	m.lastLB = &applied
	m.mu.Unlock()
	return nil
}

// applyBindable applies cfg, leaving out each listener whose address
// another program holds, so one taken port does not hold back the routes
// of every other service; its service gets an event, and another when the
// listener binds again. It returns the table in force.
func (m *Manager) applyBindable(ctx context.Context, cfg lb.Config, owner map[string]store.Service) (lb.Config, error) {
	applied := cfg
	applied.Listeners = maps.Clone(cfg.Listeners)
	failed := map[string]lb.ListenError{}
	for {
		m.mu.Lock()
		inForce := len(failed) > 0 && m.lastLB != nil && reflect.DeepEqual(*m.lastLB, applied)
		m.mu.Unlock()
		if inForce { // what is left was applied by an earlier pass
			break
		}
		err := m.Proxy.Apply(ctx, applied)
		var le *lb.ListenError
		if !errors.As(err, &le) || applied.Listeners[le.Listener].Addr == "" {
			if err != nil {
				return cfg, err
			}
			break
		}
		delete(applied.Listeners, le.Listener)
		failed[le.Listener] = *le
	}
	if m.unbound == nil {
		m.unbound = map[string]lb.ListenError{}
	}
	for name, le := range failed {
		if m.unbound[name] != le {
			m.event(ctx, owner[name], "load balancer cannot listen on %s: %s; another program holds the port: free it, or give the service another listener port", le.Addr, le.Reason)
		}
		m.unbound[name] = le
	}
	for name, was := range m.unbound {
		if _, still := failed[name]; still {
			continue
		}
		if l, ok := applied.Listeners[name]; ok {
			if l.Addr == was.Addr {
				m.event(ctx, owner[name], "load balancer listens on %s again", l.Addr)
			} else {
				m.event(ctx, owner[name], "load balancer listens on %s (not on %s)", l.Addr, was.Addr)
			}
		}
		delete(m.unbound, name)
	}
	return applied, nil
}
func healthCheckOf(l *store.LoadBalancer) lb.HealthCheck {
	hc := lb.HealthCheck{Path: l.HealthCheckPath, HealthyThreshold: l.HealthyThreshold, UnhealthyThreshold: l.UnhealthyThreshold, Matcher: l.Matcher}
	if d, err := time.ParseDuration(l.HealthCheckInterval); err == nil {
		hc.Interval.Duration = d
	}
	if d, err := time.ParseDuration(l.HealthCheckTimeout); err == nil {
		hc.Timeout.Duration = d
	}
	return hc
}

// ValidateLB checks a service's load balancer settings against its task definition.
func ValidateLB(l *store.LoadBalancer, def *taskdef.TaskDef) error {
	c, ok := def.Container(l.ContainerName)
	if !ok {
		return fmt.Errorf("load_balancer.container_name: task definition %s has no container %q", def.Family, l.ContainerName)
	}
	found := false
	for _, pm := range c.PortMappings {
		found = found || pm.ContainerPort == l.ContainerPort
	}
	if !found {
		return fmt.Errorf("load_balancer.container_port: container %s has no portMapping for %d", c.Name, l.ContainerPort)
	}
	if err := validateEdge(l); err != nil {
		return err
	}
	if (l.ListenerPort != 0 || l.Host == "") && (l.ListenerPort < 1024 || l.ListenerPort > 65535) {
		return fmt.Errorf("load_balancer.listener_port must be 1024 to 65535 (or 0 with a host on the shared listeners)")
	}
	if l.TestListenerPort != 0 && (l.TestListenerPort < 1024 || l.TestListenerPort > 65535 || l.TestListenerPort == l.ListenerPort) {
		return fmt.Errorf("load_balancer.test_listener_port must be 1024 to 65535 and differ from listener_port")
	}
	if l.HealthCheckPath == "" {
		l.HealthCheckPath = "/"
	}
	for field, v := range map[string]*string{"health_check_interval": &l.HealthCheckInterval, "health_check_timeout": &l.HealthCheckTimeout, "deregistration_delay": &l.DeregistrationDelay} {
		if *v == "" {
			continue
		}
		if d, err := time.ParseDuration(*v); err != nil || d < 0 {
			return fmt.Errorf("load_balancer.%s %q must be a duration such as 5s", field, *v)
		}
	}
	if l.HealthCheckInterval == "" {
		l.HealthCheckInterval = "5s"
	}
	if l.HealthCheckTimeout == "" {
		l.HealthCheckTimeout = "2s"
		// A short interval gets a timeout that fits inside it.
		if iv, err := time.ParseDuration(l.HealthCheckInterval); err == nil && iv <= 2*time.Second {
			l.HealthCheckTimeout = (iv * 4 / 5).String()
		}
	}
	if l.DeregistrationDelay == "" {
		l.DeregistrationDelay = "5s"
	}
	hc := healthCheckOf(l)
	probe := lb.Config{TargetGroups: map[string]lb.TargetGroup{"x": {HealthCheck: hc}}}
	if err := probe.Validate(); err != nil {
		return fmt.Errorf("load_balancer: %s", strings.TrimPrefix(err.Error(), "target_groups.x."))
	}
	return nil
}
