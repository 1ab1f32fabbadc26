// Command bench measures Slipway on this machine. Each benchmark prints one
// JSON line with its figures and a one-line summary on stderr.
//
//	go run ./bench [server-idle-rss|list-p99|push-to-run ...]
//
// list-p99, push-to-run and log-delay measure a server on SQLite and one on
// a PostgreSQL server the bench starts, in the same run.
package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/slipway-dev/slipway/internal/client"
	_ "modernc.org/sqlite"
)

type bench struct {
	name string
	run  func(b *env) (map[string]any, string, error)
	// optIn: run only when named (scale starts 500 containers).
	optIn bool
}

var benches = []bench{
	{name: "server-idle-rss", run: idleRSS},
	{name: "list-p99", run: listP99},
	{name: "push-to-run", run: pushToRun},
	{name: "action-overhead", run: actionOverhead},
	{name: "log-delay", run: logDelay},
	{name: "workflow", run: workflowRun},
	{name: "registry-throughput", run: registryThroughput},
	{name: "blobs", run: blobsS3},
	{name: "lb-vs-nginx", run: lbVsNginx},
	{name: "lb-tls", run: lbTLS},
	{name: "lb-idle", run: lbIdle},
	{name: "deploy-under-load", run: deployUnderLoad},
	{name: "autoscale", run: autoscale},
	{name: "push-to-live", run: pushToLive},
	{name: "chaos-restart", run: chaosRestart},
	{name: "chaos-failover", run: chaosFailover},
	{name: "ui-pages", run: uiPages},
	{name: "scale", run: scale, optIn: true},
}

func main() { os.Exit(runBenches()) }

// runBenches runs the benchmarks and returns the exit code, having stopped
// what they started (the PostgreSQL server) and removed their files.
func runBenches() int {
	defer stopPostgres()
	want := map[string]bool{}
	for _, a := range os.Args[1:] {
		want[a] = true
	}
	tmp, err := os.MkdirTemp("", "slipway-bench-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 1
	}
	defer os.RemoveAll(tmp)
	bin := filepath.Join(tmp, "slipway")
	build := exec.Command("go", "build", "-o", bin, "./cmd/slipway")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench: build slipway:", err)
		return 1
	}
	failed := false
	for _, b := range benches {
		if (len(want) > 0 || b.optIn) && !want[b.name] {
			continue
		}
		settle()
		e := &env{bin: bin, dir: filepath.Join(tmp, b.name)}
		figures, summary, err := b.run(e)
		e.stop()
		if err != nil {
			fmt.Fprintf(os.Stderr, "%s: FAILED: %v\n", b.name, err)
			failed = true
			continue
		}
		figures["benchmark"] = b.name
		line, _ := json.Marshal(figures)
		fmt.Println(string(line))
		fmt.Fprintf(os.Stderr, "%s: %s\n", b.name, summary)
	}
	if failed {
		return 1
	}
	return 0
}

// settle waits, up to 30 s, until the machine is nearly idle, so that work
// one benchmark left behind (the engine deleting a 200 MiB image, dirty
// pages being written back) is not measured by the next one. It also
// collects this process's garbage first: some benchmarks run their
// backend in this process.
func settle() {
	runtime.GC()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); {
		busy, ok := cpuBusy(500 * time.Millisecond)
		if !ok || busy < 0.1 {
			return
		}
	}
	fmt.Fprintln(os.Stderr, "bench: the machine stayed busy for 30 s; measuring anyway")
}

// cpuBusy is the share of all CPUs' time spent not idle over d, from /proc/stat.
func cpuBusy(d time.Duration) (float64, bool) {
	read := func() (idle, total uint64, ok bool) {
		b, err := os.ReadFile("/proc/stat")
		if err != nil {
			return 0, 0, false
		}
		line, _, _ := strings.Cut(string(b), "\n")
		fields := strings.Fields(line)
		if len(fields) < 6 || fields[0] != "cpu" {
			return 0, 0, false
		}
		for i, f := range fields[1:] {
			v, err := strconv.ParseUint(f, 10, 64)
			if err != nil {
				return 0, 0, false
			}
			total += v
			if i == 3 || i == 4 { // idle and iowait
				idle += v
			}
		}
		return idle, total, true
	}
	i0, t0, ok0 := read()
	time.Sleep(d)
	i1, t1, ok1 := read()
	if !ok0 || !ok1 || t1 <= t0 {
		return 0, false
	}
	return 1 - float64(i1-i0)/float64(t1-t0), true
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "bench:", err)
	os.Exit(1)
}

// env is one slipway server process on a free loopback port.
type env struct {
	bin, dir, url, token string
	api                  *client.Client
	cmd                  *exec.Cmd
	afterCleanup         []func() // run by cleanupBench once the containers are gone
	// database is the server's --database, PostgreSQL's URL; SQLite in
	// the data directory when empty.
	database string
	// environ is added to the server's environment; log, when set, is a
	// file its output is appended to.
	environ []string
	log     string
}

func (e *env) start() error {
	addr := strings.TrimPrefix(e.url, "http://") // a restart keeps the address
	if addr == "" {
		addr = freeAddr()
	}
	args := []string{"server", "--addr", addr, "--data", filepath.Join(e.dir, "data")}
	if e.database != "" {
		args = append(args, "--database", e.database)
	}
	e.cmd = exec.Command(e.bin, args...)
	e.cmd.Env = append(os.Environ(), e.environ...)
	if e.log != "" {
		if err := os.MkdirAll(filepath.Dir(e.log), 0o755); err != nil {
			return err
		}
		f, err := os.OpenFile(e.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return err
		}
		defer f.Close() // the server has its own copy once started
		e.cmd.Stdout, e.cmd.Stderr = f, f
	}
	if err := e.cmd.Start(); err != nil {
		return err
	}
	e.url = "http://" + addr
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(e.url + "/healthz"); err == nil {
			resp.Body.Close()
			tok, err := os.ReadFile(filepath.Join(e.dir, "data", "admin.token"))
			e.token = strings.TrimSpace(string(tok))
			e.api = client.New(e.url, e.token)
			return err
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("server did not answer /healthz within 15s")
}

func (e *env) stop() {
	if e.cmd != nil && e.cmd.Process != nil {
		_ = e.cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { e.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			e.cmd.Process.Kill()
		}
		e.cmd = nil
	}
}

func (e *env) get(path string, auth bool) (time.Duration, error) {
	req, _ := http.NewRequest("GET", e.url+path, nil)
	if auth {
		req.Header.Set("Authorization", "Bearer "+e.token)
	}
	start := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	var sink json.RawMessage
	err = json.NewDecoder(resp.Body).Decode(&sink)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		return 0, fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	return time.Since(start), err
}

// post, postJSON and getJSON call the server's API with the admin token;
// body is JSON text.
func (e *env) post(path string, body string) error { return e.postJSON(path, body, nil) }

func (e *env) postJSON(path, body string, out any) error {
	return e.api.Do(context.Background(), "POST", path, json.RawMessage(body), out)
}

func (e *env) getJSON(path string, out any) error {
	return e.api.Do(context.Background(), "GET", path, nil, out)
}

func rssKiB(pid int) (int, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			var kib int
			_, err := fmt.Sscan(strings.TrimSuffix(strings.TrimSpace(v), " kB"), &kib)
			return kib, err
		}
	}
	return 0, fmt.Errorf("no VmRSS")
}

func idleRSS(e *env) (map[string]any, string, error) {
	if err := e.start(); err != nil {
		return nil, "", err
	}
	time.Sleep(3 * time.Second)
	kib, err := rssKiB(e.cmd.Process.Pid)
	if err != nil {
		return nil, "", err
	}
	return map[string]any{"rss_mib": float64(kib) / 1024}, fmt.Sprintf("idle RSS %.1f MiB", float64(kib)/1024), nil
}

func percentile(d []time.Duration, p float64) time.Duration {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[int(float64(len(s)-1)*p)]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// listP99 measures the run list with 100 000 runs in the table, on SQLite
// and on PostgreSQL.
func listP99(e *env) (map[string]any, string, error) {
	return onBoth(e, "list-p99", listP99On, []string{"list_p99_ms", "list_mid_page_p99_ms", "list_p99_vs_healthz_p99"})
}

func listP99On(e *env) (map[string]any, string, error) {
	const rows = 100_000
	if err := e.start(); err != nil {
		return nil, "", err
	}
	if err := e.post("/api/v1/apps", `{"name":"bench"}`); err != nil {
		return nil, "", err
	}
	seedStart := time.Now()
	if e.database != "" {
		if err := seedPostgresRuns(e.database, rows); err != nil {
			return nil, "", err
		}
	} else if err := seedSQLiteRuns(e, rows); err != nil {
		return nil, "", err
	}
	seeded := time.Since(seedStart)
	var page []json.RawMessage
	if err := e.getJSON(fmt.Sprintf("/api/v1/runs?app=bench&limit=50&before=%d", rows/2), &page); err != nil || len(page) != 50 {
		return nil, "", fmt.Errorf("a mid-table page of the seeded runs has %d runs, want 50: %v", len(page), err)
	}
	const n = 2000
	measure := func(path string, auth bool) ([]time.Duration, error) {
		var d []time.Duration
		for i := 0; i < n+100; i++ {
			t, err := e.get(path, auth)
			if err != nil {
				return nil, err
			}
			if i >= 100 { // warm-up
				d = append(d, t)
			}
		}
		return d, nil
	}
	ref, err := measure("/healthz", false)
	if err != nil {
		return nil, "", err
	}
	list, err := measure("/api/v1/runs?app=bench&limit=50", true)
	if err != nil {
		return nil, "", err
	}
	deep, err := measure(fmt.Sprintf("/api/v1/runs?app=bench&limit=50&before=%d", rows/2), true)
	if err != nil {
		return nil, "", err
	}
	f := map[string]any{
		"rows": rows, "requests": n, "seed_s": seeded.Seconds(),
		"healthz_p99_ms": ms(percentile(ref, 0.99)), "list_p50_ms": ms(percentile(list, 0.5)), "list_p99_ms": ms(percentile(list, 0.99)),
		"list_mid_page_p99_ms":    ms(percentile(deep, 0.99)),
		"list_p99_vs_healthz_p99": ms(percentile(list, 0.99)) / ms(percentile(ref, 0.99)),
	}
	return f, fmt.Sprintf("list of 50 from %d runs: p99 %.2f ms (%.1f× the /healthz p99 of %.2f ms); mid-table page p99 %.2f ms",
		rows, f["list_p99_ms"], f["list_p99_vs_healthz_p99"], f["healthz_p99_ms"], f["list_mid_page_p99_ms"]), nil
}

// seedSQLiteRuns inserts rows runs of app bench straight into the server's
// SQLite file in one transaction: the point is reading 100k rows, not
// writing them.
func seedSQLiteRuns(e *env, rows int) error {
	db, err := sql.Open("sqlite", "file:"+filepath.Join(e.dir, "data", "slipway.db")+"?_pragma=busy_timeout(10000)")
	if err != nil {
		return err
	}
	defer db.Close()
	tx, err := db.BeginTx(context.Background(), nil)
	if err != nil {
		return err
	}
	stmt, err := tx.Prepare(`INSERT INTO runs(app, state, trigger, ref, commit_sha, created_at) VALUES ('bench', 'succeeded', 'git-push', 'refs/heads/main', ?, ?)`)
	if err != nil {
		return err
	}
	now := time.Now().UnixMicro()
	for i := 0; i < rows; i++ {
		if _, err := stmt.Exec(fmt.Sprintf("%040x", i), now+int64(i)); err != nil {
			return err
		}
	}
	return tx.Commit()
}

// repo is a working copy that pushes to the bench app on the server.
type repo struct {
	dir, remote string
	env         []string
}

func (r *repo) git(args ...string) error {
	c := exec.Command("git", args...)
	c.Dir = r.dir
	c.Env = r.env
	if out, err := c.CombinedOutput(); err != nil {
		return fmt.Errorf("git %s: %v: %s", args[0], err, out)
	}
	return nil
}

// newRepo creates the app "bench" and a working copy holding files.
func newRepo(e *env, files map[string]string) (*repo, error) {
	if err := e.post("/api/v1/apps", `{"name":"bench"}`); err != nil {
		return nil, err
	}
	r := &repo{dir: filepath.Join(e.dir, "work"), remote: strings.Replace(e.url, "http://", "http://b:"+e.token+"@", 1) + "/git/bench.git",
		env: append(os.Environ(), "HOME="+e.dir, "GIT_CONFIG_NOSYSTEM=1", "GIT_AUTHOR_NAME=b", "GIT_AUTHOR_EMAIL=b@x", "GIT_COMMITTER_NAME=b", "GIT_COMMITTER_EMAIL=b@x")}
	os.MkdirAll(r.dir, 0o755)
	if err := r.git("init", "-q", "-b", "main"); err != nil {
		return nil, err
	}
	for name, content := range files {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(r.dir, name)), 0o755); err != nil {
			return nil, err
		}
		if err := os.WriteFile(filepath.Join(r.dir, name), []byte(content), 0o644); err != nil {
			return nil, err
		}
	}
	return r, nil
}

func (r *repo) commitAndPush(msg string) error {
	if err := r.git("add", "-A"); err != nil {
		return err
	}
	if err := r.git("commit", "-q", "--allow-empty", "-m", msg); err != nil {
		return err
	}
	return r.git("push", "-q", r.remote, "main")
}

// pushToRun times pushes on SQLite and on PostgreSQL.
func pushToRun(e *env) (map[string]any, string, error) {
	return onBoth(e, "push-to-run", pushToRunOn, []string{"after_push_p50_ms", "after_push_max_ms"})
}

func pushToRunOn(e *env) (map[string]any, string, error) {
	if err := e.start(); err != nil {
		return nil, "", err
	}
	r, err := newRepo(e, map[string]string{"slipway.yaml": "on:\n  push:\n    branches: [main]\nstages:\n  - name: B\n    actions: [{name: a, type: build}]\n"})
	if err != nil {
		return nil, "", err
	}
	work, git, remote := r.dir, r.git, r.remote
	const pushes = 30
	var lat, pushDur []time.Duration
	for i := 0; i < pushes; i++ {
		os.WriteFile(filepath.Join(work, "n.txt"), []byte(fmt.Sprint(i)), 0o644)
		if err := git("add", "-A"); err != nil {
			return nil, "", err
		}
		if err := git("commit", "-q", "-m", fmt.Sprint(i)); err != nil {
			return nil, "", err
		}
		start := time.Now()
		if err := git("push", "-q", remote, "main"); err != nil {
			return nil, "", err
		}
		returned := time.Now()
		pushDur = append(pushDur, returned.Sub(start))
		for {
			n, err := runCount(e)
			if err != nil {
				return nil, "", err
			}
			if n == i+1 {
				break
			}
			if time.Since(returned) > 10*time.Second {
				return nil, "", fmt.Errorf("push %d: no run after 10s", i)
			}
			time.Sleep(time.Millisecond)
		}
		lat = append(lat, time.Since(returned))
	}
	f := map[string]any{"pushes": pushes, "after_push_p50_ms": ms(percentile(lat, 0.5)), "after_push_max_ms": ms(percentile(lat, 1)),
		"git_push_p50_ms": ms(percentile(pushDur, 0.5)), "goal_ms": 200}
	return f, fmt.Sprintf("run recorded %.1f ms (p50) / %.1f ms (max) after git push returned (goal ≤ 200 ms); git push itself took %.0f ms p50",
		f["after_push_p50_ms"], f["after_push_max_ms"], f["git_push_p50_ms"]), nil
}

func runCount(e *env) (int, error) {
	var runs []json.RawMessage
	err := e.getJSON("/api/v1/runs?app=bench&limit=500", &runs)
	return len(runs), err
}
