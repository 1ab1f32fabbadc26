package task

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/slipway-dev/slipway/internal/container/containertest"
	"github.com/slipway-dev/slipway/internal/taskdef"
)

// waitStopped polls task id until it has STOPPED.
func waitStopped(t *testing.T, rt *Runtime, id string) Task {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		tk, err := rt.Get(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if tk.Status() == "STOPPED" {
			return tk
		}
		if time.Now().After(deadline) {
			t.Fatalf("task %s still %s", id, tk.Status())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// The engine's answer reaches the caller: why a container could not start,
// why it exited, what it wrote last.
func TestIntegrationFailuresSayWhy(t *testing.T) {
	image := containertest.BusyboxImage(t)
	app := fmt.Sprintf("failure-%d", time.Now().UnixNano())
	removeLeftoversAtEnd(t, app)
	rt, err := NewRuntime(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	spec := func(cs ...taskdef.Container) Spec {
		return Spec{App: app, Env: "test", Service: "svc", Family: "failure", Revision: 1, Def: &taskdef.TaskDef{Family: "failure", ContainerDefinitions: cs}}
	}
	no := false

	t.Run("a missing entrypoint", func(t *testing.T) {
		_, err := rt.Start(ctx, spec(taskdef.Container{Name: "web", Image: image, EntryPoint: []string{"/app-typo"}}))
		var f *Failure
		if !errors.As(err, &f) {
			t.Fatalf("start: %v, not a *Failure", err)
		}
		if f.Kind != NotStarted || f.Container != "web" || f.ExitCode == 0 || !strings.Contains(f.EngineError, `exec: "/app-typo"`) ||
			!strings.Contains(f.EngineError, "no such file or directory") || strings.Contains(f.EngineError, "OCI runtime") {
			t.Fatalf("failure %+v (%v)", f, err)
		}
		if left := leftovers(t, app); len(left) > 0 {
			t.Fatalf("a failed start left %v", left)
		}
	})

	t.Run("an exit after output", func(t *testing.T) {
		tk, err := rt.Start(ctx, spec(taskdef.Container{Name: "web", Image: image, Command: []string{"sh", "-c",
			"echo loading; for i in 1 2 3 4 5 6 7 8 9 10 11 12; do echo line $i; done; echo 'boom: config missing' >&2; exit 3"}}))
		if err != nil {
			t.Fatal(err)
		}
		defer rt.Stop(ctx, tk.ID)
		f := rt.Failure(ctx, waitStopped(t, rt, tk.ID))
		if f == nil || f.Kind != Exited || f.ExitCode != 3 || !f.Essential || f.Task != tk.ID {
			t.Fatalf("failure %+v", f)
		}
		// The last ten lines, stderr's among them (the engine keeps the two
		// streams apart: their order is its own).
		if len(f.Output) != FailureOutputLines || !strings.Contains(f.OutputText(), "boom: config missing") || !strings.Contains(f.OutputText(), "line 12") {
			t.Fatalf("output %q", f.Output)
		}
		if want := "essential container web exited with code 3; last output: "; !strings.HasPrefix(f.Error(), want) {
			t.Fatalf("error %q, want it to start %q", f.Error(), want)
		}
	})

	t.Run("an OOM kill", func(t *testing.T) {
		tk, err := rt.Start(ctx, spec(taskdef.Container{Name: "web", Image: image, Memory: 8, Command: []string{"sh", "-c",
			`echo filling; x=$(head -c 60000000 /dev/zero | tr "\0" a); echo survived`}}))
		if err != nil {
			t.Fatal(err)
		}
		defer rt.Stop(ctx, tk.ID)
		f := rt.Failure(ctx, waitStopped(t, rt, tk.ID))
		// The engine misses some OOM kills: then the SIGKILL under the limit says so.
		if f == nil || f.ExitCode != 137 || !strings.Contains(f.Headline(), " at its memory limit of 8 MiB") {
			t.Fatalf("failure %+v", f)
		}
	})

	t.Run("a dependency that fails", func(t *testing.T) {
		_, err := rt.Start(ctx, spec(
			taskdef.Container{Name: "migrate", Image: image, Essential: &no, Command: []string{"sh", "-c", "echo 'migrate: no database'; exit 1"}},
			taskdef.Container{Name: "web", Image: image, Command: []string{"sleep", "60"}, DependsOn: []taskdef.Dependency{{ContainerName: "migrate", Condition: "SUCCESS"}}},
		))
		var f *Failure
		if !errors.As(err, &f) || f.Container != "migrate" || f.ExitCode != 1 ||
			err.Error() != "container web waits for migrate to be SUCCESS: container migrate exited with code 1; last output: migrate: no database" {
			t.Fatalf("start: %v (%+v)", err, f)
		}
	})
}

// memSink keeps collected lines in memory.
type memSink struct {
	mu    sync.Mutex
	lines []LogLine
}

func (s *memSink) AppendLogs(_ context.Context, lines []LogLine) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lines = append(s.lines, lines...)
	return nil
}

func (s *memSink) LastLogAt(_ context.Context, taskID, container string) (time.Time, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var last time.Time
	for _, l := range s.lines {
		if l.Task == taskID && l.Container == container && l.At.After(last) {
			last = l.At
		}
	}
	return last, nil
}

func (s *memSink) of(taskID string) []LogLine {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []LogLine
	for _, l := range s.lines {
		if l.Task == taskID {
			out = append(out, l)
		}
	}
	return out
}

// A task's output is kept past its containers: every line, from stdout and
// stderr, masked, a long one cut, named as the awslogs options say; a
// collector that starts again does not keep a line twice; and a task that
// is halted has its last words read before it goes.
func TestIntegrationCollectorKeepsOutputPastTheContainer(t *testing.T) {
	image := containertest.BusyboxImage(t)
	app := fmt.Sprintf("collect-%d", time.Now().UnixNano())
	removeLeftoversAtEnd(t, app)
	rt, err := NewRuntime(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	sink := &memSink{}
	masker := secretMasker(map[string]map[string]string{"web": {"TOKEN": "s3cr3t-value"}})
	newCollector := func() *Collector {
		c := &Collector{Sink: sink, Mask: func(context.Context, Task) *strings.Replacer { return masker }}
		c.Start(ctx)
		t.Cleanup(c.Close)
		return c
	}
	c := newCollector()
	web := taskdef.Container{Name: "web", Image: image, Command: []string{"sh", "-c",
		`echo one; echo two >&2; head -c 20000 /dev/zero | tr "\0" x; echo; echo "token s3cr3t-value"; printf 'no newline at the end'`},
		Extra: map[string]any{"logConfiguration": map[string]any{"logDriver": "awslogs", "options": map[string]any{"awslogs-group": "/ecs/collect", "awslogs-stream-prefix": "svc"}}}}
	spec := Spec{App: app, Env: "test", Service: "svc", Family: "collect", Revision: 1, Def: &taskdef.TaskDef{Family: "collect", ContainerDefinitions: []taskdef.Container{web}}}
	tk, err := rt.Start(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	c.Follow(rt, tk)
	stopped := waitStopped(t, rt, tk.ID)
	c.Wait(tk.ID, 10*time.Second)
	if err := c.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	lines := sink.of(tk.ID)
	var texts []string
	for _, l := range lines {
		if l.Group != "/ecs/collect" || l.Stream != "svc/web/"+tk.ID || l.Container != "web" || l.App != app || l.Service != "svc" || l.At.IsZero() {
			t.Fatalf("line %+v", l)
		}
		texts = append(texts, l.Source+": "+l.Text)
	}
	long := "stdout: " + strings.Repeat("x", MaxLogLine-len("…")) + "…"
	want := []string{"stdout: one", "stderr: two", long, "stdout: token ***", "stdout: no newline at the end"}
	// stdout and stderr are apart in the engine: "two" may come anywhere.
	if got := strings.Join(texts, "\n"); len(texts) != len(want) || !strings.Contains(got, "stderr: two") ||
		strings.Replace(got, "stderr: two\n", "", 1) != strings.Join(append([]string{want[0]}, want[2:]...), "\n") {
		t.Fatalf("kept %d lines:\n%.300s\nwant %d", len(texts), got, len(want))
	}

	// Another collector (a restarted server) resumes after the last line kept.
	again := newCollector()
	again.Sync(func(Task) Backend { return rt }, []Task{stopped})
	again.Wait(tk.ID, 10*time.Second)
	if err := again.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if n := len(sink.of(tk.ID)); n != len(lines) {
		t.Fatalf("after a restart %d lines are kept, want %d", n, len(lines))
	}
	if err := rt.Remove(ctx, tk.ID); err != nil {
		t.Fatal(err)
	}

	// Halted, waited for, removed: its last words are kept.
	spec.Def.ContainerDefinitions[0].Command = []string{"sh", "-c", `trap 'echo bye; exit 0' TERM; echo hi; while true; do sleep 0.1; done`}
	spec.Def.ContainerDefinitions[0].StopTimeout = 10
	tk, err = rt.Start(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	again.Follow(rt, tk)
	deadline := time.Now().Add(10 * time.Second)
	for len(sink.of(tk.ID)) == 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if err := rt.Halt(ctx, tk.ID); err != nil {
		t.Fatal(err)
	}
	again.Wait(tk.ID, 10*time.Second)
	if err := rt.Remove(ctx, tk.ID); err != nil {
		t.Fatal(err)
	}
	if err := again.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, l := range sink.of(tk.ID) {
		got = append(got, l.Text)
	}
	if strings.Join(got, ",") != "hi,bye" {
		t.Fatalf("a halted task's lines: %q", got)
	}
}
