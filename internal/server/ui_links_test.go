package server

import (
	"archive/tar"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/slipway-dev/slipway/internal/store"
)

// A notice links to what it was about: a deployment, a run, a service;
// never to its event's URL, which may be another site's.
func TestUIDeliveryAbout(t *testing.T) {
	for _, c := range []struct {
		payload, link, about string
	}{
		{`{"event":"run.failed","url":"http://x/runs/7","fields":{"run":"7","commit":"abc"}}`, "/runs/7", "run #7"},
		{`{"event":"approval.needed","url":"https://review.example/pr/1","fields":{"run":"12","stage":"Gate"}}`, "/runs/12", "run #12"},
		{`{"event":"deployment.rolled_back","fields":{"deployment":"5","environment":"prod","service":"web"}}`, "/deployments/5", "deployment #5"},
		{`{"event":"service.unhealthy","fields":{"environment":"prod","service":"web"}}`, "/services/shop/prod/web", "service web in prod"},
		{`{"event":"service.unhealthy","fields":{"environment":"../..","service":"a/b"}}`, "/services/shop/..%2F../a%2Fb", "service a/b in ../.."},
		{`{"event":"run.failed","url":"https://evil.example/","fields":{"run":"-1"}}`, "", ""},
		{`{"event":"run.failed","fields":{"run":"07"}}`, "", ""},
		{`not json`, "", ""},
	} {
		got := deliveryAbout(store.Delivery{App: "shop", Payload: c.payload})
		if got.Link != c.link || got.About != c.about {
			t.Errorf("%s: link %q about %q, want %q %q", c.payload, got.Link, got.About, c.link, c.about)
		}
	}
}

// A deployment's page names the run that started it only when the run
// did: a token may be named "run 1" too.
func TestUIDeploymentOrigin(t *testing.T) {
	e := newEnv(t)
	e.createApp("shop")
	ctx := context.Background()
	run, err := e.srv.db.CreateRun(ctx, store.Run{App: "shop", State: "succeeded", Trigger: "push", Ref: "refs/heads/main", Commit: strings.Repeat("a", 40)})
	if err != nil {
		t.Fatal(err)
	}
	body := []byte(`{"family": "shop-web", "containerDefinitions": [{"name": "web", "image": "127.0.0.1:1/shop:v1"}]}`)
	byRun, err := e.srv.db.RegisterRunTaskDef(ctx, "shop-web", body, run.ID)
	if err != nil {
		t.Fatal(err)
	}
	byHand, err := e.srv.db.RegisterTaskDef(ctx, "shop-web", body, "admin")
	if err != nil {
		t.Fatal(err)
	}
	deployment := func(service string, rev int, by string) store.Deployment {
		t.Helper()
		d, err := e.srv.db.CreateDeployment(ctx, store.Deployment{App: "shop", Env: "nowhere", Service: service, Strategy: "rolling",
			ToFamily: "shop-web", ToRevision: rev, Phase: "Created", CreatedBy: by})
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	runID := fmt.Sprint(run.ID)
	if o := e.srv.deploymentOrigin(ctx, deployment("a", byRun.Revision, "run "+runID)); o.Run == nil || o.Run.ID != run.ID || o.By != "" || o.RevisionRun != 0 {
		t.Errorf("a run's deployment of its revision: %+v", o)
	}
	if o := e.srv.deploymentOrigin(ctx, deployment("b", byHand.Revision, "run "+runID)); o.Run != nil || o.By != "run "+runID {
		t.Errorf("a token named %q: %+v", "run "+runID, o)
	}
	if o := e.srv.deploymentOrigin(ctx, deployment("c", byRun.Revision, "admin")); o.Run != nil || o.By != "admin" || o.RevisionRun != run.ID {
		t.Errorf("a deployment by hand of a run's revision: %+v", o)
	}
	for by, want := range map[string]bool{"run 3": true, "run 03": false, "run -3": false, "run 3 ": false, "runner 3": false, "": false} {
		if _, ok := runCreator(by); ok != want {
			t.Errorf("runCreator(%q) = %v", by, ok)
		}
	}
}

// From the console: runs show their commit's subject and author (escaped),
// a run's artifacts download from its page (a viewer may; an expired run's
// are gone, said without the CLI's flags), and a rejection without a
// comment is refused in the console's words.
func TestIntegrationUIArtifactsCommitsAndMessages(t *testing.T) {
	e := newEnv(t)
	e.createApp("arts")
	w := newWork(t)
	w.env = append(w.env, "GIT_AUTHOR_NAME=Grace Hopper")
	w.commit("Build the <i>artifact</i>\n\nA body that the lists leave out.", map[string]string{
		"slipway.yaml": manualOnly + `stages:
  - name: Build
    actions:
      - {name: compile, type: build, outputs: [BuildOut]}
  - name: Gate
    actions:
      - {name: release, type: approval}
`,
		"buildspec.yml": `version: 0.2
phases:
  build:
    commands:
      - mkdir -p out && echo "made by run $SLIPWAY_RUN_ID" > out/made.txt
artifacts:
  files: ['**/*']
  base-directory: out
`,
	})
	w.git("push", "-q", repoURL(e.URL, e.Admin, "arts"), "main:main")
	viewer, _ := e.signin(e.token("arts-viewer", "viewer"))
	admin, csrf := e.signin(e.Admin)
	first := e.startRun("arts", "main")
	e.waitRunState(first, "waiting", 60*time.Second)

	// The runs list and the run's page: subject and author, escaped.
	for _, page := range []string{"/runs", "/runs?app=arts", "/apps/arts", fmt.Sprintf("/runs/%d", first)} {
		code, body, _ := getPage(t, viewer, e.URL+page)
		if code != 200 || !strings.Contains(body, "Build the &lt;i&gt;artifact&lt;/i&gt;") || !strings.Contains(body, "Grace Hopper") || strings.Contains(body, "<i>artifact") || strings.Contains(body, "A body") {
			t.Errorf("%s: %d, no escaped subject and author:\n%s", page, code, body)
		}
	}
	if _, body, _ := getPage(t, viewer, fmt.Sprintf("%s/runs/%d", e.URL, first)); !strings.Contains(body, `<dd id="run-author">Grace Hopper</dd>`) || !strings.Contains(body, `<dd id="run-subject">Build the &lt;i&gt;artifact&lt;/i&gt;</dd>`) {
		t.Errorf("run page author:\n%s", body)
	}

	// Reject without a comment: refused, in the console's words.
	postForm(t, admin, fmt.Sprintf("%s/runs/%d/decide", e.URL, first), url.Values{"csrf": {csrf}, "decision": {"reject"}, "comment": {"  "}})
	if _, body, _ := getPage(t, admin, fmt.Sprintf("%s/runs/%d", e.URL, first)); !strings.Contains(body, "To reject, say why in the Comment box.") || strings.Contains(body, "--comment") {
		t.Errorf("reject without a comment:\n%s", body)
	}
	postForm(t, admin, fmt.Sprintf("%s/runs/%d/decide", e.URL, first), url.Values{"csrf": {csrf}, "decision": {"approve"}})
	if run := e.waitRun(first, 30*time.Second); run["state"] != "succeeded" {
		t.Fatalf("run %d: %v %v", first, run["state"], run["reason"])
	}

	// The artifact downloads from the run's page, for a viewer too.
	runPage := fmt.Sprintf("%s/runs/%d", e.URL, first)
	link := fmt.Sprintf(`href="/runs/%d/artifacts/BuildOut" download`, first)
	if _, body, _ := getPage(t, viewer, runPage); !strings.Contains(body, link) {
		t.Fatalf("no download link on the run page:\n%s", body)
	}
	resp, err := viewer.Get(fmt.Sprintf("%s/runs/%d/artifacts/BuildOut", e.URL, first))
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{}
	tr := tar.NewReader(resp.Body)
	for {
		h, err := tr.Next()
		if err != nil {
			break
		}
		b, _ := io.ReadAll(tr)
		files[h.Name] = string(b)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/x-tar" ||
		resp.Header.Get("Content-Disposition") != fmt.Sprintf(`attachment; filename="run-%d-BuildOut.tar"`, first) ||
		!strings.HasPrefix(resp.Header.Get("Content-Security-Policy"), "default-src 'self'") || files["made.txt"] != fmt.Sprintf("made by run %d\n", first) {
		t.Fatalf("download: %d %v %v", resp.StatusCode, resp.Header, files)
	}
	for path, want := range map[string]string{
		fmt.Sprintf("/runs/%d/artifacts/Nope", first): fmt.Sprintf("Run %d has no artifact Nope.", first),
		"/runs/999/artifacts/BuildOut":                "",
		"/runs/x/artifacts/BuildOut":                  "must be a positive number",
	} {
		code, body, hdr := getPage(t, viewer, e.URL+path)
		if code < 400 || code >= 500 || !strings.HasPrefix(hdr.Get("Content-Type"), "text/html") || hdr.Get("Content-Disposition") != "" || !strings.Contains(body, want) {
			t.Errorf("%s: %d %v\n%s", path, code, hdr, body)
		}
	}

	// Expired: 410, a page that names the setting, not the flag; the run's
	// page no longer offers the download.
	second := e.startRun("arts", "main")
	e.waitRunState(second, "waiting", 60*time.Second)
	e.call("POST", fmt.Sprintf("/api/v1/runs/%d/cancel", second), e.Admin, nil)
	e.waitRun(second, 30*time.Second)
	third := e.startRun("arts", "main") // the newest success, which retention keeps
	e.waitRunState(third, "waiting", 60*time.Second)
	postForm(t, admin, fmt.Sprintf("%s/runs/%d/decide", e.URL, third), url.Values{"csrf": {csrf}, "decision": {"approve"}})
	e.waitRun(third, 30*time.Second)
	ids, err := e.srv.db.ExpireRuns(context.Background(), time.Now().Add(time.Hour), 10)
	if err != nil || len(ids) == 0 || ids[0] != int64(first) {
		t.Fatalf("expire run %d: %v %v", first, ids, err)
	}
	code, body, _ := getPage(t, viewer, fmt.Sprintf("%s/runs/%d/artifacts/BuildOut", e.URL, first))
	if code != http.StatusGone || !strings.Contains(body, "Artifact expired") || !strings.Contains(body, "run retention setting") || strings.Contains(body, "--run-retention") || strings.Contains(body, "slipway server") {
		t.Errorf("an expired run's artifact: %d\n%s", code, body)
	}
	if _, body, _ := getPage(t, viewer, runPage); strings.Contains(body, link) {
		t.Error("an expired run's page offers its artifact")
	}
}
