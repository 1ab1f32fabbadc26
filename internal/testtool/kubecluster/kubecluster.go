// Package kubecluster starts a real single-node Kubernetes cluster for
// tests, and removes every trace of it afterwards: etcd, kube-apiserver,
// kube-controller-manager, kube-scheduler, kubelet and kube-proxy, with
// a containerd of the cluster's own running pods under runc on a CNI
// bridge. It does not import "testing"; kubetest wraps it for tests.
//
// Where things come from:
//   - the Kubernetes binaries from Options.Bin, else $SLIPWAY_KUBE_BIN,
//     else the directory tools/kube/build.sh builds into by default
//     (BinDir);
//   - etcd, containerd, ctr, runc, iptables and ip from $PATH, the CNI
//     plugins from /usr/lib/cni or /opt/cni/bin (Debian's etcd-server,
//     containerd, runc, iptables, iproute2 and containernetworking-plugins).
//
// Start returns an error that is ErrNotInstalled when any of these is
// missing, naming what and the command that installs it.
//
// Everything the cluster writes is under one temporary directory (Dir);
// every listener is on 127.0.0.1 at a free port. Nothing can be pulled
// from the internet, so the sandbox ("pause") image is made in Go, and
// tests bring their images with ImportImage or serve them from a
// registry on loopback (AllowInsecureRegistry).
//
// What it changes on the machine, Close undoes: two iptables FORWARD
// rules for its bridge (the Docker engine sets FORWARD's policy to DROP),
// kube-proxy's chains, the bridge, cgroups under /slipway-…, the kernel
// settings kubelet and kube-proxy change, and the mounts kubelet and
// containerd make. Because kube-proxy owns the host's KUBE-* chains, only
// one cluster runs on a machine at a time: Start waits for the one
// before to close (a lock that dies with its process), and then clears
// what a cluster whose process died left behind.
//
// If the process dies without Close, the kernel kills the components
// (Pdeathsig); the pods' shims and containers outlive it until the next
// Start on the machine clears them.
package kubecluster

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/slipway-dev/slipway/internal/testtool"
)

// Version is the Kubernetes release tools/kube/build.sh builds (the one
// tools/kube/go.mod requires).
const Version = "v1.34.4"

// Namespace is the containerd namespace that Kubernetes' images and
// containers live in.
const Namespace = "k8s.io"

// Binaries are the Kubernetes programs the cluster runs (and kubectl, for
// tests), all built by tools/kube/build.sh.
var Binaries = []string{"kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet", "kube-proxy", "kubectl"}

// BinDir is where the Kubernetes binaries are looked for when
// Options.Bin is empty: $SLIPWAY_KUBE_BIN, else the directory
// tools/kube/build.sh builds into by default.
func BinDir() string {
	if d := os.Getenv("SLIPWAY_KUBE_BIN"); d != "" {
		return d
	}
	cache := os.Getenv("XDG_CACHE_HOME")
	if cache == "" {
		home, _ := os.UserHomeDir()
		cache = filepath.Join(home, ".cache")
	}
	return filepath.Join(cache, "slipway", "kubernetes-"+Version)
}

// Installed returns nil if everything Start needs is on the machine, and
// otherwise the error, ErrNotInstalled, that Start would return.
func Installed(opts Options) error {
	if opts.Bin == "" {
		opts.Bin = BinDir()
	}
	_, err := findTools(opts.Bin)
	return err
}

// Options tune Start.
type Options struct {
	// Bin is the directory holding the Kubernetes binaries; empty means
	// BinDir().
	Bin string
	// Logf, if set, is told each step and how long it took.
	Logf func(format string, args ...any)

	// For this package's tests (export_test.go): a machine lock already
	// held, or none to take; functions called under the lock once Start
	// has cleared what dead clusters left, and by Close before it
	// releases the lock.
	lock              io.Closer
	noLock            bool
	locked, unlocking func()
}

// Cluster is a running single-node cluster. Its fields are for clients;
// its methods may be called concurrently.
type Cluster struct {
	// Dir holds all of the cluster's files; Close removes it.
	Dir string
	// Kubeconfig is a kubeconfig file whose context Context reaches the
	// cluster as a member of system:masters.
	Kubeconfig string
	Context    string
	// Server is kube-apiserver's URL, https://127.0.0.1:PORT; CACert is
	// the file of the CA its certificate is signed by, and Token a bearer
	// token of a member of system:masters.
	Server string
	CACert string
	Token  string
	// Node is the name of the one node: localhost, the name by which
	// kube-apiserver reaches kubelet on 127.0.0.1.
	Node string
	// Bin is the directory the Kubernetes binaries were run from.
	Bin string
	// ContainerdAddress is the cluster's containerd's socket; its images
	// and containers are in namespace Namespace.
	ContainerdAddress string

	opts          Options
	tools         tools
	pki           *pki
	pauseRef      string
	bridge        string // the CNI bridge's (and network's) name
	cgroup        string // kubelet's cgroup root, under every hierarchy
	podSubnet     *net.IPNet
	serviceSubnet *net.IPNet
	ports         ports
	client        *http.Client
	lock          io.Closer

	mu        sync.Mutex
	procs     []*proc // in the order started
	closed    bool
	host      hostState
	forwardOK bool // the FORWARD rules were added
}

type ports struct {
	etcd, etcdPeer, apiserver, controllerManager, scheduler, kubelet, kubeletHealthz, proxyHealthz, proxyMetrics int
}

// Start starts a cluster and waits until its node is Ready and namespace
// default has its service account, so a test may create pods at once.
// It first waits, as long as ctx allows, for any other cluster on the
// machine to close. On an error nothing of the cluster is left.
func Start(ctx context.Context, opts Options) (*Cluster, error) {
	if opts.Logf == nil {
		opts.Logf = func(string, ...any) {}
	}
	if opts.Bin == "" {
		opts.Bin = BinDir()
	}
	tools, err := findTools(opts.Bin)
	if err != nil {
		return nil, err
	}
	begin := time.Now()
	lock := opts.lock
	if lock == nil && !opts.noLock {
		if lock, err = acquireLock(ctx, opts.Logf); err != nil {
			return nil, err
		}
	}
	if waited := time.Since(begin); waited > time.Second {
		opts.Logf("kubecluster: waited %v for another cluster on this machine to close", waited.Round(time.Second))
	}
	sweep(tools, opts.Bin, opts.Logf)
	if opts.locked != nil {
		opts.locked()
	}

	var c *Cluster
	for attempt := 1; ; attempt++ {
		// The lock stays held across attempts; the last cluster's Close
		// releases it.
		c = &Cluster{opts: opts, tools: tools, Bin: opts.Bin, Node: "localhost"}
		err := c.start(ctx)
		if err == nil {
			c.lock = lock
			break
		}
		err = c.withLogs(err)
		// The ports are picked free and bound later by each component: a
		// test binary running beside this one can take one in between.
		retry := attempt < 3 && strings.Contains(err.Error(), "address already in use") && ctx.Err() == nil
		if retry {
			opts.Logf("kubecluster: a port was taken before a component bound it; starting again (attempt %d)", attempt+1)
		} else {
			c.lock = lock
		}
		if cerr := c.Close(); cerr != nil {
			err = fmt.Errorf("%w\n(and closing the half-started cluster: %v)", err, cerr)
			if retry && lock != nil {
				_ = lock.Close()
			}
			retry = false
		}
		if !retry {
			return nil, err
		}
	}
	opts.Logf("kubecluster: node %s Ready in %v (%s)", c.Node, time.Since(begin).Round(time.Millisecond), c.Dir)
	return c, nil
}

func (c *Cluster) start(ctx context.Context) error {
	step := time.Now()
	logStep := func(what string) {
		c.opts.Logf("kubecluster: %s (%v)", what, time.Since(step).Round(time.Millisecond))
		step = time.Now()
	}
	var err error
	if c.Dir, err = tempDir(); err != nil {
		return err
	}
	id := make([]byte, 4)
	_, _ = rand.Read(id)
	// Interface names have at most 15 bytes.
	c.bridge = "slipk" + hex.EncodeToString(id)
	c.cgroup = "slipway-" + hex.EncodeToString(id)
	c.Context = "slipway-kubecluster"
	c.Kubeconfig = c.path("kubeconfig")
	c.ContainerdAddress = c.path("containerd/containerd.sock")
	for _, d := range []string{"logs", "containerd/certs.d", "cni/net.d", "cni/ipam", "kubelet", "pod-logs", "etcd"} {
		if err := os.MkdirAll(c.path(d), 0o755); err != nil {
			return err
		}
	}
	if err := os.Chmod(c.path("etcd"), 0o700); err != nil { // etcd insists
		return err
	}
	if c.podSubnet, c.serviceSubnet, err = pickSubnets(); err != nil {
		return err
	}
	p, err := testtool.FreePorts(9)
	if err != nil {
		return err
	}
	c.ports = ports{p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7], p[8]}
	c.Server = fmt.Sprintf("https://127.0.0.1:%d", c.ports.apiserver)
	if c.pki, err = makePKI(c.path("pki"), firstIP(c.serviceSubnet)); err != nil {
		return fmt.Errorf("make certificates: %w", err)
	}
	c.CACert, c.Token = c.pki.caCert, c.pki.token
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(c.pki.caPEM)
	c.client = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	pauseRef, pauseTar, err := pauseImage()
	if err != nil {
		return err
	}
	c.pauseRef = pauseRef
	files := map[string]string{
		"kubeconfig":                    c.kubeconfigFor(),
		"containerd/config.toml":        c.containerdConfig(),
		"cni/net.d/10-slipway.conflist": c.cniConfig(),
		"kubelet/config.yaml":           c.kubeletConfig(),
		"kube-proxy.yaml":               c.kubeProxyConfig(),
	}
	for name, content := range files {
		if err := os.WriteFile(c.path(name), []byte(content), 0o600); err != nil {
			return err
		}
	}
	if err := c.prepareHost(); err != nil {
		return err
	}
	logStep("files, certificates, cgroups and iptables rules made")

	etcd, err := c.run("etcd", c.tools.etcd,
		"--name=default", "--data-dir="+c.path("etcd"),
		"--listen-client-urls="+c.url("http", c.ports.etcd), "--advertise-client-urls="+c.url("http", c.ports.etcd),
		"--listen-peer-urls="+c.url("http", c.ports.etcdPeer), "--initial-advertise-peer-urls="+c.url("http", c.ports.etcdPeer),
		"--initial-cluster=default="+c.url("http", c.ports.etcdPeer),
		"--logger=zap", "--log-outputs=stderr", "--log-level=warn",
		"--quota-backend-bytes=1073741824")
	if err != nil {
		return err
	}
	containerd, err := c.run("containerd", c.tools.containerd, "--config", c.path("containerd/config.toml"), "--log-level", "warn")
	if err != nil {
		return err
	}
	apiserver, err := c.run("kube-apiserver", c.kube("kube-apiserver"),
		"--etcd-servers="+c.url("http", c.ports.etcd),
		"--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", "--secure-port="+itoa(c.ports.apiserver),
		"--cert-dir="+c.path("pki"),
		"--tls-cert-file="+c.pki.apiCert, "--tls-private-key-file="+c.pki.apiKey,
		"--client-ca-file="+c.pki.caCert,
		"--token-auth-file="+c.pki.tokens,
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file="+c.pki.saPub, "--service-account-signing-key-file="+c.pki.saKey,
		"--service-cluster-ip-range="+c.serviceSubnet.String(),
		"--authorization-mode=Node,RBAC",
		// The one address is 127.0.0.1, which pods cannot reach: publish
		// no endpoints for the kubernetes service rather than wrong ones.
		"--endpoint-reconciler-type=none",
		"--kubelet-client-certificate="+c.pki.kubeletCert, "--kubelet-client-key="+c.pki.kubeletKey,
		"--kubelet-preferred-address-types=Hostname",
		"--allow-privileged=true",
		"--profiling=false")
	if err != nil {
		return err
	}
	if err := c.waitFor(ctx, "etcd to answer", 30*time.Second, []*proc{etcd}, func() error {
		return c.get(c.url("http", c.ports.etcd)+"/health", nil)
	}); err != nil {
		return err
	}
	if err := c.waitFor(ctx, "containerd to answer", 30*time.Second, []*proc{containerd}, func() error {
		return exec.CommandContext(ctx, c.tools.ctr, "--address", c.ContainerdAddress, "version").Run()
	}); err != nil {
		return err
	}
	if err := c.importImage(ctx, pauseTar); err != nil {
		return fmt.Errorf("import the pause image: %w", err)
	}
	logStep("etcd and containerd up, pause image imported")

	if err := c.waitFor(ctx, "kube-apiserver to be ready", 60*time.Second, []*proc{etcd, apiserver}, func() error {
		return c.get(c.Server+"/readyz", nil)
	}); err != nil {
		return err
	}
	logStep("kube-apiserver ready")

	for _, comp := range []struct {
		name string
		args []string
	}{
		{"kube-controller-manager", []string{
			"--kubeconfig=" + c.Kubeconfig,
			"--authentication-kubeconfig=" + c.Kubeconfig, "--authorization-kubeconfig=" + c.Kubeconfig,
			"--bind-address=127.0.0.1", "--secure-port=" + itoa(c.ports.controllerManager),
			"--cert-dir=" + c.path("pki/controller-manager"),
			"--leader-elect=false",
			"--service-account-private-key-file=" + c.pki.saKey,
			"--root-ca-file=" + c.pki.caCert,
			"--service-cluster-ip-range=" + c.serviceSubnet.String(),
			"--allocate-node-cidrs=false",
			"--profiling=false",
		}},
		{"kube-scheduler", []string{
			"--kubeconfig=" + c.Kubeconfig,
			"--authentication-kubeconfig=" + c.Kubeconfig, "--authorization-kubeconfig=" + c.Kubeconfig,
			"--bind-address=127.0.0.1", "--secure-port=" + itoa(c.ports.scheduler),
			"--cert-dir=" + c.path("pki/scheduler"),
			"--leader-elect=false",
			"--profiling=false",
		}},
		{"kubelet", []string{
			"--config=" + c.path("kubelet/config.yaml"),
			"--kubeconfig=" + c.Kubeconfig,
			"--root-dir=" + c.path("kubelet/root"),
			"--cert-dir=" + c.path("kubelet/pki"),
			// kubelet refuses a loopback node IP, so the node has the
			// machine's IP, where kubelet does not listen, and its name
			// as its Hostname address, which is what kube-apiserver
			// dials (logs, exec) and which reaches 127.0.0.1.
			"--hostname-override=" + c.Node,
		}},
		{"kube-proxy", []string{"--config=" + c.path("kube-proxy.yaml")}},
	} {
		if _, err := c.run(comp.name, c.kube(comp.name), comp.args...); err != nil {
			return err
		}
	}
	all := c.processes()
	if err := c.waitFor(ctx, "node "+c.Node+" to be Ready", 90*time.Second, all, c.nodeReady); err != nil {
		return err
	}
	logStep("node Ready")
	if err := c.waitFor(ctx, "the default service account and kube-root-ca.crt in namespace default", 60*time.Second, all, func() error {
		if err := c.get(c.Server+"/api/v1/namespaces/default/serviceaccounts/default", nil); err != nil {
			return err
		}
		// Every pod mounts it with its token; without it they wait.
		return c.get(c.Server+"/api/v1/namespaces/default/configmaps/kube-root-ca.crt", nil)
	}); err != nil {
		return err
	}
	logStep("default service account made")
	return nil
}

// SandboxImage is the pause image's reference: a program that blocks
// until it is killed, the one image every cluster has without an import.
func (c *Cluster) SandboxImage() string { return c.pauseRef }

// CreateNamespace creates a namespace and waits until pods can be
// created in it: until its default service account, which admission
// requires of every pod, and its kube-root-ca.crt, which every pod
// mounts, are made.
func (c *Cluster) CreateNamespace(ctx context.Context, name string) error {
	err := c.call(http.MethodPost, c.Server+"/api/v1/namespaces",
		map[string]any{"apiVersion": "v1", "kind": "Namespace", "metadata": map[string]string{"name": name}}, nil)
	if err != nil {
		return fmt.Errorf("create namespace %s: %w", name, err)
	}
	return c.waitFor(ctx, "namespace "+name+"'s default service account", time.Minute, nil, func() error {
		if err := c.get(c.Server+"/api/v1/namespaces/"+name+"/serviceaccounts/default", nil); err != nil {
			return err
		}
		return c.get(c.Server+"/api/v1/namespaces/"+name+"/configmaps/kube-root-ca.crt", nil)
	})
}

// DeleteNamespace deletes a namespace, and so everything in it, without
// waiting for its pods to go.
func (c *Cluster) DeleteNamespace(name string) error {
	if err := c.call(http.MethodDelete, c.Server+"/api/v1/namespaces/"+name, nil, nil); err != nil {
		return fmt.Errorf("delete namespace %s: %w", name, err)
	}
	return nil
}

// PodSubnet is the pods' /24, from which the bridge hands out addresses.
func (c *Cluster) PodSubnet() string { return c.podSubnet.String() }

// ServiceSubnet is the services' /24 (their ClusterIPs).
func (c *Cluster) ServiceSubnet() string { return c.serviceSubnet.String() }

// Logs is the directory of the components' logs, one file each
// (etcd.log, containerd.log, kube-apiserver.log, kubelet.log, …), to read
// when a test fails. Close removes it with the rest of Dir.
func (c *Cluster) Logs() string { return c.path("logs") }

// LogTail is the last n lines of a component's log ("kubelet",
// "containerd", …).
func (c *Cluster) LogTail(component string, n int) string {
	return tail(filepath.Join(c.Logs(), component+".log"), n)
}

// Kubectl is a kubectl command for this cluster; the caller sets its
// input and output and runs it.
func (c *Cluster) Kubectl(ctx context.Context, args ...string) *exec.Cmd {
	args = append([]string{"--kubeconfig=" + c.Kubeconfig, "--context=" + c.Context}, args...)
	return exec.CommandContext(ctx, c.kube("kubectl"), args...)
}

// ImportImage imports an image tarball (an OCI image layout or `docker
// save` archive; WriteImage makes one) into the cluster's containerd,
// where pods find it without pulling: give their containers the image's
// full reference and imagePullPolicy IfNotPresent or Never.
func (c *Cluster) ImportImage(ctx context.Context, tarball io.Reader) error {
	b, err := io.ReadAll(tarball)
	if err != nil {
		return err
	}
	return c.importImage(ctx, b)
}

func (c *Cluster) importImage(ctx context.Context, tarball []byte) error {
	f, err := os.CreateTemp(c.Dir, "image-*.tar")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	_, err = f.Write(tarball)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	out, err := exec.CommandContext(ctx, c.tools.ctr, "--address", c.ContainerdAddress, "--namespace", Namespace,
		"images", "import", f.Name()).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ctr images import: %v: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

// AllowInsecureRegistry lets pods pull from a registry that speaks plain
// HTTP at hostport (e.g. "127.0.0.1:5000"): containerd reads the hosts.toml
// written here at every pull, so it takes effect at once.
func (c *Cluster) AllowInsecureRegistry(hostport string) error {
	if _, _, err := net.SplitHostPort(hostport); err != nil {
		return fmt.Errorf("registry address %q: %w", hostport, err)
	}
	dir := filepath.Join(c.path("containerd/certs.d"), hostport)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	conf := fmt.Sprintf("server = %s\n\n[host.%s]\n  capabilities = [\"pull\", \"resolve\"]\n",
		toml("http://"+hostport), toml("http://"+hostport))
	return os.WriteFile(filepath.Join(dir, "hosts.toml"), []byte(conf), 0o644)
}

// Close stops the cluster and removes everything it made: first the
// pods, through kubelet (so that containerd tears their networks down
// and kubelet unmounts their volumes), then the components, then what
// is left on the host. Closing twice does nothing.
func (c *Cluster) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	c.mu.Unlock()
	begin := time.Now()
	err := c.teardown()
	if c.opts.unlocking != nil {
		c.opts.unlocking()
	}
	if c.lock != nil {
		_ = c.lock.Close()
	}
	c.opts.Logf("kubecluster: closed in %v", time.Since(begin).Round(time.Millisecond))
	return err
}

func (c *Cluster) path(rel string) string { return filepath.Join(c.Dir, filepath.FromSlash(rel)) }

func (c *Cluster) kube(name string) string { return filepath.Join(c.Bin, name) }

func (c *Cluster) url(scheme string, port int) string {
	return fmt.Sprintf("%s://127.0.0.1:%d", scheme, port)
}

func (c *Cluster) kubeconfigFor() string {
	return kubeconfig(c.Server, c.Context, c.pki.caPEM, c.pki.token)
}

// get GETs url (with the token, for kube-apiserver) and decodes a JSON
// answer into v if v is not nil; a status other than 2xx is an error.
func (c *Cluster) get(url string, v any) error {
	return c.call(http.MethodGet, url, nil, v)
}

func (c *Cluster) call(method, url string, body, v any) error {
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = strings.NewReader(string(b))
	}
	req, err := http.NewRequest(method, url, r)
	if err != nil {
		return err
	}
	if strings.HasPrefix(url, c.Server) {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: %s: %s", method, strings.TrimPrefix(url, c.Server), resp.Status, strings.TrimSpace(string(b)))
	}
	if v != nil {
		return json.Unmarshal(b, v)
	}
	return nil
}

// nodeReady is nil once the node reports Ready.
func (c *Cluster) nodeReady() error {
	var node struct {
		Status struct {
			Conditions []struct{ Type, Status, Reason, Message string }
		}
	}
	if err := c.get(c.Server+"/api/v1/nodes/"+c.Node, &node); err != nil {
		return err
	}
	for _, cond := range node.Status.Conditions {
		if cond.Type == "Ready" {
			if cond.Status == "True" {
				return nil
			}
			return fmt.Errorf("node %s not Ready: %s: %s", c.Node, cond.Reason, cond.Message)
		}
	}
	return fmt.Errorf("node %s has no Ready condition yet", c.Node)
}

// waitFor polls ready every 100 ms until it returns nil, for at most
// limit, failing early if ctx ends or one of procs exits (with that
// process's last words).
func (c *Cluster) waitFor(ctx context.Context, what string, limit time.Duration, procs []*proc, ready func() error) error {
	deadline := time.Now().Add(limit)
	for {
		err := ready()
		if err == nil {
			return nil
		}
		for _, p := range procs {
			select {
			case <-p.exited:
				return fmt.Errorf("%s exited (%v) while waiting for %s\n%s", p.name, p.err, what, p.lastWords(25))
			default:
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("gave up after %v waiting for %s: %w", limit, what, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w (last: %v)", what, ctx.Err(), err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// withLogs adds to a failed start's error the end of each component's
// log that it does not carry already: the cause of one component's
// failure is often in another's (kubelet's in containerd's).
func (c *Cluster) withLogs(err error) error {
	var b strings.Builder
	for _, p := range c.processes() {
		if !strings.Contains(err.Error(), p.log) {
			b.WriteString("\n" + p.lastWords(10))
		}
	}
	return fmt.Errorf("%w%s", err, b.String())
}

// tempDir makes the cluster's directory. It holds Unix sockets, whose
// paths the kernel limits to 107 bytes, so it is in /tmp if $TMPDIR's
// name is long.
func tempDir() (string, error) {
	base := os.TempDir()
	if len(base) > 40 {
		base = "/tmp"
	}
	return os.MkdirTemp(base, dirPrefix)
}

// dirPrefix starts the name of every cluster's directory, so that a
// later Start can find what a dead process left.
const dirPrefix = "slipway-kubecluster-"
