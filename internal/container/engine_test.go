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

// A script job cancelled at any moment, even while its container is being
// created, leaves no container behind.
func TestIntegrationRunScriptCancelledLeavesNoContainer(t *testing.T) {
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
	job := ScriptJob{Image: image, HostDir: t.TempDir(), MountPath: "/src", WorkDir: "/src",
		Script: "echo ran; sleep 60", Labels: map[string]string{k: v}}
	// The first run is cancelled once its output shows it started; the
	// others at tenths of that time, from before the create onwards.
	logR, logW := io.Pipe()
	job.Log = logW
	begin := time.Now()
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		_, _ = bufio.NewReader(logR).ReadString('\n') // "ran": the script started
		cancel()
		_, _ = io.Copy(io.Discard, logR)
	}()
	code, err := eng.RunScript(ctx, job)
	full := time.Since(begin)
	logW.Close()
	if code != 137 || err == nil {
		t.Fatalf("cancelled run: exit %d, err %v", code, err)
	}
	const steps = 10
	for i := 0; i < steps; i++ {
		delay := full * time.Duration(i) / steps
		ctx, cancel := context.WithTimeout(context.Background(), delay)
		job.Log = &bytes.Buffer{}
		_, err := eng.RunScript(ctx, job)
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
