// Package deploy keeps services at their desired count of healthy tasks,
// routes their traffic through the load balancer, and rolls out new
// revisions.
package deploy

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/slipway-dev/slipway/internal/lb"
)

// Proxy starts or adopts the `slipway proxy` process and configures it.
type Proxy struct {
	DataDir string
	Binary  string // the slipway executable; os.Executable() when empty
	client  *lb.Client
	mu      sync.Mutex
}

// NewProxy prepares (without starting) the proxy of a data directory.
func NewProxy(dataDir, binary string) *Proxy {
	return &Proxy{DataDir: dataDir, Binary: binary, client: lb.NewClient(filepath.Join(dataDir, "proxy.sock"))}
}

// Client returns the control client.
func (p *Proxy) Client() *lb.Client { return p.client }

// Apply puts cfg in force, starting a proxy first when none answers.
func (p *Proxy) Apply(ctx context.Context, cfg lb.Config) error {
	return p.call(ctx, func(c *lb.Client) error { return c.Apply(ctx, cfg) })
}

// State reads target health and stats over window, starting a proxy first
// when none answers.
func (p *Proxy) State(ctx context.Context, window time.Duration) (lb.State, error) {
	var st lb.State
	err := p.call(ctx, func(c *lb.Client) error {
		var err error
		st, err = c.State(ctx, window)
		return err
	})
	return st, err
}

// call asks the proxy first and starts one only when none answers: a ping
// before every call would double the round trips a traffic shift waits on
// before it is in force, and a busy proxy answers each one late.
func (p *Proxy) call(ctx context.Context, f func(*lb.Client) error) error {
	err := f(p.client)
	if err == nil || !errors.Is(err, lb.ErrNotAnswering) || ctx.Err() != nil {
		return err
	}
	if err := p.Ensure(ctx); err != nil {
		return err
	}
	return f(p.client)
}

// Ensure makes sure a proxy answers on the socket, starting one in its own
// session (so it outlives this server, even a SIGKILL) when none does.
func (p *Proxy) Ensure(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, err := p.client.Ping(ctx); err == nil {
		return nil
	}
	bin, err := p.executable()
	if err != nil {
		return fmt.Errorf("find the slipway executable to start the proxy: %w", err)
	}
	logFile, err := os.OpenFile(filepath.Join(p.DataDir, "proxy.log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logFile.Close()
	cmd := exec.Command(bin, "proxy", "--data", p.DataDir)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start the load balancer (%s proxy): %w", bin, err)
	}
	go cmd.Wait() // reap it if it dies while we live
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := p.client.Ping(ctx); err == nil {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("the load balancer did not answer on %s within 10s; see %s", filepath.Join(p.DataDir, "proxy.sock"), filepath.Join(p.DataDir, "proxy.log"))
}

// executable is the slipway binary this server starts proxies from.
func (p *Proxy) executable() (string, error) {
	if p.Binary != "" {
		return p.Binary, nil
	}
	return os.Executable()
}

// StaleBuild reports a running proxy whose executable is another build
// than the one this server starts proxies from: proxies outlive servers, so
// after an upgrade the old one keeps serving with the old code.
func (p *Proxy) StaleBuild(ctx context.Context) (lb.Info, bool) {
	info, err := p.client.Info(ctx)
	if err != nil {
		return info, false
	}
	own := lb.BuildOf(p.executable)
	return info, own != "" && info.Build != own
}

// Running reports whether a proxy answers.
func (p *Proxy) Running(ctx context.Context) bool {
	_, err := p.client.Ping(ctx)
	return err == nil
}

// Stop ends the proxy process of this data directory (it outlives servers
// by design, so whoever tears the whole installation down stops it).
func (p *Proxy) Stop(ctx context.Context) error {
	b, err := os.ReadFile(filepath.Join(p.DataDir, "proxy.pid"))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 1 {
		return fmt.Errorf("proxy.pid holds %q, not a process id", b)
	}
	_ = syscall.Kill(pid, syscall.SIGTERM)
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if syscall.Kill(pid, 0) != nil {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return syscall.Kill(pid, syscall.SIGKILL)
}
