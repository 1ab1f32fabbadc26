package demo

import (
	"bytes"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/slipway-dev/slipway/internal/store"
)

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// ownedBy is the docker --filter arguments for the demo app's containers
// and networks that the server of data made (a developer's own app named
// hello on this engine is not the test's to remove); nil when that server
// never started.
func ownedBy(t *testing.T, data string) []string {
	if _, err := os.Stat(filepath.Join(data, "slipway.db")); err != nil {
		return nil
	}
	db, err := store.Open(context.Background(), data)
	if err != nil {
		t.Errorf("open the demo's store: %v", err)
		return nil
	}
	defer db.Close()
	id, err := db.GetMeta(context.Background(), "installation_id")
	if err != nil {
		return nil
	}
	return []string{"--filter", "label=slipway.app=" + App, "--filter", "label=slipway.installation=" + id}
}

// TestIntegrationDemo runs `slipway demo --ci`'s flow for real: git push,
// buildspec build with tests, image, blue/green staging, approval, canary
// production, and a second version under load.
func TestIntegrationDemo(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "slipway")
	build := exec.Command("go", "build", "-o", bin, "github.com/slipway-dev/slipway/cmd/slipway")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build slipway: %v\n%s", err, out)
	}
	data := t.TempDir()
	// Whatever a failed run leaves behind goes too: containers, networks, the proxy.
	t.Cleanup(func() {
		if b, err := os.ReadFile(filepath.Join(data, "proxy.pid")); err == nil {
			if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		filter := ownedBy(t, data)
		if filter == nil {
			return // the demo's server never started
		}
		for _, kind := range [][]string{{"ps", "-aq"}, {"network", "ls", "-q"}} {
			out, _ := exec.Command("docker", append(kind, filter...)...).Output()
			if ids := strings.Fields(string(out)); len(ids) > 0 {
				rm := []string{"rm", "-f"}
				if kind[0] == "network" {
					rm = []string{"network", "rm"}
				}
				exec.Command("docker", append(rm, ids...)...).Run()
			}
		}
	})
	var out bytes.Buffer
	ports := Ports{Staging: freePort(t), StagingTest: freePort(t), Production: freePort(t), ProductionTest: freePort(t)}
	res, err := Run(context.Background(), Options{DataDir: data, CI: true, Ports: ports, ProxyBinary: bin, Out: &out})
	if err != nil {
		t.Fatalf("demo: %v\n%s", err, out.String())
	}
	t.Logf("demo output:\n%s", out.String())
	if len(res.Runs) != 2 {
		t.Fatalf("%d runs", len(res.Runs))
	}
	want := []string{"Build", "Package", "Staging", "Approval", "Production"}
	for i, r := range res.Runs {
		if r.State != store.RunSucceeded {
			t.Errorf("run %d: %s", r.ID, r.State)
		}
		var names []string
		for _, s := range r.Stages {
			names = append(names, s.Name)
			if s.Duration <= 0 {
				t.Errorf("run %d stage %s has no duration", r.ID, s.Name)
			}
		}
		if strings.Join(names, ",") != strings.Join(want, ",") {
			t.Errorf("run %d stages %v, want %v", r.ID, names, want)
		}
		if a := r.Approval; a.State != store.ApprovalApproved || a.DecidedBy != "admin" || a.Comment != "staging checked by slipway demo" || a.DecidedAt == nil {
			t.Errorf("run %d approval record: %+v", r.ID, a)
		}
		if !strings.Contains(r.StagingAtApproval, "version="+r.Version) {
			t.Errorf("run %d: staging answered %q while waiting for approval, want version %s", r.ID, r.StagingAtApproval, r.Version)
		}
		if !strings.Contains(r.StagingAfter, "version="+r.Version) || !strings.Contains(r.ProductionAfter, "version="+r.Version) {
			t.Errorf("run %d after approval: staging %q, production %q, want version %s", r.ID, r.StagingAfter, r.ProductionAfter, r.Version)
		}
		if i == 0 && !strings.Contains(r.ProductionAtApproval, "no answer") {
			t.Errorf("production served %q before the first approval", r.ProductionAtApproval)
		}
	}
	if p := res.Runs[1].ProductionAtApproval; !strings.Contains(p, "version=1.0.0") {
		t.Errorf("production answered %q while version 1.1.0 waited for approval, want 1.0.0", p)
	}
	if res.Requests < 100 || res.Failed != 0 {
		t.Errorf("update under load: %d requests, %d failed", res.Requests, res.Failed)
	}
	// The demo removed its containers and stopped its load balancer.
	if filter := ownedBy(t, data); filter == nil {
		t.Errorf("the demo's installation id is not in %s", data)
	} else if out, _ := exec.Command("docker", append([]string{"ps", "-aq"}, filter...)...).Output(); len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("containers left behind: %s", out)
	}
	if b, err := os.ReadFile(filepath.Join(data, "proxy.pid")); err == nil {
		if pid, _ := strconv.Atoi(strings.TrimSpace(string(b))); pid > 1 && syscall.Kill(pid, 0) == nil {
			t.Errorf("the load balancer (pid %d) still runs", pid)
		}
	}
	// And the engine's copies of the images it built.
	registryHost := strings.TrimPrefix(res.URL, "http://")
	images, err := exec.Command("docker", "images", "--format", "{{.Repository}}:{{.Tag}}").Output()
	if err != nil {
		t.Fatalf("docker images: %v", err)
	}
	for _, ref := range strings.Fields(string(images)) {
		if strings.HasPrefix(ref, registryHost+"/") {
			t.Errorf("image left behind: %s", ref)
		}
	}
}

func TestDemoRefusesBusyPort(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	busy := ln.Addr().(*net.TCPAddr).Port
	data := t.TempDir()
	_, err = Run(context.Background(), Options{DataDir: data, CI: true, Ports: Ports{Staging: freePort(t), StagingTest: freePort(t), Production: busy, ProductionTest: freePort(t)}, Out: &bytes.Buffer{}})
	if err == nil || !strings.Contains(err.Error(), "port "+strconv.Itoa(busy)) || !strings.Contains(err.Error(), "--ports") {
		t.Fatalf("busy port: %v", err)
	}
	if entries, _ := os.ReadDir(data); len(entries) != 0 {
		t.Fatalf("the refused demo wrote to its data directory: %v", entries)
	}
}
