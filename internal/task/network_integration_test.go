package task

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/slipway-dev/slipway/internal/container/containertest"
	"github.com/slipway-dev/slipway/internal/taskdef"
)

// inContainer runs a shell command in a container and returns its output.
// (Debian's static busybox wget crashes on its own -T, hence timeout.)
func inContainer(id, script string) (string, error) {
	out, err := exec.Command("docker", "exec", id, "sh", "-c", script).CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

func containerID(tk Task, name string) string {
	for _, c := range tk.Containers {
		if c.Name == name {
			return c.ID
		}
	}
	return ""
}

// The containers of a task share one network namespace and reach each
// other on localhost and by name; the host (the load balancer) reaches the
// task at its own address; tasks of one environment reach a service by its
// name, and tasks of another environment cannot reach it at all. Losing
// the namespace's holder stops the whole task.
func TestIntegrationTaskNetworking(t *testing.T) {
	image := containertest.BusyboxImage(t)
	app := fmt.Sprintf("net-%d", time.Now().UnixNano())
	removeLeftoversAtEnd(t, app)
	rt, err := NewRuntime(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	no := false
	serve := taskdef.Container{Name: "web", Image: image, StopTimeout: 2, PortMappings: []taskdef.PortMapping{{ContainerPort: 8080}},
		Command: []string{"sh", "-c", "mkdir -p /tmp/w && echo hello > /tmp/w/index.html && exec busybox httpd -f -p 8080 -h /tmp/w"}}
	sleeper := func(name string) taskdef.Container {
		return taskdef.Container{Name: name, Image: image, Essential: &no, StopTimeout: 2, Command: []string{"busybox", "sleep", "300"}}
	}
	start := func(env, service string, cs ...taskdef.Container) Task {
		t.Helper()
		cs[0].Essential = nil
		tk, err := rt.Start(ctx, Spec{App: app, Env: env, Service: service, Family: service, Revision: 1,
			Def: &taskdef.TaskDef{Family: service, ContainerDefinitions: cs}})
		if err != nil {
			t.Fatalf("start %s/%s: %v", env, service, err)
		}
		return tk
	}
	fetch := func(from, url string) (string, error) {
		var out string
		var err error
		for i := 0; i < 25; i++ { // httpd may still be starting
			if out, err = inContainer(from, "busybox timeout 3 busybox wget -q -O- "+url); err == nil {
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
		return out, err
	}

	api := start("staging", "api", serve, sleeper("side"))
	side := containerID(api, "side")
	for _, url := range []string{"http://localhost:8080/", "http://web:8080/"} {
		if out, err := fetch(side, url); err != nil || out != "hello" {
			t.Fatalf("side → %s: %q %v", url, out, err)
		}
	}
	ep := api.Endpoint("web", 8080)
	if api.Address == "" || ep != api.Address+":8080" {
		t.Fatalf("endpoint %q, address %q", ep, api.Address)
	}
	resp, err := http.Get("http://" + ep + "/")
	if err != nil {
		t.Fatalf("the host cannot reach the task at %s: %v", ep, err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if strings.TrimSpace(string(body)) != "hello" {
		t.Fatalf("host → %s: %q", ep, body)
	}

	client := start("staging", "client", sleeper("client"))
	if out, err := fetch(containerID(client, "client"), "http://api:8080/"); err != nil || out != "hello" {
		t.Fatalf("a task of the same environment → http://api:8080/: %q %v", out, err)
	}
	other := start("production", "client", sleeper("client"))
	if out, err := inContainer(containerID(other, "client"), "busybox timeout 3 busybox wget -q -O- http://"+ep+"/"); err == nil {
		t.Fatalf("a task of another environment reached %s: %q", ep, out)
	}
	if out, err := inContainer(containerID(other, "client"), "busybox timeout 3 busybox wget -q -O- http://api:8080/"); err == nil {
		t.Fatalf("a task of another environment resolved the service: %q", out)
	}

	// The holder is not one of the task definition's containers, so it is
	// not listed; killing it takes the network of the others.
	if len(api.Containers) != 2 {
		t.Fatalf("listed containers %+v", api.Containers)
	}
	out, err := exec.Command("docker", "ps", "-q", "--filter", "label="+LabelTask+"="+api.ID, "--filter", "label="+LabelNetworkOwner+"="+ownerHolder).Output()
	if err != nil || len(strings.Fields(string(out))) != 1 {
		t.Fatalf("the holder of task %s: %q %v", api.ID, out, err)
	}
	if err := exec.Command("docker", "kill", strings.TrimSpace(string(out))).Run(); err != nil {
		t.Fatal(err)
	}
	got, err := rt.Get(ctx, api.ID)
	if err != nil || got.Status() != "STOPPED" || !strings.Contains(got.StoppedReason(), "network namespace holder exited") {
		t.Fatalf("after the holder died: %s %q %v", got.Status(), got.StoppedReason(), err)
	}
	for _, id := range []string{api.ID, client.ID, other.ID} {
		if err := rt.Stop(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	if left := leftovers(t, app); len(left) > 0 {
		t.Fatalf("stopped tasks left %v", left)
	}
	// Unused environment networks go once nothing keeps them.
	if err := rt.PruneNetworks(ctx, func(a, env string) bool { return a != app }); err != nil {
		t.Fatal(err)
	}
	if left := labelled(t, app, "label="+LabelApp); len(left) > 0 {
		t.Fatalf("pruned networks left %v", left)
	}
}

// More tasks run than the engine has address pools (about 30): tasks no
// longer get a network each.
func TestIntegrationTasksOutnumberAddressPools(t *testing.T) {
	if testing.Short() {
		t.Skip("starts 36 containers")
	}
	image := containertest.BusyboxImage(t)
	app := fmt.Sprintf("many-%d", time.Now().UnixNano())
	removeLeftoversAtEnd(t, app)
	rt, err := NewRuntime(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	const n = 36
	def := &taskdef.TaskDef{Family: "many", ContainerDefinitions: []taskdef.Container{{Name: "sleep", Image: image, Command: []string{"busybox", "sleep", "300"}}}}
	errs := make(chan error, n)
	sem := make(chan struct{}, 8)
	for i := 0; i < n; i++ {
		go func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			_, err := rt.Start(context.Background(), Spec{App: app, Env: "test", Service: fmt.Sprintf("s%02d", i%20), Family: "many", Revision: 1, Def: def})
			errs <- err
		}()
	}
	for i := 0; i < n; i++ {
		if err := <-errs; err != nil {
			t.Fatalf("start: %v", err)
		}
	}
	ts, err := rt.List(context.Background(), map[string]string{LabelApp: app})
	if err != nil || len(ts) != n {
		t.Fatalf("listed %d tasks, want %d: %v", len(ts), n, err)
	}
	for _, tk := range ts {
		if tk.Status() != "RUNNING" || tk.Address == "" {
			t.Fatalf("task %s: %s at %q", tk.ID, tk.Status(), tk.Address)
		}
	}
}
