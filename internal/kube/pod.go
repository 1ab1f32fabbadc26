package kube

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/slipway-dev/slipway/internal/task"
	"github.com/slipway-dev/slipway/internal/taskdef"
)

// Annotations on a task's pod: what a Kubernetes label cannot hold.
const (
	annCreated    = "slipway.dev/created"
	annMemory     = "slipway.dev/reserved-memory"
	annContainers = "slipway.dev/containers"
)

// pullSecretPrefix names the image pull secrets Slipway keeps for its
// registry (see Runtime.pullSecretName).
const pullSecretPrefix = "slipway-registry"

// podContainer is what the containers annotation says of each container.
type podContainer struct {
	Name      string `json:"name"`
	Essential bool   `json:"essential"`
	LogGroup  string `json:"log_group,omitempty"`
	LogStream string `json:"log_stream,omitempty"`
	Ports     string `json:"ports,omitempty"`
}

// podName is the pod (and secret) of task id.
func podName(id string) string { return "slipway-" + id }

// secretKey is a container's secret in the task's Secret.
func secretKey(container, name string) string { return container + "." + name }

// podFor maps a task to a pod. Each ECS container becomes a container of
// the pod; dependsOn SUCCESS and COMPLETE make init containers and START
// orders the containers (the kubelet starts them in order); HEALTHY has no
// Kubernetes form and is refused.
func podFor(spec task.Spec, id, installation, pullSecretName string, pullSecret bool) (*corev1.Pod, *corev1.Secret, error) {
	def := spec.Def
	labels := map[string]string{task.LabelManaged: "1", task.LabelApp: spec.App, task.LabelEnv: spec.Env, task.LabelService: spec.Service,
		task.LabelTask: id, task.LabelFamily: spec.Family, task.LabelRevision: strconv.Itoa(spec.Revision), task.LabelGroup: spec.Group}
	if installation != "" {
		labels[task.LabelInstallation] = installation
	}
	if spec.Generation != 0 {
		labels[task.LabelGeneration] = strconv.FormatInt(spec.Generation, 10)
	}
	for k, v := range labels {
		if !validLabelValue(v) {
			return nil, nil, fmt.Errorf("%s %q cannot be a Kubernetes label value (at most 63 letters, digits, '-', '_' or '.')", k, v)
		}
	}
	init, order, err := containerOrder(def)
	if err != nil {
		return nil, nil, err
	}
	var anns []podContainer
	secretData := map[string][]byte{}
	var grace int64 = 30 // ECS's default stopTimeout
	longest := 0
	hosts := []string{}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: podName(id), Labels: labels, Annotations: map[string]string{
			annCreated: time.Now().UTC().Format(time.RFC3339Nano),
			annMemory:  strconv.Itoa(def.ReservedMemoryMiB()),
		}},
		Spec: corev1.PodSpec{
			// The reconciler replaces a task whose essential container
			// exits, as ECS does; the kubelet restarting it would hide the
			// crash from the circuit breaker.
			RestartPolicy:                corev1.RestartPolicyNever,
			AutomountServiceAccountToken: new(false), // a task has no business with the API server
			EnableServiceLinks:           new(false),
		},
	}
	if pullSecret {
		pod.Spec.ImagePullSecrets = []corev1.LocalObjectReference{{Name: pullSecretName}}
	}
	for _, c := range def.ContainerDefinitions {
		hosts = append(hosts, c.Name)
		k, err := containerFor(c, spec, id, secretData)
		if err != nil {
			return nil, nil, fmt.Errorf("container %s: %w", c.Name, err)
		}
		group, stream := task.LogNames(spec.App, spec.Env, spec.Service, id, c)
		anns = append(anns, podContainer{Name: c.Name, Essential: c.IsEssential(), LogGroup: group, LogStream: stream, Ports: portList(c)})
		longest = max(longest, c.StopTimeout)
		if slices.Contains(init, c.Name) {
			k.ReadinessProbe, k.LivenessProbe = nil, nil // init containers have none
			pod.Spec.InitContainers = append(pod.Spec.InitContainers, k)
		} else {
			pod.Spec.Containers = append(pod.Spec.Containers, k)
		}
	}
	if len(pod.Spec.Containers) == 0 {
		return nil, nil, fmt.Errorf("every container runs to completion before another starts (dependsOn SUCCESS or COMPLETE): a pod needs one that keeps running")
	}
	slices.SortStableFunc(pod.Spec.Containers, func(a, b corev1.Container) int {
		return slices.Index(order, a.Name) - slices.Index(order, b.Name)
	})
	if longest > 0 {
		grace = int64(longest)
	}
	pod.Spec.TerminationGracePeriodSeconds = &grace
	// Containers of a task reach each other by name, as links gave them on
	// Docker: in a pod they share localhost.
	pod.Spec.HostAliases = []corev1.HostAlias{{IP: "127.0.0.1", Hostnames: hosts}}
	b, _ := json.Marshal(anns)
	pod.Annotations[annContainers] = string(b)
	var secret *corev1.Secret
	if len(secretData) > 0 {
		secret = &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: podName(id), Labels: labels}, Type: corev1.SecretTypeOpaque, Data: secretData}
	}
	return pod, secret, nil
}

// containerFor maps one ECS container definition.
func containerFor(c taskdef.Container, spec task.Spec, id string, secretData map[string][]byte) (corev1.Container, error) {
	k := corev1.Container{Name: c.Name, Image: c.Image, Command: c.EntryPoint, Args: c.Command, WorkingDir: c.WorkingDirectory,
		// The default termination message policy: FallbackToLogsOnError
		// would copy the last output, secrets an app prints included, into
		// the pod's status, which more people may read than its secrets.
		ImagePullPolicy: corev1.PullIfNotPresent}
	if errs := validationDNSLabel(c.Name); errs != "" {
		return k, fmt.Errorf("name %q cannot name a Kubernetes container: %s", c.Name, errs)
	}
	for _, e := range c.Environment {
		k.Env = append(k.Env, corev1.EnvVar{Name: e.Name, Value: e.Value})
	}
	for _, s := range c.Secrets {
		v, ok := spec.Secrets[c.Name][s.Name]
		if !ok {
			return k, fmt.Errorf("secret %s (%s) is not available", s.Name, s.ValueFrom)
		}
		key := secretKey(c.Name, s.Name)
		secretData[key] = []byte(v)
		k.Env = append(k.Env, corev1.EnvVar{Name: s.Name, ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
			LocalObjectReference: corev1.LocalObjectReference{Name: podName(id)}, Key: key}}})
	}
	for _, pm := range c.PortMappings {
		proto := corev1.ProtocolTCP
		if strings.EqualFold(pm.Protocol, "udp") {
			proto = corev1.ProtocolUDP
		}
		k.Ports = append(k.Ports, corev1.ContainerPort{ContainerPort: int32(pm.ContainerPort), Protocol: proto})
	}
	if c.User != "" {
		uid, gid, _ := strings.Cut(c.User, ":")
		u, err := strconv.ParseInt(uid, 10, 64)
		if err != nil {
			return k, fmt.Errorf("user %q: Kubernetes runs a container as a numeric user id (uid or uid:gid)", c.User)
		}
		k.SecurityContext = &corev1.SecurityContext{RunAsUser: &u}
		if gid != "" {
			g, err := strconv.ParseInt(gid, 10, 64)
			if err != nil {
				return k, fmt.Errorf("user %q: the group must be a numeric id", c.User)
			}
			k.SecurityContext.RunAsGroup = &g
		}
	}
	// ECS cpu units are 1/1024 of a core; memoryReservation is the soft
	// limit (a request), memory the hard one.
	k.Resources = corev1.ResourceRequirements{Requests: corev1.ResourceList{}, Limits: corev1.ResourceList{}}
	if c.CPU > 0 {
		k.Resources.Requests[corev1.ResourceCPU] = *resource.NewMilliQuantity(int64(c.CPU)*1000/1024, resource.DecimalSI)
	}
	if c.MemoryReservation > 0 {
		k.Resources.Requests[corev1.ResourceMemory] = *resource.NewQuantity(int64(c.MemoryReservation)<<20, resource.BinarySI)
	}
	if c.Memory > 0 {
		k.Resources.Limits[corev1.ResourceMemory] = *resource.NewQuantity(int64(c.Memory)<<20, resource.BinarySI)
		if c.MemoryReservation == 0 {
			k.Resources.Requests[corev1.ResourceMemory] = *resource.NewQuantity(int64(c.Memory)<<20, resource.BinarySI)
		}
	}
	if hc := c.HealthCheck; hc != nil && len(hc.Command) > 0 && hc.Command[0] != "NONE" {
		probe, err := probeFor(hc)
		if err != nil {
			return k, err
		}
		k.ReadinessProbe = probe
		// The same check, failing its retries, ends the container as an
		// unhealthy ECS task is replaced: the reconciler replaces the pod.
		live := *probe
		live.InitialDelaySeconds = int32(hc.StartPeriod)
		k.LivenessProbe = &live
	}
	return k, nil
}

// probeFor maps an ECS health check: CMD-SHELL through /bin/sh, CMD as an
// exec; interval, timeout and retries as period, timeout and threshold.
func probeFor(hc *taskdef.HealthCheck) (*corev1.Probe, error) {
	var cmd []string
	switch hc.Command[0] {
	case "CMD-SHELL":
		cmd = []string{"/bin/sh", "-c", strings.Join(hc.Command[1:], " ")}
	case "CMD":
		cmd = hc.Command[1:]
	default:
		cmd = hc.Command
	}
	if len(cmd) == 0 {
		return nil, fmt.Errorf("healthCheck.command has no command after %s", hc.Command[0])
	}
	or := func(v, def int) int32 {
		if v <= 0 {
			return int32(def)
		}
		return int32(v)
	}
	return &corev1.Probe{ProbeHandler: corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: cmd}},
		PeriodSeconds: or(hc.Interval, 30), TimeoutSeconds: or(hc.Timeout, 5), FailureThreshold: or(hc.Retries, 3), SuccessThreshold: 1}, nil
}

// containerOrder says which containers must finish before the others
// start (init containers) and in which order the others start.
func containerOrder(def *taskdef.TaskDef) (init []string, order []string, err error) {
	for _, c := range def.ContainerDefinitions {
		for _, d := range c.DependsOn {
			dep, ok := def.Container(d.ContainerName)
			if !ok {
				return nil, nil, fmt.Errorf("container %s: dependsOn names %s, which the task definition does not have", c.Name, d.ContainerName)
			}
			switch strings.ToUpper(d.Condition) {
			case "SUCCESS", "COMPLETE":
				if dep.IsEssential() {
					return nil, nil, fmt.Errorf("container %s: dependsOn %s %s: a container run to completion cannot be essential; mark %s \"essential\": false", c.Name, d.ContainerName, d.Condition, d.ContainerName)
				}
				if !slices.Contains(init, d.ContainerName) {
					init = append(init, d.ContainerName)
				}
			case "HEALTHY":
				return nil, nil, fmt.Errorf("container %s: dependsOn %s HEALTHY has no Kubernetes form (a pod starts its containers without waiting for another's health); use START and let %s retry until %s answers", c.Name, d.ContainerName, c.Name, d.ContainerName)
			case "START", "":
			default:
				return nil, nil, fmt.Errorf("container %s: dependsOn condition %q is not START, COMPLETE, SUCCESS or HEALTHY", c.Name, d.Condition)
			}
		}
	}
	// Topological order of START dependencies, stable otherwise.
	placed := map[string]bool{}
	for len(order) < len(def.ContainerDefinitions) {
		progress := false
		for _, c := range def.ContainerDefinitions {
			if placed[c.Name] {
				continue
			}
			ready := true
			for _, d := range c.DependsOn {
				ready = ready && placed[d.ContainerName]
			}
			if ready {
				placed[c.Name], progress = true, true
				order = append(order, c.Name)
			}
		}
		if !progress {
			var left []string
			for _, c := range def.ContainerDefinitions {
				if !placed[c.Name] {
					left = append(left, c.Name)
				}
			}
			return nil, nil, fmt.Errorf("dependsOn forms a cycle among containers %s", strings.Join(left, ", "))
		}
	}
	return init, order, nil
}

func portList(c taskdef.Container) string {
	var ps []string
	for _, pm := range c.PortMappings {
		ps = append(ps, pm.Port())
	}
	return strings.Join(ps, ",")
}

func validLabelValue(v string) bool {
	if len(v) > 63 {
		return false
	}
	for i, r := range v {
		alnum := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9'
		if !alnum && (i == 0 || i == len(v)-1 || (r != '-' && r != '_' && r != '.')) {
			return false
		}
	}
	return true
}

func validationDNSLabel(name string) string {
	if len(name) > 63 {
		return "at most 63 characters"
	}
	for i, r := range name {
		ok := r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || (r == '-' && i > 0 && i < len(name)-1)
		if !ok {
			return "lower-case letters, digits and '-' inside"
		}
	}
	if name == "" {
		return "empty"
	}
	return ""
}

// CheckTaskDef refuses a task definition that cannot become a pod (see
// podFor), when a service or deployment names it rather than when its
// first task starts.
func (r *Runtime) CheckTaskDef(def *taskdef.TaskDef) error { return ValidateTaskDef(def) }

// ValidateTaskDef says why def cannot run as a pod (nil: it can).
func ValidateTaskDef(def *taskdef.TaskDef) error {
	spec := task.Spec{App: "app", Env: "env", Service: "service", Group: "tg1", Family: def.Family, Revision: 1, Def: def, Secrets: map[string]map[string]string{}}
	for _, c := range def.ContainerDefinitions {
		spec.Secrets[c.Name] = map[string]string{}
		for _, s := range c.Secrets {
			spec.Secrets[c.Name][s.Name] = "checked"
		}
	}
	_, _, err := podFor(spec, "check", "", "", false)
	return err
}
