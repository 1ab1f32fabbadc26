// Package demo runs Slipway's whole flow on one machine: a server on
// embedded defaults, the example app pushed with the real git, built,
// packaged, deployed to staging, approved, rolled out to production, then
// updated again under load to show that no request is dropped.
package demo

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/slipway-dev/slipway/examples"
	"github.com/slipway-dev/slipway/internal/client"
	"github.com/slipway-dev/slipway/internal/container"
	"github.com/slipway-dev/slipway/internal/deploy"
	"github.com/slipway-dev/slipway/internal/server"
	"github.com/slipway-dev/slipway/internal/store"
	"github.com/slipway-dev/slipway/internal/task"
	"github.com/slipway-dev/slipway/internal/traffic"
)

// App is the demo app's name.
const App = "hello"

// Ports are the load balancer listeners the example's slipway.yaml uses.
type Ports struct {
	Staging, StagingTest, Production, ProductionTest int
}

// DefaultPorts are the ones written in examples/hello/slipway.yaml.
var DefaultPorts = Ports{Staging: 8081, StagingTest: 9081, Production: 8082, ProductionTest: 9082}

// Options configure a demo.
type Options struct {
	// DataDir is the server's data directory; empty makes a fresh one that
	// is removed at the end.
	DataDir string
	// Addr is where the server listens (default 127.0.0.1 on a free port).
	Addr string
	// CI runs without waiting for Ctrl-C at the end.
	CI    bool
	Ports Ports
	// ProxyBinary is the slipway executable that runs the load balancer
	// (default: this executable).
	ProxyBinary string
	Out         io.Writer
}

// Result is what the demo observed, for its summary and for tests.
type Result struct {
	URL  string
	Runs []RunReport
	// Requests and Failed count the load sent to staging and production
	// while the second version rolled out.
	Requests, Failed int64
}

// RunReport is one pushed version's run.
type RunReport struct {
	ID      int64
	Version string
	State   string
	Stages  []StageTime
	// What staging and production answered while the run waited for
	// approval, and after it ended.
	StagingAtApproval, ProductionAtApproval string
	StagingAfter, ProductionAfter           string
	Approval                                store.Approval
}

// StageTime is how long one stage took.
type StageTime struct {
	Name     string
	Duration time.Duration
}

type demo struct {
	opts  Options
	out   io.Writer // opts.Out, one writer at a time: notices arrive while a run is followed
	tty   bool      // opts.Out is a terminal, where progress redraws one line
	token string
	work  string
	api   *client.Client
	res   Result
	// closers release what setup started (the notice inbox).
	closers []func()
}

// Run runs the demo; it returns an error when any step failed.
func Run(ctx context.Context, opts Options) (res *Result, err error) {
	if opts.Out == nil {
		opts.Out = os.Stdout
	}
	if opts.Ports == (Ports{}) {
		opts.Ports = DefaultPorts
	}
	if opts.Addr == "" {
		opts.Addr = "127.0.0.1:0"
	}
	d := &demo{opts: opts, out: task.NewLockedWriter(opts.Out), tty: isTerminal(opts.Out)}
	if _, err := exec.LookPath("git"); err != nil {
		return nil, errors.New("the demo pushes with the real git: install git")
	}
	for _, p := range []int{opts.Ports.Staging, opts.Ports.StagingTest, opts.Ports.Production, opts.Ports.ProductionTest} {
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			return nil, fmt.Errorf("port %d, a load balancer listener of the demo, is in use: free it (or pass --ports)", p)
		}
		ln.Close()
	}

	dataDir := opts.DataDir
	if dataDir == "" {
		if dataDir, err = os.MkdirTemp("", "slipway-demo-"); err != nil {
			return nil, err
		}
		defer os.RemoveAll(dataDir)
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, err
	}
	logFile, err := os.OpenFile(filepath.Join(dataDir, "server.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	defer logFile.Close()
	d.step("Starting the server on embedded defaults (SQLite, local disk, local Docker) in %s", dataDir)
	srv, err := server.New(ctx, server.Config{DataDir: dataDir, Log: slog.New(slog.NewTextHandler(logFile, nil)), ProxyBinary: opts.ProxyBinary})
	if err != nil {
		return nil, err
	}
	tok, err := os.ReadFile(filepath.Join(dataDir, server.AdminTokenFile))
	if err != nil {
		srv.Close()
		return nil, err
	}
	d.token = strings.TrimSpace(string(tok))
	ln, err := net.Listen("tcp", opts.Addr)
	if err != nil {
		srv.Close()
		return nil, fmt.Errorf("listen on %s: %w", opts.Addr, err)
	}
	sctx, stopServer := context.WithCancel(context.WithoutCancel(ctx))
	served := make(chan error, 1)
	go func() { served <- srv.Serve(sctx, ln) }()
	d.api = client.New("http://"+ln.Addr().String(), d.token)
	d.res.URL = d.api.URL()
	defer func() {
		d.cleanup()
		stopServer()
		<-served
		srv.Close()
		// The load balancer outlives servers by design; the demo's goes too.
		_ = deploy.NewProxy(dataDir, opts.ProxyBinary).Stop(context.Background())
		// The engine's copies of the images are tagged with this run's
		// registry address, which the next demo will not have: they would
		// only pile up (the registry keeps its own when --data is kept).
		if eng, err := container.Connect(context.Background()); err == nil {
			if err := eng.RemoveRegistryImages(context.Background(), ln.Addr().String()); err != nil {
				fmt.Fprintf(d.out, "    could not remove every demo image: %v\n", err)
			}
		}
	}()
	fmt.Fprintf(d.out, "    web UI and API: %s   (sign in with the token in %s)\n", d.api.URL(), filepath.Join(dataDir, server.AdminTokenFile))

	if err := d.setup(ctx); err != nil {
		return &d.res, err
	}
	rep, err := d.pushAndFollow(ctx, "1.0.0")
	if err != nil {
		return &d.res, err
	}
	d.summary(rep)

	load := traffic.Start(traffic.Options{Clients: 4, Pause: 5 * time.Millisecond, Timeout: 5 * time.Second, URLs: []string{
		fmt.Sprintf("http://127.0.0.1:%d/", d.opts.Ports.Staging), fmt.Sprintf("http://127.0.0.1:%d/", d.opts.Ports.Production)}})
	rep, err = d.pushAndFollow(ctx, "1.1.0")
	d.res.Requests, d.res.Failed = load.Stop()
	if err != nil {
		return &d.res, err
	}
	d.summary(rep)
	d.step("Zero-downtime update: %d requests to staging and production during the rollout, %d failed", d.res.Requests, d.res.Failed)
	if d.res.Failed > 0 {
		return &d.res, fmt.Errorf("%d of %d requests failed during the update: %s", d.res.Failed, d.res.Requests, load.LastError())
	}
	for _, r := range d.res.Runs {
		if !strings.Contains(r.ProductionAfter, "version="+r.Version) {
			return &d.res, fmt.Errorf("after run %d production answers %q, not version %s", r.ID, r.ProductionAfter, r.Version)
		}
	}
	fmt.Fprintf(d.out, "\nStaging:    http://127.0.0.1:%d/\nProduction: http://127.0.0.1:%d/\nWeb UI:     %s/runs\n", d.opts.Ports.Staging, d.opts.Ports.Production, d.api.URL())
	if !opts.CI {
		fmt.Fprintln(d.out, "\nServing until Ctrl-C; then the demo removes its containers.")
		<-ctx.Done()
		fmt.Fprintln(d.out)
	}
	return &d.res, nil
}

func (d *demo) step(format string, args ...any) {
	fmt.Fprintf(d.out, "==> "+format+"\n", args...)
}

// setup creates the app, a notice inbox and the working copy of the example.
func (d *demo) setup(ctx context.Context) error {
	d.step("Creating app %s (a hosted git repository, a registry repository, staging and production)", App)
	if err := d.api.Do(ctx, "POST", "/api/v1/apps", map[string]string{"name": App}, nil); err != nil {
		return err
	}
	inbox, closeInbox, err := startInbox(d.out)
	if err != nil {
		return err
	}
	d.closers = append(d.closers, closeInbox)
	if err := d.api.Do(ctx, "PUT", "/api/v1/apps/"+App+"/channels/demo-inbox", map[string]any{"type": "webhook",
		"events": []string{"approval.needed", "run.failed", "deployment.rolled_back"}, "settings": map[string]any{"url": inbox, "secret": "demo"}}, nil); err != nil {
		return err
	}
	fmt.Fprintf(d.out, "    notices go to a webhook channel the demo listens on (%s)\n", inbox)
	fmt.Fprintf(d.out, "    builds run in the sandbox with no Docker access: the image action builds the image itself\n")
	work, err := os.MkdirTemp("", "slipway-demo-work-")
	if err != nil {
		return err
	}
	d.work = work
	err = fs.WalkDir(examples.Hello, "hello", func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		dst := filepath.Join(work, strings.TrimPrefix(p, "hello"))
		if e.IsDir() {
			return os.MkdirAll(dst, 0o755)
		}
		b, err := examples.Hello.ReadFile(p)
		if err != nil {
			return err
		}
		if p == "hello/slipway.yaml" {
			b = []byte(d.withPorts(string(b)))
		}
		return os.WriteFile(dst, b, 0o644)
	})
	if err != nil {
		return err
	}
	// The example is its own module once pushed.
	if err := os.WriteFile(filepath.Join(work, "go.mod"), []byte("module hello\n\ngo 1.22\n"), 0o644); err != nil {
		return err
	}
	if err := d.git("init", "-q", "-b", "main"); err != nil {
		return err
	}
	return nil
}

func (d *demo) withPorts(y string) string {
	return strings.NewReplacer(
		"listener-port: 8081", fmt.Sprintf("listener-port: %d", d.opts.Ports.Staging),
		"test-listener-port: 9081", fmt.Sprintf("test-listener-port: %d", d.opts.Ports.StagingTest),
		"listener-port: 8082", fmt.Sprintf("listener-port: %d", d.opts.Ports.Production),
		"test-listener-port: 9082", fmt.Sprintf("test-listener-port: %d", d.opts.Ports.ProductionTest),
		"http://127.0.0.1:8081/", fmt.Sprintf("http://127.0.0.1:%d/", d.opts.Ports.Staging),
	).Replace(y)
}

func (d *demo) git(args ...string) error {
	cmd := exec.Command("git", args...)
	cmd.Dir = d.work
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=Slipway Demo", "GIT_AUTHOR_EMAIL=demo@slipway.invalid",
		"GIT_COMMITTER_NAME=Slipway Demo", "GIT_COMMITTER_EMAIL=demo@slipway.invalid", "GIT_TERMINAL_PROMPT=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("git %s: %v: %s", args[0], err, bytes.TrimSpace(out))
	}
	return nil
}

// pushAndFollow commits the example at version, pushes it, follows the run,
// approves it and checks what staging and production serve.
func (d *demo) pushAndFollow(ctx context.Context, version string) (RunReport, error) {
	rep := RunReport{Version: version}
	if err := os.WriteFile(filepath.Join(d.work, "VERSION"), []byte(version+"\n"), 0o644); err != nil {
		return rep, err
	}
	if err := d.git("add", "-A"); err != nil {
		return rep, err
	}
	if err := d.git("commit", "-q", "-m", "hello "+version); err != nil {
		return rep, err
	}
	var before []store.Run
	if err := d.api.Do(ctx, "GET", "/api/v1/runs?app="+App, nil, &before); err != nil {
		return rep, err
	}
	d.step("git push: version %s", version)
	remote := strings.Replace(d.api.URL(), "http://", "http://demo:"+d.token+"@", 1) + "/git/" + App + ".git"
	if err := d.git("push", "-q", remote, "main"); err != nil {
		return rep, err
	}
	var run store.Run
	for deadline := time.Now().Add(10 * time.Second); ; {
		var runs []store.Run
		if err := d.api.Do(ctx, "GET", "/api/v1/runs?app="+App, nil, &runs); err != nil {
			return rep, err
		}
		if len(runs) > len(before) {
			run = runs[0]
			break
		}
		if time.Now().After(deadline) {
			return rep, errors.New("the push started no run; see the app's events (slipway app events hello)")
		}
		time.Sleep(50 * time.Millisecond)
	}
	rep.ID = run.ID
	fmt.Fprintf(d.out, "    run %d started by the push (commit %.12s)\n", run.ID, run.Commit)
	detail, err := d.follow(ctx, run.ID, &rep)
	rep.State = detail.State
	rep.Stages = stageTimes(detail)
	if len(detail.Approvals) > 0 {
		rep.Approval = detail.Approvals[len(detail.Approvals)-1]
	}
	rep.StagingAfter = get(d.opts.Ports.Staging)
	rep.ProductionAfter = get(d.opts.Ports.Production)
	d.res.Runs = append(d.res.Runs, rep)
	if err != nil {
		return rep, err
	}
	if detail.State != store.RunSucceeded {
		return rep, fmt.Errorf("run %d %s: %s", run.ID, detail.State, detail.Reason)
	}
	return rep, nil
}

// follow prints each action as it changes state, approves the run when it
// waits, and returns the run's final detail.
func (d *demo) follow(ctx context.Context, id int64, rep *RunReport) (server.RunDetail, error) {
	seen := map[int64]string{}
	approved := false
	spin := []string{"-", "\\", "|", "/"}
	tty := d.tty
	for i := 0; ; i++ {
		var detail server.RunDetail
		if err := d.api.Do(ctx, "GET", fmt.Sprintf("/api/v1/runs/%d", id), nil, &detail); err != nil {
			return detail, err
		}
		for _, a := range detail.Actions {
			if seen[a.ID] == a.State {
				continue
			}
			seen[a.ID] = a.State
			line := fmt.Sprintf("    %-9s %s/%s", a.State, a.Stage, a.Name)
			if a.EndedAt != nil && a.StartedAt != nil {
				line += fmt.Sprintf(" (%.1fs)", a.EndedAt.Sub(*a.StartedAt).Seconds())
			}
			if a.Reason != "" {
				line += ": " + a.Reason
			}
			if tty {
				fmt.Fprint(d.out, "\r\033[K")
			}
			fmt.Fprintln(d.out, line)
		}
		if detail.EndedAt != nil {
			if tty {
				fmt.Fprint(d.out, "\r\033[K")
			}
			return detail, nil
		}
		if detail.State == store.RunWaiting && !approved && waitingApproval(detail) {
			rep.StagingAtApproval = get(d.opts.Ports.Staging)
			rep.ProductionAtApproval = get(d.opts.Ports.Production)
			fmt.Fprintf(d.out, "    staging now answers:    %s\n", rep.StagingAtApproval)
			fmt.Fprintf(d.out, "    production answers:     %s\n", rep.ProductionAtApproval)
			d.step("Approving run %d (as a person would: slipway approve %d)", id, id)
			if err := d.api.Do(ctx, "POST", fmt.Sprintf("/api/v1/runs/%d/approve", id), map[string]string{"comment": "staging checked by slipway demo"}, nil); err != nil {
				return detail, err
			}
			approved = true
		}
		if tty {
			fmt.Fprintf(d.out, "\r%s run %d %s", spin[i%len(spin)], id, detail.State)
		}
		select {
		case <-ctx.Done():
			return detail, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func waitingApproval(d server.RunDetail) bool {
	for _, a := range d.Actions {
		if a.Type == "approval" && a.State == store.RunWaiting {
			return true
		}
	}
	return false
}

func stageTimes(d server.RunDetail) []StageTime {
	var out []StageTime
	idx := map[string]int{}
	starts := map[string]time.Time{}
	ends := map[string]time.Time{}
	for _, a := range d.Actions {
		if _, ok := idx[a.Stage]; !ok {
			idx[a.Stage] = len(out)
			out = append(out, StageTime{Name: a.Stage})
		}
		if a.StartedAt != nil && (starts[a.Stage].IsZero() || a.StartedAt.Before(starts[a.Stage])) {
			starts[a.Stage] = *a.StartedAt
		}
		if a.EndedAt != nil && a.EndedAt.After(ends[a.Stage]) {
			ends[a.Stage] = *a.EndedAt
		}
	}
	for name, i := range idx {
		if !starts[name].IsZero() && !ends[name].IsZero() {
			out[i].Duration = ends[name].Sub(starts[name])
		}
	}
	return out
}

func (d *demo) summary(rep RunReport) {
	d.step("Run %d (version %s) %s", rep.ID, rep.Version, rep.State)
	var total time.Duration
	for _, s := range rep.Stages {
		fmt.Fprintf(d.out, "    %-12s %6.1fs\n", s.Name, s.Duration.Seconds())
		total += s.Duration
	}
	fmt.Fprintf(d.out, "    %-12s %6.1fs (the approval stage includes the wait for the approver)\n", "total", total.Seconds())
	fmt.Fprintf(d.out, "    approved by %s: %q\n", rep.Approval.DecidedBy, rep.Approval.Comment)
	fmt.Fprintf(d.out, "    staging:    %s\n    production: %s\n", rep.StagingAfter, rep.ProductionAfter)
}

// get returns what a listener answers, or why it did not.
func get(port int) string {
	c := &http.Client{Timeout: 3 * time.Second}
	resp, err := c.Get(fmt.Sprintf("http://127.0.0.1:%d/", port))
	if err != nil {
		return "(no answer: " + err.Error() + ")"
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return fmt.Sprintf("(%s) %s", resp.Status, bytes.TrimSpace(b))
	}
	return string(bytes.TrimSpace(b))
}

// cleanup deletes the demo's services and waits until their tasks are
// gone; only tasks this server reported are touched, never another
// installation's.
func (d *demo) cleanup() {
	d.step("Removing the demo's services, containers and images")
	for _, c := range d.closers {
		c()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if d.work != "" {
		os.RemoveAll(d.work)
	}
	var svcs []store.Service
	_ = d.api.Do(ctx, "GET", "/api/v1/services?app="+App, nil, &svcs)
	ids := map[string]bool{}
	for _, s := range svcs {
		path := fmt.Sprintf("/api/v1/apps/%s/envs/%s/services/%s", s.App, s.Env, s.Name)
		var detail server.ServiceDetail
		if d.api.Do(ctx, "GET", path, nil, &detail) == nil {
			for _, t := range detail.Tasks {
				ids[t.ID] = true
			}
		}
		_ = d.api.Do(ctx, "DELETE", path, nil, nil)
	}
	if len(ids) == 0 {
		return
	}
	rt, err := task.NewRuntime(ctx)
	if err != nil {
		return
	}
	left := func() []string {
		tasks, err := rt.List(ctx, map[string]string{task.LabelApp: App})
		if err != nil {
			return nil
		}
		var out []string
		for _, t := range tasks {
			if ids[t.ID] {
				out = append(out, t.ID)
			}
		}
		return out
	}
	for len(left()) > 0 && ctx.Err() == nil {
		time.Sleep(250 * time.Millisecond)
	}
	for _, id := range left() { // what did not drain in time goes now
		_ = rt.Stop(context.Background(), id)
	}
}

// startInbox listens for the webhook channel's notices and prints them.
func startInbox(out io.Writer) (string, func(), error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var ev struct{ Event, Title, URL string }
		_ = json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&ev)
		fmt.Fprintf(out, "    notice (%s): %s %s\n", ev.Event, ev.Title, ev.URL)
	})}
	go func() { _ = srv.Serve(ln) }()
	closeInbox := func() {
		// Shutdown waits for a notice being printed, so nothing writes to
		// out once the demo has returned.
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}
	return "http://" + ln.Addr().String() + "/notices", closeInbox, nil
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
