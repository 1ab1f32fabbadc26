package kubecluster

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
)

// ErrNotInstalled is in Start's error when something the cluster needs is
// missing from the machine, as opposed to failing to start. Tests skip on
// it; *NotInstalledError says what is missing and how to install it.
var ErrNotInstalled = errors.New("the Kubernetes test cluster cannot run here")

// NotInstalledError names what Start did not find and the commands that
// install it.
type NotInstalledError struct {
	Missing []string // programs, directories or privileges
	Install []string // commands that provide them
}

func (e *NotInstalledError) Error() string {
	return fmt.Sprintf("the Kubernetes test cluster needs %s; to install: %s",
		strings.Join(e.Missing, ", "), strings.Join(e.Install, "; "))
}

func (e *NotInstalledError) Is(target error) bool { return target == ErrNotInstalled }

// tools are the paths of the programs the cluster runs.
type tools struct {
	etcd, containerd, ctr, runc, iptables, ip string
	ip6tables                                 string // "" if missing: kube-proxy then makes no IPv6 rules
	cniDir                                    string
}

// findTools finds every program the cluster runs, or says all that is
// missing at once.
func findTools(bin string) (tools, error) {
	var t tools
	e := &NotInstalledError{}
	need := func(what, install string) {
		e.Missing = append(e.Missing, what)
		if !slices.Contains(e.Install, install) {
			e.Install = append(e.Install, install)
		}
	}
	if runtime.GOOS != "linux" {
		need("Linux", "run the tests on Linux")
		return t, e
	}
	if os.Geteuid() != 0 {
		need("root (kubelet, containerd and iptables need it)", "run the tests as root")
	}
	var kubeMissing []string
	for _, name := range Binaries {
		if fi, err := os.Stat(filepath.Join(bin, name)); err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
			kubeMissing = append(kubeMissing, name)
		}
	}
	if len(kubeMissing) > 0 {
		build := "tools/kube/build.sh"
		if bin != BinDir() || os.Getenv("SLIPWAY_KUBE_BIN") != "" {
			build += " " + bin
		}
		need(fmt.Sprintf("Kubernetes %s's %s in %s", Version, strings.Join(kubeMissing, ", "), bin), build+" (about 7 minutes the first time)")
	}
	look := func(dst *string, name, pkg string) {
		p, err := exec.LookPath(name)
		if err != nil {
			// Debian puts runc, iptables and ip in /usr/sbin, which a
			// non-login root shell may lack on $PATH.
			for _, dir := range []string{"/usr/sbin", "/sbin", "/usr/local/sbin"} {
				if fi, err := os.Stat(filepath.Join(dir, name)); err == nil && !fi.IsDir() {
					p = filepath.Join(dir, name)
					break
				}
			}
		}
		if p == "" {
			need(name, "apt-get install "+pkg)
		}
		*dst = p
	}
	look(&t.etcd, "etcd", "etcd-server")
	look(&t.containerd, "containerd", "containerd")
	look(&t.ctr, "ctr", "containerd")
	var shim string
	look(&shim, "containerd-shim-runc-v2", "containerd")
	look(&t.runc, "runc", "runc")
	look(&t.iptables, "iptables", "iptables")
	look(&t.ip, "ip", "iproute2")
	if p, err := exec.LookPath("ip6tables"); err == nil {
		t.ip6tables = p
	} else if _, err := os.Stat("/usr/sbin/ip6tables"); err == nil {
		t.ip6tables = "/usr/sbin/ip6tables"
	}
	for _, dir := range []string{"/usr/lib/cni", "/opt/cni/bin"} {
		if allExist(dir, "bridge", "host-local", "portmap", "loopback") {
			t.cniDir = dir
			break
		}
	}
	if t.cniDir == "" {
		need("the CNI plugins bridge, host-local, portmap and loopback (in /usr/lib/cni or /opt/cni/bin)", "apt-get install containernetworking-plugins")
	}
	if len(e.Missing) > 0 {
		// Gather the apt packages into one command.
		var pkgs, other []string
		for _, cmd := range e.Install {
			if p, ok := strings.CutPrefix(cmd, "apt-get install "); ok {
				pkgs = append(pkgs, p)
			} else {
				other = append(other, cmd)
			}
		}
		e.Install = other
		if len(pkgs) > 0 {
			e.Install = append(e.Install, "apt-get install "+strings.Join(pkgs, " "))
		}
		return t, e
	}
	return t, nil
}

func (t tools) iptablesAll() []string {
	if t.ip6tables == "" {
		return []string{t.iptables}
	}
	return []string{t.iptables, t.ip6tables}
}

func allExist(dir string, names ...string) bool {
	for _, n := range names {
		if _, err := os.Stat(filepath.Join(dir, n)); err != nil {
			return false
		}
	}
	return true
}
