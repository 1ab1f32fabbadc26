package task

import (
	"context"
	"errors"
	"io"
	"time"

	ctr "github.com/docker/docker/api/types/container"
)

// Backend is where an environment's tasks run: the contract between the
// service reconciler (deployments, self-healing, auto scaling, task
// output) and an engine. Runtime (the local Docker engine) and
// kube.Runtime (a Kubernetes namespace) implement it.
//
// A backend knows tasks only by what it stores on the engine itself
// (Docker labels, Kubernetes labels and annotations), so a control plane
// that restarts adopts every task by listing it: nothing about a task is
// kept anywhere else. Traffic is not the backend's business: the load
// balancer reaches each task at the address ContainerState.Ports gives,
// and the weights between task sets are set there.
type Backend interface {
	// Key names this backend among the control plane's backends; every Task
	// it lists carries it in Task.Runtime.
	Key() string
	// Start creates and starts one task and returns it as listed. A task
	// whose start fails part-way is removed before Start returns, or is
	// listed as PROVISIONING and removed by the reconciler.
	Start(ctx context.Context, spec Spec) (Task, error)
	// List returns this installation's tasks that carry every label of
	// match (Label* keys), oldest first, stopped ones included until they
	// are removed.
	List(ctx context.Context, match map[string]string) ([]Task, error)
	// HaltTask stops a task's containers gracefully, each within its
	// stopTimeout, and keeps their output readable for RemoveTask.
	HaltTask(ctx context.Context, t Task) error
	// RemoveTask removes what is left of a task; a task already gone is no error.
	RemoveTask(ctx context.Context, t Task) error
	// Failure says why a stopped or unhealthy task failed (nil: cannot tell).
	Failure(ctx context.Context, t Task) *Failure
	// Usage is what a task uses now; ErrNoUsage when the engine cannot say.
	Usage(ctx context.Context, t Task) (Usage, error)
	// MemoryMiB and CheckMemory are the memory placement check; an engine
	// that places tasks itself (a Kubernetes scheduler) returns
	// ErrPlacedByEngine from MemoryMiB and nil from CheckMemory.
	MemoryMiB(ctx context.Context) (int, error)
	CheckMemory(ctx context.Context, need, reserved int) error
	// Watch calls changed when a task's container stops or changes health,
	// until ctx ends, and up(true/false) as its event stream opens and closes.
	Watch(ctx context.Context, changed func(), up func(bool))
	// Logs writes container c's output after since (zero: all), each line
	// prefixed with its RFC 3339 time and a space, to stdout and stderr (an
	// engine that does not tell the streams apart writes both to stdout);
	// with follow it returns once the container stops or ctx ends.
	Logs(ctx context.Context, t Task, c ContainerState, since time.Time, follow bool, stdout, stderr io.Writer) error
	// Running reports whether container c still runs (its output may grow).
	Running(ctx context.Context, t Task, c ContainerState) bool
}

// ErrNoUsage: the backend cannot measure what a task uses.
var ErrNoUsage = errors.New("this runtime does not report task usage")

// ErrPlacedByEngine: the engine places tasks by their reservations itself.
var ErrPlacedByEngine = errors.New("the runtime's scheduler places tasks by their reservations")

// DockerKey is the local Docker engine's Backend.Key.
const DockerKey = "docker"

var _ Backend = (*Runtime)(nil)

// Key is DockerKey.
func (r *Runtime) Key() string { return DockerKey }

// Logs streams a container's output from the engine.
func (r *Runtime) Logs(ctx context.Context, t Task, c ContainerState, since time.Time, follow bool, stdout, stderr io.Writer) error {
	return r.containerLogs(ctx, c.ID, since, follow, stdout, stderr)
}

// Running reports whether the engine says container c runs.
func (r *Runtime) Running(ctx context.Context, t Task, c ContainerState) bool {
	info, err := r.cli.ContainerInspect(ctx, c.ID)
	return err == nil && info.State != nil && info.State.Running
}

// containerLogs copies a container's output after since from the engine.
func (r *Runtime) containerLogs(ctx context.Context, id string, since time.Time, follow bool, stdout, stderr io.Writer) error {
	opts := ctr.LogsOptions{ShowStdout: true, ShowStderr: true, Follow: follow, Timestamps: true}
	if !since.IsZero() {
		opts.Since = since.Add(time.Nanosecond).Format(time.RFC3339Nano)
	}
	rc, err := r.cli.ContainerLogs(ctx, id, opts)
	if err != nil {
		return err
	}
	defer rc.Close()
	return demux(stdout, stderr, rc)
}
