// Package testtool runs the servers tests start from go.mod's tool
// dependencies (Pebble, versitygw): it builds them, ties their lives to
// the test binary's, and collects their output.
package testtool

import (
	"bytes"
	"os/exec"
	"strings"
	"sync"
	"testing"
)

var built struct {
	sync.Mutex
	paths map[string]string
}

// Binary builds the go.mod tool name once per process (`go tool -n`; the
// go command's cache makes later runs cheap) and returns its path. It
// skips the test, saying why, when the tool cannot be built.
func Binary(t testing.TB, name string) string {
	t.Helper()
	built.Lock()
	defer built.Unlock()
	if p := built.paths[name]; p != "" {
		return p
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("cannot build %s: %v", name, err)
	}
	var stderr bytes.Buffer
	cmd := exec.Command(goBin, "tool", "-n", name)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	path := strings.TrimSpace(string(out))
	if err != nil || path == "" {
		t.Skipf("cannot build %s (`go tool -n %s`): %v %s", name, name, err, stderr.String())
	}
	if built.paths == nil {
		built.paths = map[string]string{}
	}
	built.paths[name] = path
	return path
}

// Output collects a process's output, which it writes from another
// goroutine while the test may read it.
type Output struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (o *Output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.b.Write(p)
}

func (o *Output) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.b.String()
}
