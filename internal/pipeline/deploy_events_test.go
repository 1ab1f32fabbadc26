package pipeline

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/slipway-dev/slipway/internal/store"
)

// A deploy action's log copies each service event once, and a repeat that
// the store folds into an earlier event as a line of its own with the count.
func TestServiceEventsToCopiesRepeats(t *testing.T) {
	ctx := context.Background()
	db, err := store.Open(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	add := func(msg string) {
		if err := db.AddServiceEvent(ctx, "a", "staging", "web", msg); err != nil {
			t.Fatal(err)
		}
	}
	add("before the action")
	evs, _ := db.ListServiceEvents(ctx, "a", "staging", "web", 1)
	var logs bytes.Buffer
	e := &Engine{DeployStore: db}
	copyNew := e.serviceEventsTo(ctx, "a", "staging", "web", evs[0].ID, &logs)

	steps := []struct {
		add  []string
		want []string // lines added to the log, in order
	}{
		{add: []string{"started 1 task"}, want: []string{"started 1 task"}},
		{add: []string{"unable to start a task: no network address left", "unable to start a task: no network address left"},
			want: []string{"unable to start a task: no network address left", "(the same again, 2 times in all)"}},
		{add: []string{"unable to start a task: no network address left"}, want: []string{"unable to start a task: no network address left (3 times in all)"}},
		{add: nil, want: nil},
		{add: []string{"has reached a steady state"}, want: []string{"has reached a steady state"}},
	}
	for i, st := range steps {
		logs.Reset()
		for _, m := range st.add {
			add(m)
		}
		copyNew()
		var got []string
		for _, l := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
			if l != "" {
				got = append(got, l)
			}
		}
		if len(got) != len(st.want) {
			t.Fatalf("step %d: log %q, want lines ending %q", i, got, st.want)
		}
		for j, w := range st.want {
			if !strings.HasPrefix(got[j], "[slipway] ") || !strings.HasSuffix(got[j], w) {
				t.Fatalf("step %d line %d: %q, want one ending %q", i, j, got[j], w)
			}
		}
	}
}
