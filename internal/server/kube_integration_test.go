package server

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/slipway-dev/slipway/internal/testtool/kubetest"
)

// TestIntegrationKubernetesEnvironment runs the demo flow with staging on
// a real Kubernetes cluster (kubetest's): the pipeline builds the web app
// into Slipway's registry, the cluster pulls it with the pull secret
// Slipway keeps, and Slipway's load balancer sends each request to a pod's
// address. Under load: a first rolling deployment, a rolling update, and
// a blue/green canary whose share is measured while it holds; no request
// fails. Deleting the app removes its pods from the cluster.
func TestIntegrationKubernetesEnvironment(t *testing.T) {
	cluster := kubetest.Cluster(t)
	ns := kubetest.Namespace(t)
	srv, app := startProcApp(t, "kube")
	u, _ := url.Parse(srv.URL)
	if err := cluster.AllowInsecureRegistry(u.Host); err != nil {
		t.Fatal(err)
	}
	// A viewer may read where an environment runs, not set it.
	viewer := srv.token("kube-viewer", "viewer")
	if code, _ := srv.call("PUT", "/api/v1/apps/"+app+"/envs/staging/runtime", viewer, map[string]any{"kind": "docker"}); code != 403 {
		t.Fatalf("a viewer set a runtime: %d", code)
	}
	out, err := srv.cli("env", "set-runtime", app, "staging", "kubernetes", "--kubeconfig", cluster.Kubeconfig, "--namespace", ns)
	if err != nil || !strings.Contains(out, "Kubernetes namespace "+ns) {
		t.Fatalf("env set-runtime: %v\n%s", err, out)
	}
	if out, err := srv.cli("env", "runtime", app, "staging", "--output", "json"); err != nil || !strings.Contains(out, `"kind": "kubernetes"`) || strings.Contains(out, "certificate-authority-data") {
		t.Fatalf("env runtime --output json: %v\n%s", err, out)
	}

	// A task definition a pod cannot express is refused when a service
	// names it, not when its first task would start.
	healthyDep := srv.registerTaskDef(fmt.Sprintf(`{"family":%q,"containerDefinitions":[
		{"name":"web","image":"x","dependsOn":[{"containerName":"db","condition":"HEALTHY"}]},
		{"name":"db","image":"x","essential":false,"healthCheck":{"command":["CMD","true"]}}]}`, app+"-dep"))
	code, body := srv.call("POST", "/api/v1/apps/"+app+"/envs/staging/services", srv.Admin, map[string]any{"name": "dep", "task_definition": fmt.Sprintf("%s-dep:%d", app, healthyDep)})
	if code != 400 || errorField(body, "field") != "task_definition" || !strings.Contains(errorField(body, "message"), "HEALTHY has no Kubernetes form") {
		t.Fatalf("a service of a task definition Kubernetes cannot run: %d %v", code, body)
	}

	port := freePort(t)
	files := func(version, settings string) map[string]string {
		return webappPipeline(t, app, version, "", fmt.Sprintf(`desired-count: 2
			listener-port: %d
			health-check-path: /health
			health-check-interval: 1s
			%s`, port, settings))
	}
	w := newWork(t)
	shipVersion(t, srv, w, app, 1, files("1", ""), port)
	pods := strings.Fields(kubetest.Kubectl(t, "-n", ns, "get", "pods", "-l", "slipway.app="+app, "-o", "name"))
	if len(pods) != 2 {
		t.Fatalf("pods of the service in namespace %s: %v", ns, pods)
	}
	if _, d := srv.call("GET", "/api/v1/apps/"+app+"/envs/staging/services/web", srv.Admin, nil); !strings.Contains(fmt.Sprint(d["tasks"]), "kubernetes/"+app+"/staging") {
		t.Fatalf("service ps does not show the tasks on Kubernetes: %v", d["tasks"])
	}

	// The pull secret in the namespace holds a token that may pull this
	// app's images and do nothing else: whoever may read secrets there
	// must not gain the API, the git repositories or other apps' images.
	raw := kubetest.Kubectl(t, "-n", ns, "get", "secret", "slipway-registry-"+app+"-staging", "-o", `jsonpath={.data.\.dockerconfigjson}`)
	cfgJSON, err := base64.StdEncoding.DecodeString(raw)
	if err != nil {
		t.Fatal(err)
	}
	var dockerCfg struct {
		Auths map[string]struct{ Password string }
	}
	if err := json.Unmarshal(cfgJSON, &dockerCfg); err != nil || dockerCfg.Auths[u.Host].Password == "" {
		t.Fatalf("pull secret: %s %v", cfgJSON, err)
	}
	pull := dockerCfg.Auths[u.Host].Password
	srv.createApp(app + "x")
	for _, c := range []struct{ method, path string }{
		{"GET", "/api/v1/apps"}, {"GET", "/api/v1/runs?app=" + app}, {"GET", "/git/" + app + ".git/info/refs?service=git-upload-pack"},
		{"GET", "/v2/" + app + "x/tags/list"}, {"GET", "/api/v1/secrets"},
	} {
		if code, _ := srv.call(c.method, c.path, pull, nil); code != 403 && code != 401 {
			t.Errorf("the pull token was let through to %s %s: %d", c.method, c.path, code)
		}
	}
	if code, body := srv.call("GET", "/v2/"+app+"/tags/list", pull, nil); code != 200 {
		t.Errorf("the pull token cannot list its own app's tags: %d %v", code, body)
	}

	l := startLoad(t, fmt.Sprintf("http://127.0.0.1:%d/", port))
	// A rolling update.
	shipVersion(t, srv, w, app, 2, files("2", ""), port)
	// A blue/green canary: 20% for 8 s, measured while it holds.
	w.commit("v3", files("3", "strategy: blue-green\n			deployment-config: Canary20Percent8Seconds\n			termination-wait: 1s"))
	w.git("push", "-q", repoURL(srv.URL, srv.Admin, app), "main")
	id := 0
	deadline := time.Now().Add(4 * time.Minute)
	for {
		_, list := srv.call("GET", "/api/v1/deployments?app="+app, srv.Admin, nil)
		for _, it := range list["items"].([]any) {
			d := it.(map[string]any)
			if d["state"] == "IN_PROGRESS" && d["phase"] == "AllowTraffic" && d["green_weight"] == 20.0 {
				id = int(d["id"].(float64))
			}
		}
		if id != 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no canary deployment held 20%%: %v\n%s", list, srv.logText(3))
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond)
	v2a, v3a := l.Served("version=2"), l.Served("version=3")
	time.Sleep(5 * time.Second)
	v2b, v3b := l.Served("version=2"), l.Served("version=3")
	if _, d := srv.call("GET", fmt.Sprintf("/api/v1/deployments/%d", id), srv.Admin, nil); d["green_weight"] != 20.0 {
		t.Fatalf("the canary moved on while measured: %v", d["green_weight"])
	}
	green, all := v3b-v3a, (v2b-v2a)+(v3b-v3a)
	share := float64(green) / float64(all)
	t.Logf("canary: green served %d of %d requests (%.2f%%)", green, all, share*100)
	if all < 200 || share < 0.18 || share > 0.22 {
		t.Fatalf("green got %.2f%% of %d production requests during a 20%% canary; want 20 ± 2%%", share*100, all)
	}
	srv.waitDeployment(id, "COMPLETED", 2*time.Minute)
	if run := srv.waitRun(3, 2*time.Minute); run["state"] != "succeeded" {
		t.Fatalf("run 3: %v %v", run["state"], run["reason"])
	}
	total, failed := l.Stop()
	t.Logf("requests through three deployments on Kubernetes: %d, failed %d", total, failed)
	if failed != 0 || total < 1000 {
		t.Fatalf("%d of %d requests failed during deployments on Kubernetes: %v", failed, total, l.Failures())
	}

	// An image the cluster cannot pull fails the deployment with that cause
	// and rolls it back.
	deployURL := "/api/v1/apps/" + app + "/envs/staging/services/web/deployments"
	bad := srv.registerTaskDef(webTaskDef(app, "127.0.0.1:1/nope/web:1", "bad"))
	code, body = srv.call("POST", deployURL, srv.Admin, map[string]any{"task_definition": fmt.Sprintf("%s:%d", app, bad),
		"settings": map[string]any{"circuit_breaker": true, "rollback": true}})
	if code != 201 {
		t.Fatalf("deploy an unpullable image: %d %v", code, body)
	}
	badID := int(body["id"].(float64))
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(200 * time.Millisecond) {
		if _, d := srv.call("GET", fmt.Sprintf("/api/v1/deployments/%d", badID), srv.Admin, nil); d["state"] != "IN_PROGRESS" || time.Now().After(deadline) {
			break
		}
	}
	if _, d := srv.call("GET", fmt.Sprintf("/api/v1/deployments/%d", badID), srv.Admin, nil); d["state"] != "ROLLED_BACK" {
		raw, _ := os.ReadFile(filepath.Join(srv.data, "server.log"))
		var log []byte
		for _, line := range strings.Split(string(raw), "\n") {
			if !strings.Contains(line, "msg=http ") {
				log = append(log, line+"\n"...)
			}
		}
		t.Fatalf("deployment of an unpullable image: %v %v\nservice events: %v\npods: %s\nserver log:\n%s", d["state"], d["reason"], events(srv.service(app, "staging", "web")),
			kubetest.Kubectl(t, "-n", ns, "get", "pods", "-o", "wide"), log[max(0, len(log)-6000):])
	}
	d := srv.waitDeployment(badID, "ROLLED_BACK", time.Second)
	if reason := fmt.Sprint(d["reason"]); !strings.Contains(reason, "127.0.0.1:1/nope/web:1") {
		t.Fatalf("the rolled-back deployment's reason does not name the image: %s", reason)
	}
	// A control plane killed mid-deployment resumes it after its restart.
	image := srv.service(app, "staging", "web")["tasks"].([]any)[0].(map[string]any)["containers"].([]any)[0].(map[string]any)["image"].(string)
	rev4 := srv.registerTaskDef(webTaskDef(app, image, "4"))
	code, body = srv.call("POST", deployURL, srv.Admin, map[string]any{"task_definition": fmt.Sprintf("%s:%d", app, rev4)})
	if code != 201 {
		t.Fatalf("deploy revision 4: %d %v", code, body)
	}
	time.Sleep(500 * time.Millisecond)
	srv = srv.restart()
	srv.waitDeployment(int(body["id"].(float64)), "COMPLETED", 2*time.Minute)
	if code, body := getURL(t, fmt.Sprintf("http://127.0.0.1:%d/", port)); code != 200 || !strings.HasPrefix(body, "version=4") {
		t.Fatalf("after the resumed deployment: %d %s", code, body)
	}

	// Self-healing: a pod deleted behind Slipway's back is replaced.
	// (Blue is kept a moment after the blue/green deployment: its termination wait.)
	ids := runningIDs(srv.waitService(app, "staging", "web", 2*time.Minute, "blue gone", func(d map[string]any) bool { return len(runningIDs(d)) == 2 }))
	kubetest.Kubectl(t, "-n", ns, "delete", "pod", "slipway-"+ids[0], "--wait=false")
	srv.waitService(app, "staging", "web", 90*time.Second, "the deleted pod replaced", func(d map[string]any) bool {
		now := runningIDs(d)
		return len(now) == 2 && !slices.Contains(now, ids[0]) && slices.Contains(now, ids[1])
	})
	// A restarted server adopts the pods it finds: none is replaced.
	ids = runningIDs(srv.service(app, "staging", "web"))
	srv = srv.restart()
	time.Sleep(3 * time.Second)
	if code, body := getURL(t, fmt.Sprintf("http://127.0.0.1:%d/", port)); code != 200 || !strings.HasPrefix(body, "version=4") {
		t.Fatalf("after a restart: %d %s", code, body)
	}
	if now := runningIDs(srv.service(app, "staging", "web")); !slices.Equal(now, ids) {
		t.Fatalf("a restart replaced tasks: %v, then %v", ids, now)
	}

	// Deleting the app removes its pods from the cluster.
	if code, body := srv.call("DELETE", "/api/v1/apps/"+app, srv.Admin, nil); code != 200 && code != 204 {
		t.Fatalf("delete app: %d %v", code, body)
	}
	deadline = time.Now().Add(90 * time.Second)
	for {
		left := strings.Fields(kubetest.Kubectl(t, "-n", ns, "get", "pods,secrets", "-l", "slipway.app="+app, "-o", "name"))
		if len(left) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("left in the cluster after the app was deleted: %v", left)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// runningIDs are the ids of a service detail's running tasks, sorted.
func runningIDs(d map[string]any) []string {
	var ids []string
	for _, t := range d["tasks"].([]any) {
		if tm := t.(map[string]any); tm["status"] == "RUNNING" {
			ids = append(ids, tm["id"].(string))
		}
	}
	sort.Strings(ids)
	return ids
}
