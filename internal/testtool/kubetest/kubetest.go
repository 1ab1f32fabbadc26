// Package kubetest runs a real single-node Kubernetes cluster for tests
// (kubecluster's), so that code written for Kubernetes is tested against
// kube-apiserver, the scheduler, kubelet and kube-proxy running real pods,
// not against a fake clientset. It is a testing.TB wrapper over
// kubecluster, which says what runs and how.
//
// One cluster is started per test binary, on first use (Cluster), in
// about 5 s once the binaries are built; Namespace gives each test a
// namespace of its own on it. A test skips, saying what to install,
// where the cluster cannot run: the Kubernetes binaries not built
// (tools/kube/build.sh), Debian's etcd-server, containerd, runc or
// containernetworking-plugins missing, or not root. With
// SLIPWAY_REQUIRE_KUBE=1 in the environment (as in CI) it fails instead.
//
// A package that uses kubetest must run its tests through RunMain, which
// stops the cluster and removes all it made when they end:
//
//	func TestMain(m *testing.M) { os.Exit(kubetest.RunMain(m)) }
//
// Only one cluster runs on a machine at a time, so test binaries that use
// kubetest wait for each other.
package kubetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/slipway-dev/slipway/internal/testtool"
	"github.com/slipway-dev/slipway/internal/testtool/kubecluster"
)

// RequireEnv is the environment variable that, set to 1, turns the skip
// of a test for want of the cluster into a failure.
const RequireEnv = "SLIPWAY_REQUIRE_KUBE"

var shared struct {
	mu      sync.Mutex
	inMain  bool
	started bool   // the first start was tried
	skip    string // why every test that needs the cluster skips
	err     error  // why the first start failed
	c       *kubecluster.Cluster
}

var nsSeq atomic.Int64

// RunMain runs the tests, then closes the cluster if one was started.
// When a test failed, it first copies the components' logs to a
// directory it names. Call it from TestMain:
// os.Exit(kubetest.RunMain(m)).
func RunMain(m testtool.Runner) int {
	shared.mu.Lock()
	shared.inMain = true
	shared.mu.Unlock()
	code := m.Run()
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if c := shared.c; c != nil {
		if code != 0 {
			if dir, err := keepLogs(c.Logs()); err == nil {
				fmt.Fprintf(os.Stderr, "kubetest: the cluster's logs are in %s\n", dir)
			}
		}
		if err := c.Close(); err != nil {
			fmt.Fprintf(os.Stderr, "kubetest: %v\n", err)
			if code == 0 {
				code = 1
			}
		}
		shared.c = nil
	}
	return code
}

// Cluster returns the test binary's cluster, starting it on first use.
// It skips the test if the cluster cannot run here (unless
// SLIPWAY_REQUIRE_KUBE=1) and fails it if the cluster does not start.
func Cluster(t testing.TB) *kubecluster.Cluster {
	t.Helper()
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if !shared.inMain {
		t.Fatal("kubetest: the package's TestMain must run its tests with kubetest.RunMain, which stops the cluster")
	}
	if !shared.started {
		shared.started = true
		// Start may first wait for another test binary's cluster.
		ctx, cancel := context.WithTimeout(context.Background(), startTimeout(t))
		defer cancel()
		var lines []string
		c, err := kubecluster.Start(ctx, kubecluster.Options{Logf: func(format string, args ...any) {
			lines = append(lines, fmt.Sprintf(format, args...))
		}})
		for _, l := range lines {
			t.Log(l)
		}
		switch {
		case errors.Is(err, kubecluster.ErrNotInstalled):
			shared.skip = "kubetest: " + err.Error()
		case err != nil:
			shared.err = err
		default:
			shared.c = c
		}
	}
	if shared.skip != "" {
		if os.Getenv(RequireEnv) == "1" {
			t.Fatalf("%s (%s=1: the cluster is required)", shared.skip, RequireEnv)
		}
		t.Skip(shared.skip)
	}
	if shared.err != nil {
		t.Fatalf("kubetest: %v", shared.err)
	}
	return shared.c
}

// startTimeout leaves the start most of the test binary's time, since it
// may wait for another binary's cluster to close.
func startTimeout(t testing.TB) time.Duration {
	if tt, ok := t.(interface{ Deadline() (time.Time, bool) }); ok {
		if d, ok := tt.Deadline(); ok {
			if left := time.Until(d) - 30*time.Second; left > time.Minute {
				return left
			}
			return time.Minute
		}
	}
	return 10 * time.Minute
}

// Namespace creates a namespace for this test, named after it, in which
// pods may be created at once, and deletes it (and so everything in it)
// when the test ends.
func Namespace(t testing.TB) string {
	t.Helper()
	c := Cluster(t)
	name := nsName(t.Name())
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := c.CreateNamespace(ctx, name); err != nil {
		t.Fatalf("kubetest: %v", err)
	}
	t.Cleanup(func() {
		// Not waited for: the namespace's pods go in the background, and
		// Close deletes any that are left.
		if err := c.DeleteNamespace(name); err != nil {
			t.Errorf("kubetest: %v", err)
		}
	})
	return name
}

// Kubectl runs kubectl against the cluster and returns its standard
// output; it fails the test, with kubectl's errors, if kubectl fails.
func Kubectl(t testing.TB, args ...string) string {
	t.Helper()
	return KubectlIn(t, "", args...)
}

// KubectlIn is Kubectl with stdin as kubectl's input (for `apply -f -`).
func KubectlIn(t testing.TB, stdin string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := Cluster(t).Kubectl(ctx, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdin = strings.NewReader(stdin)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("kubectl %s: %v\n%s%s", strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String()
}

// nsName is a unique namespace name (a DNS label) that says which test
// it belongs to.
func nsName(test string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(test) {
		if 'a' <= r && r <= 'z' || '0' <= r && r <= '9' {
			b.WriteRune(r)
		} else {
			b.WriteByte('-')
		}
	}
	name := strings.Trim(b.String(), "-")
	if len(name) > 50 {
		name = name[:50]
	}
	return fmt.Sprintf("t%d-%s", nsSeq.Add(1), strings.TrimRight(name, "-"))
}

// keepLogs copies the components' logs out of the cluster's directory,
// which Close removes.
func keepLogs(logs string) (string, error) {
	dir, err := os.MkdirTemp("", "slipway-kube-logs-")
	if err != nil {
		return "", err
	}
	if err := os.CopyFS(dir, os.DirFS(logs)); err != nil {
		return "", fmt.Errorf("copy %s: %w", logs, err)
	}
	return dir, nil
}
