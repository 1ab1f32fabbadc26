package server

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// A revision one task of which reserves more memory than the machine has is
// refused, naming the field. One whose tasks fit only in part starts what
// fits, says which resource ran out in one collapsing event and a warning
// in the server's log, and keeps the tasks it has; a healthy service beside
// it keeps its own.
func TestIntegrationMemoryCapacity(t *testing.T) {
	image := webAppImage(t)
	srv, app := startProcApp(t, "cap")
	out, err := exec.Command("docker", "info", "--format", "{{.MemTotal}}").Output()
	if err != nil {
		t.Fatal(err)
	}
	bytes, err := strconv.ParseInt(strings.TrimSpace(string(out)), 10, 64)
	if err != nil || bytes <= 0 {
		t.Fatalf("engine memory %q: %v", out, err)
	}
	total := int(bytes >> 20)
	withMemory := func(mib int) int {
		return srv.registerTaskDef(strings.Replace(webTaskDef(app, image, "1"), `"memory":64`, fmt.Sprintf(`"memory":%d`, mib), 1))
	}
	create := func(name string, rev, desired int) (int, map[string]any) {
		return srv.call("POST", "/api/v1/apps/"+app+"/envs/staging/services", srv.Admin,
			map[string]any{"name": name, "task_definition": fmt.Sprintf("%s:%d", app, rev), "desired_count": desired})
	}

	small := srv.registerTaskDef(webTaskDef(app, image, "1"))
	if code, body := create("steady", small, 2); code != 201 {
		t.Fatalf("steady service: %d %v", code, body)
	}
	srv.waitService(app, "staging", "steady", 60*time.Second, "running", func(d map[string]any) bool { return runningOf(d, small) == 2 })

	huge := withMemory(total + 1)
	code, body := create("huge", huge, 1)
	if code != 400 || errorField(body, "field") != "task_definition" || !strings.Contains(errorField(body, "message"), fmt.Sprintf("the machine has %d MiB", total)) {
		t.Fatalf("a task larger than the machine: %d %v", code, body)
	}

	big := withMemory(total * 2 / 5) // two fit beside the small ones, three do not
	if code, body := create("big", big, 3); code != 201 {
		t.Fatalf("big service: %d %v", code, body)
	}
	d := srv.waitService(app, "staging", "big", 60*time.Second, "short of memory", func(d map[string]any) bool {
		return runningOf(d, big) == 2 && strings.Contains(events(d), "first rollout failed: circuit breaker")
	})
	// The deployment says why it could not finish.
	if ev := events(d); !strings.Contains(ev, "last failure: unable to start a task: memory reservation exceeds the machine") {
		t.Fatalf("the rollout's failure does not name the resource:\n%s", ev)
	}
	// Retries back off and repeat the same event: its count grows, the
	// number of rows does not.
	shortages := func(d map[string]any) (rows, times int) {
		for _, e := range d["events"].([]any) {
			e := e.(map[string]any)
			if strings.HasPrefix(e["message"].(string), "(service big) unable to start a task: memory reservation exceeds the machine") {
				rows++
				times += int(e["count"].(float64))
			}
		}
		return rows, times
	}
	d = srv.waitService(app, "staging", "big", 30*time.Second, "retrying", func(d map[string]any) bool {
		return strings.HasPrefix(d["events"].([]any)[0].(map[string]any)["message"].(string), "(service big) unable to start a task: memory")
	})
	rows, times := shortages(d)
	// The next retry comes after the service's backoff (up to a minute).
	d = srv.waitService(app, "staging", "big", 75*time.Second, "retried", func(d map[string]any) bool {
		_, n := shortages(d)
		return n > times
	})
	if runningOf(d, big) != 2 {
		t.Fatalf("the service lost tasks while short of memory: %v", d["tasks"])
	}
	if rows2, times2 := shortages(d); rows2 != rows {
		t.Fatalf("repeats of the shortage: %d rows %d times, then %d rows %d times:\n%s", rows, times, rows2, times2, events(d))
	}
	// The list says so too, without asking the engine.
	_, listed := srv.call("GET", "/api/v1/services?app="+app, srv.Admin, nil)
	counts := map[string]string{}
	for _, item := range listed["items"].([]any) {
		l := item.(map[string]any)
		counts[l["name"].(string)] = fmt.Sprintf("%v/%v running, %v healthy", l["running_count"], l["desired_count"], l["healthy_count"])
	}
	if counts["big"] != "2/3 running, 2 healthy" || counts["steady"] != "2/2 running, 2 healthy" {
		t.Fatalf("list counts %v", counts)
	}
	if s := srv.service(app, "staging", "steady"); runningOf(s, small) != 2 {
		t.Fatalf("the steady service lost tasks: %v", s["tasks"])
	}
	log, _ := os.ReadFile(filepath.Join(srv.data, "server.log"))
	if !strings.Contains(string(log), "level=WARN") || !strings.Contains(string(log), "resource=memory") {
		t.Fatalf("no warning naming the resource in the server's log:\n%s", log)
	}
}
