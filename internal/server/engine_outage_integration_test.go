package server

import (
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// engineRelay passes a server's Docker API connections through to the real
// engine's socket until it is cut: then open connections are closed and
// new ones refused, as when the engine stops answering.
type engineRelay struct {
	ln    net.Listener
	mu    sync.Mutex
	down  bool
	conns map[net.Conn]bool
}

func startEngineRelay(t *testing.T) (*engineRelay, string) {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "docker.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	r := &engineRelay{ln: ln, conns: map[net.Conn]bool{}}
	t.Cleanup(func() { ln.Close(); r.cut() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			r.mu.Lock()
			if r.down {
				r.mu.Unlock()
				c.Close()
				continue
			}
			up, err := net.Dial("unix", "/var/run/docker.sock")
			if err != nil {
				r.mu.Unlock()
				c.Close()
				continue
			}
			r.conns[c], r.conns[up] = true, true
			r.mu.Unlock()
			go func() { io.Copy(up, c); up.Close() }()
			go func() { io.Copy(c, up); c.Close() }()
		}
	}()
	return r, "unix://" + sock
}

// cut closes every relayed connection and refuses new ones until restore.
func (r *engineRelay) cut() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.down = true
	for c := range r.conns {
		c.Close()
	}
	r.conns = map[net.Conn]bool{}
}

func (r *engineRelay) restore() {
	r.mu.Lock()
	r.down = false
	r.mu.Unlock()
}

// While the engine does not answer, services keep their tasks and state:
// nothing is stopped, started or counted as failed, the listener goes on
// serving, the log says so once, and reconciling resumes when the engine
// answers again.
func TestIntegrationEngineOutageKeepsServices(t *testing.T) {
	image := webAppImage(t)
	data := t.TempDir()
	app := fmt.Sprintf("outage%d", time.Now().UnixNano()%1e6)
	cleanupRuntime(t, app, data)
	relay, host := startEngineRelay(t)
	srv := startProcServerEnv(t, slipwayBinary(t), data, "", "DOCKER_HOST="+host)
	srv.createApp(app)
	rev := srv.registerTaskDef(webTaskDef(app, image, "1"))
	if code, body := srv.call("POST", "/api/v1/apps/"+app+"/envs/staging/services", srv.Admin, map[string]any{"name": "web", "task_definition": fmt.Sprintf("%s:%d", app, rev), "desired_count": 2}); code != 201 {
		t.Fatalf("service: %d %v", code, body)
	}
	taskIDs := func(d map[string]any) string {
		var ids []string
		for _, tk := range d["tasks"].([]any) {
			ids = append(ids, tk.(map[string]any)["id"].(string))
		}
		sort.Strings(ids)
		return strings.Join(ids, ",")
	}
	d := srv.waitService(app, "staging", "web", 60*time.Second, "steady", func(d map[string]any) bool {
		return runningOf(d, rev) == 2 && strings.Contains(events(d), "has reached a steady state") && strings.Contains(events(d), "rollout COMPLETED")
	})
	before, eventsBefore := taskIDs(d), len(d["events"].([]any))

	relay.cut()
	time.Sleep(6 * time.Second) // several passes, and an event stream that breaks
	code, body := srv.call("GET", "/api/v1/services?app="+app, srv.Admin, nil)
	if code != 200 {
		t.Fatalf("the service list while the engine is away: %d %v", code, body)
	}
	relay.restore()
	time.Sleep(4 * time.Second)
	d = srv.service(app, "staging", "web")
	if after := taskIDs(d); after != before || runningOf(d, rev) != 2 {
		t.Fatalf("tasks changed across the outage: %s, then %s", before, after)
	}
	if n := len(d["events"].([]any)); n != eventsBefore {
		t.Fatalf("the outage made service events:\n%s", events(d))
	}
	log, _ := os.ReadFile(filepath.Join(data, "server.log"))
	if n := strings.Count(string(log), "the Docker engine does not answer"); n != 1 {
		t.Fatalf("the outage was reported %d times, want once:\n%s", n, log)
	}
	if !strings.Contains(string(log), "the Docker engine answers again") {
		t.Fatalf("the engine's return was not reported:\n%s", log)
	}
	if strings.Contains(string(log), `level=ERROR msg="reconcile services"`) {
		t.Fatalf("the outage was logged as a reconcile error:\n%s", log)
	}
}
