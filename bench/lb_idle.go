package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/slipway-dev/slipway/internal/lb"
)

// lbIdleBackendEnv makes the bench binary the lb-idle backend instead: a
// process of its own, so its CPU is not counted with the bench's.
const lbIdleBackendEnv = "SLIPWAY_BENCH_LB_IDLE_BACKEND"

func init() {
	if os.Getenv(lbIdleBackendEnv) != "" {
		lbIdleBackend()
		os.Exit(0)
	}
}

const (
	lbIdleServices = 250
	lbIdleTargets  = 2 * lbIdleServices
	lbIdleSeconds  = 30
)

// lbIdle measures the load balancer at rest with the health checks of 250
// services of two tasks each: a `slipway proxy` process with 500 targets
// in 250 target groups under the default check (GET / every 5 s), all
// answered by one backend process listening on every loopback address,
// so 127.1.x.y:P are 500 distinct targets. Once all are healthy, the
// proxy's CPU time over 30 s without client traffic, per check the
// backend counted, and its RSS.
func lbIdle(e *env) (map[string]any, string, error) {
	if err := os.MkdirAll(e.dir, 0o755); err != nil {
		return nil, "", err
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	be, err := startIdleBackend(ctx)
	if err != nil {
		return nil, "", err
	}
	proxy := exec.CommandContext(ctx, e.bin, "proxy", "--data", e.dir)
	proxy.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := proxy.Start(); err != nil {
		return nil, "", err
	}
	defer func() { proxy.Process.Kill(); proxy.Wait() }()
	client := lb.NewClient(filepath.Join(e.dir, "proxy.sock"))
	for i := 0; ; i++ {
		if _, err := client.Ping(ctx); err == nil {
			break
		}
		if i > 200 {
			return nil, "", fmt.Errorf("proxy did not start")
		}
		time.Sleep(25 * time.Millisecond)
	}
	// One service after another over one check interval, as services join a
	// proxy over time: their checks then run spread over the interval, not
	// 500 at once, which would share the wake-ups and understate the cost.
	cfg := lb.Config{TargetGroups: map[string]lb.TargetGroup{}}
	const interval = 5 * time.Second // the default check's
	start := time.Now()
	for i := 0; i < lbIdleServices; i++ {
		cfg.TargetGroups[fmt.Sprintf("svc-%03d", i)] = lb.TargetGroup{Targets: []string{
			fmt.Sprintf("127.1.%d.%d:%d", 2*i/250, 2*i%250+1, be.port), fmt.Sprintf("127.1.%d.%d:%d", (2*i+1)/250, (2*i+1)%250+1, be.port)}}
		if err := client.Apply(ctx, cfg); err != nil {
			return nil, "", err
		}
		time.Sleep(time.Until(start.Add(time.Duration(i+1) * interval / lbIdleServices)))
	}
	applied := time.Since(start)
	for {
		st, err := client.State(ctx, time.Second)
		if err != nil {
			return nil, "", err
		}
		healthy := 0
		for _, g := range st.TargetGroups {
			for _, t := range g.Targets {
				if t.State == lb.StateHealthy {
					healthy++
				}
			}
		}
		if healthy == lbIdleTargets {
			break
		}
		if time.Since(start) > time.Minute {
			return nil, "", fmt.Errorf("%d of %d targets healthy after a minute", healthy, lbIdleTargets)
		}
		time.Sleep(250 * time.Millisecond)
	}
	toHealthy := time.Since(start)
	time.Sleep(2 * time.Second) // out of the start-up's garbage collections
	pid := proxy.Process.Pid
	load0 := loadAvg()
	n0, err := be.checks()
	if err != nil {
		return nil, "", err
	}
	c0, bc0, t0 := cpuTime(pid), cpuTime(be.pid), time.Now()
	time.Sleep(lbIdleSeconds * time.Second)
	c1, bc1, secs := cpuTime(pid), cpuTime(be.pid), time.Since(t0).Seconds()
	n1, err := be.checks()
	if err != nil {
		return nil, "", err
	}
	load1 := loadAvg()
	kib, err := rssKiB(pid)
	if err != nil {
		return nil, "", err
	}
	checks := n1 - n0
	if checks <= 0 {
		return nil, "", fmt.Errorf("the backend saw no health checks in %d s", lbIdleSeconds)
	}
	cpu := c1 - c0
	f := map[string]any{
		"targets": lbIdleTargets, "target_groups": lbIdleServices, "seconds": secs, "to_all_healthy_s": toHealthy.Seconds(),
		"apply_s": applied.Seconds(), "checks": checks, "checks_per_s": float64(checks) / secs,
		"proxy_cpu_pct":          cpu.Seconds() / secs * 100,
		"proxy_cpu_us_per_check": float64(cpu.Microseconds()) / float64(checks),
		"proxy_rss_mib":          float64(kib) / 1024,
		"backend_cpu_pct":        (bc1 - bc0).Seconds() / secs * 100,
		"loadavg_before":         load0, "loadavg_after": load1,
		"goal": "proxy ≤ 1.2% of a core (server + proxy ≤ 2% at 250 services)",
	}
	return f, fmt.Sprintf("%d targets, %.1f checks/s: proxy %.2f%% of a core, %.0f µs CPU per check, RSS %.1f MiB (load average %s → %s)",
		lbIdleTargets, f["checks_per_s"], f["proxy_cpu_pct"], f["proxy_cpu_us_per_check"], f["proxy_rss_mib"], load0, load1), nil
}

// idleBackend is the lb-idle backend process.
type idleBackend struct {
	pid, port int
}

// startIdleBackend runs this executable as the backend (lbIdleBackend),
// which says its port on its first line of output; it dies with ctx or
// with the bench.
func startIdleBackend(ctx context.Context) (*idleBackend, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, self)
	cmd.Env = append(os.Environ(), lbIdleBackendEnv+"=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	r := bufio.NewReader(out)
	line, err := r.ReadString('\n')
	go func() { io.Copy(io.Discard, r); cmd.Wait() }()
	port, perr := strconv.Atoi(strings.TrimPrefix(strings.TrimSpace(line), "port "))
	if err != nil || perr != nil {
		cmd.Process.Kill()
		return nil, fmt.Errorf("lb-idle backend did not start: %q %v", line, err)
	}
	return &idleBackend{pid: cmd.Process.Pid, port: port}, nil
}

// checks is how many health checks the backend has answered.
func (b *idleBackend) checks() (int64, error) {
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/count", b.port))
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(strings.TrimSpace(string(body)), 10, 64)
}

// lbIdleBackend answers every request with 200 on every loopback address
// and counts the health checks; /count reports them.
func lbIdleBackend() {
	ln, err := net.Listen("tcp", "0.0.0.0:0")
	if err != nil {
		fail(err)
	}
	var checks atomic.Int64
	body := []byte("ok\n")
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/count" {
			fmt.Fprintln(w, checks.Load())
			return
		}
		if r.UserAgent() == "slipway-health-check" {
			checks.Add(1)
		}
		w.Write(body)
	})}
	fmt.Printf("port %d\n", ln.Addr().(*net.TCPAddr).Port)
	fail(srv.Serve(ln))
}

// loadAvg is the 1, 5 and 15 minute load averages.
func loadAvg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}
