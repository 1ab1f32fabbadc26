package container

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/slipway-dev/slipway/internal/container/containertest"
)

// runInBox is how callers use a box: start, exec, remove.
func runInBox(ctx context.Context, eng *Engine, spec BoxSpec, script string, log io.Writer) (int, error) {
	box, err := eng.StartBox(ctx, spec)
	if err != nil {
		return 127, err
	}
	defer box.Remove()
	return box.Exec(ctx, []string{"sh", "-c", script}, nil, log)
}

// A box cancelled at any moment, even while its container is being
// created, leaves no container behind.
func TestIntegrationBoxCancelledLeavesNoContainer(t *testing.T) {
	defer func(g time.Duration) { StopGrace = g }(StopGrace)
	StopGrace = 300 * time.Millisecond // what is tested is that nothing is left, not the grace
	image := containertest.BusyboxImage(t)
	label := fmt.Sprintf("slipway.test.runscript=%d", time.Now().UnixNano())
	k, v, _ := strings.Cut(label, "=")
	leftovers := func() []string {
		out, err := exec.Command("docker", "ps", "-aq", "--filter", "label="+label).Output()
		if err != nil {
			t.Fatalf("docker ps: %v", err)
		}
		return strings.Fields(string(out))
	}
	t.Cleanup(func() {
		if ids := leftovers(); len(ids) > 0 {
			exec.Command("docker", append([]string{"rm", "-f"}, ids...)...).Run()
		}
	})
	eng, err := Connect(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	spec := BoxSpec{Image: image, WorkDir: "/", Labels: map[string]string{k: v}}
	const script = "echo ran; sleep 60"
	// The first run is cancelled once its output shows it started; the
	// others at tenths of that time, from before the create onwards.
	logR, logW := io.Pipe()
	begin := time.Now()
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		_, _ = bufio.NewReader(logR).ReadString('\n') // "ran": the script started
		cancel()
		_, _ = io.Copy(io.Discard, logR)
	}()
	code, err := runInBox(ctx, eng, spec, script, logW)
	full := time.Since(begin)
	logW.Close()
	if (code != 143 && code != 137) || err == nil { // SIGTERM ends the sleep; SIGKILL if it had not
		t.Fatalf("cancelled run: exit %d, err %v", code, err)
	}
	const steps = 10
	for i := 0; i < steps; i++ {
		delay := full * time.Duration(i) / steps
		ctx, cancel := context.WithTimeout(context.Background(), delay)
		_, err := runInBox(ctx, eng, spec, script, &bytes.Buffer{})
		cancel()
		if err == nil {
			t.Fatalf("cancelled after %v: the script's sleep 60 cannot have finished", delay)
		}
		time.Sleep(150 * time.Millisecond) // a create the engine finishes late shows up by now
		if ids := leftovers(); len(ids) > 0 {
			t.Fatalf("cancelled after %v of %v (%v): left containers %v", delay, full, err, ids)
		}
	}
}
