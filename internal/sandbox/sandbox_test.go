package sandbox

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/slipway-dev/slipway/internal/container"
	"github.com/slipway-dev/slipway/internal/container/containertest"
)

// start makes a sandbox labelled for this test and removes it at the end.
func start(t *testing.T, o Options) *container.Box {
	t.Helper()
	eng, err := container.Connect(context.Background())
	if err != nil {
		t.Skipf("no Docker engine: %v", err)
	}
	label := fmt.Sprintf("%d", time.Now().UnixNano())
	o.Labels = map[string]string{"slipway.test.sandbox": label}
	box, err := Start(context.Background(), eng, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		box.Remove()
		exec.Command("docker", "rm", "-f", box.ID).Run()
	})
	return box
}

func run(t *testing.T, box *container.Box, script string) (int, string) {
	t.Helper()
	var out bytes.Buffer
	code, err := box.Exec(context.Background(), []string{"sh", "-c", script}, nil, &out)
	if err != nil {
		t.Fatalf("exec %q: %v", script, err)
	}
	return code, out.String()
}

// TestIntegrationSandboxReach checks what a default-image sandbox sees:
// its workspace read-write, the host's /usr read-only, nothing else of the
// host (a directory beside the workspace, a hidden path under /usr).
func TestIntegrationSandboxReach(t *testing.T) {
	parent := t.TempDir()
	ws := filepath.Join(parent, "ws")
	if err := os.MkdirAll(filepath.Join(ws, "src"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(parent, "admin.token"), []byte("slw_beside"), 0o600); err != nil {
		t.Fatal(err)
	}
	o := Options{Workspace: ws, HomeDir: filepath.Join(parent, "home")}
	if os.Geteuid() == 0 {
		hidden, err := os.MkdirTemp("/usr/local", "slipway-test-data-")
		if err == nil {
			t.Cleanup(func() { os.RemoveAll(hidden) })
			os.WriteFile(filepath.Join(hidden, "master.key"), []byte("key-under-usr"), 0o644)
			o.Hide = []string{hidden}
			t.Cleanup(func() {}) // keep hidden for the check below
			defer func() {
				box := start(t, o)
				if code, out := run(t, box, "cat "+hidden+"/master.key"); code == 0 || strings.Contains(out, "key-under-usr") {
					t.Errorf("a hidden path under /usr is readable: %d %q", code, out)
				}
			}()
		}
	}
	box := start(t, o)
	for _, c := range []struct {
		script string
		ok     bool
	}{
		{"echo hi > /slipway/src/f && cat /slipway/src/f", true},
		{"echo hi > $HOME/f 2>/dev/null || echo hi > /home/build/f", true},
		{"ls /usr/bin/sh", true},
		{"touch /usr/bin/evil", false},
		{"cat " + filepath.Join(parent, "admin.token"), false},
		{"test -S /var/run/docker.sock", false},
		{"test $(id -u) -ne 0", os.Geteuid() == 0},
	} {
		code, out := run(t, box, c.script)
		if (code == 0) != c.ok {
			t.Errorf("%q: exit %d (%s), want success %v", c.script, code, strings.TrimSpace(out), c.ok)
		}
	}
}

// TestIntegrationSeededGoCacheIsReadOnly: a new build home's Go cache is
// hard links to the server's; a build can replace an entry in its own
// cache but never change the file the server (and every other app) reads.
func TestIntegrationSeededGoCacheIsReadOnly(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("seeding happens only when the server runs as root")
	}
	parent := t.TempDir()
	seed := filepath.Join(parent, "seed")
	entry := filepath.Join(seed, "ab", "abcdef-d")
	if err := os.MkdirAll(filepath.Dir(entry), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(entry, []byte("compiled"), 0o644); err != nil {
		t.Fatal(err)
	}
	ws := filepath.Join(parent, "ws")
	os.MkdirAll(filepath.Join(ws, "src"), 0o700)
	box := start(t, Options{Workspace: ws, HomeDir: filepath.Join(parent, "home"), GoCacheSeed: seed})
	cached := "/home/build/.cache/go-build/ab/abcdef-d"
	if code, out := run(t, box, "cat "+cached); code != 0 || out != "compiled" {
		t.Fatalf("seeded entry: %d %q", code, out)
	}
	if code, _ := run(t, box, "echo poisoned > "+cached); code == 0 {
		t.Error("a build wrote into a seeded cache file")
	}
	if code, _ := run(t, box, "chmod 666 "+cached); code == 0 {
		t.Error("a build changed a seeded cache file's mode")
	}
	if code, out := run(t, box, "rm "+cached+" && echo mine > "+cached+" && cat "+cached); code != 0 || out != "mine\n" {
		t.Errorf("a build cannot replace an entry of its own cache: %d %q", code, out)
	}
	if b, _ := os.ReadFile(entry); string(b) != "compiled" {
		t.Errorf("the seed changed: %q", b)
	}
	if fi, _ := os.Stat(entry); fi.Mode().Perm() != 0o644 {
		t.Errorf("the seed's mode changed: %v", fi.Mode())
	}
}

// Two actions of one app starting at once both get the seeded cache.
func TestSeedGoCacheConcurrently(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("seeding happens only when the server runs as root")
	}
	parent := t.TempDir()
	seed := filepath.Join(parent, "seed")
	os.MkdirAll(filepath.Join(seed, "ab"), 0o755)
	os.WriteFile(filepath.Join(seed, "ab", "x-d"), []byte("x"), 0o644)
	home := filepath.Join(parent, "home")
	os.MkdirAll(home, 0o700)
	errs := make(chan error, 4)
	for range 4 {
		go func() { _, err := seedGoCache(home, seed); errs <- err }()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	if b, err := os.ReadFile(filepath.Join(home, ".cache", "go-build", "ab", "x-d")); err != nil || string(b) != "x" {
		t.Fatalf("seeded entry: %q %v", b, err)
	}
	if left, _ := filepath.Glob(filepath.Join(parent, ".home.go-build-*")); len(left) != 0 {
		t.Errorf("left behind: %v", left)
	}
}

// An action's own image runs as the build user with no capabilities, as
// the default image does.
func TestIntegrationOwnImageIsUnprivileged(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the build user is the server's own when the server is not root")
	}
	parent := t.TempDir()
	ws := filepath.Join(parent, "ws")
	os.MkdirAll(filepath.Join(ws, "src"), 0o700)
	box := start(t, Options{Image: containertest.BusyboxImage(t), Workspace: ws, HomeDir: filepath.Join(parent, "home")})
	if code, out := run(t, box, "id -u; grep CapEff /proc/self/status"); code != 0 || !strings.HasPrefix(out, "65534\n") || !strings.Contains(out, "0000000000000000") {
		t.Fatalf("own image: %d %q", code, out)
	}
	if code, out := run(t, box, "echo ok > /slipway/src/f && cat /slipway/src/f"); code != 0 || out != "ok\n" {
		t.Fatalf("the workspace is not the build user's: %d %q", code, out)
	}
}
