package deploy

import (
	"testing"

	"github.com/slipway-dev/slipway/internal/store"
	"github.com/slipway-dev/slipway/internal/task"
)

func TestSetFailuresAreCountedPerGeneration(t *testing.T) {
	svc := store.Service{App: "a", Env: "staging", Name: "web"}
	other := store.Service{App: "a", Env: "production", Name: "web"}
	old := store.TaskSet{Group: store.DefaultGroup, Family: "web", Revision: 3}
	forced := store.TaskSet{Group: store.DefaultGroup, Family: "web", Revision: 3, Generation: 7}
	green := store.TaskSet{Group: "tg2", Family: "web", Revision: 3, Generation: 7}
	m := &Manager{setFailures: map[string]int{}}
	// The tasks a forced new deployment replaces keep crashing: their
	// failures must not trip the new generation's circuit breaker.
	m.setFailed(svc, setOf(task.Task{Family: "web", Revision: 3}))
	m.setFailed(svc, setOf(task.Task{Family: "web", Revision: 3}))
	m.setFailed(svc, setOf(task.Task{Family: "web", Revision: 3, Generation: 7}))
	m.setFailed(other, forced)
	cases := []struct {
		svc  store.Service
		set  store.TaskSet
		want int
	}{
		{svc, old, 2},
		{svc, forced, 1},
		{svc, green, 0},
		{other, forced, 1},
		{other, old, 0},
	}
	for _, c := range cases {
		if got := m.SetFailures(c.svc, c.set); got != c.want {
			t.Errorf("%s %s: %d failures, want %d", key(c.svc), c.set.Key(), got, c.want)
		}
	}
}
