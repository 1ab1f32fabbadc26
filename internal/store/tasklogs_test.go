package store

import (
	"context"
	"reflect"
	"testing"
	"time"
)

// seedTaskLogs stores two tasks' lines of service web and one of another
// service, dated base+i minutes for line i; it returns base.
func seedTaskLogs(t *testing.T, db *DB) time.Time {
	t.Helper()
	base := time.Date(2026, 3, 1, 12, 0, 0, 123456789, time.UTC)
	line := func(i int, service, task, text string) TaskLogLine {
		return TaskLogLine{App: "a", Env: "staging", Service: service, Task: task, Container: "web", Group: "/slipway/a/staging/" + service,
			Stream: "web/" + task, Source: "stdout", At: base.Add(time.Duration(i) * time.Minute), Line: text}
	}
	lines := []TaskLogLine{
		line(0, "web", "t1", "t1 starts"),
		line(1, "web", "t2", "t2 starts"),
		line(2, "other", "t9", "another service"),
		line(3, "web", "t1", "boom: config missing"),
		line(4, "web", "t2", "t2 serves"),
	}
	lines[4].Source = "stderr"
	if err := db.AppendTaskLogs(context.Background(), lines); err != nil {
		t.Fatal(err)
	}
	return base
}

func texts(lines []TaskLogLine) []string {
	out := []string{}
	for _, l := range lines {
		out = append(out, l.Line)
	}
	return out
}

func TestListTaskLogs(t *testing.T) {
	eachStore(t, func(t *testing.T, s testStore) {
		db := openWithApps(t, s, "a")
		base := seedTaskLogs(t, db)
		cases := []struct {
			name string
			q    TaskLogQuery
			want []string
		}{
			{"every line of the service", TaskLogQuery{}, []string{"t1 starts", "t2 starts", "boom: config missing", "t2 serves"}},
			{"one task", TaskLogQuery{Task: "t1"}, []string{"t1 starts", "boom: config missing"}},
			{"since a time, inclusive", TaskLogQuery{Since: base.Add(time.Minute)}, []string{"t2 starts", "boom: config missing", "t2 serves"}},
			{"one task since a time", TaskLogQuery{Task: "t2", Since: base.Add(2 * time.Minute)}, []string{"t2 serves"}},
			{"a page", TaskLogQuery{Limit: 2}, []string{"t1 starts", "t2 starts"}},
			{"no such task", TaskLogQuery{Task: "nope"}, []string{}},
			{"since after every line", TaskLogQuery{Since: base.Add(time.Hour)}, []string{}},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				c.q.App, c.q.Env, c.q.Service = "a", "staging", "web"
				got, err := db.ListTaskLogs(context.Background(), c.q)
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(texts(got), c.want) {
					t.Fatalf("got %q, want %q", texts(got), c.want)
				}
			})
		}
		// The next page starts after the last line of the one before, and a
		// line keeps everything it was stored with, to the nanosecond.
		page, _ := db.ListTaskLogs(context.Background(), TaskLogQuery{App: "a", Env: "staging", Service: "web", Limit: 3})
		rest, _ := db.ListTaskLogs(context.Background(), TaskLogQuery{App: "a", Env: "staging", Service: "web", AfterID: page[2].ID})
		if !reflect.DeepEqual(texts(rest), []string{"t2 serves"}) {
			t.Fatalf("the page after %d: %q", page[2].ID, texts(rest))
		}
		want := TaskLogLine{ID: rest[0].ID, App: "a", Env: "staging", Service: "web", Task: "t2", Container: "web", Group: "/slipway/a/staging/web",
			Stream: "web/t2", Source: "stderr", At: base.Add(4 * time.Minute), Line: "t2 serves"}
		if rest[0] != want {
			t.Fatalf("stored line:\n got %+v\nwant %+v", rest[0], want)
		}
	})
}

func TestLastTaskLogAt(t *testing.T) {
	eachStore(t, func(t *testing.T, s testStore) {
		db := openWithApps(t, s, "a")
		base := seedTaskLogs(t, db)
		cases := []struct {
			task, container string
			want            time.Time
		}{
			{"t1", "web", base.Add(3 * time.Minute)},
			{"t2", "web", base.Add(4 * time.Minute)},
			{"t1", "sidecar", time.Time{}},
			{"nope", "web", time.Time{}},
		}
		for _, c := range cases {
			got, err := db.LastTaskLogAt(context.Background(), c.task, c.container)
			if err != nil || !got.Equal(c.want) {
				t.Errorf("%s/%s: %v %v, want %v", c.task, c.container, got, err, c.want)
			}
		}
	})
}

func TestDeleteTaskLogsBefore(t *testing.T) {
	eachStore(t, func(t *testing.T, s testStore) {
		ctx := context.Background()
		db := openWithApps(t, s, "a")
		base := seedTaskLogs(t, db)
		// More lines than one sweep transaction takes, all old.
		old := make([]TaskLogLine, taskLogDeleteBatch+7)
		for i := range old {
			old[i] = TaskLogLine{App: "a", Env: "staging", Service: "web", Task: "t0", Container: "web", Source: "stdout", At: base.Add(-time.Hour), Line: "old"}
		}
		if err := db.AppendTaskLogs(ctx, old); err != nil {
			t.Fatal(err)
		}
		n, err := db.DeleteTaskLogsBefore(ctx, base.Add(2*time.Minute))
		if err != nil || n != int64(len(old))+2 {
			t.Fatalf("deleted %d (%v), want %d", n, err, len(old)+2)
		}
		got, _ := db.ListTaskLogs(ctx, TaskLogQuery{App: "a", Env: "staging", Service: "web"})
		if want := []string{"boom: config missing", "t2 serves"}; !reflect.DeepEqual(texts(got), want) {
			t.Fatalf("left %q, want %q", texts(got), want)
		}
		if n, err := db.DeleteTaskLogsBefore(ctx, base.Add(2*time.Minute)); n != 0 || err != nil {
			t.Fatalf("a second sweep deleted %d (%v)", n, err)
		}
	})
}
