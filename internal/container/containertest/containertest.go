// Package containertest builds the small images that tests run on the
// Docker engine, which on the development machine cannot pull any.
package containertest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// BusyboxImage builds a FROM scratch image holding Debian's static busybox
// as /bin/sh and /bin/busybox, and removes it when the test ends.
func BusyboxImage(t testing.TB) string {
	t.Helper()
	b, err := os.ReadFile("/bin/busybox")
	if err != nil {
		t.Fatalf("/bin/busybox is missing: install Debian's busybox-static (.ci/run does): %v", err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "busybox"), b, 0o755); err != nil {
		t.Fatal(err)
	}
	dockerfile := "FROM scratch\nLABEL slipway.test=1 slipway.test.image=busybox\nCOPY busybox /bin/sh\nCOPY busybox /bin/busybox\nENV PATH=/bin\n"
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(dockerfile), 0o644); err != nil {
		t.Fatal(err)
	}
	tag := fmt.Sprintf("slipway-test-busybox:%d", time.Now().UnixNano())
	cmd := exec.Command("docker", "build", "-q", "-t", tag, dir)
	cmd.Env = append(os.Environ(), "DOCKER_BUILDKIT=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build busybox image: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("docker", "rmi", "-f", tag).Run() })
	return tag
}
