package kubecluster

import (
	"encoding/json"
	"fmt"
	"strconv"
)

// toml quotes s as a TOML basic string (JSON's escapes are a subset).
func toml(s string) string { b, _ := json.Marshal(s); return string(b) }

// containerdConfig is a second containerd, beside any the machine runs
// (the Docker engine's), with every path of its own under the cluster's
// directory.
func (c *Cluster) containerdConfig() string {
	return fmt.Sprintf(`version = 2
root = %[1]s
state = %[2]s
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]

[grpc]
  address = %[3]s

[plugins."io.containerd.internal.v1.opt"]
  path = %[4]s

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = %[5]s
  disable_apparmor = true
  # Root here lacks CAP_SYS_RESOURCE: without this every sandbox fails
  # with "runc create failed: … can't get final child's PID from pipe".
  restrict_oom_score_adj = true
  # The streaming server (exec, attach, port-forward) on a free port, not
  # the fixed 10010 another containerd may hold.
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"

  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        BinaryName = %[6]s
        Root = %[7]s

  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = %[8]s
    conf_dir = %[9]s
    max_conf_num = 1

  [plugins."io.containerd.grpc.v1.cri".registry]
    # Read at every pull, so AllowInsecureRegistry needs no restart.
    config_path = %[10]s
`, toml(c.path("containerd/root")), toml(c.path("containerd/state")), toml(c.ContainerdAddress),
		toml(c.path("containerd/opt")), toml(c.pauseRef), toml(c.tools.runc), toml(c.path("containerd/runc")),
		toml(c.tools.cniDir), toml(c.path("cni/net.d")), toml(c.path("containerd/certs.d")))
}

// cniConfig is a bridge of the cluster's own on its pod subnet; portmap
// serves pods' hostPorts.
func (c *Cluster) cniConfig() string {
	b, _ := json.MarshalIndent(map[string]any{
		"cniVersion": "0.4.0",
		"name":       c.bridge,
		"plugins": []any{
			map[string]any{
				"type":        "bridge",
				"bridge":      c.bridge,
				"isGateway":   true,
				"ipMasq":      false,
				"hairpinMode": true,
				"ipam": map[string]any{
					"type":    "host-local",
					"ranges":  [][]map[string]string{{{"subnet": c.podSubnet.String()}}},
					"routes":  []map[string]string{{"dst": "0.0.0.0/0"}},
					"dataDir": c.path("cni/ipam"),
				},
			},
			map[string]any{"type": "portmap", "capabilities": map[string]bool{"portMappings": true}},
		},
	}, "", "  ")
	return string(b)
}

// kubeletConfig keeps kubelet on 127.0.0.1, its files under the cluster's
// directory and its pods' cgroups under a root of the cluster's own, so
// that it never sees (and cleans up) another kubelet's pods.
func (c *Cluster) kubeletConfig() string {
	return fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: 127.0.0.1
port: %[1]d
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: %[2]d
containerRuntimeEndpoint: unix://%[3]s
cgroupDriver: cgroupfs
cgroupRoot: /%[4]s
failSwapOn: false
failCgroupV1: false
podLogsDir: %[5]s
staticPodPath: ""
# kube-proxy owns the node's iptables rules; kubelet's would outlive us.
makeIPTablesUtilChains: false
serializeImagePulls: false
authentication:
  anonymous:
    enabled: false
  webhook:
    enabled: true
  x509:
    clientCAFile: %[6]s
authorization:
  mode: Webhook
# A test machine's disk and memory may be nearly full; evicting pods for
# it would fail tests for no reason of theirs.
evictionHard:
  memory.available: "1Mi"
  nodefs.available: "1%%"
  nodefs.inodesFree: "1%%"
  imagefs.available: "1%%"
# Never collect images: tests import theirs, and cannot pull them again.
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
nodeStatusUpdateFrequency: 2s
`, c.ports.kubelet, c.ports.kubeletHealthz, c.ContainerdAddress, c.cgroup,
		c.path("pod-logs"), c.pki.caCert)
}

// kubeProxyConfig serves NodePorts on loopback only (the only traffic
// the cluster takes from the host) and leaves the kernel's conntrack
// settings as they are.
func (c *Cluster) kubeProxyConfig() string {
	return fmt.Sprintf(`apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection:
  kubeconfig: %[1]s
mode: iptables
clusterCIDR: %[2]s
bindAddress: 127.0.0.1
healthzBindAddress: 127.0.0.1:%[3]d
metricsBindAddress: 127.0.0.1:%[4]d
nodePortAddresses: ["127.0.0.0/8"]
hostnameOverride: %[5]s
conntrack:
  maxPerCore: 0
  min: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
iptables:
  minSyncPeriod: 0s
  syncPeriod: 30s
`, c.Kubeconfig, c.podSubnet.String(), c.ports.proxyHealthz, c.ports.proxyMetrics, c.Node)
}

func itoa(n int) string { return strconv.Itoa(n) }
