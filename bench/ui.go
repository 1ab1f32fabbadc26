package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	ctr "github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/slipway-dev/slipway/internal/container"
	"github.com/slipway-dev/slipway/internal/task"
)

// uiPages measures the web console's heaviest pages (issue 31): with
// 100 000 runs in history, the runs list, a run whose action wrote 100 000
// log lines and that action's page, and the services list and the page of
// a service with 200 tasks, each fetched by a signed-in browser session
// (the cookie and CSRF token of the real sign-in form); and the time from
// a build printing a line to the line reaching its open action page
// through the page's live stream.
//
// The API holds a service's desired count to 100, so the 200 tasks are a
// real service's after a blue/green deployment: 100 green tasks serving
// and the 100 blue ones kept for the termination wait (30 minutes here),
// all containers of the FROM-scratch test web app behind one listener
// with the load balancer's default health checks (every 5 s). A smaller
// count for a quick run: SLIPWAY_BENCH_UI_TASKS (even, 2 to 200).
func uiPages(e *env) (map[string]any, string, error) {
	tasks := 200
	if v := os.Getenv("SLIPWAY_BENCH_UI_TASKS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 2 || n > 200 || n%2 != 0 {
			return nil, "", fmt.Errorf("SLIPWAY_BENCH_UI_TASKS=%q: want an even number of tasks, 2 to 200", v)
		}
		tasks = n
	}
	const (
		runs     = 100_000
		logLines = 100_000
		requests = 200
		warmUp   = 10
	)
	if err := e.start(); err != nil {
		return nil, "", err
	}
	defer cleanupBench(e)
	f := map[string]any{"runs": runs, "log_lines": logLines, "service_tasks": tasks, "requests": requests,
		"goal_page_p99_ms": 50, "goal_log_delay_p99_ms": 250}
	step := func(what string) func() {
		fmt.Fprintf(os.Stderr, "  ui-pages: %s\n", what)
		start := time.Now()
		return func() { fmt.Fprintf(os.Stderr, "    %.1f s\n", time.Since(start).Seconds()) }
	}

	// 1. A real build whose one action prints 100 000 lines (run 1).
	done := step(fmt.Sprintf("a build printing %d log lines", logLines))
	r, err := newRepo(e, map[string]string{
		"slipway.yaml":  "on:\n  push:\n    branches: [main]\nstages:\n  - name: Build\n    actions: [{name: compile, type: build}]\n",
		"buildspec.yml": "version: 0.2\nphases:\n  build:\n    commands:\n      - sh ./build.sh\n",
		// Lines of about 70 characters, a coloured one every tenth, as a
		// compiler's or a test runner's output; printf is the shell's own.
		"build.sh": fmt.Sprintf(`i=1
while [ $i -le %[1]d ]; do
  if [ $((i %% 10)) -eq 0 ]; then
    printf '\033[32mok\033[0m  example.com/shop/internal/pkg%%03d\t%%d.%%03ds\n' $((i %% 997)) $((i %% 7)) $((i %% 1000))
  else
    printf 'compiling example.com/shop/internal/pkg%%03d/file%%05d.go (step %%d of %[1]d)\n' $((i %% 997)) $i $i
  fi
  i=$((i + 1))
done
`, logLines),
	})
	if err != nil {
		return nil, "", err
	}
	if err := r.commitAndPush("100k lines"); err != nil {
		return nil, "", err
	}
	logRun, err := waitRunDone(e, 1, 3*time.Minute)
	if err != nil {
		return nil, "", err
	}
	if len(logRun.Actions) != 1 {
		return nil, "", fmt.Errorf("run 1 has %d actions, want 1", len(logRun.Actions))
	}
	actionID := logRun.Actions[0].ID
	f["log_run_s"] = logRun.EndedAt.Sub(logRun.CreatedAt).Seconds()
	done()

	// 2. 100 000 runs in history, as list-p99 has them, but written while
	// the server is stopped: the running server holds no lock on its
	// SQLite files (they are dropped when it sets their mode after its
	// migrations), so the seeder, closing, takes itself for the last
	// connection and deletes the WAL and SHM files under the server, whose
	// reads then fail now and then with "disk I/O error (522)".
	done = step(fmt.Sprintf("seeding %d runs", runs))
	e.stop()
	if err := seedSQLiteRuns(e, runs); err != nil {
		return nil, "", err
	}
	if err := e.start(); err != nil {
		return nil, "", err
	}
	done()

	// 3. A service with 200 tasks.
	done = step(fmt.Sprintf("a service of %d tasks (blue/green, blue kept)", tasks))
	svcStart := time.Now()
	ws, err := uiService(e, tasks)
	if err != nil {
		return nil, "", err
	}
	f["service_setup_s"] = time.Since(svcStart).Seconds()
	done()

	// 4. The pages, one signed-in session, one request at a time.
	c, err := signinUI(e)
	if err != nil {
		return nil, "", err
	}
	runPage := fmt.Sprintf("/runs/%d", 1)
	actionPage := fmt.Sprintf("/runs/%d/actions/%d", 1, actionID)
	servicePage := "/services/bench/staging/" + ws.service()
	// The pages are checked to show what the bench made before timing.
	checks := []struct{ path, want string }{
		{"/runs", fmt.Sprintf(`href="/runs/%d"`, runs+1)},
		{"/runs?app=bench", fmt.Sprintf(`href="/runs/%d"`, runs+1)},
		{runPage, fmt.Sprintf(`href="%s"`, actionPage)},
		{actionPage, fmt.Sprintf(`(step %d of %d)`, logLines-1, logLines)},
		{"/services", `href="` + servicePage + `"`},
		{servicePage, ""},
	}
	for _, ch := range checks {
		body, err := c.page(ch.path)
		if err != nil {
			return nil, "", err
		}
		if !strings.Contains(body, ch.want) {
			return nil, "", fmt.Errorf("GET %s: the page lacks %s", ch.path, ch.want)
		}
		if ch.path == servicePage {
			if n := strings.Count(body, "<tr"); n < tasks {
				return nil, "", fmt.Errorf("GET %s: %d table rows, want at least %d tasks", ch.path, n, tasks)
			}
		}
	}
	pages := []struct{ key, path string }{
		{"healthz", "/healthz"}, // the reference: the server's cheapest answer
		{"runs", "/runs"},
		{"runs_app", "/runs?app=bench"},
		{"run_100k_lines", runPage},
		{"action_100k_lines", actionPage},
		{"services", "/services"},
		{fmt.Sprintf("service_%d_tasks", tasks), servicePage},
	}
	f["load_before"] = loadAvg()
	worst, worstKey := 0.0, ""
	var summary []string
	for _, p := range pages {
		done = step(fmt.Sprintf("GET %s ×%d", p.path, warmUp+requests))
		var lat []time.Duration
		var size int64
		for i := 0; i < warmUp+requests; i++ {
			t, n, err := c.timeGet(p.path)
			if err != nil {
				return nil, "", err
			}
			if i >= warmUp {
				lat = append(lat, t)
			}
			size = n
		}
		done()
		if p.path == servicePage {
			// The reference for the service page: the engine's answer to the
			// list of the service's containers that the page asks for.
			ref, n, err := engineList(ws.service(), warmUp+requests)
			if err != nil {
				return nil, "", err
			}
			f["engine_list_containers"] = n
			f["engine_list_p50_ms"], f["engine_list_p99_ms"] = ms(percentile(ref[warmUp:], 0.5)), ms(percentile(ref[warmUp:], 0.99))
		}
		p50, p99 := ms(percentile(lat, 0.5)), ms(percentile(lat, 0.99))
		f[p.key+"_p50_ms"], f[p.key+"_p99_ms"], f[p.key+"_kib"] = p50, p99, float64(size)/1024
		if p.key == "healthz" {
			continue
		}
		if p99 > worst {
			worst, worstKey = p99, p.key
		}
		summary = append(summary, fmt.Sprintf("%s %.1f/%.1f", p.key, p50, p99))
		if p.path == servicePage {
			summary = append(summary, fmt.Sprintf("(its engine list of %d containers %.1f/%.1f)", f["engine_list_containers"], f["engine_list_p50_ms"], f["engine_list_p99_ms"]))
		}
	}
	f["load_after"] = loadAvg()
	f["worst_page_p99_ms"], f["worst_page"] = worst, worstKey

	// 5. A line printed by a build → the line on its open action page.
	done = step("log delay to an open action page")
	delays, err := pageLogDelay(e, r, c)
	if err != nil {
		return nil, "", err
	}
	done()
	f["log_delay_lines"] = len(delays)
	f["log_delay_p50_ms"], f["log_delay_p99_ms"], f["log_delay_max_ms"] = ms(percentile(delays, 0.5)), ms(percentile(delays, 0.99)), ms(percentile(delays, 1))

	return f, fmt.Sprintf("pages p50/p99 ms with %d runs (goal p99 ≤ 50): %s; worst %s %.1f ms; log line → open action page p50 %.1f ms, p99 %.1f ms (goal ≤ 250 ms); load %s → %s",
		runs, strings.Join(summary, ", "), worstKey, worst, f["log_delay_p50_ms"], f["log_delay_p99_ms"], f["load_before"], f["load_after"]), nil
}

// uiRun is what the bench reads of a run.
type uiRun struct {
	ID        int        `json:"id"`
	State     string     `json:"state"`
	CreatedAt time.Time  `json:"created_at"`
	EndedAt   *time.Time `json:"ended_at"`
	Actions   []struct {
		ID        int        `json:"id"`
		State     string     `json:"state"`
		StartedAt *time.Time `json:"started_at"`
	} `json:"actions"`
}

// waitRunDone waits until run id has succeeded.
func waitRunDone(e *env, id int, timeout time.Duration) (uiRun, error) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		var d uiRun
		if err := e.getJSON(fmt.Sprintf("/api/v1/runs/%d", id), &d); err != nil {
			return d, err
		}
		if d.EndedAt != nil {
			if d.State != "succeeded" {
				return d, fmt.Errorf("run %d %s", id, d.State)
			}
			return d, nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return uiRun{}, fmt.Errorf("run %d did not end within %s", id, timeout)
}

// uiService makes service web of app bench run tasks tasks: half of them
// as its desired count, then a blue/green deployment of a new revision
// that keeps blue for 30 minutes, so the other half are the new ones.
func uiService(e *env, tasks int) (*webService, error) {
	image, err := buildWebImage(e.dir)
	if err != nil {
		return nil, err
	}
	ws := &webService{e: e, image: image, cpu: 64, memory: 32, defaultChecks: true}
	e.afterCleanup = append(e.afterCleanup, ws.close)
	if err := ws.create(strings.TrimPrefix(freeAddr(), "127.0.0.1:")); err != nil {
		return nil, err
	}
	path := "/api/v1/apps/bench/envs/staging/services/" + ws.service()
	if err := e.api.Do(context.Background(), "PATCH", path, map[string]int{"desired_count": tasks / 2}, nil); err != nil {
		return nil, err
	}
	if err := waitHealthyCount(e, ws.service(), tasks/2, 4*time.Minute); err != nil {
		return nil, err
	}
	td, err := ws.register("1")
	if err != nil {
		return nil, err
	}
	body := fmt.Sprintf(`{"task_definition":%q,"strategy":"blue-green","config":"CodeDeployDefault.ECSAllAtOnce","settings":{"termination_wait":"30m","circuit_breaker":true,"rollback":true}}`, td)
	var d struct {
		ID int `json:"id"`
	}
	if err := e.postJSON(path+"/deployments", body, &d); err != nil {
		return nil, err
	}
	if _, err := e.waitDeployment(d.ID); err != nil {
		return nil, err
	}
	var v scaleView
	if err := e.getJSON(path, &v); err != nil {
		return nil, err
	}
	running := 0
	for _, t := range v.Tasks {
		if t.Status == "RUNNING" {
			running++
		}
	}
	if running != tasks {
		return nil, fmt.Errorf("service %s has %d running tasks of %d after its deployment, want %d", ws.service(), running, len(v.Tasks), tasks)
	}
	return ws, nil
}

// waitHealthyCount waits until the service list says service has n
// healthy tasks.
func waitHealthyCount(e *env, service string, n int, timeout time.Duration) error {
	start := time.Now()
	last := start
	for {
		var list []struct {
			Name    string `json:"name"`
			Healthy int    `json:"healthy_count"`
		}
		if err := e.getJSON("/api/v1/services?app=bench&env=staging", &list); err != nil {
			return err
		}
		healthy := 0
		for _, s := range list {
			if s.Name == service {
				healthy = s.Healthy
			}
		}
		if healthy >= n {
			return nil
		}
		if time.Since(start) > timeout {
			return fmt.Errorf("service %s: %d of %d tasks healthy after %s", service, healthy, n, timeout)
		}
		if time.Since(last) > 10*time.Second {
			last = time.Now()
			fmt.Fprintf(os.Stderr, "    %d/%d healthy, %.0f s\n", healthy, n, time.Since(start).Seconds())
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// engineList times n lists of service's containers (its tasks' and their
// namespace holders'), asked of the engine as the service page asks, and
// returns the times and how many containers the last list had.
func engineList(service string, n int) ([]time.Duration, int, error) {
	eng, err := container.Connect(context.Background())
	if err != nil {
		return nil, 0, err
	}
	f := filters.NewArgs(filters.Arg("label", task.LabelManaged+"=1"), filters.Arg("label", task.LabelApp+"=bench"),
		filters.Arg("label", task.LabelEnv+"=staging"), filters.Arg("label", task.LabelService+"="+service))
	var d []time.Duration
	count := 0
	for range n {
		start := time.Now()
		cs, err := eng.Client().ContainerList(context.Background(), ctr.ListOptions{All: true, Filters: f})
		if err != nil {
			return nil, 0, err
		}
		d = append(d, time.Since(start))
		count = len(cs)
	}
	return d, count, nil
}

// uiClient is a browser's session on the web console: it keeps the
// session cookie and does not follow redirects.
type uiClient struct {
	base string
	c    *http.Client
}

var (
	uiCSRF   = regexp.MustCompile(`name="csrf" value="([^"]+)"`)
	uiStream = regexp.MustCompile(`data-stream="([^"]+)"`)
	uiLine   = regexp.MustCompile(`<span class="lt">([0-9]{19})</span>`)
)

// signinUI signs in as the admin through the sign-in form: its GET sets
// the form's cookie and CSRF field, the POST checks them and the token.
func signinUI(e *env) (*uiClient, error) {
	jar, err := cookiejar.New(nil)
	if err != nil {
		return nil, err
	}
	c := &uiClient{base: e.url, c: &http.Client{Jar: jar, Timeout: time.Minute,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
	form, err := c.page("/signin")
	if err != nil {
		return nil, err
	}
	m := uiCSRF.FindStringSubmatch(form)
	if m == nil {
		return nil, fmt.Errorf("no CSRF field on /signin")
	}
	resp, err := c.c.PostForm(e.url+"/signin", url.Values{"csrf": {m[1]}, "token": {e.token}})
	if err != nil {
		return nil, err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/apps" {
		return nil, fmt.Errorf("sign in: %s, to %q", resp.Status, resp.Header.Get("Location"))
	}
	if _, err := c.page("/apps"); err != nil {
		return nil, fmt.Errorf("after signing in: %w", err)
	}
	return c, nil
}

// page GETs path and returns the body of a 200 answer.
func (c *uiClient) page(path string) (string, error) {
	resp, err := c.c.Get(c.base + path)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("GET %s: %s (to %q)", path, resp.Status, resp.Header.Get("Location"))
	}
	return string(b), err
}

// timeGet times GET path until its whole body is read.
func (c *uiClient) timeGet(path string) (time.Duration, int64, error) {
	start := time.Now()
	resp, err := c.c.Get(c.base + path)
	if err != nil {
		return 0, 0, err
	}
	n, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	d := time.Since(start)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("GET %s: %s (to %q)", path, resp.Status, resp.Header.Get("Location"))
	}
	return d, n, err
}

// pageLogDelay pushes a build that prints its clock every 20 ms (as
// log-delay's), opens its action's page as soon as the action runs,
// follows the page's live stream (its data-stream URL) and returns, for
// each line the stream brought, the time from printed to received.
func pageLogDelay(e *env, r *repo, c *uiClient) ([]time.Duration, error) {
	var newest []struct {
		ID int `json:"id"`
	}
	if err := e.getJSON("/api/v1/runs?app=bench&limit=1", &newest); err != nil || len(newest) != 1 {
		return nil, fmt.Errorf("the newest run: %v", err)
	}
	if err := os.WriteFile(r.dir+"/build.sh", []byte("for i in $(seq 200); do date +%s%N; sleep 0.02; done\n"), 0o644); err != nil {
		return nil, err
	}
	if err := r.commitAndPush("clock"); err != nil {
		return nil, err
	}
	id := newest[0].ID + 1
	var run uiRun
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("run %d's action did not start within a minute", id)
		}
		if err := e.getJSON(fmt.Sprintf("/api/v1/runs/%d", id), &run); err != nil {
			continue // not recorded yet
		}
		if len(run.Actions) == 1 && run.Actions[0].StartedAt != nil {
			break
		}
	}
	page, err := c.page(fmt.Sprintf("/runs/%d/actions/%d", id, run.Actions[0].ID))
	if err != nil {
		return nil, err
	}
	m := uiStream.FindStringSubmatch(page)
	if m == nil {
		return nil, fmt.Errorf("run %d's action page has no live stream", id)
	}
	req, _ := http.NewRequest("GET", c.base+strings.ReplaceAll(m[1], "&amp;", "&"), nil)
	req.Header.Set("Accept", "text/event-stream")
	stream := &http.Client{Jar: c.c.Jar} // no timeout: the stream ends with the action
	resp, err := stream.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", m[1], resp.Status)
	}
	var delays []time.Duration
	event := ""
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if name, ok := strings.CutPrefix(line, "event: "); ok {
			event = name
			continue
		}
		data, ok := strings.CutPrefix(line, "data: ")
		if !ok {
			continue
		}
		received := time.Now()
		if event == "end" {
			break
		}
		if event != "line" {
			continue
		}
		var ev struct {
			HTML string `json:"html"`
		}
		if json.Unmarshal([]byte(data), &ev) != nil {
			continue
		}
		lm := uiLine.FindStringSubmatch(ev.HTML)
		if lm == nil {
			continue // the runner's own lines
		}
		ns, _ := strconv.ParseInt(lm[1], 10, 64)
		delays = append(delays, received.Sub(time.Unix(0, ns)))
	}
	if len(delays) < 150 {
		return nil, fmt.Errorf("only %d timed lines reached the page", len(delays))
	}
	if _, err := waitRunDone(e, id, time.Minute); err != nil {
		return nil, err
	}
	return delays, nil
}
