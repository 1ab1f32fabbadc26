package task

import (
	"context"
	"fmt"
)

// Resources a task start can find exhausted.
const (
	ResourceNetwork = "network address"
	ResourceMemory  = "memory"
)

// CapacityError is a task start refused because the machine ran out of
// something: not the revision's fault, so callers keep what runs, back off
// the one service, and say which resource.
type CapacityError struct {
	Resource string // ResourceNetwork, ResourceMemory
	Detail   string // what is short and what to do
	Err      error  // the engine's own error, if any
}

func (e *CapacityError) Error() string {
	switch e.Resource {
	case ResourceNetwork:
		return "no network address left: " + e.Detail
	case ResourceMemory:
		return "memory reservation exceeds the machine: " + e.Detail
	}
	return "no " + e.Resource + " left: " + e.Detail
}

func (e *CapacityError) Unwrap() error { return e.Err }

// MemoryMiB is the engine's memory, read once: the machine tasks reserve
// memory on.
func (r *Runtime) MemoryMiB(ctx context.Context) (int, error) {
	r.netMu.Lock()
	defer r.netMu.Unlock()
	if r.memMiB > 0 {
		return r.memMiB, nil
	}
	info, err := r.cli.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("read the engine's memory: %w", err)
	}
	r.memMiB = int(info.MemTotal >> 20)
	return r.memMiB, nil
}

// CheckMemory refuses a task needing need MiB when reserved MiB are taken
// already, as ECS refuses to place a task on an instance without the
// memory (its RESOURCE:MEMORY).
func (r *Runtime) CheckMemory(ctx context.Context, need, reserved int) error {
	if need <= 0 {
		return nil
	}
	total, err := r.MemoryMiB(ctx)
	if err != nil || total == 0 {
		return nil // unknown: let the engine decide
	}
	if need > total {
		return &CapacityError{Resource: ResourceMemory, Detail: fmt.Sprintf("a task reserves %d MiB and the machine has %d MiB; lower the task definition's memory", need, total)}
	}
	if reserved+need > total {
		return &CapacityError{Resource: ResourceMemory, Detail: fmt.Sprintf("a task reserves %d MiB and %d MiB of the machine's %d MiB are reserved by running tasks; lower desired counts or memory", need, reserved, total)}
	}
	return nil
}
