package kubecluster

import (
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

// Bridge is the name of the cluster's CNI bridge.
func (c *Cluster) Bridge() string { return c.bridge }

// CgroupRoots are kubelet's cgroup root in every hierarchy.
func (c *Cluster) CgroupRoots() []string { return c.host.Cgroups }

// HostPaths and Sysctls are what Close must leave as Start found them.
var HostPaths, Sysctls = hostPaths, sysctls

// PIDs are the processes of the cluster: its components, its containerd's
// shims and everything in its pods' cgroups.
func (c *Cluster) PIDs() map[int]string {
	pids := map[int]string{}
	for _, p := range c.processes() {
		pids[p.cmd.Process.Pid] = p.name
	}
	for _, pid := range allPIDs() {
		if shimAddress(pid) == c.ContainerdAddress {
			pids[pid] = "containerd-shim"
		}
	}
	for _, pid := range cgroupPIDs(c.host.Cgroups) {
		if _, ok := pids[pid]; !ok {
			pids[pid] = "pod process"
		}
	}
	return pids
}

// RSS sums the resident memory of PIDs, by name, in MiB.
func (c *Cluster) RSS() (byName map[string]int, total int) {
	byName = map[string]int{}
	for pid, name := range c.PIDs() {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		if err != nil {
			continue
		}
		for line := range strings.Lines(string(b)) {
			if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
				kb, _ := strconv.Atoi(f[1])
				byName[name] += kb / 1024
				total += kb / 1024
			}
		}
	}
	return byName, total
}

// Lock takes the machine's one-cluster lock, for a test to look at the
// machine while no cluster runs.
func Lock(ctx context.Context) (io.Closer, error) {
	return acquireLock(ctx, func(string, ...any) {})
}

// WithLock has Start use the lock l holds, and Close release it.
func WithLock(opts Options, l io.Closer) Options { opts.lock = l; return opts }

// WithoutLock has Start take no lock: the caller's parent holds it.
func WithoutLock(opts Options) Options { opts.noLock = true; return opts }

// WithHooks has Start call locked under the lock once it has cleared
// what dead clusters left, and Close call unlocking before it releases
// the lock.
func WithHooks(opts Options, locked, unlocking func()) Options {
	opts.locked, opts.unlocking = locked, unlocking
	return opts
}
