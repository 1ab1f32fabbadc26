package pipeline

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"github.com/slipway-dev/slipway/internal/slipwayfile"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/slipway-dev/slipway/internal/artifact"
	"github.com/slipway-dev/slipway/internal/blob"
	"github.com/slipway-dev/slipway/internal/build"
	"github.com/slipway-dev/slipway/internal/container"
	"github.com/slipway-dev/slipway/internal/deploy"
	"github.com/slipway-dev/slipway/internal/notify"
	"github.com/slipway-dev/slipway/internal/secret"
	"github.com/slipway-dev/slipway/internal/store"
)

// RestartReason ends what a stopped server left running.
const RestartReason = "control plane restarted"

// DefaultActionTimeout applies when an action sets no timeout.
const DefaultActionTimeout = time.Hour

// Store is what the engine needs from the state store.
type Store interface {
	store.RunStore
	store.ExecStore
	store.OutputStore
	store.ApprovalStore
	store.RetentionStore
	GetImage(ctx context.Context, repo, digest string) (store.Image, error)
	GetApp(ctx context.Context, name string) (store.App, error)
	CreateToken(ctx context.Context, t store.Token, hash []byte) (store.Token, error)
	DeleteToken(ctx context.Context, id string) error
	DeleteTokensNamed(ctx context.Context, prefix string) (int, error)
}

// Source reads an app's repository at a commit.
type Source interface {
	Archive(ctx context.Context, app, commit string, w io.Writer) error
	ReadFile(ctx context.Context, app, commit, path string) ([]byte, error)
	// DefaultBranch is the ref the repository's HEAD names: its builds
	// share the app's build home, and its caches every branch restores.
	DefaultBranch(ctx context.Context, app string) (string, error)
}

// Engine executes queued runs: stages in order, actions of one run-order in
// parallel, at most MaxParallel actions at a time across all runs.
type Engine struct {
	Store     Store
	Source    Source
	Artifacts *artifact.Store
	// Blobs keeps build caches under /cache/APP/ (the data directory, or
	// S3); the artifacts are in it too.
	Blobs    storagedriver.StorageDriver
	WorkRoot string
	// HomeRoot holds each app's build homes: HomeRoot/APP for its default
	// branch, HomeRoot/APP@DIGEST for each other ref (see buildHome).
	HomeRoot string
	// DataDir is kept out of every sandbox, even one whose host mounts
	// would contain it.
	DataDir     string
	MaxParallel int
	Log         *slog.Logger
	// Registry is where image actions push; see SetRegistry.
	Registry Registry
	// Deploys and DeployStore let deploy actions roll out services.
	Deploys     *deploy.Controller
	DeployStore DeployStore
	// Notifier tells channels about approvals and finished runs (nil: nobody).
	Notifier *notify.Notifier
	// Secrets resolves buildspec env.secrets-manager and env.parameter-store.
	Secrets *secret.Vault
	// Installation labels the build containers and images the engine makes,
	// as the task runtime labels tasks, so each is known as this server's.
	Installation string
	// RunRetention is how long after a run ends its artifacts and logs are
	// kept (see ExpireRuns); 0 keeps them forever.
	RunRetention time.Duration

	slots chan struct{}
	wake  chan struct{}
	// decided is closed and replaced at every approval decision.
	decidedMu sync.Mutex
	decided   chan struct{}
	mu        sync.Mutex
	active    map[int64]*activeRun
	wg        sync.WaitGroup
	stop      context.CancelFunc
}

type activeRun struct {
	cancel    context.CancelFunc
	cancelled atomic.Bool
	// jobs holds, for a workflow run, what each job action about to run
	// runs (a *wfAction by the action's row id).
	jobs sync.Map
}

// Start recovers what a previous process left running, then schedules runs
// until Close.
func (e *Engine) Start(ctx context.Context) error {
	if e.MaxParallel < 1 {
		e.MaxParallel = 2
	}
	e.slots = make(chan struct{}, e.MaxParallel)
	e.mu.Lock()
	if e.wake == nil { // kept across a stop and start: Wake may run meanwhile
		e.wake = make(chan struct{}, 1)
	}
	e.mu.Unlock()
	e.active = map[int64]*activeRun{}
	n, err := e.Store.RecoverInterrupted(ctx, RestartReason)
	if err != nil {
		return fmt.Errorf("recover interrupted runs: %w", err)
	}
	if n > 0 {
		e.Log.Warn("ended runs left running by the previous server", "runs", n, "reason", RestartReason)
	}
	killLeftovers(e.WorkRoot, e.Log)
	e.removeLeftovers(ctx)
	_ = os.RemoveAll(e.WorkRoot) // workspaces of interrupted actions
	ctx, stop := context.WithCancelCause(ctx)
	e.stop = func() { stop(errEngineStopping) }
	// Runs left waiting for an approval pick their wait up again, and those
	// left following deployments (all recovery kept running) follow them.
	resume, err := e.Store.RunsInState(ctx, store.RunWaiting, store.RunRunning)
	if err != nil {
		return err
	}
	for _, r := range resume {
		spec, err := e.loadSpec(ctx, r)
		if err != nil {
			e.finish(ctx, r.ID, store.RunFailed, err.Error())
			continue
		}
		e.Log.Info("resuming a run left waiting for approval or following a deployment", "run", r.ID, "app", r.App, "state", r.State)
		e.run(ctx, r, spec, true)
	}
	e.wg.Add(1)
	go e.loop(ctx)
	if e.RunRetention > 0 {
		e.wg.Add(1)
		go e.retentionLoop(ctx)
	}
	e.Wake()
	return nil
}

// errEngineStopping is why the runs' contexts end when the engine closes
// (the server stops, or hands the control loops to another): not a reason
// to stop a deployment an action follows, nor to record the action ended.
var errEngineStopping = errors.New("the control plane is stopping")

// Close stops scheduling and waits for running actions to be killed.
func (e *Engine) Close() {
	if e.stop != nil {
		e.stop()
		e.wg.Wait()
	}
}

// Wake asks the scheduler to look for runnable runs now.
func (e *Engine) Wake() {
	e.mu.Lock()
	wake := e.wake
	e.mu.Unlock()
	select {
	case wake <- struct{}{}: // a nil channel (not started) never takes it
	default:
	}
}

func (e *Engine) loop(ctx context.Context) {
	defer e.wg.Done()
	tick := time.NewTicker(2 * time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-e.wake:
		case <-tick.C:
		}
		if err := e.schedule(ctx); err != nil && ctx.Err() == nil {
			e.Log.Error("schedule runs", "err", err)
		}
	}
}

// schedule starts the queued runs each app's mode allows.
func (e *Engine) schedule(ctx context.Context) error {
	runs, err := e.Store.RunsInState(ctx, store.RunQueued, store.RunRunning, store.RunWaiting)
	if err != nil {
		return err
	}
	byApp := map[string][]store.Run{}
	var apps []string
	for _, r := range runs {
		if _, ok := byApp[r.App]; !ok {
			apps = append(apps, r.App)
		}
		byApp[r.App] = append(byApp[r.App], r)
	}
	for _, app := range apps {
		busy := false
		var queued []store.Run
		for _, r := range byApp[app] {
			if r.State == store.RunQueued && !e.isActive(r.ID) {
				queued = append(queued, r)
			} else {
				busy = true
			}
		}
		for i, r := range queued {
			spec, err := e.loadSpec(ctx, r)
			if err != nil {
				e.finish(ctx, r.ID, store.RunFailed, err.Error())
				continue
			}
			switch spec.Mode {
			case slipwayfile.ModeParallel:
				e.launch(ctx, r, spec)
			case slipwayfile.ModeQueued:
				if !busy {
					busy = true
					e.launch(ctx, r, spec)
				}
			default: // superseded: only the newest waiting run goes on
				if i < len(queued)-1 {
					e.finish(ctx, r.ID, store.RunSuperseded, fmt.Sprintf("superseded by run %d", queued[len(queued)-1].ID))
					continue
				}
				if !busy {
					busy = true
					e.launch(ctx, r, spec)
				}
			}
		}
	}
	return nil
}

func (e *Engine) isActive(id int64) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	_, ok := e.active[id]
	return ok
}

func (e *Engine) loadSpec(ctx context.Context, r store.Run) (*runSpec, error) {
	if r.Workflow != "" {
		return e.loadWorkflowSpec(ctx, r)
	}
	data, err := e.Source.ReadFile(ctx, r.App, r.Commit, slipwayfile.FileName)
	if err != nil {
		return nil, fmt.Errorf("no %s at commit %s", slipwayfile.FileName, shortSHA(r.Commit))
	}
	spec, err := slipwayfile.Parse(data)
	if err != nil {
		return nil, err
	}
	return &runSpec{Spec: spec}, nil
}

func (e *Engine) finish(ctx context.Context, id int64, state, reason string) {
	if err := whenReachable(ctx, e.Log, func() error { return e.Store.FinishRun(ctx, id, state, reason) }); err != nil && !errors.Is(err, store.ErrConflict) {
		e.Log.Error("finish run", "run", id, "err", err)
	}
}

func (e *Engine) launch(ctx context.Context, r store.Run, spec *runSpec) {
	var rows []store.Action
	for si, st := range spec.Stages {
		for _, a := range st.Actions {
			rows = append(rows, store.Action{StageIndex: si, Stage: st.Name, Name: a.Name, Type: a.Type, RunOrder: a.RunOrder})
		}
	}
	if err := e.Store.StartRun(ctx, r.ID, spec.Mode, rows); err != nil {
		e.Log.Error("start run", "run", r.ID, "err", err)
		return
	}
	e.run(ctx, r, spec, false)
}

// run executes a started run in the background; resumed runs continue
// where a previous server left them waiting.
func (e *Engine) run(ctx context.Context, r store.Run, spec *runSpec, resumed bool) {
	rctx, cancel := context.WithCancel(ctx)
	ar := &activeRun{cancel: cancel}
	e.mu.Lock()
	e.active[r.ID] = ar
	e.mu.Unlock()
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		defer cancel()
		state, reason := e.execute(rctx, r, spec, ar, resumed)
		e.mu.Lock()
		delete(e.active, r.ID)
		e.mu.Unlock()
		if ctx.Err() != nil {
			// The server is stopping: the next start ends what was running
			// ("control plane restarted") and resumes approval waits.
			e.Log.Info("run interrupted by shutdown", "run", r.ID, "app", r.App)
			return
		}
		e.finish(context.WithoutCancel(ctx), r.ID, state, reason)
		e.Log.Info("run ended", "run", r.ID, "app", r.App, "state", state, "reason", reason)
		e.notifyEnd(ctx, r, state, reason)
		e.Wake()
	}()
}

// Cancel stops a run: queued runs end at once; running ones have their
// actions' process groups killed.
func (e *Engine) Cancel(ctx context.Context, id int64) error {
	e.mu.Lock()
	ar, ok := e.active[id]
	e.mu.Unlock()
	if ok {
		ar.cancelled.Store(true)
		ar.cancel()
		return nil
	}
	return e.Store.FinishRun(ctx, id, store.RunCancelled, "cancelled before it started")
}

// execute runs the stages and returns the run's final state and reason.
// A resumed run skips the boundary check of the stage it continues in.
func (e *Engine) execute(ctx context.Context, r store.Run, spec *runSpec, ar *activeRun, resumed bool) (string, string) {
	if spec.plan != nil {
		return e.executeWorkflow(ctx, r, spec, ar)
	}
	actions, err := e.Store.ListActions(ctx, r.ID)
	if err != nil {
		return store.RunFailed, "list actions: " + err.Error()
	}
	if err := e.storeSource(ctx, r); err != nil {
		return store.RunFailed, err.Error()
	}
	for si, st := range spec.Stages {
		orders := map[int][]int{}
		for ai, a := range st.Actions {
			if findAction(actions, st.Name, a.Name).State == store.RunSucceeded {
				continue // done before a retry
			}
			orders[a.RunOrder] = append(orders[a.RunOrder], ai)
		}
		if len(orders) == 0 {
			continue
		}
		if si > 0 && !resumed {
			if state, reason := e.enterStage(ctx, r, spec, st.Name, ar); state != "" {
				return state, reason
			}
		}
		resumed = false
		var keys []int
		for k := range orders {
			keys = append(keys, k)
		}
		sort.Ints(keys)
		for _, ro := range keys {
			var wg sync.WaitGroup
			var mu sync.Mutex
			var failures []string
			for _, ai := range orders[ro] {
				row := findAction(actions, st.Name, st.Actions[ai].Name)
				wg.Add(1)
				go func(a Action, row store.Action) {
					defer wg.Done()
					if reason := e.runAction(ctx, r, a, row, ar); reason != "" {
						mu.Lock()
						failures = append(failures, fmt.Sprintf("action %s: %s", a.Name, reason))
						mu.Unlock()
					}
				}(st.Actions[ai], row)
			}
			wg.Wait()
			if ar.cancelled.Load() {
				return store.RunCancelled, "cancelled"
			}
			if len(failures) > 0 {
				sort.Strings(failures)
				return store.RunFailed, fmt.Sprintf("stage %s failed: %s", st.Name, strings.Join(failures, "; "))
			}
		}
	}
	return store.RunSucceeded, ""
}

// enterStage holds a run at a stage boundary while the transition into the
// stage is disabled; it returns a final state when the run must end there.
func (e *Engine) enterStage(ctx context.Context, r store.Run, spec *runSpec, stage string, ar *activeRun) (string, string) {
	waiting := false
	for {
		if spec.Mode == slipwayfile.ModeSuperseded {
			if newer := e.newerQueued(ctx, r); newer != 0 {
				return store.RunSuperseded, fmt.Sprintf("superseded by run %d at the %s stage boundary", newer, stage)
			}
		}
		t, err := e.Store.GetTransition(ctx, r.App, stage)
		if errors.Is(err, store.ErrNotFound) {
			if waiting {
				_ = e.Store.SetRunState(ctx, r.ID, store.RunRunning, "")
			}
			return "", ""
		}
		if err != nil {
			return store.RunFailed, "read transition: " + err.Error()
		}
		if !waiting {
			waiting = true
			reason := fmt.Sprintf("transition to stage %s is disabled by %s: %s", stage, t.DisabledBy, t.Reason)
			if err := e.Store.SetRunState(ctx, r.ID, store.RunWaiting, reason); err != nil {
				return store.RunFailed, err.Error()
			}
		}
		select {
		case <-ctx.Done():
			if ar.cancelled.Load() {
				return store.RunCancelled, "cancelled while waiting for the transition to " + stage
			}
			return store.RunFailed, "control plane stopped"
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func findAction(rows []store.Action, stage, name string) store.Action {
	for _, a := range rows {
		if a.Stage == stage && a.Name == name {
			return a
		}
	}
	return store.Action{}
}

func (e *Engine) newerQueued(ctx context.Context, r store.Run) int64 {
	runs, err := e.Store.RunsInState(ctx, store.RunQueued)
	if err != nil {
		return 0
	}
	for _, o := range runs {
		if o.App == r.App && o.ID > r.ID {
			return o.ID
		}
	}
	return 0
}

// storeSource archives the commit as the run's slipwayfile.SourceArtifact.
func (e *Engine) storeSource(ctx context.Context, r store.Run) error {
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(e.Source.Archive(ctx, r.App, r.Commit, pw)) }()
	// The row is recorded inside PutRecorded: run retention may not delete
	// a blob found already stored before a row names it.
	_, _, err := e.Artifacts.PutRecorded(ctx, pr, func(sum string, size int64) error {
		return e.Store.PutArtifact(ctx, store.Artifact{RunID: r.ID, Name: slipwayfile.SourceArtifact, SHA256: sum, Size: size})
	})
	pr.CloseWithError(err)
	if err != nil {
		return fmt.Errorf("store %s: %w", slipwayfile.SourceArtifact, err)
	}
	return nil
}

// runAction executes one action and returns "" on success or why it failed.
func (e *Engine) runAction(ctx context.Context, r store.Run, a Action, row store.Action, ar *activeRun) string {
	if a.Type == "approval" {
		return e.runApproval(ctx, r, a, row, ar) // waits for a person, not for a slot
	}
	select {
	case e.slots <- struct{}{}:
	case <-ctx.Done():
		e.endAction(row, store.RunCancelled, "not started: run ended", nil)
		return "cancelled"
	}
	defer func() { <-e.slots }()
	if row.State != store.RunRunning || row.StartedAt == nil { // a resumed action keeps its start
		start := time.Now().UTC()
		row.State, row.StartedAt = store.RunRunning, &start
		if err := e.Store.UpdateAction(ctx, row); err != nil {
			return err.Error()
		}
	}
	timeout := DefaultActionTimeout
	if a.Timeout.Duration > 0 {
		timeout = a.Timeout.Duration
	}
	actx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var secrets []string
	if reg, err := e.registry(); err == nil {
		secrets = append(secrets, e.credentialForms(reg.Token)...)
	}
	logs := newLogWriter(e.Store, row.ID, e.Log, secrets)
	code, reason := e.perform(actx, r, a, row, logs, ar)
	logs.Close()
	reason = logs.Mask(reason) // a reason can quote a value a step printed
	if errors.Is(context.Cause(ctx), errEngineStopping) && !ar.cancelled.Load() {
		// Left running: the next server to run the engine ends it, or,
		// if it follows a deployment, follows that again.
		return reason
	}
	switch {
	case reason == "":
		e.endAction(row, store.RunSucceeded, "", code)
	case ar.cancelled.Load():
		reason = "cancelled"
		e.endAction(row, store.RunCancelled, reason, code)
	default:
		if errors.Is(actx.Err(), context.DeadlineExceeded) && ctx.Err() == nil {
			reason = fmt.Sprintf("timed out after %s (%s)", timeout, reason)
		}
		e.endAction(row, store.RunFailed, reason, code)
	}
	return reason
}

func (e *Engine) endAction(row store.Action, state, reason string, code *int) {
	end := time.Now().UTC()
	row.State, row.Reason, row.ExitCode, row.EndedAt = state, reason, code, &end
	if err := whenReachable(context.Background(), e.Log, func() error { return e.Store.UpdateAction(context.Background(), row) }); err != nil {
		e.Log.Error("update action", "action", row.ID, "err", err)
	}
}

// storeRetryFor bounds how long a state change waits for a database that
// does not answer; past it the run is left for recovery to end.
var storeRetryFor = 2 * time.Minute

// whenReachable runs write, again while the database does not answer
// (store.Unavailable), so that a short outage does not leave an ended
// action or run recorded as running.
func whenReachable(ctx context.Context, log *slog.Logger, write func() error) error {
	deadline := time.Now().Add(storeRetryFor)
	wait := 100 * time.Millisecond
	for {
		err := write()
		if err == nil || !store.Unavailable(err) || time.Now().After(deadline) {
			return err
		}
		log.Warn("the database does not answer; trying again", "err", err, "in", wait)
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
		wait = min(2*wait, 5*time.Second)
	}
}

// perform does the action's work; it returns the exit code (when a process
// ran) and a failure reason ("" on success).
func (e *Engine) perform(ctx context.Context, r store.Run, a Action, row store.Action, logs io.Writer, ar *activeRun) (*int, string) {
	switch a.Type {
	case "build", "test":
		return e.performBuild(ctx, r, a, row, logs, ar)
	case "image":
		return e.performImage(ctx, r, a, row, logs)
	case "deploy":
		return e.performDeploy(ctx, r, a, row, logs)
	case actionJob:
		w, ok := ar.jobs.Load(row.ID)
		if !ok {
			return nil, "a workflow job outside a workflow run"
		}
		return e.performJob(ctx, r, w.(*wfAction), row, logs, ar)
	case "invoke":
		vars, err := e.Store.ListVariables(ctx, r.ID)
		if err != nil {
			return nil, err.Error()
		}
		if a.Command, err = resolveRefs(a.Command, vars); err != nil {
			return nil, "command: " + err.Error()
		}
		if a.URL, err = resolveRefs(a.URL, vars); err != nil {
			return nil, "url: " + err.Error()
		}
		if a.URL != "" {
			return nil, invokeURL(ctx, a.URL, logs)
		}
		spec := &build.Spec{Version: "0.2"}
		spec.Phases.Build = &build.Phase{Commands: []string{a.Command}}
		return e.runBuildspec(ctx, r, a, row, spec, logs, ar)
	}
	return nil, fmt.Sprintf("action type %q is not available in this version of Slipway", a.Type)
}

func invokeURL(ctx context.Context, url string, logs io.Writer) string {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, nil)
	if err != nil {
		return "invoke url: " + err.Error()
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "invoke url: " + err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	fmt.Fprintf(logs, "[slipway] POST %s → %s\n%s\n", url, resp.Status, bytes.TrimSpace(body))
	if resp.StatusCode >= 300 {
		return fmt.Sprintf("POST %s answered %s", url, resp.Status)
	}
	return ""
}

func (e *Engine) performBuild(ctx context.Context, r store.Run, a Action, row store.Action, logs io.Writer, ar *activeRun) (*int, string) {
	dir, err := e.workspace(ctx, r, a, row)
	if err != nil {
		return nil, err.Error()
	}
	data, err := readSpecFile(dir, a.Buildspec)
	if err != nil && !isMissing(err) {
		return nil, fmt.Sprintf("buildspec %s: %v", a.Buildspec, err)
	}
	if err != nil {
		primary := slipwayfile.SourceArtifact
		if len(a.Inputs) > 0 {
			primary = a.Inputs[0]
		}
		return nil, fmt.Sprintf("buildspec %s not found in %s, the action's primary (first) input; list the artifact holding it first in inputs", a.Buildspec, primary)
	}
	spec, err := build.Parse(a.Buildspec, data)
	if err != nil {
		fmt.Fprintln(logs, "[slipway] "+err.Error())
		return nil, err.Error()
	}
	return e.runBuildspec(ctx, r, a, row, spec, logs, ar)
}

// workspace unpacks the action's inputs: the first into the source directory,
// the others beside it as CODEBUILD_SRC_DIR_<name>.
func (e *Engine) workspace(ctx context.Context, r store.Run, a Action, row store.Action) (string, error) {
	base := filepath.Join(e.WorkRoot, fmt.Sprintf("run-%d", r.ID), fmt.Sprintf("action-%d", row.ID))
	if err := os.MkdirAll(base, 0o700); err != nil {
		return "", err
	}
	inputs := a.Inputs
	if len(inputs) == 0 {
		inputs = []string{slipwayfile.SourceArtifact}
	}
	arts, err := e.Store.ListArtifacts(ctx, r.ID)
	if err != nil {
		return "", err
	}
	for i, in := range inputs {
		dst := filepath.Join(base, "src")
		if i > 0 {
			dst = filepath.Join(base, "src_"+in)
		}
		var found *store.Artifact
		for j := range arts {
			if arts[j].Name == in {
				found = &arts[j]
			}
		}
		if found == nil {
			return "", fmt.Errorf("input artifact %s was not produced", in)
		}
		rc, err := e.Artifacts.Open(ctx, found.SHA256)
		if err != nil {
			return "", fmt.Errorf("open artifact %s: %w", in, err)
		}
		err = artifact.Unpack(rc, dst)
		rc.Close()
		if err != nil {
			return "", fmt.Errorf("unpack artifact %s: %w", in, err)
		}
	}
	return filepath.Join(base, "src"), nil
}

func (e *Engine) runBuildspec(ctx context.Context, r store.Run, a Action, row store.Action, spec *build.Spec, logs io.Writer, ar *activeRun) (*int, string) {
	dir := filepath.Join(e.WorkRoot, fmt.Sprintf("run-%d", r.ID), fmt.Sprintf("action-%d", row.ID), "src")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err.Error()
	}
	defer os.RemoveAll(filepath.Dir(dir))
	// Precedence as in CodeBuild: the builder's own variables, then the
	// action's env (project settings), over the buildspec's variables.
	vars := map[string]string{}
	for k, v := range spec.Env.Variables {
		vars[k] = v
	}
	exported, err := e.Store.ListVariables(ctx, r.ID)
	if err != nil {
		return nil, err.Error()
	}
	for _, v := range exported {
		vars[v.Name] = v.Value // earlier actions' exported variables, as plain env
	}
	for k, v := range a.Env {
		resolved, err := resolveRefs(v, exported)
		if err != nil {
			fmt.Fprintf(logs, "[slipway] env %s: %v\n", k, err)
			return nil, fmt.Sprintf("env %s: %v", k, err)
		}
		vars[k] = resolved
	}
	if err := e.resolveBuildSecrets(ctx, r, spec, vars, logs); err != nil {
		fmt.Fprintf(logs, "[slipway] %v\n", err)
		return nil, err.Error()
	}
	app, err := e.Store.GetApp(ctx, r.App)
	if err != nil {
		return nil, err.Error()
	}
	onHost := a.Image == "" && app.Build.Executor == store.ExecutorHost
	workspace := filepath.Dir(dir)
	visible := build.ContainerRoot // the workspace as the build sees it
	if onHost {
		visible = workspace
		fmt.Fprintf(logs, "[slipway] Running on the host as the server's user (app setting executor=host)\n")
	}
	srcDir := path.Join(visible, "src") // CODEBUILD_SRC_DIR as the build sees it
	token, dropToken, err := e.buildToken(ctx, r, row)
	if err != nil {
		return nil, err.Error()
	}
	defer dropToken()
	if m, ok := logs.(interface{ AddSecrets(...string) }); ok {
		m.AddSecrets(e.credentialForms(token)...)
	}
	dockerVars, err := e.dockerEnv(r, workspace, visible, token)
	if err != nil {
		return nil, err.Error()
	}
	for _, kv := range append(dockerVars, e.sandboxEnv(a, app, onHost)...) {
		k, v, _ := strings.Cut(kv, "=")
		if _, set := vars[k]; !set {
			vars[k] = v
		}
	}
	buildID := fmt.Sprintf("%s:%d-%d", r.App, r.ID, row.ID)
	for k, v := range map[string]string{
		"CODEBUILD_RESOLVED_SOURCE_VERSION": r.Commit, "CODEBUILD_SOURCE_VERSION": r.Ref,
		"CODEBUILD_BUILD_ID": buildID, "CODEBUILD_BUILD_NUMBER": strconv.FormatInt(r.ID, 10),
		"CODEBUILD_SRC_DIR": srcDir, "CODEBUILD_WEBHOOK_TRIGGER": webhookTrigger(r.Ref),
		"SLIPWAY_APP": r.App, "SLIPWAY_RUN_ID": strconv.FormatInt(r.ID, 10), "SLIPWAY_COMMIT": r.Commit,
		"SLIPWAY_REF": r.Ref, "SLIPWAY_SRC_DIR": srcDir, "SLIPWAY_ACTION": a.Name, "SLIPWAY_STAGE": row.Stage,
	} {
		vars[k] = v
	}
	for _, in := range a.Inputs[min(1, len(a.Inputs)):] {
		vars["CODEBUILD_SRC_DIR_"+in] = path.Join(visible, "src_"+in)
	}
	env := make([]string, 0, len(vars))
	for k, v := range vars {
		env = append(env, k+"="+v)
	}
	sort.Strings(env)
	// The ref's caches, kept apart from other refs' as its build home is.
	scope, err := e.refScope(ctx, r)
	if err != nil {
		fmt.Fprintf(logs, "[slipway] caches: %v\n", err)
		return nil, err.Error()
	}
	if spec.Cache != nil {
		scopes := []string{""}
		if scope != "" {
			scopes = []string{scope, ""}
		}
		restoreCache(ctx, e.Blobs, r.App, scopes, dir, spec.Cache.Paths, logs)
	}
	varsFile := filepath.Join(workspace, "exported")
	if err := os.WriteFile(varsFile, nil, 0o600); err != nil { // made here so the sandbox's user is handed it
		return nil, err.Error()
	}
	job := build.Job{Spec: spec, Dir: dir, Env: env, Log: logs, Stopped: ar.cancelled.Load, VarsFile: varsFile}
	if onHost {
		pgidFile := filepath.Join(workspace, "pgid")
		job.Started = func(pgid int) { _ = os.WriteFile(pgidFile, []byte(strconv.Itoa(pgid)), 0o600) }
	}
	var box *container.Box
	if !onHost {
		if box, err = e.startSandbox(ctx, r, a, app, workspace, logs); err != nil {
			fmt.Fprintf(logs, "[slipway] %v\n", err)
			return nil, err.Error()
		}
		// Halted below before the workspace is read: what is left is
		// the engine's bookkeeping, which need not hold up the action.
		// Close waits for it, so no container outlives the engine.
		defer func() {
			e.wg.Add(1)
			go func() { defer e.wg.Done(); box.Remove() }()
		}()
		job.Box = box
		if a.Image != "" {
			job.Shell = "sh" // images often carry only a POSIX shell
		}
	}
	res := build.Run(ctx, job)
	if box != nil {
		// Nothing the build left in the background may touch the workspace
		// while its artifacts, reports and caches are read.
		if err := box.Halt(ctx); err != nil {
			box.Remove()
		}
	}
	code := res.ExitCode
	reason := res.Reason
	if len(res.Exported) > 0 {
		var vs []store.Variable
		for _, name := range spec.Env.ExportedVariables {
			vs = append(vs, store.Variable{Action: a.Name, Name: name, Value: res.Exported[name]})
		}
		if err := e.Store.PutVariables(ctx, r.ID, vs); err != nil && reason == "" {
			reason = "store exported variables: " + err.Error()
		}
	}
	if res.Succeeded && spec.Cache != nil {
		saveCache(ctx, e.Blobs, r.App, scope, dir, spec.Cache.Paths, logs)
	}
	if why := e.storeReports(ctx, r, a, row, spec, dir, logs); why != "" && reason == "" {
		reason = why
		code = 1
	}
	if err := e.storeOutputs(ctx, r, a, row, spec, dir, logs); err != nil && reason == "" {
		reason = err.Error()
		code = 1
	}
	return &code, reason
}

// resolveBuildSecrets sets the buildspec's env.secrets-manager and
// env.parameter-store variables from the secret store (app scope, then
// global) and masks their values in the action's log.
func (e *Engine) resolveBuildSecrets(ctx context.Context, r store.Run, spec *build.Spec, vars map[string]string, logs io.Writer) error {
	if len(spec.Env.SecretsManager)+len(spec.Env.ParameterStore) == 0 {
		return nil
	}
	if e.Secrets == nil {
		return errors.New("env.secrets-manager and env.parameter-store need the secret store, which this engine was started without")
	}
	var values []string
	for section, refs := range map[string]map[string]string{"secrets-manager": spec.Env.SecretsManager, "parameter-store": spec.Env.ParameterStore} {
		for name, ref := range refs {
			v, err := e.Secrets.Resolve(ctx, r.App, "", ref)
			if err != nil {
				return fmt.Errorf("env.%s.%s: %w", section, name, err)
			}
			vars[name] = v
			values = append(values, v)
		}
	}
	if m, ok := logs.(interface{ AddSecrets(...string) }); ok {
		m.AddSecrets(values...)
	}
	return nil
}

func webhookTrigger(ref string) string {
	if b, ok := strings.CutPrefix(ref, "refs/heads/"); ok {
		return "branch/" + b
	}
	if t, ok := strings.CutPrefix(ref, "refs/tags/"); ok {
		return "tag/" + t
	}
	return ""
}

// storeOutputs packs the buildspec's artifacts as the action's outputs: the
// primary artifacts section is the first output, secondary-artifacts match
// the other outputs by id.
func (e *Engine) storeOutputs(ctx context.Context, r store.Run, a Action, row store.Action, spec *build.Spec, dir string, logs io.Writer) error {
	if len(a.Outputs) == 0 {
		return nil
	}
	if spec.Artifacts == nil {
		return fmt.Errorf("the action declares outputs %v but %s has no artifacts section", a.Outputs, a.Buildspec)
	}
	for i, out := range a.Outputs {
		section := *spec.Artifacts
		if i > 0 {
			sec, ok := spec.Artifacts.SecondaryArtifacts[out]
			if !ok {
				return fmt.Errorf("output %s has no artifacts.secondary-artifacts.%s section in %s", out, out, a.Buildspec)
			}
			section = sec
		}
		files, err := build.Collect(dir, section)
		if err != nil {
			return fmt.Errorf("output %s: %w", out, err)
		}
		if err := e.putOutput(ctx, r, row, out, files, logs); err != nil {
			return err
		}
	}
	return nil
}

// putOutput packs files as the named output artifact of an action.
func (e *Engine) putOutput(ctx context.Context, r store.Run, row store.Action, name string, files []artifact.File, logs io.Writer) error {
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(artifact.Pack(pw, files)) }()
	sum, size, err := e.Artifacts.PutRecorded(ctx, pr, func(sum string, size int64) error {
		return e.Store.PutArtifact(ctx, store.Artifact{RunID: r.ID, Name: name, ActionID: row.ID, SHA256: sum, Size: size})
	})
	pr.CloseWithError(err)
	if err != nil {
		return fmt.Errorf("output %s: %w", name, err)
	}
	fmt.Fprintf(logs, "[slipway] Stored artifact %s: %d files, %d bytes, sha256:%s\n", name, len(files), size, sum[:12])
	return nil
}

func shortSHA(s string) string {
	if len(s) > 12 {
		return s[:12]
	}
	return s
}

// killLeftovers kills the process groups of actions a killed server left
// running; each action records its current group in WORK/run-N/action-M/pgid.
func killLeftovers(root string, log *slog.Logger) {
	files, _ := filepath.Glob(filepath.Join(root, "run-*", "action-*", "pgid"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		pgid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || pgid <= 1 {
			continue
		}
		if err := syscall.Kill(-pgid, syscall.SIGKILL); err == nil {
			log.Warn("killed processes of an interrupted action", "pgid", pgid, "action", filepath.Base(filepath.Dir(f)))
		}
	}
}

// resolveRefs replaces #{Action.VAR} with what that earlier action exported.
func resolveRefs(v string, vars []store.Variable) (string, error) {
	var missing []string
	out := slipwayfile.VarRef.ReplaceAllStringFunc(v, func(m string) string {
		sub := slipwayfile.VarRef.FindStringSubmatch(m)
		for _, x := range vars {
			if x.Action == sub[1] && x.Name == sub[2] {
				return x.Value
			}
		}
		missing = append(missing, m)
		return m
	})
	if len(missing) > 0 {
		return "", fmt.Errorf("%s: no earlier action of this run exported that variable (env.exported-variables in its buildspec)", strings.Join(missing, ", "))
	}
	return out, nil
}

// storeReports parses each report group's JUnit files. For a test action,
// failed tests or missing reports fail the action and so gate the stage.
func (e *Engine) storeReports(ctx context.Context, r store.Run, a Action, row store.Action, spec *build.Spec, dir string, logs io.Writer) string {
	groups := make([]string, 0, len(spec.Reports))
	for g := range spec.Reports {
		groups = append(groups, g)
	}
	sort.Strings(groups)
	if a.Type == "test" && len(groups) == 0 {
		return "a test action needs a reports section in its buildspec (JUnit XML) to gate the stage"
	}
	var problems []string
	for _, g := range groups {
		rep := spec.Reports[g]
		files, err := build.Collect(dir, build.Artifacts{Files: rep.Files, BaseDirectory: rep.BaseDirectory})
		if err != nil {
			fmt.Fprintf(logs, "[slipway] report %s: %v\n", g, err)
			problems = append(problems, fmt.Sprintf("report %s: %v", g, err))
			continue
		}
		paths := make([]string, len(files))
		for i, f := range files {
			paths[i] = f.Path
		}
		t, err := build.ParseJUnit(paths)
		if err != nil {
			fmt.Fprintf(logs, "[slipway] report %s: %v\n", g, err)
			problems = append(problems, fmt.Sprintf("report %s: %v", g, err))
			continue
		}
		fmt.Fprintf(logs, "[slipway] Report %s: %d tests, %d passed, %d failed, %d skipped\n", g, t.Total, t.Passed, t.Failed, t.Skipped)
		if err := e.Store.PutReport(ctx, r.ID, store.Report{ActionID: row.ID, Group: g, Total: t.Total, Passed: t.Passed, Failed: t.Failed, Skipped: t.Skipped, FailedTests: t.FailedTests}); err != nil {
			problems = append(problems, err.Error())
			continue
		}
		if t.Failed > 0 {
			names := t.FailedTests
			if len(names) > 5 {
				names = append(names[:5:5], "…")
			}
			problems = append(problems, fmt.Sprintf("%d of %d tests failed in report %s: %s", t.Failed, t.Total, g, strings.Join(names, ", ")))
		}
	}
	if a.Type != "test" || len(problems) == 0 {
		return ""
	}
	return strings.Join(problems, "; ")
}

// CacheKey names the stored copy of one cache path of an app, kept for
// the default branch (scope "") or for another ref (scope: refScope's
// digest, under refs/). A path whose name the storage drivers would refuse
// (they take only letters, digits, '.', '_' and '-') is named by its hash
// instead.
func CacheKey(app, scope, p string) string {
	name := strings.NewReplacer("/", "_", ".", "_").Replace(filepath.Clean(p))
	if !cacheName.MatchString(name) {
		sum := sha256.Sum256([]byte(filepath.Clean(p)))
		name = "h-" + hex.EncodeToString(sum[:])
	}
	if scope != "" {
		return "/cache/" + app + "/refs/" + scope + "/" + name + ".tar"
	}
	return "/cache/" + app + "/" + name + ".tar"
}

var cacheName = regexp.MustCompile(`^[A-Za-z0-9._-]+$`)

// restoreCache unpacks each cache path kept from the app's last successful
// build of the ref, else of the default branch (scopes, in that order: a
// branch may start from the default branch's caches, never the reverse).
// Paths are relative to the source directory.
func restoreCache(ctx context.Context, blobs storagedriver.StorageDriver, app string, scopes []string, dir string, paths []string, logs io.Writer) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		fmt.Fprintf(logs, "[slipway] caches not restored: %v\n", err)
		return
	}
	defer root.Close()
	for _, p := range cachePaths(paths, logs) {
		// Downloaded whole before anything is unpacked: a download cut
		// short (S3 gone mid-stream) must not leave half a cache in the
		// source, for a successful build to save back.
		var f io.ReadCloser
		var err error
		for _, scope := range scopes {
			var nf storagedriver.PathNotFoundError
			if f, err = fetchCache(ctx, blobs, CacheKey(app, scope, p)); err == nil || !errors.As(err, &nf) {
				break
			}
		}
		if err != nil {
			var nf storagedriver.PathNotFoundError
			if !errors.As(err, &nf) {
				fmt.Fprintf(logs, "[slipway] cache %s not restored: %v\n", p, blob.Explain(err))
			}
			continue // nothing cached yet
		}
		// The source may hold a link where the cache goes: it must lead
		// to a directory inside the source directory.
		if err := root.MkdirAll(p, 0o755); err != nil {
			f.Close()
			fmt.Fprintf(logs, "[slipway] cache %s not restored: %v\n", p, err)
			continue
		}
		err = artifact.Unpack(f, filepath.Join(dir, p))
		f.Close()
		if err != nil {
			fmt.Fprintf(logs, "[slipway] cache %s not restored: %v\n", p, err)
			continue
		}
		fmt.Fprintf(logs, "[slipway] Restored cache %s\n", p)
	}
}

// fetchCache copies a stored cache into a temporary file, removed when
// the returned file is closed.
func fetchCache(ctx context.Context, blobs storagedriver.StorageDriver, key string) (io.ReadCloser, error) {
	rc, err := blobs.Reader(ctx, key, 0)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	tmp, err := os.CreateTemp("", "slipway-cache-*.tar")
	if err != nil {
		return nil, err
	}
	os.Remove(tmp.Name()) // gone once closed
	if _, err := io.Copy(tmp, rc); err != nil {
		tmp.Close()
		return nil, err
	}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		tmp.Close()
		return nil, err
	}
	return tmp, nil
}

// saveCache keeps each cache path for the run's ref (scope) alone.
func saveCache(ctx context.Context, blobs storagedriver.StorageDriver, app, scope, dir string, paths []string, logs io.Writer) {
	for _, p := range cachePaths(paths, logs) {
		root := filepath.Join(dir, p)
		if err := realDirs(dir, p); err != nil {
			if !isMissing(err) {
				fmt.Fprintf(logs, "[slipway] cache %s not saved: %v\n", p, err)
			}
			continue
		}
		files, err := build.Collect(root, build.Artifacts{Files: []string{"**/*"}})
		if err != nil {
			continue // an empty directory: nothing to keep
		}
		// Whole or not at all (blob.Put): a build reading the cache while
		// another saves it gets the old one.
		pr, pw := io.Pipe()
		go func() { pw.CloseWithError(artifact.Pack(pw, files)) }()
		_, err = blob.Put(ctx, blobs, CacheKey(app, scope, p), pr)
		pr.CloseWithError(err)
		if err != nil {
			fmt.Fprintf(logs, "[slipway] cache %s not saved: %v\n", p, blob.Explain(err))
			continue
		}
		fmt.Fprintf(logs, "[slipway] Saved cache %s (%d files)\n", p, len(files))
	}
}

func cachePaths(paths []string, logs io.Writer) []string {
	var out []string
	for _, p := range paths {
		p = strings.TrimSuffix(strings.TrimSuffix(p, "/**/*"), "/**")
		if !filepath.IsLocal(p) {
			fmt.Fprintf(logs, "[slipway] cache path %s skipped: on the host executor only paths inside the source directory are cached\n", p)
			continue
		}
		out = append(out, p)
	}
	return out
}

// Retry re-queues a failed or cancelled run from the named stage (default:
// the first stage that did not succeed) with the same inputs.
func (e *Engine) Retry(ctx context.Context, runID int64, stage string) error {
	actions, err := e.Store.ListActions(ctx, runID)
	if err != nil {
		return err
	}
	idx := -1
	for _, a := range actions {
		if stage != "" && a.Stage == stage {
			idx = a.StageIndex
			break
		}
		if stage == "" && a.State != store.RunSucceeded {
			idx = a.StageIndex
			break
		}
	}
	if idx < 0 {
		if stage != "" {
			return fmt.Errorf("run %d has no stage %q: %w", runID, stage, store.ErrNotFound)
		}
		return store.Conflictf("run %d has nothing to retry", runID)
	}
	if err := e.Store.RetryRun(ctx, runID, idx); err != nil {
		return err
	}
	e.Wake()
	return nil
}
