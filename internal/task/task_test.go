package task

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/slipway-dev/slipway/internal/container/containertest"
	"github.com/slipway-dev/slipway/internal/taskdef"
)

// leftovers lists the containers of the app and the networks of one of
// its tasks. The environment's network is shared by its tasks and stays.
func leftovers(t *testing.T, app string) []string {
	return labelled(t, app, "label="+LabelTask)
}

// labelled lists the containers and networks that carry the app's label
// and, for networks, filter.
func labelled(t *testing.T, app, filter string) []string {
	t.Helper()
	var found []string
	for _, kind := range [][]string{{"ps", "-a"}, {"network", "ls", "--filter", filter}} {
		args := append(kind, "-q", "--filter", "label="+LabelApp+"="+app)
		out, err := exec.Command("docker", args...).Output()
		if err != nil {
			t.Fatalf("docker %v: %v", args, err)
		}
		for _, id := range strings.Fields(string(out)) {
			found = append(found, kind[0]+" "+id)
		}
	}
	return found
}

// removeLeftoversAtEnd removes the app's containers and networks when the
// test ends, also when it fails.
func removeLeftoversAtEnd(t *testing.T, app string) {
	t.Cleanup(func() {
		for _, l := range labelled(t, app, "label="+LabelApp) {
			kind, id, _ := strings.Cut(l, " ")
			if kind == "ps" {
				exec.Command("docker", "rm", "-f", id).Run()
			} else {
				exec.Command("docker", "network", "rm", id).Run()
			}
		}
	})
}

// A task start that is cancelled at any moment leaves nothing behind: the
// engine completes a create whose request was abandoned, so Start must
// still know about it to remove it.
func TestIntegrationStartCancelledAtAnyMomentLeavesNothing(t *testing.T) {
	image := containertest.BusyboxImage(t)
	app := fmt.Sprintf("cancel-%d", time.Now().UnixNano())
	removeLeftoversAtEnd(t, app)
	rt, err := NewRuntime(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	def := &taskdef.TaskDef{Family: "cancel", ContainerDefinitions: []taskdef.Container{
		{Name: "first", Image: image, Command: []string{"/bin/busybox", "sleep", "60"}},
		{Name: "second", Image: image, Command: []string{"/bin/busybox", "sleep", "60"}},
	}}
	spec := Spec{App: app, Env: "test", Service: "svc", Family: "cancel", Revision: 1, Def: def}
	// An uncancelled start tells how long the whole sequence takes, so the
	// cancels below land in every step: network, containers, starts.
	begin := time.Now()
	tk, err := rt.Start(context.Background(), spec)
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	full := time.Since(begin)
	if err := rt.remove(context.Background(), tk.ID); err != nil {
		t.Fatalf("remove: %v", err)
	}
	const steps = 16
	started := 0
	for i := 0; i < steps; i++ {
		delay := full * time.Duration(i) / steps
		ctx, cancel := context.WithTimeout(context.Background(), delay)
		tk, err := rt.Start(ctx, spec)
		cancel()
		if err == nil {
			started++
			if err := rt.remove(context.Background(), tk.ID); err != nil {
				t.Fatalf("remove: %v", err)
			}
		}
		time.Sleep(150 * time.Millisecond) // a create the engine finishes late shows up by now
		if left := leftovers(t, app); len(left) > 0 {
			t.Fatalf("cancelled after %v of %v (start error: %v): left behind %v", delay, full, err, left)
		}
	}
	t.Logf("a full start took %v; %d of %d cancelled starts finished first", full, started, steps)
}

// Tasks are dated finer than the engine's listing does (to the second), so
// the newest of two started within one second is known.
func TestIntegrationTasksAreDatedWhenStarted(t *testing.T) {
	image := containertest.BusyboxImage(t)
	app := fmt.Sprintf("dated-%d", time.Now().UnixNano())
	rt, err := NewRuntime(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	def := &taskdef.TaskDef{Family: "dated", ContainerDefinitions: []taskdef.Container{
		{Name: "main", Image: image, Command: []string{"/bin/busybox", "sleep", "60"}},
	}}
	spec := Spec{App: app, Env: "test", Service: "svc", Family: "dated", Revision: 1, Def: def}
	removeLeftoversAtEnd(t, app)
	var tasks []Task
	for i := 0; i < 2; i++ {
		begin := time.Now().UTC()
		tk, err := rt.Start(context.Background(), spec)
		if err != nil {
			t.Fatalf("start: %v", err)
		}
		tasks = append(tasks, tk)
		if tk.CreatedAt.Before(begin) || tk.CreatedAt.After(time.Now()) {
			t.Fatalf("task %d dated %v, started between %v and now", i, tk.CreatedAt, begin)
		}
	}
	if !tasks[1].CreatedAt.After(tasks[0].CreatedAt) {
		t.Fatalf("the second task (%v) is not dated after the first (%v)", tasks[1].CreatedAt, tasks[0].CreatedAt)
	}
}
