package kubetest_test

import (
	"os"
	"strings"
	"testing"

	"github.com/slipway-dev/slipway/internal/testtool/kubetest"
)

func TestMain(m *testing.M) { os.Exit(kubetest.RunMain(m)) }

// Every test of a binary gets the one cluster; each Namespace is its
// own and goes when its test ends.
func TestIntegrationClusterShared(t *testing.T) {
	c := kubetest.Cluster(t)
	var ns string
	t.Run("first", func(t *testing.T) {
		if kubetest.Cluster(t) != c {
			t.Fatal("a second cluster")
		}
		ns = kubetest.Namespace(t)
		kubetest.Kubectl(t, "-n", ns, "create", "configmap", "app", "--from-literal=version=1")
		if got := kubetest.Kubectl(t, "-n", ns, "get", "configmap", "app", "-o", "jsonpath={.data.version}"); got != "1" {
			t.Errorf("configmap holds %q", got)
		}
		other := kubetest.Namespace(t)
		if other == ns {
			t.Fatalf("two tests share namespace %s", ns)
		}
		if out := kubetest.Kubectl(t, "-n", other, "get", "configmaps", "-o", "name"); strings.Contains(out, "configmap/app") {
			t.Errorf("namespace %s sees %s's configmap: %s", other, ns, out)
		}
	})
	phase := kubetest.Kubectl(t, "get", "namespace", ns, "--ignore-not-found", "-o", "jsonpath={.status.phase}")
	if phase != "" && phase != "Terminating" {
		t.Errorf("namespace %s after its test: %q; want it going or gone", ns, phase)
	}
	if !strings.HasPrefix(ns, "t") || !strings.Contains(ns, "testintegrationclustershared-first") {
		t.Errorf("namespace %q does not say which test it belongs to", ns)
	}
}

// A pod runs and is Ready on the node.
func TestIntegrationPod(t *testing.T) {
	c := kubetest.Cluster(t)
	ns := kubetest.Namespace(t)
	// The sandbox image is the one image every cluster has.
	kubetest.KubectlIn(t, `
apiVersion: v1
kind: Pod
metadata: {name: idle}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: idle
    image: `+c.SandboxImage()+`
    imagePullPolicy: Never
`, "-n", ns, "apply", "-f", "-")
	kubetest.Kubectl(t, "-n", ns, "wait", "--for=condition=Ready", "pod/idle", "--timeout=60s")
	if node := kubetest.Kubectl(t, "-n", ns, "get", "pod", "idle", "-o", "jsonpath={.spec.nodeName}"); node != c.Node {
		t.Errorf("pod on node %q; want %q", node, c.Node)
	}
}
