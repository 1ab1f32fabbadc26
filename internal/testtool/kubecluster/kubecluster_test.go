package kubecluster_test

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/slipway-dev/slipway/internal/registry"
	"github.com/slipway-dev/slipway/internal/store"
	"github.com/slipway-dev/slipway/internal/testtool/kubecluster"
)

// The image is an OCI layout whose blobs are named by their digests,
// named for containerd by the index's annotation.
func TestWriteImage(t *testing.T) {
	b, err := kubecluster.ImageBytes("localhost/slipway/x:1", []kubecluster.File{{Name: "bin/app", Mode: 0o755, Data: []byte("app")}}, []string{"/bin/app"})
	if err != nil {
		t.Fatal(err)
	}
	files := untar(t, b)
	if string(files["oci-layout"]) != `{"imageLayoutVersion":"1.0.0"}` {
		t.Errorf("oci-layout %q", files["oci-layout"])
	}
	for name, data := range files {
		if hexSum, ok := strings.CutPrefix(name, "blobs/sha256/"); ok {
			if sum := sha256.Sum256(data); hex.EncodeToString(sum[:]) != hexSum {
				t.Errorf("blob %s has digest %x", name, sum)
			}
		}
	}
	var index struct {
		Manifests []struct {
			Digest      string
			Annotations map[string]string
		}
	}
	if err := json.Unmarshal(files["index.json"], &index); err != nil || len(index.Manifests) != 1 {
		t.Fatalf("index.json %s: %v", files["index.json"], err)
	}
	if got := index.Manifests[0].Annotations["io.containerd.image.name"]; got != "localhost/slipway/x:1" {
		t.Errorf("image name %q", got)
	}
	var manifest struct {
		Config struct{ Digest string }
		Layers []struct{ Digest string }
	}
	blob := func(digest string) []byte { return files["blobs/sha256/"+strings.TrimPrefix(digest, "sha256:")] }
	if err := json.Unmarshal(blob(index.Manifests[0].Digest), &manifest); err != nil || len(manifest.Layers) != 1 {
		t.Fatalf("manifest: %v", err)
	}
	var config struct {
		Architecture string
		Config       struct{ Entrypoint []string }
	}
	if err := json.Unmarshal(blob(manifest.Config.Digest), &config); err != nil {
		t.Fatal(err)
	}
	if config.Architecture != runtime.GOARCH || !slices.Equal(config.Config.Entrypoint, []string{"/bin/app"}) {
		t.Errorf("config %+v", config)
	}
	layer := untar(t, blob(manifest.Layers[0].Digest))
	if string(layer["bin/app"]) != "app" {
		t.Errorf("layer holds %v", layer)
	}
}

// Without the binaries Start says which are missing and how to build
// them, as an error tests skip on.
func TestStartWithoutBinaries(t *testing.T) {
	dir := t.TempDir()
	_, err := kubecluster.Start(context.Background(), kubecluster.Options{Bin: dir})
	if !errors.Is(err, kubecluster.ErrNotInstalled) {
		t.Fatalf("Start: %v; want ErrNotInstalled", err)
	}
	var e *kubecluster.NotInstalledError
	if !errors.As(err, &e) {
		t.Fatalf("%T is no *NotInstalledError", err)
	}
	if msg := err.Error(); !strings.Contains(msg, "kubelet") || !strings.Contains(msg, "tools/kube/build.sh "+dir) {
		t.Errorf("error %q does not name kubelet and tools/kube/build.sh %s", msg, dir)
	}
}

// start starts a cluster, skipping the test where it cannot run unless
// SLIPWAY_REQUIRE_KUBE=1.
func start(t *testing.T, opts kubecluster.Options) *kubecluster.Cluster {
	t.Helper()
	if testing.Short() {
		t.Skip("starts a Kubernetes cluster")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	begin := time.Now()
	c, err := kubecluster.Start(ctx, opts)
	if errors.Is(err, kubecluster.ErrNotInstalled) && os.Getenv("SLIPWAY_REQUIRE_KUBE") != "1" {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("Start took %v", time.Since(begin).Round(time.Millisecond))
	return c
}

// A real cluster: a Deployment of an imported image becomes available,
// its pods answer on their addresses and through a NodePort on
// 127.0.0.1, kubectl logs reaches kubelet, an image is pulled from a
// plain-HTTP registry once AllowInsecureRegistry allows it, and Close
// leaves nothing behind.
func TestIntegrationCluster(t *testing.T) {
	// Taken under the machine's lock, while no other test binary's
	// cluster runs.
	var before, after map[string][]string
	c := start(t, kubecluster.WithHooks(kubecluster.Options{Logf: t.Logf},
		func() { before = hostSnapshot() }, func() { after = hostSnapshot() }))
	closed := false
	t.Cleanup(func() {
		if !closed {
			_ = c.Close()
		}
	})
	kubectl := func(stdin string, args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		cmd := c.Kubectl(ctx, args...)
		cmd.Stdin = strings.NewReader(stdin)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("kubectl %s: %v\n%s%s\n%s", strings.Join(args, " "), err, out, stderr.String(), c.LogTail("kubelet", 20))
		}
		return string(out)
	}

	image := webImage(t, "localhost/slipway/web:1")
	if err := c.ImportImage(context.Background(), bytes.NewReader(image)); err != nil {
		t.Fatal(err)
	}
	begin := time.Now()
	kubectl(webManifest, "apply", "-f", "-")
	kubectl("", "rollout", "status", "deployment/web", "--timeout=120s")
	t.Logf("2-replica Deployment available in %v", time.Since(begin).Round(time.Millisecond))

	pods := map[string]string{} // name → IP
	for line := range strings.Lines(kubectl("", "get", "pods", "-l", "app=web", "-o", `jsonpath={range .items[*]}{.metadata.name} {.status.podIP}{"\n"}{end}`)) {
		if f := strings.Fields(line); len(f) == 2 {
			pods[f[0]] = f[1]
		}
	}
	if len(pods) != 2 {
		t.Fatalf("pods %v; want 2", pods)
	}
	_, subnet, _ := net.ParseCIDR(c.PodSubnet())
	for name, ip := range pods {
		if !subnet.Contains(net.ParseIP(ip)) {
			t.Errorf("pod %s has address %s, outside the pod subnet %s", name, ip, subnet)
		}
		if body := httpGet(t, "http://"+net.JoinHostPort(ip, "8080")+"/", 10*time.Second); body != name {
			t.Errorf("pod %s at %s answers %q", name, ip, body)
		}
		if logs := kubectl("", "logs", name); !strings.Contains(logs, "serving "+name) {
			t.Errorf("kubectl logs %s: %q", name, logs)
		}
	}
	nodePort := strings.TrimSpace(kubectl("", "get", "service", "web", "-o", "jsonpath={.spec.ports[0].nodePort}"))
	begin = time.Now()
	body := httpGet(t, "http://127.0.0.1:"+nodePort+"/", 30*time.Second)
	if _, ok := pods[body]; !ok {
		t.Errorf("NodePort %s answers %q; want a pod's name", nodePort, body)
	}
	t.Logf("NodePort answered in %v", time.Since(begin).Round(time.Millisecond))

	t.Run("InsecureRegistry", func(t *testing.T) { testInsecureRegistry(t, c, kubectl, image) })

	byName, total := c.RSS()
	t.Logf("RSS %d MiB: %v", total, byName)

	pids := c.PIDs()
	bridge, cgroups := c.Bridge(), c.CgroupRoots()
	closed = true
	begin = time.Now()
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	t.Logf("Close took %v", time.Since(begin).Round(time.Millisecond))

	for pid, name := range pids {
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err == nil {
			t.Errorf("%s (pid %d) outlived Close", name, pid)
		}
	}
	if _, err := os.Stat("/sys/class/net/" + bridge); err == nil {
		t.Errorf("bridge %s outlived Close", bridge)
	}
	for _, cg := range cgroups {
		if _, err := os.Stat(cg); err == nil {
			t.Errorf("cgroup %s outlived Close", cg)
		}
	}
	if _, err := os.Stat(c.Dir); err == nil {
		t.Errorf("directory %s outlived Close", c.Dir)
	}
	compare(t, "before Start", before, "after Close", after)
}

// A cluster whose process was killed (so Close never ran) leaves its
// pods running under their shims, its mounts, bridge, cgroups and
// iptables rules; the next Start on the machine removes them all.
func TestIntegrationSweep(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two Kubernetes clusters")
	}
	if err := kubecluster.Installed(kubecluster.Options{}); err != nil && os.Getenv("SLIPWAY_REQUIRE_KUBE") != "1" {
		t.Skip(err)
	}
	webImage(t, "localhost/slipway/web:1") // skips without busybox
	// The lock is held from here to Close, so that no other test binary's
	// cluster comes between: the helper runs without it.
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	lock, err := kubecluster.Lock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	locked := true
	defer func() {
		if locked {
			lock.Close()
		}
	}()
	before := hostSnapshot()
	helper := exec.Command(os.Args[0], "-test.run=^TestCrashHelper$", "-test.v")
	helper.Env = append(os.Environ(), "KUBECLUSTER_CRASH_HELPER=1")
	var stderr bytes.Buffer
	helper.Stderr = &stderr
	stdout, _ := helper.StdoutPipe()
	if err := helper.Start(); err != nil {
		t.Fatal(err)
	}
	var dir, bridge string
	sc := bufio.NewScanner(stdout)
	var out strings.Builder
	for sc.Scan() {
		out.WriteString(sc.Text() + "\n")
		if f := strings.Fields(sc.Text()); len(f) == 3 && f[0] == "READY" {
			dir, bridge = f[1], f[2]
			break
		}
	}
	_ = helper.Process.Kill()
	go io.Copy(io.Discard, stdout)
	_ = helper.Wait()
	if dir == "" {
		t.Fatalf("the helper's cluster did not start:\n%s%s", out.String(), stderr.String())
	}
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("the killed cluster left no directory: %v", err)
	}
	if _, err := os.Stat("/sys/class/net/" + bridge); err != nil {
		t.Fatalf("the killed cluster left no bridge %s: %v", bridge, err)
	}
	if snap := hostSnapshot(); len(snap["processes"]) == 0 || len(snap["mounts"]) == 0 {
		t.Fatalf("the killed cluster left no shims or mounts: %v", snap)
	}

	var logs []string
	var swept, after map[string][]string
	opts := kubecluster.Options{Logf: func(format string, args ...any) {
		logs = append(logs, fmt.Sprintf(format, args...))
		t.Logf(format, args...)
	}}
	locked = false // Close releases it
	c, err := kubecluster.Start(ctx, kubecluster.WithHooks(kubecluster.WithLock(opts, lock),
		func() { swept = hostSnapshot() }, func() { after = hostSnapshot() }))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(logs, func(l string) bool { return strings.Contains(l, "removed what a cluster whose process died left") }) {
		t.Errorf("Start did not say it removed the dead cluster's leftovers")
	}
	for _, p := range []string{dir, "/sys/class/net/" + bridge} {
		if _, err := os.Stat(p); err == nil {
			t.Errorf("%s outlived the next Start", p)
		}
	}
	compare(t, "before the killed cluster", before, "once the next Start cleared it", swept)
	compare(t, "before the killed cluster", before, "after the next cluster closed", after)
}

// compare fails the test where two host snapshots differ.
func compare(t *testing.T, when1 string, s1 map[string][]string, when2 string, s2 map[string][]string) {
	t.Helper()
	for _, what := range []string{"iptables", "mounts", "sysctls", "paths", "processes"} {
		if a, b := s1[what], s2[what]; !slices.Equal(a, b) {
			t.Errorf("%s %s:\n\t%s\n%s:\n\t%s", what, when1, strings.Join(a, "\n\t"), when2, strings.Join(b, "\n\t"))
		}
	}
}

// TestCrashHelper is TestIntegrationSweep's cluster, in a process of its
// own that the test kills.
func TestCrashHelper(t *testing.T) {
	if os.Getenv("KUBECLUSTER_CRASH_HELPER") != "1" {
		t.Skip("run by TestIntegrationSweep")
	}
	// TestIntegrationSweep holds the machine's lock.
	c, err := kubecluster.Start(context.Background(), kubecluster.WithoutLock(kubecluster.Options{Logf: t.Logf}))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.ImportImage(context.Background(), bytes.NewReader(webImage(t, "localhost/slipway/web:1"))); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"run", "web", "--image=localhost/slipway/web:1", "--image-pull-policy=Never"},
		{"wait", "--for=condition=Ready", "pod/web", "--timeout=120s"},
	} {
		if out, err := c.Kubectl(context.Background(), args...).CombinedOutput(); err != nil {
			t.Fatalf("kubectl %s: %v: %s", args, err, out)
		}
	}
	fmt.Printf("READY %s %s\n", c.Dir, c.Bridge())
	select {}
}

// Pods pull from a plain-HTTP registry once AllowInsecureRegistry names
// it: one on 127.0.0.1 (where containerd 1.6 would also fall back to
// HTTP by itself), and one on the bridge's address, from which a pull
// fails until then, and succeeds after without containerd restarting.
func testInsecureRegistry(t *testing.T, c *kubecluster.Cluster, kubectl func(string, ...string) string, image []byte) {
	ctx := context.Background()
	db, err := store.Open(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.CreateApp(ctx, store.App{Name: "hello"}); err != nil {
		t.Fatal(err)
	}
	reg, err := registry.New(ctx, registry.Config{Driver: "filesystem", Parameters: map[string]any{"rootdirectory": t.TempDir()},
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))}, db)
	if err != nil {
		t.Fatal(err)
	}
	_, subnet, _ := net.ParseCIDR(c.PodSubnet())
	gateway := subnet.IP.To4()
	gateway[3] = 1 // the bridge's own address
	var hosts []string
	for _, ip := range []string{"127.0.0.1", gateway.String()} {
		l, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
		if err != nil {
			t.Fatal(err)
		}
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { reg.Serve(w, r, "test") })}
		go srv.Serve(l)
		defer srv.Close()
		hosts = append(hosts, l.Addr().String())
	}
	push(t, "http://"+hosts[0], "hello/web", "1", image)

	run := func(pod, host string) {
		kubectl("", "run", pod, "--image="+host+"/hello/web:1", "--image-pull-policy=Always", "--restart=Never")
	}
	ready := func(pod string) {
		kubectl("", "wait", "--for=condition=Ready", "pod/"+pod, "--timeout=120s")
		ip := strings.TrimSpace(kubectl("", "get", "pod", pod, "-o", "jsonpath={.status.podIP}"))
		if body := httpGet(t, "http://"+net.JoinHostPort(ip, "8080")+"/", 10*time.Second); body != pod {
			t.Errorf("pod %s answers %q", pod, body)
		}
		kubectl("", "delete", "pod", pod, "--wait=false", "--grace-period=1")
	}

	if err := c.AllowInsecureRegistry(hosts[0]); err != nil {
		t.Fatal(err)
	}
	run("loopback", hosts[0])
	ready("loopback")

	run("bridged", hosts[1])
	waitFor(t, "the pull over HTTPS to fail", time.Minute, func() bool {
		reason := kubectl("", "get", "pod", "bridged", "-o", "jsonpath={.status.containerStatuses[0].state.waiting.reason}")
		return reason == "ErrImagePull" || reason == "ImagePullBackOff"
	})
	if err := c.AllowInsecureRegistry(hosts[1]); err != nil {
		t.Fatal(err)
	}
	begin := time.Now()
	ready("bridged")
	t.Logf("pulled from %s %v after AllowInsecureRegistry (kubelet's pull back-off)", hosts[1], time.Since(begin).Round(time.Millisecond))
}

const webManifest = `
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: web
        image: localhost/slipway/web:1
        imagePullPolicy: Never
        ports: [{containerPort: 8080}]
        readinessProbe:
          httpGet: {path: /, port: 8080}
          periodSeconds: 1
---
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  type: NodePort
  selector: {app: web}
  ports: [{port: 8080}]
`

// webImage is busybox's httpd serving the pod's name, from Debian's
// static busybox (busybox-static).
func webImage(t *testing.T, ref string) []byte {
	t.Helper()
	bb, err := os.ReadFile("/bin/busybox")
	if err == nil {
		var f *elf.File
		if f, err = elf.NewFile(bytes.NewReader(bb)); err == nil {
			if slices.ContainsFunc(f.Progs, func(p *elf.Prog) bool { return p.Type == elf.PT_INTERP }) {
				err = errors.New("it is not static")
			}
		}
	}
	if err != nil {
		if os.Getenv("SLIPWAY_REQUIRE_KUBE") == "1" {
			t.Fatalf("the test image needs /bin/busybox from busybox-static: %v", err)
		}
		t.Skipf("the test image needs /bin/busybox from busybox-static (apt-get install busybox-static): %v", err)
	}
	script := `/bin/busybox mkdir -p /www && /bin/busybox hostname > /www/index.html && echo "serving $(/bin/busybox hostname)" && exec /bin/busybox httpd -f -p 8080 -h /www`
	img, err := kubecluster.ImageBytes(ref, []kubecluster.File{{Name: "bin/busybox", Mode: 0o755, Data: bb}},
		[]string{"/bin/busybox", "sh", "-c", script})
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// httpGet polls url until it answers 200 and returns the body, trimmed.
func httpGet(t *testing.T, url string, limit time.Duration) string {
	t.Helper()
	client := &http.Client{Timeout: 2 * time.Second}
	var err error
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		var resp *http.Response
		if resp, err = client.Get(url); err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return strings.TrimSpace(string(b))
			}
			err = fmt.Errorf("%s: %s", resp.Status, b)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("GET %s: %v", url, err)
	return ""
}

func waitFor(t *testing.T, what string, limit time.Duration, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting %v for %s", limit, what)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// push uploads an image tarball (an OCI layout, as WriteImage makes) to
// repo:tag on a registry.
func push(t *testing.T, base, repo, tag string, tarball []byte) {
	t.Helper()
	files := untar(t, tarball)
	var index struct{ Manifests []struct{ Digest string } }
	if err := json.Unmarshal(files["index.json"], &index); err != nil {
		t.Fatal(err)
	}
	blob := func(digest string) []byte { return files["blobs/sha256/"+strings.TrimPrefix(digest, "sha256:")] }
	manifest := blob(index.Manifests[0].Digest)
	var m struct {
		Config struct{ Digest string }
		Layers []struct{ Digest string }
	}
	if err := json.Unmarshal(manifest, &m); err != nil {
		t.Fatal(err)
	}
	do := func(method, url, contentType string, body []byte, want int) *http.Response {
		req, _ := http.NewRequest(method, url, bytes.NewReader(body))
		req.Header.Set("Content-Type", contentType)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Fatalf("%s %s: %s", method, url, resp.Status)
		}
		return resp
	}
	for _, d := range append([]string{m.Config.Digest}, m.Layers[0].Digest) {
		resp := do("POST", base+"/v2/"+repo+"/blobs/uploads/", "", nil, http.StatusAccepted)
		loc, err := resp.Location()
		if err != nil {
			t.Fatal(err)
		}
		q := loc.Query()
		q.Set("digest", d)
		loc.RawQuery = q.Encode()
		do("PUT", loc.String(), "application/octet-stream", blob(d), http.StatusCreated)
	}
	do("PUT", base+"/v2/"+repo+"/manifests/"+tag, "application/vnd.oci.image.manifest.v1+json", manifest, http.StatusCreated)
}

func untar(t *testing.T, b []byte) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return files
		}
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(tr)
		files[h.Name] = data
	}
}

// hostSnapshot is what of the machine a cluster may change: its
// Kubernetes and slipway iptables rules, its mounts, shims and cgroups,
// the kernel settings and the host paths kubelet and containerd write
// to. It leaves out what other tests' Docker containers change meanwhile
// (/run/containerd, where their shims' sockets are too).
func hostSnapshot() map[string][]string {
	s := map[string][]string{}
	for _, ipt := range []string{"iptables", "ip6tables"} {
		for _, table := range []string{"filter", "nat", "mangle", "raw"} {
			out, _ := exec.Command(ipt, "-w", "-t", table, "-S").Output()
			for line := range strings.Lines(string(out)) {
				if strings.Contains(line, "KUBE-") || strings.Contains(line, "slipway") || strings.Contains(line, "slipk") {
					s["iptables"] = append(s["iptables"], ipt+" "+table+": "+strings.TrimSpace(line))
				}
			}
		}
	}
	mi, _ := os.ReadFile("/proc/self/mountinfo")
	for line := range strings.Lines(string(mi)) {
		if f := strings.Fields(line); len(f) > 4 && (strings.Contains(f[4], "slipway-kubecluster-") ||
			strings.HasPrefix(f[4], "/run/netns/") || strings.HasPrefix(f[4], "/var/lib/kubelet")) {
			s["mounts"] = append(s["mounts"], f[4])
		}
	}
	slices.Sort(s["mounts"])
	for _, e := range must(os.ReadDir("/proc")) {
		cmd, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err == nil && bytes.Contains(cmd, []byte("containerd-shim")) && bytes.Contains(cmd, []byte("slipway-kubecluster-")) {
			s["processes"] = append(s["processes"], e.Name()+" "+strings.ReplaceAll(string(cmd), "\x00", " "))
		}
	}
	cgroups, _ := filepath.Glob("/sys/fs/cgroup/*/slipway-*")
	s["processes"] = append(s["processes"], cgroups...)
	for _, k := range kubecluster.Sysctls {
		b, _ := os.ReadFile("/proc/sys/" + k)
		s["sysctls"] = append(s["sysctls"], k+"="+strings.TrimSpace(string(b)))
	}
	for _, p := range kubecluster.HostPaths {
		ents, err := os.ReadDir(p)
		if err != nil || p == "/run/containerd" {
			continue
		}
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		s["paths"] = append(s["paths"], p+": "+strings.Join(names, " "))
	}
	return s
}

func must[T any](v T, _ error) T { return v }
