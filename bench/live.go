package main

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/slipway-dev/slipway/examples"
	"github.com/slipway-dev/slipway/internal/testtool/kubecluster"
)

// pushToLive pushes examples/hello (build → image → blue/green staging)
// once to warm the caches, then times a second push until staging serves
// the new version, phase by phase: with staging on the local Docker
// engine, then, where the Kubernetes test cluster can run (root, the
// binaries of tools/kube/build.sh), with staging in a namespace of a
// single-node cluster the bench starts, in the same run.
func pushToLive(e *env) (map[string]any, string, error) {
	if err := e.start(); err != nil {
		return nil, "", err
	}
	defer cleanupBench(e)
	f, summary, err := liveOn(e, "bench", nil)
	if err != nil {
		return nil, "", err
	}
	if err := kubecluster.Installed(kubecluster.Options{}); err != nil || os.Geteuid() != 0 {
		f["kubernetes"] = fmt.Sprintf("not measured: %v (root: %t)", err, os.Geteuid() == 0)
		return f, summary + "; Kubernetes not measured (its test cluster cannot run here)", nil
	}
	fmt.Fprintln(os.Stderr, "  starting a single-node Kubernetes cluster for staging")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	c, err := kubecluster.Start(ctx, kubecluster.Options{})
	if err != nil {
		return nil, "", fmt.Errorf("start the Kubernetes cluster: %w", err)
	}
	defer c.Close()
	kf, ksummary, err := liveOn(e, "benchk", func() error {
		if err := c.CreateNamespace(ctx, "bench"); err != nil {
			return err
		}
		if err := c.AllowInsecureRegistry(strings.TrimPrefix(e.url, "http://")); err != nil {
			return err
		}
		kubeconfig, err := os.ReadFile(c.Kubeconfig)
		if err != nil {
			return err
		}
		return e.api.Do(ctx, "PUT", "/api/v1/apps/benchk/envs/staging/runtime", map[string]string{"kind": "kubernetes", "kubeconfig": string(kubeconfig), "namespace": "bench"}, nil)
	})
	if err != nil {
		return nil, "", fmt.Errorf("on Kubernetes: %w", err)
	}
	f["kubernetes"] = kf
	return f, "Docker: " + summary + "\n  Kubernetes: " + ksummary, nil
}

// liveOn measures push → live for a new app; setup, when given, runs once
// the app exists (to give its staging another runtime).
func liveOn(e *env, app string, setup func() error) (map[string]any, string, error) {
	if err := e.post("/api/v1/apps", fmt.Sprintf(`{"name":%q}`, app)); err != nil {
		return nil, "", err
	}
	if setup != nil {
		if err := setup(); err != nil {
			return nil, "", err
		}
	}
	port, testPort := strings.TrimPrefix(freeAddr(), "127.0.0.1:"), strings.TrimPrefix(freeAddr(), "127.0.0.1:")
	work := filepath.Join(e.dir, "work-"+app)
	if err := copyExample(work, port, testPort); err != nil {
		return nil, "", err
	}
	git := func(args ...string) error {
		cmd := exec.Command("git", args...)
		cmd.Dir = work
		cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=bench", "GIT_AUTHOR_EMAIL=b@x", "GIT_COMMITTER_NAME=bench", "GIT_COMMITTER_EMAIL=b@x")
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("git %v: %v %s", args, err, out)
		}
		return nil
	}
	remote := strings.Replace(e.url, "http://", "http://bench:"+e.token+"@", 1) + "/git/" + app + ".git"
	push := func(version string) error {
		if err := os.WriteFile(filepath.Join(work, "VERSION"), []byte(version+"\n"), 0o644); err != nil {
			return err
		}
		if err := git("add", "-A"); err != nil {
			return err
		}
		if err := git("commit", "-qm", version); err != nil {
			return err
		}
		return git("push", "-q", remote, "main")
	}
	if err := git("init", "-q", "-b", "main"); err != nil {
		return nil, "", err
	}
	fmt.Fprintln(os.Stderr, "  warm-up push (fills the Go build cache and the image layer cache, creates the service)")
	if err := push("1.0.0"); err != nil {
		return nil, "", err
	}
	first, err := e.waitRunLong(e.appRun(app))
	if err != nil {
		return nil, "", fmt.Errorf("warm-up run: %w", err)
	}

	url := "http://127.0.0.1:" + port + "/"
	live := make(chan time.Time, 1)
	stopPoll := make(chan struct{})
	go func() {
		c := &http.Client{Timeout: 2 * time.Second}
		for {
			select {
			case <-stopPoll:
				return
			default:
			}
			if resp, err := c.Get(url); err == nil {
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if strings.Contains(string(b), "version=2.0.0") {
					live <- time.Now()
					return
				}
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	t0 := time.Now()
	if err := push("2.0.0"); err != nil {
		close(stopPoll)
		return nil, "", err
	}
	run, err := e.waitRunLong(first.ID + 1)
	if err != nil {
		close(stopPoll)
		return nil, "", err
	}
	var tLive time.Time
	select {
	case tLive = <-live:
	case <-time.After(30 * time.Second):
		close(stopPoll)
		return nil, "", fmt.Errorf("staging never served version 2.0.0")
	}
	ph, err := e.phases(run)
	if err != nil {
		return nil, "", err
	}
	total := tLive.Sub(t0)
	ph["trigger"] = run.CreatedAt.Sub(t0)
	overhead := total - ph["build_commands"] - ph["image_build"] - ph["health_wait"]
	f := map[string]any{"total_s": total.Seconds(), "overhead_s": overhead.Seconds(), "goal": "overhead ≤ 0.5 s, total ≤ 15 s"}
	order := []string{"trigger", "source", "build_commands", "build_other", "image_build", "push", "deploy", "health_wait", "traffic_switch", "live"}
	ph["live"] = tLive.Sub(ph.at("switched"))
	var listed time.Duration
	for _, k := range order {
		listed += ph[k]
	}
	ph["between_actions"] = total - listed // scheduling and artifact handling between actions
	order = append(order, "between_actions")
	var parts []string
	for _, k := range order {
		f[k+"_s"] = ph[k].Seconds()
		part := fmt.Sprintf("%s %.2fs", strings.ReplaceAll(k, "_", " "), ph[k].Seconds())
		if _, ok := ph["task_start"]; ok && k == "health_wait" {
			f["task_start_s"], f["checks_s"] = ph["task_start"].Seconds(), ph["checks"].Seconds()
			part += fmt.Sprintf(" (tasks started %.2fs, then registered and checked healthy %.2fs)", ph["task_start"].Seconds(), ph["checks"].Seconds())
		}
		parts = append(parts, part)
	}
	return f, fmt.Sprintf("push → live %.1f s (goal ≤ 15 s); Slipway's own overhead %.2f s (goal ≤ 0.5 s) = total − build commands − image build − health wait; %s",
		total.Seconds(), overhead.Seconds(), strings.Join(parts, ", ")), nil
}

// copyExample writes examples/hello as the pipeline up to staging, with
// its own go.mod and the given listener ports.
func copyExample(work, port, testPort string) error {
	err := fs.WalkDir(examples.Hello, "hello", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		dst := filepath.Join(work, strings.TrimPrefix(p, "hello"))
		if d.IsDir() {
			return os.MkdirAll(dst, 0o755)
		}
		b, err := examples.Hello.ReadFile(p)
		if err != nil {
			return err
		}
		if p == "hello/slipway.yaml" {
			y := string(b)
			y = y[:strings.Index(y, "  - name: Approval")] // push to live: staging is the target
			y = strings.NewReplacer("test-listener-port: 9081", "test-listener-port: "+testPort, "listener-port: 8081", "listener-port: "+port,
				"termination-wait: 1m", "termination-wait: 1s").Replace(y)
			b = []byte(y)
		}
		return os.WriteFile(dst, b, 0o644)
	})
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(work, "go.mod"), []byte("module hello\n\ngo 1.22\n"), 0o644)
}

type fullRun struct {
	ID        int        `json:"id"`
	App       string     `json:"app"`
	State     string     `json:"state"`
	Reason    string     `json:"reason"`
	CreatedAt time.Time  `json:"created_at"`
	EndedAt   *time.Time `json:"ended_at"`
	Actions   []struct {
		ID        int        `json:"id"`
		Stage     string     `json:"stage"`
		Type      string     `json:"type"`
		StartedAt *time.Time `json:"started_at"`
		EndedAt   *time.Time `json:"ended_at"`
	} `json:"actions"`
}

// appRun waits (up to a minute) for a run of app that is not done and
// returns its id (0: none came).
func (e *env) appRun(app string) int {
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		var runs []fullRun
		if err := e.getJSON("/api/v1/runs?app="+app, &runs); err == nil {
			for _, r := range runs {
				if r.EndedAt == nil {
					return r.ID
				}
			}
		}
	}
	return 0
}

func (e *env) waitRunLong(id int) (fullRun, error) {
	deadline := time.Now().Add(5 * time.Minute)
	for time.Now().Before(deadline) {
		var r fullRun
		if err := e.getJSON(fmt.Sprintf("/api/v1/runs/%d", id), &r); err == nil && r.EndedAt != nil {
			if r.State != "succeeded" {
				return r, fmt.Errorf("run %d %s: %s", id, r.State, r.Reason)
			}
			return r, nil
		}
		time.Sleep(10 * time.Millisecond)
	}
	return fullRun{}, fmt.Errorf("run %d did not end in 5 minutes", id)
}

// phaseTimes holds durations and, under "@name", instants.
type phaseTimes map[string]time.Duration

var epoch = time.Unix(0, 0)

func (p phaseTimes) at(name string) time.Time { return epoch.Add(p["@"+name]) }

var phaseLine = regexp.MustCompile(`^\[slipway\] Phase \w+ \w+ \(exit \d+\) in (\S+)$`)

// phases splits a run's time using its action records, its log lines
// (buildspec phase times, image build and push) and its deployment's timeline.
func (e *env) phases(run fullRun) (phaseTimes, error) {
	var lines []struct {
		ActionID int       `json:"action_id"`
		At       time.Time `json:"at"`
		Line     string    `json:"line"`
	}
	if err := e.getJSON(fmt.Sprintf("/api/v1/runs/%d/logs", run.ID), &lines); err != nil {
		return nil, err
	}
	ph := phaseTimes{}
	var buildID, imageID int
	var buildStart, buildEnd, deployStart time.Time
	for _, a := range run.Actions {
		switch a.Type {
		case "test", "build":
			buildID, buildStart, buildEnd = a.ID, *a.StartedAt, *a.EndedAt
			ph["source"] = a.StartedAt.Sub(run.CreatedAt)
		case "image":
			imageID = a.ID
		case "deploy":
			deployStart = *a.StartedAt
		}
	}
	var building, pushing, pushed time.Time
	for _, l := range lines {
		switch {
		case l.ActionID == buildID:
			if m := phaseLine.FindStringSubmatch(l.Line); m != nil {
				if d, err := time.ParseDuration(m[1]); err == nil {
					ph["build_commands"] += d
				}
			}
		case l.ActionID == imageID && strings.HasPrefix(l.Line, "[slipway] Building "):
			building = l.At
		case l.ActionID == imageID && strings.HasPrefix(l.Line, "[slipway] Pushing ") && pushing.IsZero():
			pushing = l.At
		case l.ActionID == imageID && strings.HasPrefix(l.Line, "[slipway] Pushed "):
			pushed = l.At
		}
	}
	ph["build_other"] = buildEnd.Sub(buildStart) - ph["build_commands"]
	ph["image_build"] = pushing.Sub(building)
	ph["push"] = pushed.Sub(pushing)
	var deps []struct {
		ID int `json:"id"`
	}
	if err := e.getJSON("/api/v1/deployments?app="+run.App+"&env=staging&service=web", &deps); err != nil || len(deps) == 0 {
		return nil, fmt.Errorf("no deployment found: %v", err)
	}
	var d struct {
		Events []struct {
			At      time.Time `json:"at"`
			Message string    `json:"message"`
		} `json:"events"`
	}
	if err := e.getJSON(fmt.Sprintf("/api/v1/deployments/%d", deps[0].ID), &d); err != nil {
		return nil, err
	}
	var starting, healthy, switched time.Time
	for _, ev := range d.Events {
		switch {
		case strings.HasPrefix(ev.Message, "starting ") && starting.IsZero():
			starting = ev.At
		case strings.HasPrefix(ev.Message, "green is healthy"):
			healthy = ev.At
		case strings.HasPrefix(ev.Message, "production traffic: green 100%"):
			switched = ev.At
		}
	}
	if starting.IsZero() || healthy.IsZero() || switched.IsZero() || building.IsZero() || pushed.IsZero() {
		return nil, fmt.Errorf("incomplete timeline: build %v, pushed %v, starting %v, healthy %v, switched %v", building, pushed, starting, healthy, switched)
	}
	ph["deploy"] = starting.Sub(deployStart)
	ph["health_wait"] = healthy.Sub(starting)
	// The health wait split: green's tasks starting on the engine, then
	// their registration with the load balancer, its checks and the
	// deployment seeing them pass.
	var svc struct {
		Events []struct {
			At      time.Time `json:"at"`
			Message string    `json:"message"`
		} `json:"events"`
	}
	if err := e.getJSON("/api/v1/apps/"+run.App+"/envs/staging/services/web", &svc); err == nil {
		var started time.Time
		for _, ev := range svc.Events {
			if strings.Contains(ev.Message, "started 1 task") && ev.At.After(starting) && ev.At.Before(healthy) && ev.At.After(started) {
				started = ev.At
			}
		}
		if !started.IsZero() {
			ph["task_start"] = started.Sub(starting)
			ph["checks"] = healthy.Sub(started)
		}
	}
	ph["traffic_switch"] = switched.Sub(healthy)
	ph["@switched"] = switched.Sub(epoch)
	return ph, nil
}
