package server

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"
)

// consolePipeline fails with coloured output, markup, a folded section and
// more than ten lines.
const consolePipeline = manualOnly + `stages:
  - name: Build
    actions:
      - name: compile
        type: invoke
        command: |
          echo "::group::Fetch tools"
          echo "inside the section"
          echo "::endgroup::"
          printf '\033[1;32mgreen bold\033[0m and <script>window.xss=1</script><img src=x onerror="window.xss=2">\n'
          printf '\033[38;5;208morange\033[0m \033[38;2;10;20;30mtruecolour\033[0m \033[2Kcleared\n'
          for i in $(seq 1 14); do echo "step $i"; done
          echo "the end of compile"
          exit 3
  - name: Ship
    actions:
      - {name: ship, type: invoke, command: "echo shipped"}
`

// getPage fetches a page with a session client and returns status and body.
func getPage(t *testing.T, c *http.Client, u string) (int, string, http.Header) {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

// actionID is the id of a run's action stage/name.
func (e *testEnv) actionID(run int, stage, name string) int {
	e.t.Helper()
	_, body := e.call("GET", fmt.Sprintf("/api/v1/runs/%d", run), e.Admin, nil)
	a, ok := actionsOf(body)[stage+"/"+name]
	if !ok {
		e.t.Fatalf("run %d has no action %s/%s: %v", run, stage, name, body)
	}
	return int(a["id"].(float64))
}

// An action's page shows its log escaped, coloured with classes, numbered
// with anchors and folded; the raw log is the text as written; a failed
// action's card shows its last lines, folded; viewers see no buttons.
func TestIntegrationUIActionLogAndFailureTail(t *testing.T) {
	e := newEnv(t)
	e.createApp("console")
	e.pushPipeline("console", "main", map[string]string{"slipway.yaml": consolePipeline})
	id := e.startRun("console", "main")
	if run := e.waitRun(id, 60*time.Second); run["state"] != "failed" {
		t.Fatalf("run: %v %v", run["state"], run["reason"])
	}
	aid := e.actionID(id, "Build", "compile")
	admin, _ := e.signin(e.Admin)
	viewer, _ := e.signin(e.token("console-viewer", "viewer"))
	page := fmt.Sprintf("%s/runs/%d/actions/%d", e.URL, id, aid)

	code, body, hdr := getPage(t, viewer, page)
	if code != 200 || !strings.HasPrefix(hdr.Get("Content-Security-Policy"), "default-src 'self'") {
		t.Fatalf("action page: %d %v\n%s", code, hdr, body)
	}
	// (The build echoes its script first, printf's \033 notation and all.)
	for _, bad := range []string{"<script>window.xss", "<img src=x", "\x1b"} {
		if strings.Contains(body, bad) {
			t.Errorf("the action page holds %q raw", bad)
		}
	}
	for _, want := range []string{
		`<span class="ansi-green ansi-bold">green bold</span> and &lt;script&gt;window.xss=1&lt;/script&gt;&lt;img src=x onerror=&#34;window.xss=2&#34;&gt;`,
		`<span class="ansi-yellow">orange</span> <span class="ansi-black">truecolour</span> cleared`,
		`href="/runs/` + fmt.Sprint(id) + `/actions/` + fmt.Sprint(aid) + `/raw"`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("action page lacks %s", want)
		}
	}
	if !regexp.MustCompile(`<details class="lg"><summary><span class="ll l-group" id="L(\d+)"><a class="ln" href="#L\d+">\d+</a><time[^>]*>[^<]*</time><span class="lt">Fetch tools</span></span></summary><div class="lgb"><span class="ll" id="L\d+">.*?<span class="lt">inside the section</span></span></div></details>`).MatchString(body) {
		t.Errorf("the ::group:: section is not folded:\n%s", body)
	}
	end := regexp.MustCompile(`<span class="ll" id="L(\d+)"><a class="ln" href="#L(\d+)">(\d+)</a><time class="ts" datetime="[^"]+"[^>]*>[0-9:.]+</time><span class="lt">the end of compile</span></span>`).FindStringSubmatch(body)
	if end == nil || end[1] != end[2] || end[2] != end[3] {
		t.Fatalf("the last line without its number, anchor and time:\n%s", body)
	}
	var last int
	fmt.Sscan(end[1], &last)
	last++ // the build's own closing line follows
	if strings.Contains(body, `action="/runs/`) && strings.Contains(body, "/cancel") || strings.Contains(body, "/rerun") {
		t.Error("a viewer is shown the run's buttons")
	}
	if strings.Contains(body, "data-stream") {
		t.Error("a finished action's page follows a stream")
	}

	// The raw log: the text as written, escapes and all, as plain text.
	code, raw, hdr := getPage(t, viewer, page+"/raw")
	if code != 200 || hdr.Get("Content-Type") != "text/plain; charset=utf-8" || hdr.Get("X-Content-Type-Options") != "nosniff" ||
		!strings.Contains(hdr.Get("Content-Disposition"), fmt.Sprintf(`filename="run-%d-Build-compile.log"`, id)) {
		t.Fatalf("raw log: %d %v", code, hdr)
	}
	if !strings.Contains(raw, "::group::Fetch tools\ninside the section\n::endgroup::\n\x1b[1;32mgreen bold\x1b[0m and <script>") || !strings.Contains(raw, "\nthe end of compile\n[slipway] Phase BUILD FAILED (exit 3)") {
		t.Fatalf("raw log:\n%q", raw)
	}

	// The run page: the failed card links to its page and holds its last
	// ten lines, folded, numbered as there.
	code, body, _ = getPage(t, viewer, fmt.Sprintf("%s/runs/%d", e.URL, id))
	if code != 200 {
		t.Fatalf("run page: %d", code)
	}
	card := body[strings.Index(body, `id="action-Build-compile"`):]
	card = card[:strings.Index(card, "</li>")]
	for _, want := range []string{
		fmt.Sprintf(`<a class="aname" href="/runs/%d/actions/%d">compile`, id, aid),
		fmt.Sprintf(`<details class="atail" id="tail-%d"><summary>Last lines of the log</summary>`, aid),
		fmt.Sprintf(`<a class="ln" href="/runs/%d/actions/%d#L%d">%d</a>`, id, aid, last, last),
		fmt.Sprintf(`<a class="ln" href="/runs/%d/actions/%d#L%d">%d</a>`, id, aid, last-9, last-9),
		`step 14`, `exit 3`,
	} {
		if !strings.Contains(card, want) {
			t.Errorf("failed card lacks %s:\n%s", want, card)
		}
	}
	if strings.Contains(card, fmt.Sprintf(`#L%d"`, last-10)) || strings.Contains(card, "<details class=\"atail\" id=\"tail-"+fmt.Sprint(aid)+"\" open") {
		t.Errorf("the tail is more than ten lines or open:\n%s", card)
	}
	if strings.Contains(body, "/rerun") || strings.Contains(body, "Retry stage") {
		t.Error("a viewer is shown the run's buttons")
	}
	// A deployer sees Retry failed, Retry stage on the failed stage, and Re-run.
	_, body, _ = getPage(t, admin, fmt.Sprintf("%s/runs/%d", e.URL, id))
	for _, want := range []string{fmt.Sprintf(`action="/runs/%d/retry"`, id), `aria-label="Retry stage Build"`, fmt.Sprintf(`action="/runs/%d/rerun"`, id), "Retry failed", "Re-run"} {
		if !strings.Contains(body, want) {
			t.Errorf("admin's run page lacks %s", want)
		}
	}
	if strings.Contains(body, "Cancel run") || strings.Contains(body, `aria-label="Retry stage Ship"`) {
		t.Error("a finished run offers Cancel, or a stage that did not fail offers Retry")
	}

	// Another run's action, or none, is not found.
	for _, p := range []string{fmt.Sprintf("/runs/%d/actions/%d", id+1, aid), fmt.Sprintf("/runs/%d/actions/999999", id), fmt.Sprintf("/runs/%d/actions/x", id)} {
		if code, _, _ := getPage(t, viewer, e.URL+p); code != 404 && code != 400 {
			t.Errorf("%s: %d", p, code)
		}
	}
}

// postForm sends a session form and returns where it redirected.
func postForm(t *testing.T, c *http.Client, u string, form url.Values) string {
	t.Helper()
	resp, err := c.PostForm(u, form)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("POST %s: %d", u, resp.StatusCode)
	}
	return resp.Header.Get("Location")
}

// Cancel, retry and re-run from the console do what the CLI does, and say
// so once on the page they return to.
func TestIntegrationUICancelRetryRerun(t *testing.T) {
	e := newEnv(t)
	e.createApp("ctl")
	w := newWork(t)
	sha := w.commit("waits", map[string]string{"slipway.yaml": manualOnly + `stages:
  - name: Build
    actions:
      - {name: wait, type: invoke, command: "sleep 30"}
`})
	w.git("push", "-q", repoURL(e.URL, e.Admin, "ctl"), "main:main")
	admin, csrf := e.signin(e.Admin)
	id := e.startRun("ctl", "main")
	e.waitRunState(id, "running", 30*time.Second)
	aid := e.actionID(id, "Build", "wait")
	// Cancel returns to the action page it was sent from.
	loc := postForm(t, admin, fmt.Sprintf("%s/runs/%d/cancel", e.URL, id), url.Values{"csrf": {csrf}, "next": {fmt.Sprintf("/runs/%d/actions/%d", id, aid)}})
	if loc != fmt.Sprintf("/runs/%d/actions/%d", id, aid) {
		t.Fatalf("cancel went to %s", loc)
	}
	if run := e.waitRun(id, 30*time.Second); run["state"] != "cancelled" {
		t.Fatalf("after cancel: %v", run["state"])
	}
	_, body, _ := getPage(t, admin, e.URL+loc)
	if !strings.Contains(body, fmt.Sprintf("Run #%d is being cancelled.", id)) {
		t.Fatalf("no flash after cancel:\n%s", body)
	}
	// A foreign next is not followed.
	if loc := postForm(t, admin, fmt.Sprintf("%s/runs/%d/cancel", e.URL, id), url.Values{"csrf": {csrf}, "next": {"https://evil.example/"}}); loc != fmt.Sprintf("/runs/%d", id) {
		t.Fatalf("cancel of an ended run went to %s", loc)
	}
	if _, body, _ := getPage(t, admin, fmt.Sprintf("%s/runs/%d", e.URL, id)); !strings.Contains(body, "already ended: cancelled") {
		t.Fatal("cancelling an ended run says nothing")
	}

	// Retry: the run goes again, in place.
	loc = postForm(t, admin, fmt.Sprintf("%s/runs/%d/retry", e.URL, id), url.Values{"csrf": {csrf}, "stage": {"Build"}})
	if loc != fmt.Sprintf("/runs/%d", id) {
		t.Fatalf("retry went to %s", loc)
	}
	e.waitRunState(id, "running", 30*time.Second)
	if _, body, _ := getPage(t, admin, e.URL+loc); !strings.Contains(body, fmt.Sprintf("Run #%d is queued again from stage Build.", id)) || !strings.Contains(body, "Cancel run") {
		t.Fatalf("after retry:\n%s", body)
	}
	postForm(t, admin, fmt.Sprintf("%s/runs/%d/cancel", e.URL, id), url.Values{"csrf": {csrf}})
	e.waitRun(id, 30*time.Second)
	// A stage the run does not have is refused with the reason.
	postForm(t, admin, fmt.Sprintf("%s/runs/%d/retry", e.URL, id), url.Values{"csrf": {csrf}, "stage": {"Nope"}})
	if _, body, _ := getPage(t, admin, fmt.Sprintf("%s/runs/%d", e.URL, id)); !strings.Contains(body, `has no stage &#34;Nope&#34;`) {
		t.Fatalf("retry of a missing stage:\n%s", body)
	}

	// Re-run: a new run of the same commit, even after the branch moved.
	w.commit("moves on", map[string]string{"slipway.yaml": manualOnly + "stages:\n  - name: Other\n    actions:\n      - {name: x, type: invoke, command: 'true'}\n"})
	w.git("push", "-q", repoURL(e.URL, e.Admin, "ctl"), "main:main")
	loc = postForm(t, admin, fmt.Sprintf("%s/runs/%d/rerun", e.URL, id), url.Values{"csrf": {csrf}})
	var next int
	if _, err := fmt.Sscanf(loc, "/runs/%d", &next); err != nil || next == id {
		t.Fatalf("re-run went to %s", loc)
	}
	_, nr := e.call("GET", fmt.Sprintf("/api/v1/runs/%d", next), e.Admin, nil)
	if nr["commit"] != sha || nr["ref"] != "refs/heads/main" || nr["trigger"] != "manual:admin" {
		t.Fatalf("the re-run: %v", nr)
	}
	if _, body, _ := getPage(t, admin, e.URL+loc); !strings.Contains(body, fmt.Sprintf("Run #%d re-runs run #%d: commit %s of refs/heads/main.", next, id, sha[:12])) {
		t.Fatalf("no flash after re-run:\n%s", body)
	}
	e.waitRunState(next, "running", 30*time.Second)
	if aid := e.actionID(next, "Build", "wait"); aid == 0 {
		t.Fatal("the re-run did not run the old commit's pipeline")
	}
	// A run that has not ended is not re-run.
	postForm(t, admin, fmt.Sprintf("%s/runs/%d/rerun", e.URL, next), url.Values{"csrf": {csrf}})
	if _, body, _ := getPage(t, admin, fmt.Sprintf("%s/runs/%d", e.URL, next)); !strings.Contains(body, "has not ended") {
		t.Fatal("re-run of a running run was not refused")
	}
	postForm(t, admin, fmt.Sprintf("%s/runs/%d/cancel", e.URL, next), url.Values{"csrf": {csrf}})
	e.waitRun(next, 30*time.Second)
}

func TestRerunTriggerKeepsTheEvent(t *testing.T) {
	for old, want := range map[string]string{"git-push": "rerun:ann", "github-push": "rerun:ann", "manual:bob": "manual:ann", "dispatch:bob": "dispatch:ann", "rerun:bob": "rerun:ann"} {
		if got := rerunTrigger(old, "ann"); got != want {
			t.Errorf("rerunTrigger(%q) = %q, want %q", old, got, want)
		}
	}
}
