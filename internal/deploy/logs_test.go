package deploy

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/slipway-dev/slipway/internal/store"
)

// Task output older than the manager's retention goes; 7 days unless it says.
func TestTaskLogRetention(t *testing.T) {
	cases := []struct {
		name      string
		retention time.Duration
		want      []string
	}{
		{"the default keeps a week", 0, []string{"6 days old", "an hour old"}},
		{"a day", 24 * time.Hour, []string{"an hour old"}},
		{"a month", 30 * 24 * time.Hour, []string{"8 days old", "6 days old", "an hour old"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctx := context.Background()
			db := storeWithApp(t, t.TempDir(), "")
			now := time.Now()
			var lines []store.TaskLogLine
			for _, l := range []struct {
				age  time.Duration
				text string
			}{{8 * 24 * time.Hour, "8 days old"}, {6 * 24 * time.Hour, "6 days old"}, {time.Hour, "an hour old"}} {
				lines = append(lines, store.TaskLogLine{App: "a", Env: "staging", Service: "web", Task: "t1", Container: "web", Source: "stdout", At: now.Add(-l.age), Line: l.text})
			}
			if err := db.AppendTaskLogs(ctx, lines); err != nil {
				t.Fatal(err)
			}
			m := &Manager{Store: db, Log: slog.New(slog.NewTextHandler(io.Discard, nil)), LogRetention: c.retention}
			if err := m.expireTaskLogs(ctx); err != nil {
				t.Fatal(err)
			}
			kept, err := db.ListTaskLogs(ctx, store.TaskLogQuery{App: "a", Env: "staging", Service: "web"})
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, l := range kept {
				got = append(got, l.Line)
			}
			if strings.Join(got, ", ") != strings.Join(c.want, ", ") {
				t.Fatalf("kept %q, want %q", got, c.want)
			}
		})
	}
}

// A deployment's reason says why the newest failed launch of its tasks
// failed, once one failed since it began.
func TestReasonsQuoteTheNewestFailure(t *testing.T) {
	svc := store.Service{App: "a", Env: "staging", Name: "web"}
	green := store.TaskSet{Group: "tg2", Family: "web", Revision: 4}
	c := &Controller{Manager: &Manager{setFailures: map[string]int{}}}
	if got := c.because(svc, green, "green task failed"); got != "green task failed" {
		t.Fatalf("with no cause known: %q", got)
	}
	c.Manager.setFailedBecause(svc, green, "task t1 stopped: essential container web exited with code 3; last output: boom")
	c.Manager.setFailedBecause(svc, green, "task t2 stopped: essential container web exited with code 4")
	c.Manager.setFailed(svc, green) // a failure told without a cause keeps the newest told
	if got, want := c.because(svc, green, "green task failed"), "green task failed: task t2 stopped: essential container web exited with code 4"; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
	timeout := errRollback{errTimedOut}
	cases := []struct {
		name string
		err  error
		base int
		want string
	}{
		{"a timeout after failures", timeout, 1, "deployment timed out; last failure of the new tasks: task t2 stopped: essential container web exited with code 4"},
		{"a timeout with no failure since the deployment began", timeout, 3, "deployment timed out"},
		{"a stop", errRollback{"stopped by a person"}, 0, "stopped by a person"},
	}
	for _, tc := range cases {
		if got := c.lastFailureOf(tc.err, svc, green, tc.base).Error(); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}
