package kube

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/slipway-dev/slipway/internal/task"
	"github.com/slipway-dev/slipway/internal/taskdef"
	"github.com/slipway-dev/slipway/internal/testtool/kubecluster"
	"github.com/slipway-dev/slipway/internal/testtool/kubetest"
	"github.com/slipway-dev/slipway/internal/tlscert/tlstest"
)

func TestMain(m *testing.M) { os.Exit(kubetest.RunMain(m)) }

// busyboxImage imports a FROM-scratch image holding Debian's static
// busybox (as /bin/busybox and /bin/sh) into the cluster, once.
func busyboxImage(t *testing.T, c *kubecluster.Cluster) string {
	t.Helper()
	bb, err := os.ReadFile("/bin/busybox")
	if err != nil {
		t.Skipf("Debian's busybox-static is not installed (apt-get install busybox-static): %v", err)
	}
	const ref = "localhost/slipway-test/busybox:1"
	img, err := kubecluster.ImageBytes(ref, []kubecluster.File{{Name: "bin/busybox", Mode: 0o755, Data: bb}, {Name: "bin/sh", Mode: 0o755, Data: bb}},
		[]string{"/bin/sh"})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.ImportImage(context.Background(), bytes.NewReader(img)); err != nil {
		t.Fatal(err)
	}
	return ref
}

func newRuntime(t *testing.T) (*Runtime, *kubecluster.Cluster, string) {
	t.Helper()
	c := kubetest.Cluster(t)
	ns := kubetest.Namespace(t)
	cfg, err := os.ReadFile(c.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	rt, err := New("kubernetes/test/"+ns, Config{Kubeconfig: cfg, Context: c.Context, Namespace: ns})
	if err != nil {
		t.Fatal(err)
	}
	rt.Installation = "it" + ns
	if err := rt.Check(context.Background()); err != nil {
		t.Fatal(err)
	}
	return rt, c, ns
}

func def(t *testing.T, js string) *taskdef.TaskDef {
	t.Helper()
	d, _, err := taskdef.Parse([]byte(js))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestIntegrationBackendContract holds the Kubernetes runtime to the
// task.Backend contract with real pods: a start that serves on the pod's
// address with its secret injected, listing and health, output, a crash
// with its exit code and last words, an OOM kill, an image that cannot be
// pulled, a pod no node can take, events, halt and remove.
func TestIntegrationBackendContract(t *testing.T) {
	rt, c, _ := newRuntime(t)
	img := busyboxImage(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()

	var changes atomic.Int64
	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	opened := make(chan struct{}, 1)
	go rt.Watch(watchCtx, func() { changes.Add(1) }, func(up bool) {
		if up {
			select {
			case opened <- struct{}{}:
			default:
			}
		}
	})
	select {
	case <-opened:
	case <-time.After(20 * time.Second):
		t.Fatal("the pod watch did not open")
	}

	web := def(t, fmt.Sprintf(`{"family":"web","containerDefinitions":[{"name":"web","image":%q,"memory":64,"stopTimeout":2,
		"entryPoint":["/bin/sh","-c"],
		"command":["mkdir -p /www && echo \"greeting=$GREETING\" > /www/index.html && echo started-web && exec /bin/busybox httpd -f -p 8080 -h /www"],
		"portMappings":[{"containerPort":8080}],
		"secrets":[{"name":"GREETING","valueFrom":"greeting"}],
		"healthCheck":{"command":["CMD-SHELL","/bin/busybox wget -q -O /dev/null http://127.0.0.1:8080/"],"interval":5,"retries":2}}]}`, img))
	began := time.Now()
	tk, err := rt.Start(ctx, task.Spec{App: "shop", Env: "prod", Service: "web", Group: "tg1", Family: "web", Revision: 1, Def: web,
		Secrets: map[string]map[string]string{"web": {"GREETING": "s3cret-value"}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("a task started in %v", time.Since(began).Round(time.Millisecond))
	if tk.Runtime != rt.Key() || tk.Address == "" || tk.Status() != "RUNNING" || tk.Family != "web" || tk.Revision != 1 || tk.Group != "tg1" {
		t.Fatalf("started task: %+v", tk)
	}
	ep := tk.Endpoint("web", 8080)
	if ep != tk.Address+":8080" {
		t.Fatalf("endpoint %q, address %q", ep, tk.Address)
	}
	// The load balancer's view: the pod's address answers from the host.
	var body string
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get("http://" + ep + "/"); err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			body = string(b)
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if strings.TrimSpace(body) != "greeting=s3cret-value" {
		t.Fatalf("the pod answered %q", body)
	}
	// Health from the readiness probe, as the container health check.
	deadline = time.Now().Add(30 * time.Second)
	for {
		ts, err := rt.List(ctx, map[string]string{task.LabelService: "web"})
		if err != nil {
			t.Fatal(err)
		}
		if len(ts) == 1 && ts[0].Health() == "HEALTHY" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not healthy: %+v", ts)
		}
		time.Sleep(200 * time.Millisecond)
	}
	// Output, with the runtime's timestamps; and nothing again after it.
	var out bytes.Buffer
	if err := rt.Logs(ctx, tk, tk.Containers[0], time.Time{}, false, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	line := strings.TrimSpace(out.String())
	ts, text, _ := strings.Cut(line, " ")
	at, err := time.Parse(time.RFC3339Nano, ts)
	if text != "started-web" || err != nil {
		t.Fatalf("logs: %q", out.String())
	}
	out.Reset()
	if err := rt.Logs(ctx, tk, tk.Containers[0], at, false, &out, io.Discard); err != nil || out.Len() != 0 {
		t.Fatalf("logs after the last line: %q %v", out.String(), err)
	}
	if !rt.Running(ctx, tk, tk.Containers[0]) {
		t.Fatal("Running = false for a running container")
	}

	// A crash: the exit code and last words, and an event.
	before := changes.Load()
	crash := def(t, fmt.Sprintf(`{"family":"crash","containerDefinitions":[{"name":"main","image":%q,
		"entryPoint":["/bin/sh","-c"],"command":["echo going down; sleep 1; exit 3"]}]}`, img))
	ct, err := rt.Start(ctx, task.Spec{App: "shop", Env: "prod", Service: "crash", Group: "tg1", Family: "crash", Revision: 1, Def: crash})
	if err != nil {
		t.Fatal(err)
	}
	ct = waitStatus(t, rt, ct.ID, "STOPPED")
	if ct.StoppedReason() != "essential container main exited with code 3" {
		t.Fatalf("stopped reason %q", ct.StoppedReason())
	}
	f := rt.Failure(ctx, ct)
	if f == nil || f.ExitCode != 3 || f.Container != "main" || !f.Essential || f.OutputText() != "going down" {
		t.Fatalf("failure: %+v", f)
	}
	if changes.Load() == before {
		t.Error("the watch did not report the crash")
	}

	// An OOM kill is named.
	oom := def(t, fmt.Sprintf(`{"family":"oom","containerDefinitions":[{"name":"main","image":%q,"memory":16,
		"entryPoint":["/bin/sh","-c"],"command":["/bin/busybox head -c 200000000 /dev/zero | /bin/busybox tail"]}]}`, img))
	ot, err := rt.Start(ctx, task.Spec{App: "shop", Env: "prod", Service: "oom", Group: "tg1", Family: "oom", Revision: 1, Def: oom})
	if err != nil {
		t.Fatal(err)
	}
	ot = waitStatus(t, rt, ot.ID, "STOPPED")
	if f := rt.Failure(ctx, ot); f == nil || !f.OOMKilled || f.MemoryLimit != 16<<20 || !strings.Contains(f.Headline(), "OOM-killed at its memory limit of 16 MiB") {
		t.Fatalf("OOM failure: %+v", f)
	}

	// An image that cannot be pulled fails the start, saying so, and
	// leaves nothing behind.
	missing := def(t, `{"family":"missing","containerDefinitions":[{"name":"main","image":"127.0.0.1:1/nope/nope:1"}]}`)
	_, err = rt.Start(ctx, task.Spec{App: "shop", Env: "prod", Service: "missing", Group: "tg1", Family: "missing", Revision: 1, Def: missing})
	if !errors.Is(err, task.ErrImage) || !strings.Contains(err.Error(), "127.0.0.1:1/nope/nope:1") {
		t.Fatalf("start with a missing image: %v", err)
	}
	// No node has a terabyte: the scheduler's reason, as a capacity error.
	huge := def(t, fmt.Sprintf(`{"family":"huge","containerDefinitions":[{"name":"main","image":%q,"memoryReservation":1000000}]}`, img))
	_, err = rt.Start(ctx, task.Spec{App: "shop", Env: "prod", Service: "huge", Group: "tg1", Family: "huge", Revision: 1, Def: huge})
	var ce *task.CapacityError
	if !errors.As(err, &ce) || !strings.Contains(err.Error(), "Insufficient memory") {
		t.Fatalf("start of a pod no node can take: %v", err)
	}
	for _, svc := range []string{"missing", "huge"} {
		if ts, _ := rt.List(ctx, map[string]string{task.LabelService: svc}); len(ts) != 0 {
			t.Errorf("a failed start of %s left %d tasks", svc, len(ts))
		}
	}

	// Halt: gone within its grace period, its secret with it.
	if err := rt.HaltTask(ctx, tk); err != nil {
		t.Fatal(err)
	}
	if err := rt.RemoveTask(ctx, tk); err != nil {
		t.Fatal(err)
	}
	if err := rt.RemoveTask(ctx, ct); err != nil {
		t.Fatal(err)
	}
	if err := rt.RemoveTask(ctx, ot); err != nil {
		t.Fatal(err)
	}
	if ts, err := rt.List(ctx, nil); err != nil || len(ts) != 0 {
		t.Fatalf("after removing every task: %+v %v", ts, err)
	}
	if _, err := rt.cs.CoreV1().Secrets(rt.namespace).Get(ctx, podName(tk.ID), metav1.GetOptions{}); err == nil {
		t.Error("the task's secret is left")
	}
	// Another installation's listing does not see this one's tasks.
	other := &Runtime{key: rt.key, cs: rt.cs, stream: rt.stream, namespace: rt.namespace, Installation: "someone-else"}
	if ts, err := other.List(ctx, nil); err != nil || len(ts) != 0 {
		t.Fatalf("another installation lists %d tasks: %v", len(ts), err)
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func waitStatus(t *testing.T, rt *Runtime, id, status string) task.Task {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		ts, err := rt.List(context.Background(), map[string]string{task.LabelTask: id})
		if err != nil {
			t.Fatal(err)
		}
		if len(ts) == 1 && ts[0].Status() == status {
			return ts[0]
		}
		if time.Now().After(deadline) {
			t.Fatalf("task %s not %s: %+v", id, status, ts)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestIntegrationCheckRefusals: the errors a runtime gives when it is set.
func TestIntegrationCheckRefusals(t *testing.T) {
	c := kubetest.Cluster(t)
	ns := kubetest.Namespace(t)
	ctx := context.Background()
	cfg, err := os.ReadFile(c.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	// A namespace that does not exist.
	rt, err := New("k", Config{Kubeconfig: cfg, Context: c.Context, Namespace: "no-such-ns"})
	if err != nil {
		t.Fatal(err)
	}
	if err := rt.Check(ctx); err == nil || !strings.Contains(err.Error(), "namespace no-such-ns does not exist") {
		t.Fatalf("missing namespace: %v", err)
	}
	// An API server that does not answer.
	dead := bytes.Replace(cfg, []byte(c.Server), []byte("https://127.0.0.1:1"), 1)
	rt, err = New("k", Config{Kubeconfig: dead, Context: c.Context, Namespace: ns})
	if err != nil {
		t.Fatal(err)
	}
	if err := rt.Check(ctx); err == nil || !strings.Contains(err.Error(), "does not answer") {
		t.Fatalf("dead API server: %v", err)
	}
	// Credentials the API server refuses, and a CA that does not sign its
	// certificate: each says what to fix, not that the server is down.
	for _, bad := range []struct {
		name     string
		from, to []byte
		want     string
	}{
		{"a wrong token", []byte(c.Token), []byte("not-a-token"), "refused the credentials (401 Unauthorized)"},
		{"another CA", []byte(base64.StdEncoding.EncodeToString(mustRead(t, c.CACert))), []byte(base64.StdEncoding.EncodeToString(tlstest.NewCA(t).PEM)), "certificate is not trusted"},
	} {
		cfgBad := bytes.Replace(cfg, bad.from, bad.to, 1)
		if bytes.Equal(cfgBad, cfg) {
			t.Fatalf("%s: the harness's kubeconfig does not hold it inline", bad.name)
		}
		rt, err := New("k", Config{Kubeconfig: cfgBad, Context: c.Context, Namespace: ns})
		if err != nil {
			t.Fatal(err)
		}
		if err := rt.Check(ctx); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Fatalf("%s: %v, want …%s…", bad.name, err, bad.want)
		}
	}
	// A service account with no rights: RBAC's refusal names verbs and resources.
	kubetest.Kubectl(t, "-n", ns, "create", "serviceaccount", "nobody")
	token := strings.TrimSpace(kubetest.Kubectl(t, "-n", ns, "create", "token", "nobody"))
	weak := bytes.Replace(cfg, []byte(c.Token), []byte(token), 1)
	if bytes.Equal(weak, cfg) {
		t.Fatal("the harness's kubeconfig does not hold its token inline")
	}
	rt, err = New("k", Config{Kubeconfig: weak, Context: c.Context, Namespace: ns})
	if err != nil {
		t.Fatal(err)
	}
	err = rt.Check(ctx)
	if !errors.Is(err, errForbidden) || !strings.Contains(err.Error(), "may not create pods, delete pods") || !strings.Contains(err.Error(), "get pods/log") {
		t.Fatalf("no rights: %v", err)
	}
	// Granted what it needs, the same account passes.
	kubetest.KubectlIn(t, roleYAML(ns), "apply", "-f", "-")
	if err := rt.Check(ctx); err != nil {
		t.Fatalf("with the role of docs/kubernetes.md: %v", err)
	}
}

// roleYAML is the least a runtime's credentials need in their namespace
// (docs/kubernetes.md has it too).
func roleYAML(ns string) string {
	return `apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: slipway, namespace: ` + ns + `}
rules:
- apiGroups: [""]
  resources: [pods]
  verbs: [create, delete, get, list, watch]
- apiGroups: [""]
  resources: [pods/log]
  verbs: [get]
- apiGroups: [""]
  resources: [secrets]
  verbs: [create, update, patch, delete, get]
- apiGroups: [""]
  resources: [events]
  verbs: [list]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: slipway, namespace: ` + ns + `}
subjects: [{kind: ServiceAccount, name: nobody, namespace: ` + ns + `}]
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: slipway}
`
}
