package kubecluster

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// hostState is what Start found on the machine, for Close to put back.
// It is also written to the cluster's directory (hostStateFile), for a
// later Start to put back if the process dies before Close.
type hostState struct {
	Sysctls map[string]string // /proc/sys paths → values before the start
	Created []string          // host paths the components may make that did not exist
	Cgroups []string          // the cgroup root, in every hierarchy
	// Firewall says, per iptables command, whether the filter table had
	// a KUBE-FIREWALL chain. kube-proxy makes one (kubelet's, it says),
	// and its --cleanup leaves it.
	Firewall map[string]bool
}

const hostStateFile = "host.json"

func (h *hostState) save(dir string) error {
	b, _ := json.Marshal(h)
	return os.WriteFile(filepath.Join(dir, hostStateFile), b, 0o600)
}

// restoreFirewall removes the KUBE-FIREWALL chains that were not there.
func (h *hostState) restoreFirewall() {
	for ipt, had := range h.Firewall {
		if !had {
			removeFirewallChain(ipt)
		}
	}
}

func (h *hostState) restoreSysctls() error {
	var errs []error
	for s, v := range h.Sysctls {
		if b, err := os.ReadFile("/proc/sys/" + s); err == nil && strings.TrimSpace(string(b)) != v {
			errs = append(errs, os.WriteFile("/proc/sys/"+s, []byte(v), 0o644))
		}
	}
	return errors.Join(errs...)
}

// removeCreated removes the host paths that were not there. Of those
// under /run it removes only empty directories: another containerd (the
// Docker engine's) may have put its shims' sockets in /run/containerd
// meanwhile.
func (h *hostState) removeCreated() error {
	var errs []error
	for _, p := range h.Created {
		if strings.HasPrefix(p, "/run/") {
			removeEmptyDirs(p)
			continue
		}
		errs = append(errs, unmountUnder(p), os.RemoveAll(p))
	}
	return errors.Join(errs...)
}

// removeEmptyDirs removes dir if it holds nothing but empty directories.
func removeEmptyDirs(dir string) {
	var dirs []string
	_ = filepath.WalkDir(dir, func(p string, e os.DirEntry, err error) error {
		if err == nil && e.IsDir() {
			dirs = append(dirs, p)
		}
		return nil
	})
	for i := len(dirs) - 1; i >= 0; i-- { // children after their parents
		_ = syscall.Rmdir(dirs[i])
	}
}

// sysctls are the kernel settings kubelet (protectKernelDefaults off:
// on, it refuses to start when they differ from its wishes), kube-proxy
// (route_localnet, for NodePorts on 127.0.0.1) and the bridge plugin
// (ip_forward) change.
var sysctls = []string{
	"vm/overcommit_memory", "vm/panic_on_oom", "kernel/panic", "kernel/panic_on_oops",
	"kernel/keys/root_maxkeys", "kernel/keys/root_maxbytes",
	"net/ipv4/conf/all/route_localnet", "net/ipv4/ip_forward",
}

// hostPaths are the directories outside Dir that kubelet, containerd and
// the CNI plugins write to whatever their configuration says: kubelet's
// device-plugin socket, the container log links, CNI's result cache,
// the pods' network namespaces, the shims' sockets. Close removes those
// that were not there before Start, and its own entries from the others.
var hostPaths = []string{"/var/lib/kubelet", "/var/log/containers", "/var/log/pods", "/var/lib/cni", "/run/netns", "/run/containerd"}

// cniCaches are where libcni keeps the result of each ADD until the DEL,
// in files named NETWORK-CONTAINERID-IFNAME (by version, one or the
// other).
var cniCaches = []string{"/var/lib/cni/results", "/var/lib/cni/cache/results"}

// removeCNICache removes the cached results of network (a pattern) and
// the loopback results of the same containers, for when no DEL ran.
func removeCNICache(network string) {
	for _, dir := range cniCaches {
		files, _ := filepath.Glob(filepath.Join(dir, network+"-*"))
		for _, f := range files {
			_ = os.Remove(f)
			name := filepath.Base(f)
			if i, j := strings.IndexByte(name, '-'), strings.LastIndexByte(name, '-'); i < j {
				_ = os.Remove(filepath.Join(dir, "cni-loopback-"+name[i+1:j]+"-lo"))
			}
		}
	}
}

// prepareHost records the machine's state, then makes the cgroup root
// and lets the bridge's traffic through the FORWARD chain.
func (c *Cluster) prepareHost() error {
	h := &c.host
	h.Sysctls = map[string]string{}
	for _, s := range sysctls {
		if b, err := os.ReadFile("/proc/sys/" + s); err == nil {
			h.Sysctls[s] = strings.TrimSpace(string(b))
		}
	}
	for _, p := range hostPaths {
		if _, err := os.Lstat(p); errors.Is(err, os.ErrNotExist) {
			h.Created = append(h.Created, p)
		}
	}
	h.Firewall = map[string]bool{}
	for _, ipt := range c.tools.iptablesAll() {
		h.Firewall[ipt] = exec.Command(ipt, "-w", "-S", "KUBE-FIREWALL").Run() == nil
	}
	mounts, err := cgroupMounts()
	if err != nil {
		return err
	}
	for _, m := range mounts {
		h.Cgroups = append(h.Cgroups, filepath.Join(m, c.cgroup))
	}
	if err := h.save(c.Dir); err != nil {
		return err
	}
	for _, m := range mounts {
		dir := filepath.Join(m, c.cgroup)
		if err := os.Mkdir(dir, 0o755); err != nil {
			return fmt.Errorf("make kubelet's cgroup root: %w", err)
		}
		// A new cpuset cgroup has no CPUs or memory nodes: give it its
		// parent's, or nothing can run in it.
		for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
			if b, err := os.ReadFile(filepath.Join(m, f)); err == nil {
				if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
					return fmt.Errorf("cgroup %s: %w", filepath.Join(dir, f), err)
				}
			}
		}
		// Under cgroup v2 the controllers must be passed down.
		if b, err := os.ReadFile(filepath.Join(dir, "cgroup.controllers")); err == nil {
			var enable []string
			for _, ctl := range strings.Fields(string(b)) {
				enable = append(enable, "+"+ctl)
			}
			if len(enable) > 0 {
				_ = os.WriteFile(filepath.Join(dir, "cgroup.subtree_control"), []byte(strings.Join(enable, " ")), 0o644)
			}
		}
	}
	// Docker sets FORWARD's policy to DROP, which drops pod-to-pod and
	// pod-to-service traffic across the bridge.
	for _, rule := range c.forwardRules() {
		if out, err := exec.Command(c.tools.iptables, append([]string{"-w", "-I", "FORWARD", "1"}, rule...)...).CombinedOutput(); err != nil {
			return fmt.Errorf("iptables -I FORWARD %s: %v: %s", strings.Join(rule, " "), err, out)
		}
		c.forwardOK = true
	}
	return nil
}

// forwardComment marks the FORWARD rules of every cluster, so that a
// later Start can remove those of a cluster whose process died.
const forwardComment = "slipway-kubecluster"

func (c *Cluster) forwardRules() [][]string {
	comment := []string{"-m", "comment", "--comment", forwardComment + ":" + c.bridge}
	return [][]string{
		append([]string{"-i", c.bridge}, append(comment, "-j", "ACCEPT")...),
		append([]string{"-o", c.bridge}, append(comment, "-j", "ACCEPT")...),
	}
}

// teardown is Close's work; it goes on past failures and returns them all.
func (c *Cluster) teardown() error {
	if c.Dir == "" {
		return nil
	}
	var errs []error
	fail := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	step := time.Now()
	logStep := func(what string) {
		c.opts.Logf("kubecluster: %s (%v)", what, time.Since(step).Round(time.Millisecond))
		step = time.Now()
	}
	// Pods first, while kubelet and containerd run: kubelet stops their
	// sandboxes through containerd, which tears their networks down, and
	// unmounts their volumes. Without controllers nothing replaces them.
	if c.proc("kubelet") != nil {
		c.proc("kube-controller-manager").stop(10 * time.Second)
		c.proc("kube-scheduler").stop(10 * time.Second)
		// Pods deleted earlier with a long grace period may hold kubelet
		// up (it finishes a kill it began); those are killed instead.
		if err := c.deletePods(10 * time.Second); err != nil {
			c.opts.Logf("kubecluster: %v; killing the pods' processes instead", err)
		}
		logStep("pods deleted")
	}
	// What kubelet did not stop is killed; the network namespaces of its
	// processes are noted first, to unmount after.
	pids := cgroupPIDs(c.host.Cgroups)
	netns := netnsOf(pids)
	for _, name := range []string{"kube-proxy", "kubelet", "containerd"} {
		c.proc(name).stop(10 * time.Second)
	}
	fail(killStray(append(pids, cgroupPIDs(c.host.Cgroups)...), c.ContainerdAddress))
	fail(unmountNetns(netns))
	procs := c.processes()
	for i := len(procs) - 1; i >= 0; i-- {
		procs[i].stop(10 * time.Second)
	}
	logStep("components stopped")

	// The host's network: kube-proxy's chains, our FORWARD rules, the
	// bridge (the pods' veths went with their namespaces), the kernel
	// settings.
	if c.proc("kube-proxy") != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		if out, err := exec.CommandContext(ctx, c.kube("kube-proxy"), "--cleanup").CombinedOutput(); err != nil {
			fail(fmt.Errorf("kube-proxy --cleanup: %v: %s", err, lastLines(string(out), 10)))
		}
		cancel()
	}
	c.host.restoreFirewall()
	if c.forwardOK {
		for _, rule := range c.forwardRules() {
			if out, err := exec.Command(c.tools.iptables, append([]string{"-w", "-D", "FORWARD"}, rule...)...).CombinedOutput(); err != nil {
				fail(fmt.Errorf("iptables -D FORWARD %s: %v: %s", strings.Join(rule, " "), err, out))
			}
		}
	}
	if c.bridge != "" {
		fail(deleteLink(c.tools.ip, c.bridge))
	}
	fail(c.host.restoreSysctls())

	logStep("host network restored")
	// Files outside Dir, then Dir.
	if c.bridge != "" {
		removeCNICache(c.bridge)
	}
	removeLinksInto("/var/log/containers", c.Dir)
	fail(c.host.removeCreated())
	fail(unmountUnder(c.Dir))
	fail(removeCgroups(c.host.Cgroups))
	fail(os.RemoveAll(c.Dir))
	if len(errs) > 0 {
		return fmt.Errorf("kubecluster: close: %w", errors.Join(errs...))
	}
	return nil
}

// removeFirewallChain removes the filter table's KUBE-FIREWALL chain and
// the INPUT and OUTPUT rules that jump to it.
func removeFirewallChain(ipt string) {
	for _, chain := range []string{"INPUT", "OUTPUT"} {
		for exec.Command(ipt, "-w", "-D", chain, "-j", "KUBE-FIREWALL").Run() == nil {
		}
	}
	_ = exec.Command(ipt, "-w", "-F", "KUBE-FIREWALL").Run()
	_ = exec.Command(ipt, "-w", "-X", "KUBE-FIREWALL").Run()
}

// deletePods deletes every pod with a grace period of 1 s and waits for
// kubelet to have finished with them (it deletes a pod from the API once
// its containers and sandbox are stopped and its volumes unmounted).
func (c *Cluster) deletePods(limit time.Duration) error {
	var nss struct {
		Items []struct{ Metadata struct{ Name string } }
	}
	if err := c.get(c.Server+"/api/v1/namespaces", &nss); err != nil {
		return fmt.Errorf("list namespaces to delete their pods: %w", err)
	}
	for _, ns := range nss.Items {
		err := c.call("DELETE", c.Server+"/api/v1/namespaces/"+ns.Metadata.Name+"/pods",
			map[string]any{"apiVersion": "v1", "kind": "DeleteOptions", "gracePeriodSeconds": 1}, nil)
		if err != nil {
			return fmt.Errorf("delete the pods of namespace %s: %w", ns.Metadata.Name, err)
		}
	}
	deadline := time.Now().Add(limit)
	for {
		var pods struct {
			Items []struct {
				Metadata struct{ Namespace, Name string }
			}
		}
		err := c.get(c.Server+"/api/v1/pods", &pods)
		if err == nil && len(pods.Items) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			if err == nil {
				var names []string
				for _, p := range pods.Items {
					names = append(names, p.Metadata.Namespace+"/"+p.Metadata.Name)
				}
				err = fmt.Errorf("%d left: %s", len(names), strings.Join(names, ", "))
			}
			return fmt.Errorf("kubelet did not stop the pods in %v: %w", limit, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// sweep removes what clusters whose process died left on the machine. It
// runs under the machine's lock, so no other cluster is alive, and it
// touches only what bears this package's names.
func sweep(t tools, bin string, logf func(string, ...any)) {
	var found []string
	var dirs []string
	for _, base := range []string{os.TempDir(), "/tmp"} {
		d, _ := filepath.Glob(filepath.Join(base, dirPrefix+"*"))
		for _, x := range d {
			if !slices.Contains(dirs, x) {
				dirs = append(dirs, x)
			}
		}
	}
	var states []*hostState
	for _, d := range dirs {
		var h hostState
		if b, err := os.ReadFile(filepath.Join(d, hostStateFile)); err == nil && json.Unmarshal(b, &h) == nil {
			states = append(states, &h)
		}
	}
	mounts, _ := cgroupMounts()
	var stale []string
	for _, m := range mounts {
		cgs, _ := filepath.Glob(filepath.Join(m, "slipway-*"))
		stale = append(stale, cgs...)
	}
	pids := cgroupPIDs(stale)
	netns := netnsOf(pids)
	shims := staleShims()
	if len(pids)+len(shims) > 0 {
		found = append(found, fmt.Sprintf("%d processes", len(pids)+len(shims)))
	}
	_ = killStray(append(pids, shims...), "")
	_ = unmountNetns(netns)
	if len(stale) > 0 {
		found = append(found, "cgroups "+strings.Join(stale, " "))
		_ = removeCgroups(stale)
	}
	links, _ := filepath.Glob("/sys/class/net/slipk*")
	for _, l := range links {
		found = append(found, "bridge "+filepath.Base(l))
		_ = deleteLink(t.ip, filepath.Base(l))
	}
	if out, err := exec.Command(t.iptables, "-w", "-S", "FORWARD").Output(); err == nil {
		for line := range strings.Lines(string(out)) {
			if !strings.Contains(line, forwardComment+":") || !strings.HasPrefix(line, "-A FORWARD ") {
				continue
			}
			found = append(found, "iptables rule "+strings.TrimSpace(line))
			args := []string{"-w", "-D"}
			for _, f := range strings.Fields(strings.TrimPrefix(line, "-A ")) {
				args = append(args, strings.Trim(f, `"`)) // -S quotes the comment
			}
			_ = exec.Command(t.iptables, args...).Run()
		}
	}
	if len(found)+len(dirs) > 0 {
		// The dead cluster's kube-proxy left its chains.
		_ = exec.Command(filepath.Join(bin, "kube-proxy"), "--cleanup").Run()
	}
	for _, h := range states {
		h.restoreFirewall()
		_ = h.restoreSysctls()
	}
	removeCNICache("slipk*")
	for _, d := range dirs {
		found = append(found, "directory "+d)
		removeLinksInto("/var/log/containers", d)
		_ = unmountUnder(d)
		_ = os.RemoveAll(d)
	}
	for _, h := range states {
		_ = h.removeCreated()
	}
	if len(found) > 0 {
		logf("kubecluster: removed what a cluster whose process died left: %s", strings.Join(found, "; "))
	}
}

// staleShims are the containerd shims of clusters whose process died:
// those serving a containerd whose socket is in a cluster's directory.
func staleShims() []int {
	var pids []int
	for _, pid := range allPIDs() {
		if addr := shimAddress(pid); strings.Contains(addr, "/"+dirPrefix) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// shimAddress is the containerd socket a containerd shim serves, from
// its command line (-address SOCKET); "" if pid is no shim.
func shimAddress(pid int) string {
	args := cmdline(pid)
	if len(args) == 0 || !strings.HasPrefix(filepath.Base(args[0]), "containerd-shim") {
		return ""
	}
	for i, a := range args[:len(args)-1] {
		if a == "-address" {
			return args[i+1]
		}
	}
	return ""
}

// killStray kills pids, and the shims of the containerd at address,
// waits for them to go, and removes the shims' sockets.
func killStray(pids []int, address string) error {
	var sockets []string
	if address != "" {
		for _, pid := range allPIDs() {
			if shimAddress(pid) == address {
				pids = append(pids, pid)
			}
		}
	}
	for _, pid := range pids {
		if s := shimSocket(pid); s != "" {
			sockets = append(sockets, s)
		}
	}
	for _, pid := range pids {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	deadline := time.Now().Add(10 * time.Second)
	for _, pid := range pids {
		for processExists(pid) && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
	}
	for _, s := range sockets {
		_ = os.Remove(s)
	}
	var left []string
	for _, pid := range pids {
		if processExists(pid) {
			left = append(left, strconv.Itoa(pid))
		}
	}
	if len(left) > 0 {
		return fmt.Errorf("processes %s outlived SIGKILL", strings.Join(left, ", "))
	}
	return nil
}

// shimSocket is the socket of containerd 1.6's shim pid: the sha256 of
// its containerd's address, namespace and task ID, in /run/containerd/s.
func shimSocket(pid int) string {
	args := cmdline(pid)
	addr := shimAddress(pid)
	if addr == "" {
		return ""
	}
	var ns, id string
	for i, a := range args[:len(args)-1] {
		switch a {
		case "-namespace":
			ns = args[i+1]
		case "-id":
			id = args[i+1]
		}
	}
	sum := sha256.Sum256([]byte(filepath.Join(addr, ns, id)))
	return "/run/containerd/s/" + hex.EncodeToString(sum[:])
}

func processExists(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// A zombie is gone but for its parent's wait.
	if i := strings.LastIndexByte(string(b), ')'); i > 0 && i+2 < len(b) && b[i+2] == 'Z' {
		return false
	}
	return true
}

func allPIDs() []int {
	ents, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range ents {
		if pid, err := strconv.Atoi(e.Name()); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids
}

func cmdline(pid int) []string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || len(b) == 0 {
		return nil
	}
	return strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
}

// cgroupMounts are the mount points of the machine's cgroup hierarchies
// (one per v1 controller, and the v2 one).
func cgroupMounts() ([]string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var mounts []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS ... - FSTYPE SOURCE SUPEROPTS
		fields := strings.Fields(sc.Text())
		for i, fld := range fields {
			if fld == "-" && i+1 < len(fields) && i >= 5 {
				if fs := fields[i+1]; (fs == "cgroup" || fs == "cgroup2") && fields[3] == "/" {
					mounts = append(mounts, unescape(fields[4]))
				}
				break
			}
		}
	}
	if len(mounts) == 0 {
		return nil, errors.New("no cgroup hierarchy is mounted (kubelet needs one)")
	}
	return mounts, sc.Err()
}

// cgroupPIDs are the processes in the cgroup trees at dirs.
func cgroupPIDs(dirs []string) []int {
	seen := map[int]bool{}
	var pids []int
	for _, d := range dirs {
		_ = filepath.WalkDir(d, func(p string, e os.DirEntry, err error) error {
			if err != nil || !e.IsDir() {
				return nil
			}
			b, _ := os.ReadFile(filepath.Join(p, "cgroup.procs"))
			for f := range strings.FieldsSeq(string(b)) {
				if pid, err := strconv.Atoi(f); err == nil && !seen[pid] {
					seen[pid] = true
					pids = append(pids, pid)
				}
			}
			return nil
		})
	}
	return pids
}

// removeCgroups removes the cgroup trees at dirs, deepest first, waiting
// a little for exiting processes to leave them.
func removeCgroups(dirs []string) error {
	var all []string
	for _, d := range dirs {
		_ = filepath.WalkDir(d, func(p string, e os.DirEntry, err error) error {
			if err == nil && e.IsDir() {
				all = append(all, p)
			}
			return nil
		})
	}
	sort.Slice(all, func(i, j int) bool { return len(all[i]) > len(all[j]) })
	var errs []error
	for _, d := range all {
		var err error
		for range 50 {
			if err = syscall.Rmdir(d); err == nil || errors.Is(err, syscall.ENOENT) {
				err = nil
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("remove cgroup %s: %w", d, err))
		}
	}
	return errors.Join(errs...)
}

// netnsOf are the network namespaces (their inode numbers) of pids.
func netnsOf(pids []int) map[uint64]bool {
	ns := map[uint64]bool{}
	for _, pid := range pids {
		var st syscall.Stat_t
		if syscall.Stat(fmt.Sprintf("/proc/%d/ns/net", pid), &st) == nil {
			ns[st.Ino] = true
		}
	}
	return ns
}

// unmountNetns unmounts and removes the entries of /run/netns (where
// containerd 1.6 pins pods' network namespaces) for namespaces in ns.
func unmountNetns(ns map[uint64]bool) error {
	if len(ns) == 0 {
		return nil
	}
	ents, _ := os.ReadDir("/run/netns")
	var errs []error
	for _, e := range ents {
		p := filepath.Join("/run/netns", e.Name())
		var st syscall.Stat_t
		if syscall.Stat(p, &st) != nil || !ns[st.Ino] {
			continue
		}
		if err := syscall.Unmount(p, mntDetach); err != nil {
			errs = append(errs, fmt.Errorf("unmount %s: %w", p, err))
			continue
		}
		_ = os.Remove(p)
	}
	return errors.Join(errs...)
}

// unmountUnder unmounts everything mounted at or under dir, deepest
// first: kubelet's bind mount of its root directory and its pods'
// volumes, containerd's container filesystems and sandboxes' /dev/shm.
func unmountUnder(dir string) error {
	var errs []error
	for range 3 { // a mount may hide another below it
		f, err := os.Open("/proc/self/mountinfo")
		if err != nil {
			return err
		}
		var points []string
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) < 5 {
				continue
			}
			if mp := unescape(fields[4]); mp == dir || strings.HasPrefix(mp, dir+"/") {
				points = append(points, mp)
			}
		}
		f.Close()
		if len(points) == 0 {
			return nil
		}
		sort.Slice(points, func(i, j int) bool { return len(points[i]) > len(points[j]) })
		errs = errs[:0]
		for _, mp := range points {
			if err := syscall.Unmount(mp, 0); err != nil && !errors.Is(err, syscall.EINVAL) && !errors.Is(err, syscall.ENOENT) {
				if err := syscall.Unmount(mp, mntDetach); err != nil && !errors.Is(err, syscall.EINVAL) {
					errs = append(errs, fmt.Errorf("unmount %s: %w", mp, err))
				}
			}
		}
	}
	return errors.Join(errs...)
}

// unescape undoes mountinfo's octal escapes (\040 for a space).
func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func deleteLink(ip, name string) error {
	if _, err := os.Lstat("/sys/class/net/" + name); err != nil {
		return nil
	}
	if out, err := exec.Command(ip, "link", "delete", name).CombinedOutput(); err != nil {
		return fmt.Errorf("ip link delete %s: %v: %s", name, err, out)
	}
	return nil
}

// removeLinksInto removes the symbolic links in dir that point into
// target (kubelet's /var/log/containers links to its pods' logs).
func removeLinksInto(dir, target string) {
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		p := filepath.Join(dir, e.Name())
		if to, err := os.Readlink(p); err == nil && strings.HasPrefix(to, target+"/") {
			_ = os.Remove(p)
		}
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// acquireLock takes the machine's one-cluster lock: an abstract Unix
// socket, which leaves no file and which the kernel frees when its
// process dies, however it dies.
func acquireLock(ctx context.Context, logf func(string, ...any)) (io.Closer, error) {
	told := false
	for {
		l, err := net.Listen("unix", "@slipway-kubecluster")
		if err == nil {
			return l, nil
		}
		if !errors.Is(err, syscall.EADDRINUSE) {
			return nil, fmt.Errorf("take the machine's test-cluster lock: %w", err)
		}
		if !told {
			logf("kubecluster: waiting for another test cluster on this machine to close (one runs at a time: kube-proxy owns the host's KUBE-* iptables chains)")
			told = true
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for another test cluster on this machine to close: %w", ctx.Err())
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// pickSubnets picks two /24s in 10.200.0.0–10.254.255.0 that no address
// or route of the machine overlaps: the pods' and the services'.
func pickSubnets() (pods, services *net.IPNet, err error) {
	used := usedNets()
	var picked []*net.IPNet
	for range 1000 {
		n := &net.IPNet{IP: net.IPv4(10, byte(200+rand.IntN(55)), byte(rand.IntN(256)), 0).To4(), Mask: net.CIDRMask(24, 32)}
		clash := false
		for _, u := range append(used, picked...) {
			if u.Contains(n.IP) || n.Contains(u.IP) {
				clash = true
				break
			}
		}
		if !clash {
			picked = append(picked, n)
			if len(picked) == 2 {
				return picked[0], picked[1], nil
			}
		}
	}
	return nil, nil, errors.New("no free /24 in 10.200.0.0/16–10.254.0.0/16 for the pods and services")
}

// usedNets are the machine's IPv4 networks: its addresses' and the
// destinations of its routes other than the default.
func usedNets() []*net.IPNet {
	var nets []*net.IPNet
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil {
			nets = append(nets, n)
		}
	}
	f, err := os.Open("/proc/net/route")
	if err != nil {
		return nets
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Scan() // header
	for sc.Scan() {
		// Iface Destination Gateway Flags RefCnt Use Metric Mask ...
		fields := strings.Fields(sc.Text())
		if len(fields) < 8 {
			continue
		}
		dst, err1 := strconv.ParseUint(fields[1], 16, 32)
		mask, err2 := strconv.ParseUint(fields[7], 16, 32)
		if err1 != nil || err2 != nil || mask == 0 {
			continue
		}
		ip, m := make(net.IP, 4), make(net.IPMask, 4)
		binary.LittleEndian.PutUint32(ip, uint32(dst))
		binary.LittleEndian.PutUint32(m, uint32(mask))
		nets = append(nets, &net.IPNet{IP: ip, Mask: m})
	}
	return nets
}

// firstIP is a subnet's first address, the kubernetes service's ClusterIP.
func firstIP(n *net.IPNet) net.IP {
	ip := append(net.IP(nil), n.IP.To4()...)
	ip[3]++
	return ip
}

// mntDetach is Linux's MNT_DETACH, which package syscall defines only
// there; the cluster runs nowhere else (findTools says so).
const mntDetach = 0x2
