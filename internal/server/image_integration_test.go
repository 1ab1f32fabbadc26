package server

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/slipway-dev/slipway/internal/container/containertest"
)

// artifactFiles downloads an artifact and returns its files' contents.
func (e *testEnv) artifactFiles(run int, name string) map[string]string {
	e.t.Helper()
	req, _ := http.NewRequest("GET", fmt.Sprintf("%s/api/v1/runs/%d/artifacts/%s", e.URL, run, name), nil)
	req.Header.Set("Authorization", "Bearer "+e.Admin)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		e.t.Fatalf("artifact %s: %d", name, resp.StatusCode)
	}
	out := map[string]string{}
	tr := tar.NewReader(resp.Body)
	for {
		h, err := tr.Next()
		if err != nil {
			return out
		}
		b, _ := io.ReadAll(tr)
		out[h.Name] = string(b)
	}
}

// removeImagesOf deletes the engine's images that an app's pipeline built
// (the image action labels them with the app); the app's name is the test's own.
func removeImagesOf(app string) {
	removeImages([]string{"--filter", "label=slipway.app=" + app})
}

// removeImages deletes the engine's images that docker's filter arguments pick.
func removeImages(filter []string) {
	out, _ := exec.Command("docker", append([]string{"images", "-q"}, filter...)...).Output()
	if ids := strings.Fields(string(out)); len(ids) > 0 {
		exec.Command("docker", append([]string{"rmi", "-f"}, ids...)...).Run()
	}
}

func TestIntegrationImageActionAndDockerInBuildspec(t *testing.T) {
	e := newEnv(t)
	app := fmt.Sprintf("img%d", time.Now().UnixNano()%1e6)
	e.createApp(app)
	t.Cleanup(func() { removeImagesOf(app) })
	t.Cleanup(func() {
		out, _ := exec.Command("docker", "images", "--format", "{{.Repository}}:{{.Tag}}").Output()
		for _, ref := range strings.Fields(string(out)) {
			if strings.Contains(ref, "/"+app) {
				exec.Command("docker", "rmi", "-f", ref).Run()
			}
		}
	})
	sha := e.pushPipeline(app, "main", map[string]string{
		"slipway.yaml": manualOnly + `stages:
  - name: Build
    actions:
      - name: self-push
        type: build
  - name: Package
    actions:
      - name: image
        type: image
        tags: [latest]
        container-name: web
        build-args: {GREETING: hello}
        outputs: [ImageArtifact]
  - name: Use
    actions:
      - name: show
        type: invoke
        command: 'echo "deploying #{image.IMAGE_URI}"'
`,
		"Dockerfile":  "FROM scratch\nARG GREETING\nLABEL slipway.test=1 slipway.app=" + app + "\nCOPY payload.txt /payload.txt\n",
		"payload.txt": "payload",
		"buildspec.yml": `version: 0.2
phases:
  build:
    commands:
      - echo "repo=$REPOSITORY_URI name=$IMAGE_REPO_NAME tag=$IMAGE_TAG"
      - DOCKER_BUILDKIT=0 docker build -q -t $REPOSITORY_URI:self-$IMAGE_TAG .
      - docker push $REPOSITORY_URI:self-$IMAGE_TAG
      - echo "credentials $(grep -o '"auth":"[^"]*"' $DOCKER_CONFIG/config.json | cut -d'"' -f4 | base64 -d)"
`,
	})
	// Without the admin's docker-access setting the sandbox has no engine.
	id := e.startRun(app, "main")
	if run := e.waitRun(id, 120*time.Second); run["state"] != "failed" || !strings.Contains(e.logText(id), "Cannot connect to the Docker daemon") {
		t.Fatalf("a build without docker access: %v %v\n%s", run["state"], run["reason"], e.logText(id))
	}
	if code, body := e.call("PUT", "/api/v1/apps/"+app+"/build", e.Admin, map[string]any{"docker_access": true}); code != 200 {
		t.Fatalf("turn on docker access: %d %v", code, body)
	}
	id = e.startRun(app, "main")
	run := e.waitRun(id, 120*time.Second)
	logs := e.logText(id)
	if run["state"] != "succeeded" {
		t.Fatalf("run %v: %v\n%s", run["state"], run["reason"], logs)
	}
	host := strings.TrimPrefix(e.URL, "http://")
	if !strings.Contains(logs, fmt.Sprintf("repo=%s/%s name=%s tag=%s", host, app, app, sha)) {
		t.Fatalf("build environment:\n%s", logs)
	}
	// Neither the pipeline's token nor the build's reaches the log.
	if strings.Contains(logs, e.srv.pipelineToken) || !strings.Contains(logs, "credentials slipway:***") {
		t.Fatalf("token not masked:\n%s", logs)
	}
	files := e.artifactFiles(id, "ImageArtifact")
	var detail struct {
		ImageURI, ImageDigest, RepositoryName, RegistryId, ImagePushedAt string
		ImageTags                                                        []string
		ImageSizeInBytes                                                 int64
	}
	if err := json.Unmarshal([]byte(files["imageDetail.json"]), &detail); err != nil {
		t.Fatalf("imageDetail.json: %v %q", err, files["imageDetail.json"])
	}
	// The digest is the one the registry actually stores under each tag.
	o := &oci{t: t, base: e.URL, token: e.Admin}
	for _, tag := range []string{sha, "latest"} {
		resp, _ := o.do("HEAD", "/v2/"+app+"/manifests/"+tag, nil, map[string]string{"Accept": "application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json"})
		if resp.StatusCode != 200 || resp.Header.Get("Docker-Content-Digest") != detail.ImageDigest {
			t.Fatalf("tag %s: %d %s, imageDetail says %s", tag, resp.StatusCode, resp.Header.Get("Docker-Content-Digest"), detail.ImageDigest)
		}
	}
	if detail.ImageURI != host+"/"+app+"@"+detail.ImageDigest || detail.RepositoryName != app || detail.RegistryId != host ||
		strings.Join(detail.ImageTags, ",") != sha+",latest" || detail.ImageSizeInBytes <= 0 || detail.ImagePushedAt == "" {
		t.Fatalf("imageDetail.json: %+v", detail)
	}
	// The built image is known as this installation's, as its tasks are.
	labels, err := exec.Command("docker", "image", "inspect", "-f", `{{index .Config.Labels "slipway.installation"}} {{index .Config.Labels "slipway.app"}}`, host+"/"+app+":"+sha).Output()
	if want := e.srv.installation + " " + app; err != nil || strings.TrimSpace(string(labels)) != want {
		t.Fatalf("image labels %q, %v; want %q", labels, err, want)
	}
	var defs []struct{ Name, ImageUri string }
	if err := json.Unmarshal([]byte(files["imagedefinitions.json"]), &defs); err != nil || len(defs) != 1 || defs[0].Name != "web" || defs[0].ImageUri != detail.ImageURI {
		t.Fatalf("imagedefinitions.json: %v %q", err, files["imagedefinitions.json"])
	}
	if !strings.Contains(logs, "deploying "+detail.ImageURI) {
		t.Fatalf("IMAGE_URI did not reach the next stage:\n%s", logs)
	}
	// The buildspec's own push landed too, pushed by the build's own token.
	_, list := e.call("GET", "/api/v1/images?repository="+app, e.Admin, nil)
	if !strings.Contains(fmt.Sprint(list), "self-"+sha) || !strings.Contains(fmt.Sprint(list), "system:build:"+app+":") {
		t.Fatalf("images: %v", list)
	}

	// The builder's steps and a RUN step's output stream into the action's
	// log, also FROM an image that exists only in the local engine.
	box := containertest.BusyboxImage(t)
	e.pushPipeline(app, "run-step", map[string]string{
		"slipway.yaml": manualOnly + "stages:\n  - name: P\n    actions:\n      - {name: image, type: image}\n",
		"Dockerfile":   "FROM " + box + "\nLABEL slipway.test=1\nCOPY payload.txt /payload.txt\nRUN echo \"built by run: $(cat /payload.txt)\"\n",
		"payload.txt":  "payload",
	})
	runStep := e.startRun(app, "run-step")
	run = e.waitRun(runStep, 60*time.Second)
	stepLogs := e.logText(runStep)
	if run["state"] != "succeeded" || !strings.Contains(stepLogs, "COPY payload.txt /payload.txt") || !strings.Contains(stepLogs, "built by run: payload") {
		t.Fatalf("image build log (%v %v):\n%s", run["state"], run["reason"], stepLogs)
	}

	// A Dockerfile that fails fails the action with the builder's message.
	e.pushPipeline(app, "broken", map[string]string{
		"slipway.yaml": manualOnly + "stages:\n  - name: P\n    actions:\n      - {name: image, type: image}\n",
		"Dockerfile":   "FROM scratch\nCOPY missing-file.txt /x\n",
	})
	run = e.waitRun(e.startRun(app, "broken"), 60*time.Second)
	if run["state"] != "failed" || !strings.Contains(run["reason"].(string), "missing-file.txt") {
		t.Fatalf("broken Dockerfile: %v %v", run["state"], run["reason"])
	}

	// The buildspec's own docker build is labelled as the app's; deleting
	// the app leaves none of its images in the engine.
	labels, err = exec.Command("docker", "image", "inspect", "-f", `{{index .Config.Labels "slipway.app"}}`, host+"/"+app+":self-"+sha).Output()
	if err != nil || strings.TrimSpace(string(labels)) != app {
		t.Fatalf("the buildspec's image is not labelled as the app's: %q %v", labels, err)
	}
	if code, body := e.call("DELETE", "/api/v1/apps/"+app, e.Admin, nil); code != http.StatusNoContent {
		t.Fatalf("delete app: %d %v", code, body)
	}
	left, _ := exec.Command("docker", "images", "-q", "--filter", "label=slipway.app="+app, "--filter", "label=slipway.installation="+e.srv.installation).Output()
	tags, _ := exec.Command("docker", "images", "--format", "{{.Repository}}:{{.Tag}}").Output()
	if len(strings.TrimSpace(string(left))) > 0 || strings.Contains(string(tags), host+"/"+app+":") {
		t.Fatalf("images left after app delete: %q\n%s", left, tags)
	}
	if _, err := os.Stat(filepath.Join(e.srv.DataDir(), "homes", app)); !os.IsNotExist(err) {
		t.Fatalf("the app's build home outlived it: %v", err)
	}
}

func TestIntegrationContainerExecutor(t *testing.T) {
	e := newEnv(t)
	e.createApp("boxed")
	img := containertest.BusyboxImage(t)
	e.pushPipeline("boxed", "main", map[string]string{
		"slipway.yaml": manualOnly + `stages:
  - name: Build
    actions:
      - name: inbox
        type: build
        image: ` + img + `
        outputs: [Out]
  - name: Check
    actions:
      - {name: check, type: invoke, command: 'echo "got $FROM_BOX"'}
`,
		"input.txt": "from the repo",
		"buildspec.yml": `version: 0.2
env:
  exported-variables: [FROM_BOX]
phases:
  build:
    commands:
      - echo "src=$CODEBUILD_SRC_DIR pwd=$(pwd)"
      - test -x /bin/busybox
      - busybox cat input.txt
      - mkdir -p out && echo made-in-container > out/result.txt
      - export FROM_BOX=boxed-value
artifacts:
  files: ['out/*']
`,
	})
	id := e.startRun("boxed", "main")
	run := e.waitRun(id, 60*time.Second)
	logs := e.logText(id)
	if run["state"] != "succeeded" {
		t.Fatalf("run %v: %v\n%s", run["state"], run["reason"], logs)
	}
	for _, want := range []string{"src=/slipway/src pwd=/slipway/src", "from the repo", "got boxed-value"} {
		if !strings.Contains(logs, want) {
			t.Fatalf("logs lack %q:\n%s", want, logs)
		}
	}
	if got := e.artifactFiles(id, "Out")["out/result.txt"]; got != "made-in-container\n" {
		t.Fatalf("artifact from the container: %q", got)
	}
	// A failing command in the container fails the action with its exit code; no container is left.
	e.pushPipeline("boxed", "fail", map[string]string{
		"slipway.yaml":  manualOnly + "stages:\n  - name: B\n    actions:\n      - {name: inbox, type: build, image: " + img + "}\n",
		"buildspec.yml": "version: 0.2\nphases:\n  build:\n    commands: [\"exit 9\"]\n",
	})
	run = e.waitRun(e.startRun("boxed", "fail"), 60*time.Second)
	if run["state"] != "failed" || actionsOf(run)["B/inbox"]["exit_code"] != 9.0 {
		t.Fatalf("failing container build: %v", run)
	}
	out, _ := exec.Command("docker", "ps", "-aq", "--filter", "label=slipway.app=boxed", "--filter", "label=slipway.installation="+e.srv.installation).Output()
	if len(bytes.TrimSpace(out)) != 0 {
		t.Fatalf("containers left behind: %s", out)
	}
}
