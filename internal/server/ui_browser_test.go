package server

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/slipway-dev/slipway/internal/notify/notifytest"
)

// browser starts Debian's chromium headless for one test, with extra
// allocator options (flags, environment) when a test needs them.
func browser(t *testing.T, extra ...chromedp.ExecAllocatorOption) context.Context {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatal("chromium is missing: install Debian's chromium package (.ci/run does)")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(path), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true), chromedp.WindowSize(1280, 900))
	opts = append(opts, extra...)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

// shots keeps screenshots under the test's temp dir, and also under
// $SLIPWAY_SCREENSHOTS when set, so a person can look at them.
type shots struct {
	t   *testing.T
	ctx context.Context
	dir string
}

func (s shots) take(name string) {
	s.t.Helper()
	png, err := chromedp.Run(s.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		s.t.Fatalf("screenshot %s: %v", name, err)
	}
	for _, dir := range []string{s.dir, os.Getenv("SLIPWAY_SCREENSHOTS")} {
		if dir != "" {
			_ = os.MkdirAll(dir, 0o755)
			_ = os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644)
		}
	}
}

// waitJS polls a JavaScript condition in the page.
func waitJS(t *testing.T, ctx context.Context, what, expr string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](expr))
		if err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			html, _ := chromedp.Run(ctx, chromedp.Evaluate[string]("document.body ? document.body.innerText : ''"))
			t.Fatalf("page never showed %s (%v); page text:\n%s", what, err, html)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestIntegrationWebUI(t *testing.T) {
	dir := t.TempDir()
	cleanupRuntime(t, "web", dir) // registered first: runs after the server stopped, so nothing restarts the proxy
	e := newEnvWith(t, Config{DataDir: dir, ProxyBinary: slipwayBinary(t)})
	e.createApp("web")
	ctx := browser(t)
	shot := shots{t: t, ctx: ctx, dir: filepath.Join(t.TempDir(), "screenshots")}

	// Sign in: a signed-out visit is sent to the form, and back after it.
	if err := chromedp.Do(ctx, chromedp.Navigate(e.URL+"/runs"), chromedp.WaitVisible(chromedp.CSS("#token"))); err != nil {
		t.Fatal(err)
	}
	shot.take("01-signin")
	if err := chromedp.Do(ctx, chromedp.SendKeys(chromedp.CSS("#token"), "slw_wrong"), chromedp.Submit(chromedp.CSS("#token"))); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "the refusal", `document.querySelector(".error") && document.querySelector(".error").innerText.includes("not valid")`, 10*time.Second)
	if err := chromedp.Do(ctx, chromedp.Navigate(e.URL+"/runs"), chromedp.WaitVisible(chromedp.CSS("#token")),
		chromedp.SendKeys(chromedp.CSS("#token"), e.Admin), chromedp.Submit(chromedp.CSS("#token"))); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "the runs page", `location.pathname === "/runs" && document.querySelector("h1").innerText === "Runs"`, 10*time.Second)

	// A run turns green live, waits for approval, and is approved from the page.
	e.pushPipeline("web", "main", map[string]string{"slipway.yaml": manualOnly + `stages:
  - name: Build
    actions:
      - {name: compile, type: invoke, command: "sleep 3; echo compiled"}
  - name: Gate
    actions:
      - {name: release, type: approval, message: "Check staging first"}
  - name: Ship
    actions:
      - {name: ship, type: invoke, command: "echo shipped"}
`})
	id := e.startRun("web", "main")
	if err := chromedp.Do(ctx, chromedp.Navigate(fmt.Sprintf("%s/runs/%d", e.URL, id)), chromedp.WaitVisible(chromedp.CSS("#run-live"))); err != nil {
		t.Fatal(err)
	}
	first, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById("action-Build-compile").dataset.state`))
	if first == "succeeded" {
		t.Fatalf("premise: the build should still be running when the page loads, got %q", first)
	}
	shot.take("02-run-running")
	waitJS(t, ctx, "Build/compile succeeded without a reload", `document.getElementById("action-Build-compile").dataset.state === "succeeded" && Number(document.body.dataset.live) > 0`, 20*time.Second)
	waitJS(t, ctx, "the approval panel", `!!document.querySelector("#approval-panel form.approval")`, 20*time.Second)
	waitJS(t, ctx, "the build's log line", `document.getElementById("logs").innerText.includes("Build/compile | compiled")`, 10*time.Second)
	shot.take("03-run-waiting")
	// Keyboard: the comment box and the buttons are reachable and labelled.
	label, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector("label[for=comment]").innerText`))
	if !strings.HasPrefix(label, "Comment") {
		t.Fatalf("comment box label %q", label)
	}
	if err := chromedp.Do(ctx, chromedp.Focus(chromedp.CSS("#comment")), chromedp.SendKeys(chromedp.CSS("#comment"), "staging looks good"),
		chromedp.Click(chromedp.CSS(`button[value="approve"]`))); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "the run succeeded", `document.querySelector("#run-state .state-succeeded") !== null`, 30*time.Second)
	waitJS(t, ctx, "the approval audit", `document.getElementById("run-live").innerText.includes("staging looks good")`, 5*time.Second)
	shot.take("04-run-succeeded")
	_, run := e.call("GET", fmt.Sprintf("/api/v1/runs/%d", id), e.Admin, nil)
	if ap := run["approvals"].([]any)[0].(map[string]any); ap["decided_by"] != "admin" || ap["comment"] != "staging looks good" {
		t.Fatalf("approval made in the page: %v", ap)
	}

	// Phone width: no sideways scrolling.
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(390, 844), chromedp.Reload(), chromedp.WaitVisible(chromedp.CSS("#run-live"))); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "the run page to fit 390 px", `document.documentElement.scrollWidth <= 391`, 5*time.Second)
	shot.take("05-run-phone")

	// A blue/green deployment: the traffic split moves live.
	image := webAppImage(t)
	rev1 := e.registerTaskDef(webTaskDef("web-svc", image, "v1"))
	if code, body := e.call("POST", "/api/v1/apps/web/envs/staging/services", e.Admin, map[string]any{"name": "site", "task_definition": "web-svc:" + strconv.Itoa(rev1),
		"load_balancer": map[string]any{"container_name": "web", "container_port": 8080, "listener_port": freePort(t), "test_listener_port": freePort(t), "health_check_path": "/health",
			"health_check_interval": "1s", "health_check_timeout": "500ms", "healthy_threshold": 2}}); code != 201 {
		t.Fatalf("create service: %d %v", code, body)
	}
	e.waitService("web", "staging", "site", 60*time.Second, "running", func(d map[string]any) bool { return runningOf(d, rev1) == 1 })
	rev2 := e.registerTaskDef(webTaskDef("web-svc", image, "v2"))
	code, dep := e.call("POST", "/api/v1/apps/web/envs/staging/services/site/deployments", e.Admin, map[string]any{"task_definition": "web-svc:" + strconv.Itoa(rev2),
		"strategy": "blue-green", "config": "Linear50PercentEvery4Seconds"})
	if code != 201 {
		t.Fatalf("deploy: %d %v", code, dep)
	}
	depID := int(dep["id"].(float64))
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(1280, 900), chromedp.Navigate(fmt.Sprintf("%s/deployments/%d", e.URL, depID)), chromedp.WaitVisible(chromedp.CSS("#deployment-live"))); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "green at 50%", `document.getElementById("green-weight").innerText === "50"`, 60*time.Second)
	width, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector(".traffic .green").style.width`))
	if width != "50%" {
		t.Fatalf("green bar width %q at 50%%", width)
	}
	shot.take("06-deployment-50")
	waitJS(t, ctx, "green at 100%", `document.getElementById("green-weight").innerText === "100"`, 30*time.Second)
	waitJS(t, ctx, "the rollback button", `!!Array.from(document.querySelectorAll("button")).find(b => b.innerText.startsWith("Roll back"))`, 30*time.Second)
	shot.take("07-deployment-100")
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(390, 844), chromedp.Reload(), chromedp.WaitVisible(chromedp.CSS("#deployment-live"))); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "the deployment page to fit 390 px", `document.documentElement.scrollWidth <= 391`, 5*time.Second)
	shot.take("08-deployment-phone")

	// The service page shows its task sets as the load balancer sees them.
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(1280, 900), chromedp.Navigate(e.URL+"/services/web/staging/site"), chromedp.WaitVisible(chromedp.CSS("#service-live"))); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "green's task set healthy with all traffic", `Array.from(document.querySelectorAll("#service-live tr")).some(r => r.innerText.includes("web-svc:`+strconv.Itoa(rev2)+`") && r.innerText.replace(/\s+/g, " ").includes("1 1 100%"))`, 15*time.Second)
	waitJS(t, ctx, "green's task a healthy target in tg2", `Array.from(document.querySelectorAll("#service-live tr")).some(r => r.innerText.includes("web-svc:`+strconv.Itoa(rev2)+`") && r.innerText.replace(/\s+/g, " ").includes("tg2 healthy"))`, 15*time.Second)
	// Its task definition gives no container health check: the page says so rather than UNKNOWN.
	waitJS(t, ctx, "a task without a container health check shown as such", `Array.from(document.querySelectorAll("#service-live tr")).some(r => r.innerText.replace(/\s+/g, " ").includes("RUNNING no check web-svc:`+strconv.Itoa(rev2)+` tg2 healthy")) && !document.getElementById("service-live").innerText.includes("UNKNOWN")`, 5*time.Second)

	// Auto scaling is turned on, refused with the field named, and off again from the service page.
	if err := chromedp.Do(ctx, chromedp.SetValue(chromedp.CSS(`input[name="max_count"]`), "2"), chromedp.SetValue(chromedp.CSS(`input[name="target_requests_per_second"]`), "500"),
		chromedp.SetValue(chromedp.CSS(`input[name="target_cpu_percent"]`), "70"), chromedp.Click(chromedp.CSS(`button[value="save"]`))); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "auto scaling on", `document.querySelector(".flash") && document.querySelector(".flash").innerText.includes("Auto scaling keeps 1 to 2 tasks at 500 requests/s per task, CPU 70%.") && document.querySelector("#service-live").innerText.includes("1–2 tasks at 500 requests/s per task, CPU 70%")`, 10*time.Second)
	shot.take("09-service-autoscaling")
	if err := chromedp.Do(ctx, chromedp.Navigate(e.URL+"/services"), chromedp.WaitVisible(chromedp.CSS("main h1"))); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "the services list naming the auto scaling", `Array.from(document.querySelectorAll("main tr")).some(r => r.innerText.includes("site") && r.innerText.includes("1–2 at 500 requests/s per task, CPU 70%"))`, 10*time.Second)
	if err := chromedp.Do(ctx, chromedp.Navigate(e.URL+"/services/web/staging/site"), chromedp.WaitVisible(chromedp.CSS("form.autoscaling"))); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[chromedp.Void](`document.querySelector('input[name="max_count"]').value = "0"; document.querySelector("form.autoscaling").submit()`)); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "the refusal naming the form's boxes", `document.querySelector(".error") && document.querySelector(".error").innerText.includes("“Most tasks” must be “Fewest tasks” (1) to 100")`, 10*time.Second)
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`button[value="off"]`))); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "auto scaling off", `document.querySelector(".flash") && document.querySelector(".flash").innerText.includes("Auto scaling is off") && !document.querySelector("#service-live").innerText.includes("Auto scaling")`, 10*time.Second)

	// The other pages render for a signed-in admin.
	for _, p := range []string{"/apps", "/services", "/services/web/staging/site", "/deployments", "/registry", "/secrets", "/notifications", "/tokens"} {
		if err := chromedp.Do(ctx, chromedp.EmulateViewport(1280, 900), chromedp.Navigate(e.URL+p), chromedp.WaitVisible(chromedp.CSS("main h1"))); err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		waitJS(t, ctx, p+" without an error", `!document.querySelector("main .error") && document.title.endsWith("Slipway")`, 5*time.Second)
		shot.take("09-page" + strings.ReplaceAll(p, "/", "-"))
	}
	// At a phone's width every page fits, and no table hides columns
	// behind a sideways scroll: rows stack as labelled cards.
	for _, p := range []string{"/apps", "/runs", fmt.Sprintf("/runs/%d", id), "/services", "/services/web/staging/site", "/deployments", fmt.Sprintf("/deployments/%d", depID), "/registry", "/secrets", "/notifications", "/tokens"} {
		if err := chromedp.Do(ctx, chromedp.EmulateViewport(390, 844), chromedp.Navigate(e.URL+p), chromedp.WaitVisible(chromedp.CSS("main h1"))); err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		shot.take("10-phone" + strings.ReplaceAll(p, "/", "-"))
		waitJS(t, ctx, p+" to fit 390 px", `document.documentElement.scrollWidth <= 391`, 5*time.Second)
		wide, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`Array.from(document.querySelectorAll("main table")).filter(t => t.scrollWidth > t.parentElement.clientWidth + 1).map(t => t.scrollWidth + ">" + t.parentElement.clientWidth).join(",")`))
		if wide != "" {
			t.Errorf("%s: tables wider than the page: %s", p, wide)
		}
	}

	// Times read as relative ("3 min ago"), the absolute time on hover.
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(1280, 900), chromedp.Navigate(e.URL+"/services/web/staging/site"), chromedp.WaitVisible(chromedp.CSS("#service-live"))); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "relative times with the absolute one as title", `Array.from(document.querySelectorAll("time[data-rel]")).length > 0 && Array.from(document.querySelectorAll("time[data-rel]")).every(el => / UTC$/.test(el.title) && /(ago|just now)$/.test(el.textContent))`, 5*time.Second)
	// Dark mode follows the system setting.
	if dark, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`getComputedStyle(document.body).backgroundColor`)); dark == "rgb(13, 17, 23)" {
		t.Fatal("the page is dark without the system asking for it")
	}
	if err := chromedp.Do(ctx, chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := cdp.Call(ctx, tg, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: "dark"}}})
		return err
	})); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "the dark colours", `getComputedStyle(document.body).backgroundColor === "rgb(13, 17, 23)" && getComputedStyle(document.querySelector("main table")).backgroundColor === "rgb(21, 27, 35)"`, 5*time.Second)
	shot.take("11-service-dark")

	// Revoking a token asks first (and warns when it is one's own); so do
	// stop, roll back and replace tasks, by the same form attribute.
	confirmTok := e.token("confirm-me", "viewer")
	dialogs := make(chan string, 4)
	var accept atomic.Bool
	if err := chromedp.Listen(ctx, func(ev any) {
		if d, ok := ev.(*page.EventJavascriptDialogOpening); ok {
			select {
			case dialogs <- d.Message:
			default:
			}
		}
	}); err != nil {
		t.Fatal(err)
	}
	answer := func() string {
		t.Helper()
		select {
		case msg := <-dialogs:
			if err := chromedp.Do(ctx, chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
				_, err := cdp.Call(ctx, tg, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: accept.Load()})
				return err
			})); err != nil {
				t.Fatal(err)
			}
			return msg
		case <-time.After(10 * time.Second):
			t.Fatal("no confirmation was asked")
		}
		return ""
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(e.URL+"/tokens"), chromedp.WaitVisible(chromedp.CSS(`button[aria-label="Revoke token confirm-me"]`))); err != nil {
		t.Fatal(err)
	}
	go chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`button[aria-label="Revoke token confirm-me"]`)))
	if msg := answer(); msg != "Revoke token confirm-me? Everything using it is refused from now on." {
		t.Fatalf("the revoke confirmation: %q", msg)
	}
	time.Sleep(500 * time.Millisecond)
	if code, _ := e.call("GET", "/api/v1/whoami", confirmTok, nil); code != 200 {
		t.Fatalf("the token was revoked although the confirmation was dismissed: %d", code)
	}
	accept.Store(true)
	go chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`button[aria-label="Revoke token confirm-me"]`)))
	answer()
	waitJS(t, ctx, "the token revoked", `!document.querySelector('button[aria-label="Revoke token confirm-me"]')`, 10*time.Second)
	if code, _ := e.call("GET", "/api/v1/whoami", confirmTok, nil); code != 401 {
		t.Fatalf("the token answered %d after a confirmed revoke", code)
	}
	waitJS(t, ctx, "a warning on revoking one's own token", `document.querySelector('button[aria-label="Revoke token admin"]').form.dataset.confirm.startsWith("This is the token you are signed in with: revoking it signs you out at once.")`, 5*time.Second)

	// Sign out ends the session.
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(".signout button"))); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "the sign-in form", `location.pathname === "/signin"`, 10*time.Second)
	if err := chromedp.Do(ctx, chromedp.Navigate(e.URL+"/apps")); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "a redirect to sign in", `location.pathname === "/signin"`, 10*time.Second)
	t.Logf("screenshots in %s", shot.dir)
}

// dialogs answers the page's confirmation dialogs: each one's message is
// returned by answer, accepted or dismissed as accept says.
type dialogs struct {
	t      *testing.T
	ctx    context.Context
	msgs   chan string
	accept atomic.Bool
}

func listenDialogs(t *testing.T, ctx context.Context) *dialogs {
	d := &dialogs{t: t, ctx: ctx, msgs: make(chan string, 4)}
	if err := chromedp.Listen(ctx, func(ev any) {
		if o, ok := ev.(*page.EventJavascriptDialogOpening); ok {
			select {
			case d.msgs <- o.Message:
			default:
			}
		}
	}); err != nil {
		t.Fatal(err)
	}
	return d
}

// clickAndAnswer clicks sel, which asks for a confirmation, and answers it.
func (d *dialogs) clickAndAnswer(sel string, accept bool) string {
	d.t.Helper()
	d.accept.Store(accept)
	go chromedp.Do(d.ctx, chromedp.Click(chromedp.CSS(sel)))
	select {
	case msg := <-d.msgs:
		if err := chromedp.Do(d.ctx, chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			_, err := cdp.Call(ctx, tg, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: d.accept.Load()})
			return err
		})); err != nil {
			d.t.Fatal(err)
		}
		return msg
	case <-time.After(10 * time.Second):
		d.t.Fatal("no confirmation was asked")
	}
	return ""
}

// The run console: an action's card opens its log, which follows the end
// while the action runs (not while the reader has scrolled up), shows
// colours, links lines, folds sections, searches, shows timestamps on
// demand and offers the raw text; a failed card holds its last lines; a
// run is retried, cancelled (after a confirmation) and re-run from the page.
func TestIntegrationWebUIRunConsole(t *testing.T) {
	e := newEnv(t)
	e.createApp("console")
	sha := e.pushPipeline("console", "main", map[string]string{"slipway.yaml": manualOnly + `stages:
  - name: Build
    actions:
      - name: compile
        type: invoke
        command: |
          echo "::group::Fetch tools"
          echo "inside the section"
          echo "::endgroup::"
          printf '\033[31mred\033[0m <script>window.xss=1</script><img src=x onerror="window.xss=2">\n'
          for i in $(seq 1 150); do echo "line $i"; sleep 0.05; done
          exit 1
  - name: Ship
    actions:
      - {name: ship, type: invoke, command: "echo shipped"}
`})
	ctx := browser(t)
	shot := shots{t: t, ctx: ctx, dir: filepath.Join(t.TempDir(), "screenshots")}
	if err := chromedp.Do(ctx, chromedp.Navigate(e.URL+"/signin"), chromedp.WaitVisible(chromedp.CSS("#token")),
		chromedp.SendKeys(chromedp.CSS("#token"), e.Admin), chromedp.Submit(chromedp.CSS("#token"))); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "the apps page", `location.pathname === "/apps"`, 10*time.Second)
	id := e.startRun("console", "main")
	runPage := fmt.Sprintf("%s/runs/%d", e.URL, id)
	if err := chromedp.Do(ctx, chromedp.Navigate(runPage), chromedp.WaitVisible(chromedp.CSS("#run-live"))); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "Build/compile running", `document.getElementById("action-Build-compile") && document.getElementById("action-Build-compile").dataset.state === "running"`, 30*time.Second)
	aid := e.actionID(id, "Build", "compile")
	actionPage := fmt.Sprintf("/runs/%d/actions/%d", id, aid)

	// A click anywhere on the card (here on its duration) opens the log.
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS("#action-Build-compile .adur"))); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "the action's page", `location.pathname === "`+actionPage+`" && !!document.getElementById("action-log")`, 10*time.Second)
	// Following the end while it runs.
	lines := `document.querySelectorAll("#action-log .ll").length`
	bottom := `(window.innerHeight + window.scrollY >= document.documentElement.scrollHeight - 30)`
	waitJS(t, ctx, "lines streaming in, the page following them", lines+` > 40 && document.documentElement.scrollHeight > window.innerHeight + 100 && `+bottom+` && document.getElementById("action-log").dataset.follow === "true" && document.getElementById("log-follow").innerText.includes("Following")`, 20*time.Second)
	shot.take("20-action-running")
	// Scrolled up: it stops following, and lines still come.
	n, err := chromedp.Run(ctx, chromedp.Evaluate[int](`window.scrollTo(0, 0); `+lines))
	if err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "more lines while the reader stays where they scrolled", fmt.Sprintf(`%s > %d + 10 && window.scrollY === 0 && document.getElementById("action-log").dataset.follow === "false" && !document.getElementById("log-end").hidden`, lines, n), 10*time.Second)
	shot.take("21-action-scrolled-up")
	// Back at the bottom: it follows again.
	n, err = chromedp.Run(ctx, chromedp.Evaluate[int](`window.scrollTo(0, document.documentElement.scrollHeight); `+lines))
	if err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "following again from the bottom", fmt.Sprintf(`%s > %d + 10 && %s && document.getElementById("action-log").dataset.follow === "true"`, lines, n, bottom), 10*time.Second)
	waitJS(t, ctx, "the action failed, said live", `document.getElementById("action-log").hasAttribute("data-ended") && document.querySelector("#action-head .state-failed") !== null && document.body.innerText.includes("line 150")`, 30*time.Second)
	e.waitRun(id, 30*time.Second)

	// The finished log, as a link to one of its lines opens it.
	lineID := func(text string) string {
		t.Helper()
		v, err := chromedp.Run(ctx, chromedp.Evaluate[string](`Array.from(document.querySelectorAll("#action-log .ll")).find(l => l.querySelector(".lt").textContent === `+strconv.Quote(text)+`).id`))
		if err != nil {
			t.Fatalf("no line %q: %v", text, err)
		}
		return v
	}
	l5 := lineID("line 5")
	if err := chromedp.Do(ctx, chromedp.Navigate(runPage), chromedp.Navigate(e.URL+actionPage+"#"+l5), chromedp.WaitVisible(chromedp.CSS("#action-log"))); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "the linked line targeted and highlighted", `document.querySelector(":target") && document.querySelector(":target").id === "`+l5+`" && getComputedStyle(document.querySelector(":target")).backgroundColor === "rgb(59, 46, 0)"`, 5*time.Second)
	waitJS(t, ctx, "no stream for a finished action, and the colours as classes", `!document.getElementById("action-log").hasAttribute("data-stream") && Array.from(document.querySelectorAll("#action-log .ansi-red")).some(s => s.textContent === "red")`, 5*time.Second)
	// Markup in the log is text: nothing ran, nothing was inserted.
	waitJS(t, ctx, "markup shown as text", `window.xss === undefined && document.querySelectorAll("#action-log script, #action-log img").length === 0 && document.getElementById("action-log").innerText.includes('<script>window.xss=1</script><img src=x onerror="window.xss=2">')`, 5*time.Second)
	shot.take("22-action-failed-linked-line")
	// The section is folded; a link into it opens it.
	waitJS(t, ctx, "the section folded", `(() => { const d = document.querySelector("#action-log details.lg"); return d && !d.open && d.querySelector("summary").innerText.includes("Fetch tools"); })()`, 5*time.Second)
	inside := lineID("inside the section")
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[chromedp.Void](`location.hash = "#`+inside+`"`)); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "the section opened at the linked line", `document.querySelector("#action-log details.lg").open && document.querySelector(":target").id === "`+inside+`"`, 5*time.Second)
	// Timestamps on demand.
	waitJS(t, ctx, "timestamps hidden", `getComputedStyle(document.querySelector("#action-log .ts")).display === "none"`, 5*time.Second)
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS("#log-ts"))); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "timestamps shown", `getComputedStyle(document.querySelector("#action-log .ts")).display !== "none" && /^\d\d:\d\d:\d\d\.\d{3}$/.test(document.querySelector("#action-log .ts").textContent)`, 5*time.Second)
	shot.take("23-action-timestamps")
	// Search keeps the matching lines and marks the matches.
	if err := chromedp.Do(ctx, chromedp.SendKeys(chromedp.CSS("#log-search"), "line 14")); err != nil {
		t.Fatal(err)
	}
	visible := `Array.from(document.querySelectorAll("#action-log .ll")).filter(l => l.offsetParent !== null)`
	waitJS(t, ctx, "eleven matching lines, only those shown", `document.getElementById("log-matches").innerText === "11 matching lines" && document.querySelectorAll("#action-log mark.hit").length === 11 && `+visible+`.length === 11 && `+visible+`.every(l => l.innerText.includes("line 14"))`, 5*time.Second)
	if err := chromedp.Do(ctx, chromedp.SendKeys(chromedp.CSS("#log-search"), "\r")); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "Enter goes to the first match", `document.querySelector("#action-log .ll.current .lt").textContent === "line 14"`, 5*time.Second)
	shot.take("24-action-search")
	if err := chromedp.Do(ctx, chromedp.SendKeys(chromedp.CSS("#log-search"), "\x1b")); err != nil { // Escape clears
		t.Fatal(err)
	}
	waitJS(t, ctx, "the whole log back", `document.querySelectorAll("#action-log mark").length === 0 && `+visible+`.length > 150`, 5*time.Second)
	// The raw log is the text as written.
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[chromedp.Void](`fetch(document.querySelector("a[download]").href).then(r => r.text()).then(t => { window.rawLog = t; })`)); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "the raw log with its escapes", `typeof window.rawLog === "string" && window.rawLog.includes("\u001b[31mred\u001b[0m <script>") && window.rawLog.includes("::group::Fetch tools\n")`, 5*time.Second)
	// At a phone's width the page fits.
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(390, 844), chromedp.Reload(), chromedp.WaitVisible(chromedp.CSS("#action-log"))); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "the action page to fit 390 px", `document.documentElement.scrollWidth <= 391`, 5*time.Second)
	shot.take("25-action-phone")

	// The failed card holds its last lines, folded until opened.
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(1280, 900), chromedp.Navigate(runPage), chromedp.WaitVisible(chromedp.CSS("#run-live"))); err != nil {
		t.Fatal(err)
	}
	tail := fmt.Sprintf(`document.getElementById("tail-%d")`, aid)
	waitJS(t, ctx, "the failed card's folded tail", tail+` && !`+tail+`.open && `+tail+`.querySelectorAll(".ll").length === 10`, 5*time.Second)
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(fmt.Sprintf("#tail-%d summary", aid)))); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "the tail open, ending with the failure", tail+`.open && `+tail+`.innerText.includes("line 150") && `+tail+`.innerText.includes("exit 1") && location.pathname === "/runs/`+strconv.Itoa(id)+`"`, 5*time.Second)
	shot.take("26-run-failed-tail")

	// Retry the failed run: it runs again, and can now be cancelled.
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`#run-controls form[action$="/retry"] button`))); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "the retry said and the run going again", `document.querySelector(".flash") && document.querySelector(".flash").innerText.includes("is queued again") && !!document.querySelector('#run-controls form[action$="/cancel"]') && document.querySelector("#run-state .state-failed") === null`, 20*time.Second)
	e.waitRunState(id, "running", 30*time.Second)
	shot.take("27-run-retried")
	// Cancel asks first; dismissed, the run goes on.
	d := listenDialogs(t, ctx)
	if msg := d.clickAndAnswer(`#run-controls form[action$="/cancel"] button`, false); msg != fmt.Sprintf("Cancel run #%d of console? Actions running now are stopped, and the stages after them do not run.", id) {
		t.Fatalf("the cancel confirmation: %q", msg)
	}
	time.Sleep(500 * time.Millisecond)
	if _, run := e.call("GET", fmt.Sprintf("/api/v1/runs/%d", id), e.Admin, nil); run["ended_at"] != nil {
		t.Fatalf("the run ended although the confirmation was dismissed: %v", run["state"])
	}
	d.clickAndAnswer(`#run-controls form[action$="/cancel"] button`, true)
	waitJS(t, ctx, "the run cancelled", `document.querySelector(".flash") && document.querySelector(".flash").innerText.includes("is being cancelled") && document.querySelector("#run-state .state-cancelled") !== null`, 30*time.Second)
	waitJS(t, ctx, "Re-run offered once the run ended", `!!document.querySelector('#run-controls form[action$="/rerun"]') && !document.querySelector('#run-controls form[action$="/cancel"]')`, 10*time.Second)
	shot.take("28-run-cancelled")

	// Re-run: a new run of the same commit.
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`#run-controls form[action$="/rerun"] button`))); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "the new run's page", `location.pathname !== "/runs/`+strconv.Itoa(id)+`" && document.querySelector(".flash") && document.querySelector(".flash").innerText.includes("re-runs run #`+strconv.Itoa(id)+`")`, 10*time.Second)
	shot.take("29-rerun")
	path, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`location.pathname`))
	next, err := strconv.Atoi(strings.TrimPrefix(path, "/runs/"))
	if err != nil {
		t.Fatalf("re-run page %s", path)
	}
	if _, nr := e.call("GET", fmt.Sprintf("/api/v1/runs/%d", next), e.Admin, nil); nr["commit"] != sha {
		t.Fatalf("the re-run's commit: %v", nr)
	}
	e.call("POST", fmt.Sprintf("/api/v1/runs/%d/cancel", next), e.Admin, nil)
	e.waitRun(next, 30*time.Second)

	// A long log opens at its end; earlier lines load on demand above, the
	// reader's place kept, and a link to a line not shown loads back to it.
	e.createApp("longlog")
	e.pushPipeline("longlog", "main", map[string]string{"slipway.yaml": manualOnly + `stages:
  - name: Build
    actions:
      - {name: chatty, type: invoke, command: "seq 1 4500 | sed 's/^/row /'"}
`})
	lid := e.startRun("longlog", "main")
	e.waitRun(lid, 60*time.Second)
	longPage := fmt.Sprintf("%s/runs/%d/actions/%d", e.URL, lid, e.actionID(lid, "Build", "chatty"))
	if err := chromedp.Do(ctx, chromedp.Navigate(longPage), chromedp.WaitVisible(chromedp.CSS("#log-earlier"))); err != nil {
		t.Fatal(err)
	}
	// The log holds the 4500 rows and the build's own lines around them.
	c := `(+document.getElementById("log-earlier").dataset.count)`
	waitJS(t, ctx, "the last lines, numbered as in the raw log", fmt.Sprintf(`%[1]s > 4500 && %[2]s === %[3]d && document.querySelector("#action-log .ll").id === "L" + (%[1]s - %[3]d + 1) && document.getElementById("log-omitted-text").innerText.includes("The first " + (%[1]s - %[3]d) + " of " + %[1]s + " lines") && document.getElementById("action-log").innerText.includes("row 4500")`, c, lines, pageLines), 5*time.Second)
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[chromedp.Void](`window.count = `+c+`; document.getElementById("L4000").scrollIntoView(); window.before = document.getElementById("L4000").getBoundingClientRect().top;`+
		// Clicked by script: chromedp's click would first scroll the button into view.
		`document.getElementById("log-earlier").click();`)); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "all lines in order, the note gone, the place kept", lines+` === window.count && document.querySelector("#action-log .ll").id === "L1" && document.getElementById("L" + (window.count - `+strconv.Itoa(pageLines)+`)).nextElementSibling.id === "L" + (window.count - `+strconv.Itoa(pageLines)+` + 1) && document.getElementById("log-omitted").hidden && Math.abs(document.getElementById("L4000").getBoundingClientRect().top - window.before) < 2 && document.getElementById("action-log").innerText.includes("row 1\n")`, 10*time.Second)
	shot.take("29b-action-earlier-lines")
	if err := chromedp.Do(ctx, chromedp.Navigate(longPage+"#L10"), chromedp.Reload(), chromedp.WaitVisible(chromedp.CSS("#action-log"))); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "a link to line 10 loading back to it", `document.getElementById("L10") !== null && document.getElementById("L2") !== null && Math.abs(document.getElementById("L10").getBoundingClientRect().top - window.innerHeight/2) < window.innerHeight/2`, 10*time.Second)
	t.Logf("screenshots in %s", shot.dir)
}

// The console people reach for first: an app's page as CodePipeline's
// (the latest run through each stage, each environment's services with
// version, commit, run and health), lists that follow runs live, the
// services list's running/healthy/desired, and plots drawn on the server:
// a service's traffic per target group, a rolling deployment's old and new
// tasks converging, and a blue/green deployment's blue against green with
// the revision on each side of the traffic bar and its plan's next step.
func TestIntegrationWebUIConsole(t *testing.T) {
	dir := t.TempDir()
	cleanupRuntime(t, "shop", dir)
	e := newEnvWith(t, Config{DataDir: dir, ProxyBinary: slipwayBinary(t)})
	e.createApp("shop")
	ctx := browser(t)
	shot := shots{t: t, ctx: ctx, dir: filepath.Join(t.TempDir(), "screenshots")}
	if err := chromedp.Do(ctx, chromedp.Navigate(e.URL+"/signin"), chromedp.WaitVisible(chromedp.CSS("#token")),
		chromedp.SendKeys(chromedp.CSS("#token"), e.Admin), chromedp.Submit(chromedp.CSS("#token"))); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "the apps page", `location.pathname === "/apps"`, 10*time.Second)

	// A run through three stages; its deploy action's revision is what the
	// service runs (registered as a deploy action registers it).
	sha := e.pushPipeline("shop", "main", map[string]string{"slipway.yaml": manualOnly + `stages:
  - name: Build
    actions:
      - {name: compile, type: invoke, command: "echo compiled"}
  - name: Test
    actions:
      - {name: unit, type: invoke, command: "echo tested"}
      - {name: lint, type: invoke, command: "echo linted"}
  - name: Release
    actions:
      - {name: tag, type: invoke, command: "echo tagged"}
`})
	first := e.startRun("shop", "main")
	if run := e.waitRun(first, 60*time.Second); run["state"] != "succeeded" {
		t.Fatalf("run %d: %v %v", first, run["state"], run["reason"])
	}
	image := webAppImage(t)
	td, err := e.srv.db.RegisterRunTaskDef(context.Background(), "shop-web", []byte(webTaskDef("shop-web", image, "v1")), int64(first))
	if err != nil {
		t.Fatal(err)
	}
	listener := freePort(t)
	if code, body := e.call("POST", "/api/v1/apps/shop/envs/staging/services", e.Admin, map[string]any{"name": "web", "task_definition": fmt.Sprintf("shop-web:%d", td.Revision), "desired_count": 2,
		"load_balancer": map[string]any{"container_name": "web", "container_port": 8080, "listener_port": listener, "test_listener_port": freePort(t), "health_check_path": "/health",
			"health_check_interval": "1s", "health_check_timeout": "500ms", "healthy_threshold": 2}}); code != 201 {
		t.Fatalf("create service: %d %v", code, body)
	}
	e.waitService("shop", "staging", "web", 60*time.Second, "2 running", func(d map[string]any) bool { return runningOf(d, td.Revision) == 2 })

	// The apps list links to the app's page: the run's stages as boxes,
	// and the service with its version, commit, run and health.
	if err := chromedp.Do(ctx, chromedp.Navigate(e.URL+"/apps"), chromedp.WaitVisible(chromedp.CSS("#apps-live"))); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`#app-shop a[href="/apps/shop"]`))); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "the app's page", `location.pathname === "/apps/shop" && !!document.getElementById("app-live")`, 10*time.Second)
	waitJS(t, ctx, "each stage of the latest run as a box", `["Build", "Test", "Release"].every(s => document.getElementById("app-stage-" + s) && document.getElementById("app-stage-" + s).dataset.state === "succeeded") && document.getElementById("app-stage-Test").innerText.includes("2 actions")`, 10*time.Second)
	row := `document.getElementById("app-svc-staging-web").innerText.replace(/\s+/g, " ")`
	waitJS(t, ctx, "the service's version, image tag, commit, run and health", fmt.Sprintf(`%s.includes("shop-web:%d") && %s.includes("%s") && %s.includes("%s") && %s.includes("#%d") && %s.includes("HEALTHY 2 of 2 healthy") && !document.getElementById("app-live").innerText.includes("UNKNOWN")`,
		row, td.Revision, row, image[strings.LastIndex(image, ":")+1:], row, sha[:12], row, first, row), 20*time.Second)
	shot.take("40-app-page")
	// Live: a new run shows without a reload, on the app's page and in the runs list.
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[chromedp.Void](`window.notReloaded = true`)); err != nil {
		t.Fatal(err)
	}
	second := e.startRun("shop", "main")
	waitJS(t, ctx, "the new run on the app's page without a reload", fmt.Sprintf(`window.notReloaded && document.querySelector("#app-live h2 a") && document.querySelector("#app-live h2 a").innerText === "#%d"`, second), 20*time.Second)
	e.waitRun(second, 60*time.Second)
	if err := chromedp.Do(ctx, chromedp.Navigate(e.URL+"/runs?app=shop"), chromedp.WaitVisible(chromedp.CSS("#runs-live"))); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[chromedp.Void](`window.notReloaded = true`)); err != nil {
		t.Fatal(err)
	}
	third := e.startRun("shop", "main")
	waitJS(t, ctx, "the new run in the runs list without a reload", fmt.Sprintf(`window.notReloaded && !!document.getElementById("run-row-%d")`, third), 20*time.Second)
	waitJS(t, ctx, "its end too", fmt.Sprintf(`document.querySelector("#run-row-%d .state-succeeded") !== null`, third), 60*time.Second)
	shot.take("41-runs-live")

	// The services list: running, healthy and desired; tasks without a
	// container health check count as healthy, never UNKNOWN.
	if err := chromedp.Do(ctx, chromedp.Navigate(e.URL+"/services"), chromedp.WaitVisible(chromedp.CSS("main h1"))); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "running, healthy and desired", `(() => { const c = Array.from(document.querySelectorAll("#svc-shop-staging-web td")).map(td => td.innerText.trim()); return c[1] === "2" && c[2] === "2 HEALTHY" && c[3] === "2"; })() && !document.querySelector("main").innerText.includes("UNKNOWN")`, 10*time.Second)
	shot.take("42-services-counts")

	// The service page's plots: empty at first, saying so, then drawn once traffic flows.
	if err := chromedp.Do(ctx, chromedp.Navigate(e.URL+"/services/shop/staging/web"), chromedp.WaitVisible(chromedp.CSS("#charts"))); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "empty plots saying why", `document.querySelectorAll("#charts figure.chart").length === 3 && Array.from(document.querySelectorAll("#charts .chart-empty")).every(t => /no (traffic|samples) yet/.test(t.textContent))`, 5*time.Second)
	shot.take("43-service-plots-empty")
	load := startLoad(t, fmt.Sprintf("http://127.0.0.1:%d/", listener))
	waitJS(t, ctx, "requests per second drawn live, with axes, a title and a description", `!!document.querySelector("#svc-rps path.line.series-live") && !document.querySelector("#svc-rps .chart-empty") && document.querySelector("#svc-rps svg title").textContent === "Requests per second" && /tg1 · shop-web:\d+: now [\d.]+ requests\/s/.test(document.querySelector("#svc-rps svg desc").textContent) && document.querySelector("#svc-rps").innerText.includes("requests/s") && !!document.querySelector("#svc-p99 path.line")`, 30*time.Second)
	if stroke, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`getComputedStyle(document.querySelector("#svc-rps path.line")).stroke`)); stroke != "rgb(130, 80, 223)" {
		t.Errorf("the light scheme's line colour: %q", stroke)
	}
	shot.take("44-service-plots")

	// A rolling deployment: old and new task counts converging, no blue/green bar.
	rev2 := e.registerTaskDef(webTaskDef("shop-web", image, "v2"))
	code, upd := e.call("PATCH", "/api/v1/apps/shop/envs/staging/services/web", e.Admin, map[string]any{"task_definition": fmt.Sprintf("shop-web:%d", rev2)})
	if code != 202 {
		t.Fatalf("update: %d %v", code, upd)
	}
	rolling := int(upd["deployment"].(map[string]any)["id"].(float64))
	if err := chromedp.Do(ctx, chromedp.Navigate(fmt.Sprintf("%s/deployments/%d", e.URL, rolling)), chromedp.WaitVisible(chromedp.CSS("#deployment-live"))); err != nil {
		t.Fatal(err)
	}
	tasks := fmt.Sprintf(`document.getElementById("dep%d-tasks")`, rolling)
	waitJS(t, ctx, "old and new task counts, and no traffic bar", `!!document.getElementById("task-counts") && !document.querySelector(".traffic") && document.getElementById("task-counts").innerText.includes("new shop-web:`+strconv.Itoa(rev2)+` running") && !!`+tasks, 10*time.Second)
	e.waitDeployment(rolling, "COMPLETED", 90*time.Second)
	waitJS(t, ctx, "the counts converged: old gone, new at the desired count", `(() => { const c = Array.from(document.querySelectorAll("#task-counts .num-big")).map(n => n.innerText); return c.join(",") === "0,2,2"; })()`, 20*time.Second)
	waitJS(t, ctx, "the plot of old and new", tasks+`.querySelector("path.line.series-old") && `+tasks+`.querySelector(".series-new") && `+tasks+`.querySelector("path.line.series-desired.dashed") && /old shop-web:\d+ running: now 0 tasks/.test(`+tasks+`.querySelector("desc").textContent) && /new shop-web:\d+ running: now 2 tasks/.test(`+tasks+`.querySelector("desc").textContent)`, 20*time.Second)
	shot.take("45-rolling-converged")

	// Replace tasks redeploys shop-web:2: its page offers no "Roll back
	// to" the revision running, and the service's rollback returns to 1.
	code, upd = e.call("PATCH", "/api/v1/apps/shop/envs/staging/services/web", e.Admin, map[string]any{"force_new_deployment": true})
	if code != 202 {
		t.Fatalf("force a new deployment: %d %v", code, upd)
	}
	replace := int(upd["deployment"].(map[string]any)["id"].(float64))
	e.waitDeployment(replace, "COMPLETED", 90*time.Second)
	rollbackButtons := `Array.from(document.querySelectorAll("button")).filter(b => b.innerText.startsWith("Roll back")).map(b => b.innerText)`
	if err := chromedp.Do(ctx, chromedp.Navigate(fmt.Sprintf("%s/deployments/%d", e.URL, replace)), chromedp.WaitVisible(chromedp.CSS("#deployment-live"))); err != nil {
		t.Fatal(err)
	}
	if got, _ := chromedp.Run(ctx, chromedp.Evaluate[[]string](rollbackButtons)); len(got) != 0 {
		t.Fatalf("the redeployment of the running revision offers %v", got)
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(e.URL+"/services/shop/staging/web"), chromedp.WaitVisible(chromedp.CSS("#service-live"))); err != nil {
		t.Fatal(err)
	}
	if got, _ := chromedp.Run(ctx, chromedp.Evaluate[[]string](rollbackButtons)); len(got) != 1 || got[0] != fmt.Sprintf("Roll back to shop-web:%d", td.Revision) {
		t.Fatalf("the service page's rollback buttons: %v", got)
	}

	// Blue/green: the bar names each side's revision, the plan its steps
	// and the time to the next one, and the plots draw blue against green
	// (green answers 5xx, as a bad release would).
	rev3 := e.registerTaskDef(webTaskDef("shop-web", image, "v3", "ERRORS=1"))
	code, dep := e.call("POST", "/api/v1/apps/shop/envs/staging/services/web/deployments", e.Admin, map[string]any{"task_definition": fmt.Sprintf("shop-web:%d", rev3),
		"strategy": "blue-green", "config": "Canary50Percent30Seconds"})
	if code != 201 {
		t.Fatalf("deploy: %d %v", code, dep)
	}
	bg := int(dep["id"].(float64))
	if err := chromedp.Do(ctx, chromedp.Navigate(fmt.Sprintf("%s/deployments/%d", e.URL, bg)), chromedp.WaitVisible(chromedp.CSS("#deployment-live"))); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "green at 50%", `document.getElementById("green-weight").innerText === "50"`, 60*time.Second)
	waitJS(t, ctx, "each side's revision on the bar", fmt.Sprintf(`document.querySelector(".traffic .blue").innerText === "blue shop-web:%d · 50%%" && document.querySelector(".traffic .green").innerText === "green shop-web:%d · 50%%" && document.getElementById("blue-side").innerText.includes("shop-web:%d in tg") && document.getElementById("green-side").innerText.includes("shop-web:%d in tg")`, rev2, rev3, rev2, rev3), 10*time.Second)
	waitJS(t, ctx, "the canary plan, its step now and the time to the next", `(() => { const s = Array.from(document.querySelectorAll("#plan li")).map(l => l.innerText.replace(/\s+/g, " ").trim()); return s.length === 2 && s[0] === "green 50%, held 30 s now" && s[1] === "green 100%"; })() && /^Next step: green 100% in \d+ s$/.test(document.getElementById("next-step").innerText.trim())`, 10*time.Second)
	countdown, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector("#next-step time").innerText`))
	waitJS(t, ctx, "the countdown ticking", `document.querySelector("#next-step time").innerText !== "`+countdown+`"`, 5*time.Second)
	if got, _ := chromedp.Run(ctx, chromedp.Evaluate[[]string](`Array.from(document.querySelectorAll("#deployment-live button")).map(b => b.innerText)`)); strings.Join(got, ",") != "Promote,Stop and roll back" {
		t.Fatalf("buttons during the canary: %v", got)
	}
	dp := fmt.Sprintf("#dep%d", bg)
	waitJS(t, ctx, "blue against green in the plots, green's 5xx", fmt.Sprintf(`!!document.querySelector("%[1]s-rps path.series-blue, %[1]s-rps circle.series-blue") && !!document.querySelector("%[1]s-rps path.series-green, %[1]s-rps circle.series-green") && /green · tg\d · shop-web:%[2]d: now 100 %% of requests/.test(document.querySelector("%[1]s-5xx desc").textContent) && /blue · tg\d · shop-web:%[3]d: now 0 %% of requests/.test(document.querySelector("%[1]s-5xx desc").textContent)`, dp, rev3, rev2), 30*time.Second)
	shot.take("46-bluegreen-canary")
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(390, 844), chromedp.Reload(), chromedp.WaitVisible(chromedp.CSS("#deployment-live"))); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "the deployment page with its plots to fit 390 px", `document.documentElement.scrollWidth <= 391 && document.querySelectorAll("#charts svg").length === 3`, 5*time.Second)
	shot.take("47-bluegreen-phone")
	// Dark mode recolours the plots.
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(1280, 900), chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := cdp.Call(ctx, tg, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: "dark"}}})
		return err
	}), chromedp.Reload(), chromedp.WaitVisible(chromedp.CSS("#charts"))); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "green's line in the dark scheme's colour", fmt.Sprintf(`(() => { const l = document.querySelector("%s-rps .series-green"); return l && getComputedStyle(l).stroke === "rgb(46, 160, 67)" && getComputedStyle(document.querySelector("%s-rps text")).fill === "rgb(157, 167, 179)"; })()`, dp, dp), 10*time.Second)
	shot.take("48-bluegreen-dark")
	if err := chromedp.Do(ctx, chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := cdp.Call(ctx, tg, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{Features: []*emulation.MediaFeature{}})
		return err
	})); err != nil {
		t.Fatal(err)
	}
	e.waitDeployment(bg, "COMPLETED", 90*time.Second)
	waitJS(t, ctx, "the plan done and a rollback to blue's revision offered", fmt.Sprintf(`document.querySelectorAll("#plan li.step-done").length === 2 && !document.getElementById("next-step") && Array.from(document.querySelectorAll("button")).some(b => b.innerText === "Roll back to shop-web:%d")`, rev2), 20*time.Second)
	load.Stop()

	// At a phone's width each new page fits.
	for _, p := range []string{"/apps", "/apps/shop", "/runs?app=shop", "/services", "/services/shop/staging/web", fmt.Sprintf("/deployments/%d", rolling)} {
		if err := chromedp.Do(ctx, chromedp.EmulateViewport(390, 844), chromedp.Navigate(e.URL+p), chromedp.WaitVisible(chromedp.CSS("main h1"))); err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		waitJS(t, ctx, p+" without an error, fitting 390 px", `!document.querySelector("main .error") && document.documentElement.scrollWidth <= 391`, 5*time.Second)
		shot.take("49-phone" + strings.NewReplacer("/", "-", "?", "-", "=", "-").Replace(p))
	}
	t.Logf("screenshots in %s", shot.dir)
}

// The links a person follows: a run's commit by its subject and author in
// the runs list, a deploy action to its deployment and the deployment back
// to its run, an artifact downloaded from the run's page, and a notice on
// the Notifications page to the run it was about.
func TestIntegrationWebUILinks(t *testing.T) {
	dir := t.TempDir()
	cleanupRuntime(t, "links", dir)
	e := newEnvWith(t, Config{DataDir: dir, ProxyBinary: slipwayBinary(t)})
	e.createApp("links")
	hook := notifytest.NewReceiver(t, 0)
	if code, body := e.call("PUT", "/api/v1/apps/links/channels/ci-hook", e.Admin, map[string]any{"type": "webhook", "events": []string{"run.succeeded"},
		"settings": map[string]any{"url": hook.URL, "secret": "hook-key"}}); code != 200 {
		t.Fatalf("channel: %d %v", code, body)
	}
	image := webAppImage(t)
	w := newWork(t)
	w.env = append(w.env, "GIT_AUTHOR_NAME=Ada Lovelace")
	sha := w.commit("Ship the <b>links</b> page\n\nThe body stays out of lists.", map[string]string{
		"slipway.yaml": manualOnly + `stages:
  - name: Build
    actions:
      - {name: compile, type: build, outputs: [BuildOut]}
  - name: Staging
    actions:
      - {name: deploy, type: deploy, inputs: [SourceArtifact], environment: staging, service: web}
`,
		"buildspec.yml":         "version: 0.2\nphases:\n  build:\n    commands:\n      - mkdir -p out && echo built for links > out/hello.txt\nartifacts:\n  files: ['**/*']\n  base-directory: out\n",
		"taskdef.json":          webTaskDef("links-web", "<IMAGE1_NAME>", "v1"),
		"imagedefinitions.json": fmt.Sprintf(`[{"name": "web", "imageUri": %q}]`, image),
	})
	w.git("push", "-q", repoURL(e.URL, e.Admin, "links"), "main:main")
	id := e.startRun("links", "main")
	run := e.waitRun(id, 180*time.Second)
	if run["state"] != "succeeded" {
		t.Fatalf("run %d: %v %v\n%s", id, run["state"], run["reason"], e.logText(id))
	}
	deploy := actionsOf(run)["Staging/deploy"]
	depID, _ := deploy["deployment_id"].(float64)
	if depID == 0 {
		t.Fatalf("the deploy action names no deployment: %v", deploy)
	}
	aid := int(deploy["id"].(float64))
	e.deliveries("links", 1)

	ctx := browser(t)
	shot := shots{t: t, ctx: ctx, dir: filepath.Join(t.TempDir(), "screenshots")}
	if err := chromedp.Do(ctx, chromedp.Navigate(e.URL+"/signin"), chromedp.WaitVisible(chromedp.CSS("#token")),
		chromedp.SendKeys(chromedp.CSS("#token"), e.Admin), chromedp.Submit(chromedp.CSS("#token"))); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "the apps page", `location.pathname === "/apps"`, 10*time.Second)

	// The runs list: the commit's subject (as text, not markup) and author.
	if err := chromedp.Do(ctx, chromedp.Navigate(e.URL+"/runs"), chromedp.WaitVisible(chromedp.CSS("#runs-live"))); err != nil {
		t.Fatal(err)
	}
	row := fmt.Sprintf(`document.getElementById("run-row-%d")`, id)
	waitJS(t, ctx, "the commit's subject and author in the runs list", fmt.Sprintf(`%[1]s && %[1]s.querySelector(".csubject").textContent === "Ship the <b>links</b> page" && !%[1]s.querySelector("b") && %[1]s.querySelector(".cauthor").textContent === "by Ada Lovelace" && %[1]s.innerText.includes("%[2]s") && !%[1]s.innerText.includes("The body")`, row, sha[:12]), 10*time.Second)
	shot.take("60-runs-commit-subject")
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(fmt.Sprintf(`#run-row-%d a[href="/runs/%d"]`, id, id)))); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "the run's page with its commit's subject and author", fmt.Sprintf(`location.pathname === "/runs/%d" && document.getElementById("run-subject").textContent === "Ship the <b>links</b> page" && document.getElementById("run-author").textContent === "Ada Lovelace"`, id), 10*time.Second)

	// The artifact downloads from the run's page.
	waitJS(t, ctx, "the artifact's download link", fmt.Sprintf(`!!document.querySelector('#artifact-BuildOut a[download][href="/runs/%d/artifacts/BuildOut"]')`, id), 10*time.Second)
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[chromedp.Void](`fetch(document.querySelector("#artifact-BuildOut a[download]").href).then(r => r.arrayBuffer().then(b => { window.download = {status: r.status, type: r.headers.get("content-type"), disposition: r.headers.get("content-disposition"), text: new TextDecoder().decode(b)}; }))`)); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "the artifact downloaded, a tar named for the run", fmt.Sprintf(`window.download && window.download.status === 200 && window.download.type === "application/x-tar" && window.download.disposition === 'attachment; filename="run-%d-BuildOut.tar"' && window.download.text.includes("hello.txt") && window.download.text.includes("built for links")`, id), 10*time.Second)

	// The deploy action's card links its deployment (a click on the link,
	// not the card's log link under it), which links back to the run.
	card := `document.getElementById("action-Staging-deploy")`
	waitJS(t, ctx, "the deploy action's link to its deployment", fmt.Sprintf(`%s.querySelector('a.adeploy[href="/deployments/%d"]').innerText === "deployment #%d"`, card, int(depID), int(depID)), 10*time.Second)
	shot.take("61-run-deploy-link")
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS("#action-Staging-deploy a.adeploy"))); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "the deployment's page, naming the run and action that started it", fmt.Sprintf(`location.pathname === "/deployments/%d" && !!document.querySelector('#deployment-origin a[href="/runs/%d"]') && !!document.querySelector('#deployment-origin a[href="/runs/%d/actions/%d"]') && document.getElementById("deployment-origin").innerText.includes("Started by run #%d at Staging/deploy")`, int(depID), id, id, aid, id), 10*time.Second)
	shot.take("62-deployment-origin")
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(fmt.Sprintf(`#deployment-origin a[href="/runs/%d"]`, id)))); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "back on the run's page", fmt.Sprintf(`location.pathname === "/runs/%d" && !!document.getElementById("run-live")`, id), 10*time.Second)
	// The action's own page links the deployment too.
	if err := chromedp.Do(ctx, chromedp.Navigate(fmt.Sprintf("%s/runs/%d/actions/%d", e.URL, id, aid)), chromedp.WaitVisible(chromedp.CSS("#action-head"))); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "the action page's link to the deployment", fmt.Sprintf(`!!document.querySelector('#action-head a[href="/deployments/%d"]')`, int(depID)), 10*time.Second)

	// The notice of the run's success links to the run.
	if err := chromedp.Do(ctx, chromedp.Navigate(e.URL+"/notifications"), chromedp.WaitVisible(chromedp.CSS("main h1"))); err != nil {
		t.Fatal(err)
	}
	notice := fmt.Sprintf(`section[aria-labelledby="nc-links"] tr[id^="delivery-"] a[href="/runs/%d"]`, id)
	waitJS(t, ctx, "the delivery's link to its run", fmt.Sprintf(`document.querySelector('%s') && document.querySelector('%s').innerText === "run #%d"`, notice, notice, id), 10*time.Second)
	shot.take("63-notification-link")
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(notice))); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "the run's page from the notice", fmt.Sprintf(`location.pathname === "/runs/%d"`, id), 10*time.Second)

	// At a phone's width the pages with the new links fit.
	for _, p := range []string{"/runs", fmt.Sprintf("/runs/%d", id), fmt.Sprintf("/deployments/%d", int(depID)), "/notifications"} {
		if err := chromedp.Do(ctx, chromedp.EmulateViewport(390, 844), chromedp.Navigate(e.URL+p), chromedp.WaitVisible(chromedp.CSS("main h1"))); err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		waitJS(t, ctx, p+" without an error, fitting 390 px", `!document.querySelector("main .error") && document.documentElement.scrollWidth <= 391`, 5*time.Second)
		shot.take("64-phone" + strings.ReplaceAll(p, "/", "-"))
	}
	t.Logf("screenshots in %s", shot.dir)
}
