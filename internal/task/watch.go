package task

import (
	"context"
	"time"

	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"
)

// Watch calls changed whenever a container of this installation's tasks
// dies, is removed, runs out of memory or changes health, until ctx ends
// (not when one starts: the caller started it): a reconciler
// that waits for it learns of a crash at once instead of at its next poll.
// A broken event stream is opened again after a pause; up reports whether
// the stream is open, so the caller can poll more often meanwhile.
func (r *Runtime) Watch(ctx context.Context, changed func(), up func(bool)) {
	f := filters.NewArgs(filters.Arg("type", string(events.ContainerEventType)), filters.Arg("label", LabelManaged+"=1"))
	if r.Installation != "" {
		f.Add("label", LabelInstallation+"="+r.Installation)
	}
	for _, a := range []events.Action{events.ActionDie, events.ActionDestroy, events.ActionOOM} {
		f.Add("event", string(a))
	}
	f.Add("event", "health_status")
	for ctx.Err() == nil {
		msgs, errs := r.cli.Events(ctx, events.ListOptions{Filters: f})
		changed() // whatever happened while it was closed
		// Up once the engine has kept it open a moment: a refused stream
		// ends at once, and the caller must go on polling meanwhile.
		open := time.After(time.Second)
	stream:
		for {
			select {
			case <-open:
				up(true)
			case <-msgs:
				changed()
			case <-errs:
				break stream
			case <-ctx.Done():
				return
			}
		}
		up(false)
		select {
		case <-ctx.Done():
			return
		case <-time.After(2 * time.Second):
		}
	}
}
