package server

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/slipway-dev/slipway/internal/container/containertest"
)

// TestIntegrationBuildCannotReachControlPlane is the attack of a deployer
// whose commit reaches a watched branch: the build reads the data
// directory, looks for the server and the Docker engine, and turns its
// registry credential against the API and other apps' repositories. Before
// builds ran in the sandbox, this printed the admin token and master key.
func TestIntegrationBuildCannotReachControlPlane(t *testing.T) {
	e := newEnv(t)
	e.createApp("attack")
	e.createApp("victim")
	data := e.srv.DataDir()
	const secretValue = "s3cret-value-never-shown-4711"
	if code, body := e.call("PUT", "/api/v1/secrets/db", e.Admin, map[string]string{"app": "attack", "value": secretValue}); code != 200 {
		t.Fatalf("set secret: %d %v", code, body)
	}
	status := func(label, method, path string) string {
		return fmt.Sprintf(`echo "%s=$(curl -s -o /dev/null -w '%%{http_code}' -X %s -u x:$TOK '%s%s')"`, label, method, e.URL, path)
	}
	buildspec := `version: 0.2
env:
  secrets-manager:
    DB: db
phases:
  build:
    commands:
      - cat ` + filepath.Join(data, AdminTokenFile) + ` || echo "admin-token=unreachable"
      - cat ` + filepath.Join(data, "master.key") + ` || echo "master-key=unreachable"
      - ls ` + data + ` || echo "data-directory=unreachable"
      - test -e /var/run/docker.sock && echo "docker-socket=reachable" || echo "docker-socket=unreachable"
      - echo "uid=$(id -u)"
      - echo "pid1=$(tr '\0' ' ' < /proc/1/cmdline)"
      - TOK=$(sed 's/.*"auth":"\([^"]*\)".*/\1/' "$DOCKER_CONFIG/config.json" | base64 -d | cut -d':' -f2-)
      - echo "token=$TOK"
      - cat "$DOCKER_CONFIG/config.json"; echo
      - ` + status("apps", "GET", "/api/v1/apps") + `
      - ` + status("tokens", "GET", "/api/v1/tokens") + `
      - ` + status("secrets", "GET", "/api/v1/secrets") + `
      - ` + status("victim-push", "POST", "/v2/victim/blobs/uploads/") + `
      - ` + status("victim-mount", "POST", "/v2/attack/blobs/uploads/?mount=sha256:0000000000000000000000000000000000000000000000000000000000000000&from=victim") + `
      - ` + status("catalog", "GET", "/v2/_catalog") + `
      - ` + status("own-push", "POST", "/v2/attack/blobs/uploads/") + `
      - echo ready; sleep 3
`
	e.pushPipeline("attack", "main", map[string]string{
		"slipway.yaml":  manualOnly + "stages:\n  - name: Build\n    actions:\n      - {name: steal, type: build}\n",
		"buildspec.yml": buildspec,
	})
	id := e.startRun("attack", "main")
	// While the build runs, its container's engine record must not hold the secret.
	deadline := time.Now().Add(60 * time.Second)
	for !strings.Contains(e.logText(id), "ready") {
		if _, run := e.call("GET", fmt.Sprintf("/api/v1/runs/%d", id), e.Admin, nil); run["ended_at"] != nil || time.Now().After(deadline) {
			t.Fatalf("the build never got ready:\n%s", e.logText(id))
		}
		time.Sleep(100 * time.Millisecond)
	}
	ids, err := exec.Command("docker", "ps", "-q", "--filter", fmt.Sprintf("label=slipway.run=%d", id), "--filter", "label=slipway.app=attack").Output()
	if err != nil || len(strings.Fields(string(ids))) != 1 {
		t.Fatalf("the build's container: %q %v", ids, err)
	}
	inspect, err := exec.Command("docker", append([]string{"inspect"}, strings.Fields(string(ids))...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("docker inspect: %v\n%s", err, inspect)
	}
	if strings.Contains(string(inspect), secretValue) {
		t.Errorf("docker inspect of the build container shows the secret")
	}
	run := e.waitRun(id, 60*time.Second)
	log := e.logText(id)
	if run["state"] != "succeeded" {
		t.Fatalf("run %v: %v\n%s", run["state"], run["reason"], log)
	}
	adminToken, _ := os.ReadFile(filepath.Join(data, AdminTokenFile))
	masterKey, _ := os.ReadFile(filepath.Join(data, "master.key"))
	for name, leaked := range map[string]string{"admin token": strings.TrimSpace(string(adminToken)), "master key": strings.TrimSpace(string(masterKey)), "secret": secretValue} {
		if leaked == "" {
			t.Fatalf("test premise: the %s is empty", name)
		}
		if leaked != "" && strings.Contains(log, leaked) {
			t.Errorf("the build printed the %s", name)
		}
	}
	for _, want := range []string{"admin-token=unreachable", "master-key=unreachable", "data-directory=unreachable", "docker-socket=unreachable",
		"token=***", `"auth":"***"`, "apps=403", "tokens=403", "secrets=403", "victim-push=403", "victim-mount=403", "catalog=403", "own-push=202"} {
		if !strings.Contains(log, want) {
			t.Errorf("the build log lacks %q\n%s", want, log)
		}
	}
	if os.Geteuid() == 0 && strings.Contains(log, "uid=0\n") {
		t.Errorf("the build ran as root")
	}
	if !strings.Contains(log, "pid1=sh -c read -r _") {
		t.Errorf("the build sees processes other than its sandbox's (pid 1 is not the sandbox's shell)")
	}
	// The build's token went with the build.
	_, toks := e.call("GET", "/api/v1/tokens", e.Admin, nil)
	if strings.Contains(fmt.Sprint(toks), "system:build:") {
		t.Errorf("a build token outlived its build: %v", toks)
	}
}

// boxesOf lists the containers of run id of app.
func boxesOf(t *testing.T, app string, id int) []string {
	t.Helper()
	out, err := exec.Command("docker", "ps", "-aq", "--filter", fmt.Sprintf("label=slipway.run=%d", id), "--filter", "label=slipway.app="+app).Output()
	if err != nil {
		t.Fatalf("docker ps: %v", err)
	}
	return strings.Fields(string(out))
}

// waitBoxes waits until run id of app has n containers.
func waitBoxes(t *testing.T, app string, id, n int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for len(boxesOf(t, app, id)) != n {
		if time.Now().After(deadline) {
			t.Fatalf("run %d of %s has containers %v, want %d", id, app, boxesOf(t, app, id), n)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// sandboxSleeper is a build that starts a background process and waits.
var sandboxSleeper = map[string]string{
	"slipway.yaml":  manualOnly + "stages:\n  - name: Build\n    actions:\n      - {name: slow, type: build}\n",
	"buildspec.yml": "version: 0.2\nphases:\n  build:\n    commands:\n      - echo first\n      - sleep 300 & wait\n",
}

// A cancelled sandboxed build ends with everything it started: its
// container goes, and with it the build's token.
func TestIntegrationSandboxCancelRemovesContainer(t *testing.T) {
	e := newEnv(t)
	e.createApp("sbslow")
	e.pushPipeline("sbslow", "main", sandboxSleeper)
	id := e.startRun("sbslow", "main")
	waitBoxes(t, "sbslow", id, 1)
	for !strings.Contains(e.logText(id), "first") {
		time.Sleep(50 * time.Millisecond)
	}
	if code, body := e.call("POST", fmt.Sprintf("/api/v1/runs/%d/cancel", id), e.Admin, nil); code != 202 {
		t.Fatalf("cancel: %d %v", code, body)
	}
	if run := e.waitRun(id, 20*time.Second); run["state"] != "cancelled" {
		t.Fatalf("after cancel: %v", run)
	}
	waitBoxes(t, "sbslow", id, 0)
}

// A server killed in the middle of a sandboxed build leaves a container and
// a build token; the next server on the data directory removes both.
func TestIntegrationRestartRemovesSandbox(t *testing.T) {
	bin := slipwayBinary(t)
	data := t.TempDir()
	p := startProcServer(t, bin, data, "")
	e := p.testEnv
	e.createApp("sbcrash")
	e.pushPipeline("sbcrash", "main", sandboxSleeper)
	id := e.startRun("sbcrash", "main")
	waitBoxes(t, "sbcrash", id, 1)
	t.Cleanup(func() {
		if ids := boxesOf(t, "sbcrash", id); len(ids) > 0 {
			exec.Command("docker", append([]string{"rm", "-f"}, ids...)...).Run()
		}
	})
	p.kill()
	if len(boxesOf(t, "sbcrash", id)) != 1 {
		t.Fatal("test premise: the build's container should outlive a SIGKILLed server")
	}
	p = startProcServer(t, bin, data, "")
	e = p.testEnv
	if run := e.waitRun(id, 10*time.Second); run["state"] != "failed" || run["reason"] != "control plane restarted" {
		t.Fatalf("after restart: %v %v", run["state"], run["reason"])
	}
	waitBoxes(t, "sbcrash", id, 0)
	if _, toks := e.call("GET", "/api/v1/tokens", e.Admin, nil); strings.Contains(fmt.Sprint(toks), "system:build:") {
		t.Errorf("the interrupted build's token survived the restart: %v", toks)
	}
}

// A link made inside the build container to a host path (the data
// directory's admin token) is refused when the artifact is collected:
// the server reads the workspace on the host, where the link would lead.
func TestIntegrationBuildLinkOutIsRefused(t *testing.T) {
	e := newEnv(t)
	e.createApp("linker")
	token := filepath.Join(e.srv.DataDir(), AdminTokenFile)
	e.pushPipeline("linker", "main", map[string]string{
		"slipway.yaml":  manualOnly + "stages:\n  - name: Build\n    actions:\n      - {name: link, type: build, outputs: [Out]}\n",
		"buildspec.yml": "version: 0.2\nphases:\n  build:\n    commands:\n      - ln -s " + token + " token.txt\nartifacts:\n  files: [token.txt]\n",
	})
	id := e.startRun("linker", "main")
	run := e.waitRun(id, 60*time.Second)
	if run["state"] != "failed" || !strings.Contains(fmt.Sprint(run["reason"]), "token.txt is a symbolic link that leads outside") {
		t.Fatalf("run %v: %v\n%s", run["state"], run["reason"], e.logText(id))
	}
	if arts, _ := run["artifacts"].([]any); len(arts) != 1 { // SourceArtifact only
		t.Fatalf("artifacts: %v", run["artifacts"])
	}
}

// The review's cache attack: a link the build leaves above a cache path
// (src/a -> a host directory) must not make the server, as root, pack
// that host directory into the app's cache for the next build to read.
// And an image Slipway made for another app is not a build's to run.
func TestIntegrationCacheAndImageAttacks(t *testing.T) {
	e := newEnv(t)
	e.createApp("cachethief")
	outside := t.TempDir()
	os.MkdirAll(filepath.Join(outside, "slipway"), 0o700)
	os.WriteFile(filepath.Join(outside, "slipway", "admin.token"), []byte("slw_host_secret"), 0o600)
	e.pushPipeline("cachethief", "main", map[string]string{
		"slipway.yaml":  manualOnly + "stages:\n  - name: Build\n    actions:\n      - {name: steal, type: build}\n",
		"buildspec.yml": "version: 0.2\nphases:\n  build:\n    commands:\n      - ln -s " + outside + " a\ncache:\n  paths: [a/slipway]\n",
	})
	id := e.startRun("cachethief", "main")
	run := e.waitRun(id, 60*time.Second)
	log := e.logText(id)
	if run["state"] != "succeeded" || !strings.Contains(log, "cache a/slipway not saved") {
		t.Fatalf("run %v %v:\n%s", run["state"], run["reason"], log)
	}
	filepath.WalkDir(filepath.Join(e.srv.DataDir(), "cache"), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if b, _ := os.ReadFile(p); strings.Contains(string(b), "slw_host_secret") {
				t.Errorf("the host file reached the app's cache: %s", p)
			}
		}
		return nil
	})

	// Another app's image, in the local engine, named in image:.
	other := "slipway-test-otherapp:" + fmt.Sprint(time.Now().UnixNano())
	build := exec.Command("docker", "build", "-q", "-t", other, "--label", "slipway.app=victim", "--label", "slipway.test=1", "-")
	build.Stdin = strings.NewReader("FROM " + containertest.BusyboxImage(t) + "\n")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("docker build: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("docker", "rmi", "-f", other).Run() })
	e.pushPipeline("cachethief", "img", map[string]string{
		"slipway.yaml":  manualOnly + "stages:\n  - name: Build\n    actions:\n      - {name: borrow, type: build, image: " + other + "}\n",
		"buildspec.yml": "version: 0.2\nphases:\n  build:\n    commands: [\"echo ran\"]\n",
	})
	run = e.waitRun(e.startRun("cachethief", "img"), 60*time.Second)
	if run["state"] != "failed" || !strings.Contains(fmt.Sprint(run["reason"]), "is app victim's image") {
		t.Fatalf("another app's image: %v %v", run["state"], run["reason"])
	}
}
