package kubecluster

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/slipway-dev/slipway/internal/testtool"
)

// proc is one of the cluster's components.
type proc struct {
	name   string
	cmd    *exec.Cmd
	log    string
	exited chan struct{}
	err    error // Wait's, once exited is closed
}

// run starts a component with its output in Logs()/NAME.log.
func (c *Cluster) run(name, bin string, args ...string) (*proc, error) {
	log := c.path("logs/" + name + ".log")
	f, err := os.OpenFile(log, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	cmd := exec.Command(bin, args...)
	cmd.Dir = c.Dir
	// A file, not a pipe: containerd's shims inherit nothing of it, but a
	// pipe would keep Wait waiting for any child that holds it.
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = testtool.SysProcAttr()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, log: log, exited: make(chan struct{})}
	go func() { p.err = cmd.Wait(); close(p.exited) }()
	c.mu.Lock()
	c.procs = append(c.procs, p)
	c.mu.Unlock()
	return p, nil
}

func (c *Cluster) processes() []*proc {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*proc(nil), c.procs...)
}

func (c *Cluster) proc(name string) *proc {
	for _, p := range c.processes() {
		if p.name == name {
			return p
		}
	}
	return nil
}

// stop sends SIGTERM and waits up to grace for the process to exit, then
// kills it. It reports whether the process exited by itself.
func (p *proc) stop(grace time.Duration) bool {
	if p == nil {
		return true
	}
	select {
	case <-p.exited:
		return true
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
		return true
	case <-time.After(grace):
	}
	_ = p.cmd.Process.Kill()
	<-p.exited
	return false
}

// lastWords is the end of the component's log, for errors.
func (p *proc) lastWords(lines int) string {
	return fmt.Sprintf("%s's last words (%s):\n%s", p.name, p.log, tail(p.log, lines))
}

// tail is the last n lines of a file.
func tail(file string, n int) string {
	b, err := os.ReadFile(file)
	if err != nil {
		return fmt.Sprintf("(%v)", err)
	}
	s := strings.TrimRight(string(b), "\n")
	if s == "" {
		return "(nothing)"
	}
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
