package kube

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"

	"github.com/slipway-dev/slipway/internal/task"
	"github.com/slipway-dev/slipway/internal/taskdef"
)

// Runtime runs tasks as pods in one namespace.
type Runtime struct {
	key string
	cs  kubernetes.Interface
	// stream has no overall timeout: it follows output and watches pods
	// for as long as they last.
	stream    kubernetes.Interface
	namespace string
	// Installation labels every pod this runtime starts and limits List
	// to them, as on Docker.
	Installation string
	// App and Env, when set, limit List to that environment's pods: two
	// environments may share a namespace, and must not take each other's
	// pods for their own.
	App, Env string
	// Registry is how the cluster pulls images from Slipway's registry
	// (nil: images need no credentials).
	Registry func() task.Registry

	pullMu   sync.Mutex
	pullAuth string // the pull secret's content as last written
}

var _ task.Backend = (*Runtime)(nil)

// startTimeout bounds a task start: pulling the images and starting the
// containers. What a pod waits for that will not come (an image that does
// not exist, too little room on every node) fails it sooner.
const startTimeout = 3 * time.Minute

// New connects to the cluster c names; key is the runtime's Backend.Key.
// Nothing is asked of the cluster yet: Check does.
func New(key string, c Config) (*Runtime, error) {
	rc, ns, err := c.RESTConfig()
	if err != nil {
		return nil, err
	}
	rc.UserAgent = "slipway"
	stream, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, &ConfigError{"kubeconfig", err.Error()}
	}
	rc.Timeout = 30 * time.Second
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, &ConfigError{"kubeconfig", err.Error()}
	}
	return &Runtime{key: key, cs: cs, stream: stream, namespace: ns}, nil
}

// Namespace is where the tasks run.
func (r *Runtime) Namespace() string { return r.namespace }

// Key names the runtime.
func (r *Runtime) Key() string { return r.key }

// needs is what the runtime does in its namespace, checked up front so a
// refusal names the verb and resource when the runtime is set, not at
// the first deployment.
var needs = []struct{ verb, resource, sub string }{
	{"create", "pods", ""}, {"delete", "pods", ""}, {"get", "pods", ""}, {"list", "pods", ""}, {"watch", "pods", ""}, {"get", "pods", "log"},
	{"create", "secrets", ""}, {"update", "secrets", ""}, {"patch", "secrets", ""}, {"delete", "secrets", ""}, {"list", "events", ""},
}

// Check asks the cluster whether it answers, the namespace exists and the
// credentials may do what the runtime does there.
func (r *Runtime) Check(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if _, err := r.cs.Discovery().ServerVersion(); err != nil {
		var tlsErr *tls.CertificateVerificationError
		switch {
		case apierrors.IsUnauthorized(err):
			return fmt.Errorf("the Kubernetes API server refused the credentials (401 Unauthorized): the kubeconfig's token or client certificate is wrong or expired; give a current one")
		case errors.As(err, &tlsErr):
			return fmt.Errorf("the Kubernetes API server's certificate is not trusted (%v); give the cluster's CA as certificate-authority-data in the kubeconfig", tlsErr.Err)
		}
		return fmt.Errorf("the Kubernetes API server does not answer: %w", err)
	}
	if _, err := r.cs.CoreV1().Namespaces().Get(ctx, r.namespace, metav1.GetOptions{}); err != nil && !apierrors.IsForbidden(err) {
		if apierrors.IsNotFound(err) {
			return fmt.Errorf("namespace %s does not exist in the cluster; create it (kubectl create namespace %s) or name another with --namespace", r.namespace, r.namespace)
		}
		return fmt.Errorf("read namespace %s: %w", r.namespace, err)
	}
	var refused []string
	for _, n := range needs {
		ok, err := r.allowed(ctx, n.verb, n.resource, n.sub)
		if err != nil {
			return fmt.Errorf("ask the cluster what these credentials may do: %w", err)
		}
		if !ok {
			res := n.resource
			if n.sub != "" {
				res += "/" + n.sub
			}
			refused = append(refused, n.verb+" "+res)
		}
	}
	if len(refused) > 0 {
		return fmt.Errorf("%w: the credentials may not %s in namespace %s; grant them with a Role and RoleBinding (see docs/kubernetes.md)", errForbidden, strings.Join(refused, ", "), r.namespace)
	}
	return nil
}

func (r *Runtime) allowed(ctx context.Context, verb, resource, sub string) (bool, error) {
	rev, err := r.cs.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, authzReview{}.of(r.namespace, verb, resource, sub), metav1.CreateOptions{})
	if err != nil {
		return false, err
	}
	return rev.Status.Allowed, nil
}

// selector limits listings to this installation's tasks.
func (r *Runtime) selector(match map[string]string) string {
	set := labels.Set{task.LabelManaged: "1"}
	if r.Installation != "" {
		set[task.LabelInstallation] = r.Installation
	}
	if r.App != "" {
		set[task.LabelApp], set[task.LabelEnv] = r.App, r.Env
	}
	maps.Copy(set, match)
	return labels.SelectorFromSet(set).String()
}

// Start creates the task's pod (and Secret, for its secrets) and waits
// until every container started, or the pod shows it never will.
func (r *Runtime) Start(ctx context.Context, spec task.Spec) (t task.Task, err error) {
	id := spec.ID
	if id == "" {
		id = task.NewTaskID()
	}
	pull, err := r.ensurePullSecret(ctx, spec)
	if err != nil {
		return t, err
	}
	pod, secret, err := podFor(spec, id, r.Installation, r.pullSecretName(), pull)
	if err != nil {
		return t, err
	}
	pods, secrets := r.cs.CoreV1().Pods(r.namespace), r.cs.CoreV1().Secrets(r.namespace)
	cleanup := context.WithoutCancel(ctx)
	defer func() {
		if err != nil {
			r.remove(cleanup, id)
		}
	}()
	if secret != nil {
		if _, err := secrets.Create(ctx, secret, metav1.CreateOptions{}); err != nil {
			return t, fmt.Errorf("create the task's secret: %w", err)
		}
	}
	created, err := pods.Create(ctx, pod, metav1.CreateOptions{})
	if err != nil {
		return t, fmt.Errorf("create pod: %w", err)
	}
	if secret != nil {
		// Owned by the pod, so the cluster deletes it with the pod even if
		// Slipway never gets to.
		patch := fmt.Sprintf(`{"metadata":{"ownerReferences":[{"apiVersion":"v1","kind":"Pod","name":%q,"uid":%q}]}}`, created.Name, created.UID)
		if _, err := secrets.Patch(ctx, secret.Name, types.StrategicMergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
			return t, fmt.Errorf("make the pod own its secret: %w", err)
		}
	}
	wait, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	for {
		p, err := pods.Get(wait, created.Name, metav1.GetOptions{})
		if err != nil {
			if wait.Err() != nil && ctx.Err() == nil {
				return t, fmt.Errorf("the pod did not start within %s", startTimeout)
			}
			return t, err
		}
		done, err := started(p)
		if err != nil {
			if errors.Is(err, task.ErrImage) {
				r.pullMu.Lock()
				r.pullAuth = "" // written again at the next start, in case it was deleted
				r.pullMu.Unlock()
			}
			return t, r.masked(err, spec)
		}
		if done {
			return r.taskOf(p), nil
		}
		select {
		case <-wait.Done():
			if ctx.Err() != nil {
				return t, ctx.Err()
			}
			return t, fmt.Errorf("the pod did not start within %s (phase %s)", startTimeout, p.Status.Phase)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// masked masks the task's secrets in a start error.
func (r *Runtime) masked(err error, spec task.Spec) error {
	var f *task.Failure
	if errors.As(err, &f) {
		var vals []string
		for _, m := range spec.Secrets {
			for _, v := range m {
				vals = append(vals, v)
			}
		}
		f.Mask(maskerOf(vals))
	}
	return err
}

// started reports a pod whose containers all started (or ran), or why it
// will not start: a placement the scheduler refuses, an image that cannot
// be pulled, a container the runtime cannot create.
func started(p *corev1.Pod) (bool, error) {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse && c.Reason == corev1.PodReasonUnschedulable {
			return false, &task.CapacityError{Resource: "room on a node", Detail: "no node can take the pod: " + c.Message + "; lower the task definition's cpu or memory, or add nodes"}
		}
	}
	if p.Status.Phase == corev1.PodFailed && len(p.Status.ContainerStatuses) == 0 {
		return false, fmt.Errorf("the pod failed: %s %s", p.Status.Reason, p.Status.Message)
	}
	all := append(append([]corev1.ContainerStatus{}, p.Status.InitContainerStatuses...), p.Status.ContainerStatuses...)
	for _, s := range all {
		if w := s.State.Waiting; w != nil {
			switch w.Reason {
			case "ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull":
				return false, fmt.Errorf("%w: %s: %s: %s", task.ErrImage, s.Image, w.Reason, w.Message)
			case "CreateContainerConfigError", "CreateContainerError", "RunContainerError", "PreCreateHookError", "PostStartHookError":
				return false, &task.Failure{Kind: task.NotStarted, Container: s.Name, Essential: true, EngineError: w.Reason + ": " + w.Message}
			}
		}
	}
	if p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
		return true, nil // ran and ended: the reconciler reads why
	}
	if len(p.Status.ContainerStatuses) < len(p.Spec.Containers) {
		return false, nil
	}
	for _, s := range p.Status.ContainerStatuses {
		if s.State.Running == nil && s.State.Terminated == nil {
			return false, nil
		}
	}
	return true, nil
}

// List returns the installation's tasks in the namespace.
func (r *Runtime) List(ctx context.Context, match map[string]string) ([]task.Task, error) {
	pods, err := r.cs.CoreV1().Pods(r.namespace).List(ctx, metav1.ListOptions{LabelSelector: r.selector(match)})
	if err != nil {
		return nil, fmt.Errorf("list pods in namespace %s: %w", r.namespace, err)
	}
	out := make([]task.Task, 0, len(pods.Items))
	for i := range pods.Items {
		out = append(out, r.taskOf(&pods.Items[i]))
	}
	sort.Slice(out, func(i, j int) bool {
		return out[i].CreatedAt.Before(out[j].CreatedAt) || (out[i].CreatedAt.Equal(out[j].CreatedAt) && out[i].ID < out[j].ID)
	})
	return out, nil
}

// taskOf reads a task back from its pod.
func (r *Runtime) taskOf(p *corev1.Pod) task.Task {
	l := p.Labels
	rev, _ := strconv.Atoi(l[task.LabelRevision])
	gen, _ := strconv.ParseInt(l[task.LabelGeneration], 10, 64)
	mem, _ := strconv.Atoi(p.Annotations[annMemory])
	t := task.Task{ID: l[task.LabelTask], Runtime: r.key, App: l[task.LabelApp], Env: l[task.LabelEnv], Service: l[task.LabelService],
		Group: l[task.LabelGroup], Family: l[task.LabelFamily], Revision: rev, Generation: gen, CreatedAt: p.CreationTimestamp.UTC(),
		Address: p.Status.PodIP, ReservedMemoryMiB: mem}
	if at, err := time.Parse(time.RFC3339Nano, p.Annotations[annCreated]); err == nil {
		t.CreatedAt = at
	}
	anns := containersOf(p)
	statuses := map[string]corev1.ContainerStatus{}
	for _, s := range append(append([]corev1.ContainerStatus{}, p.Status.InitContainerStatuses...), p.Status.ContainerStatuses...) {
		statuses[s.Name] = s
	}
	probed := map[string]bool{}
	images := map[string]string{}
	for _, c := range append(append([]corev1.Container{}, p.Spec.InitContainers...), p.Spec.Containers...) {
		probed[c.Name] = c.ReadinessProbe != nil
		images[c.Name] = c.Image
	}
	ended := p.Status.Phase == corev1.PodFailed || p.Status.Phase == corev1.PodSucceeded
	// Being deleted: it takes no new work and will not run again. (The
	// reconciler knows its own deletions and leaves them be.)
	deleting := p.DeletionTimestamp != nil
	for _, a := range anns {
		cs := task.ContainerState{Name: a.Name, ID: string(p.UID) + "/" + a.Name, Image: images[a.Name], State: "created", Health: "none",
			Essential: a.Essential, Ports: map[string]string{}, LogGroup: a.LogGroup, LogStream: a.LogStream}
		s, ok := statuses[a.Name]
		switch {
		case ok && s.State.Running != nil:
			cs.State = "running"
		case ok && s.State.Terminated != nil:
			cs.State, cs.ExitCode = "exited", int(s.State.Terminated.ExitCode)
		case ended:
			// Evicted, or its node lost: it will not run again.
			cs.State, cs.ExitCode = "exited", 137
		}
		if deleting && cs.State == "running" {
			cs.State = "exited"
		}
		if probed[a.Name] && cs.State == "running" {
			cs.Health = "starting"
			if s.Ready {
				cs.Health = "healthy"
			}
		}
		if t.Address != "" {
			for _, port := range strings.Split(a.Ports, ",") {
				if n, _, ok := strings.Cut(port, "/"); ok && n != "" {
					cs.Ports[port] = net.JoinHostPort(t.Address, n)
				}
			}
		}
		t.Containers = append(t.Containers, cs)
	}
	sort.Slice(t.Containers, func(i, j int) bool { return t.Containers[i].Name < t.Containers[j].Name })
	return t
}

// containersOf is what the pod's annotation says of its containers. A pod
// whose annotation was lost or edited still lists its containers, from its
// spec, each essential: a task of no containers would count as running
// and never be replaced.
func containersOf(p *corev1.Pod) []podContainer {
	var anns []podContainer
	if err := json.Unmarshal([]byte(p.Annotations[annContainers]), &anns); err == nil && len(anns) > 0 {
		return anns
	}
	for _, c := range p.Spec.Containers {
		var ports []string
		for _, cp := range c.Ports {
			ports = append(ports, fmt.Sprintf("%d/%s", cp.ContainerPort, strings.ToLower(string(cp.Protocol))))
		}
		l := p.Labels
		group, stream := task.LogNames(l[task.LabelApp], l[task.LabelEnv], l[task.LabelService], l[task.LabelTask], taskdef.Container{Name: c.Name})
		anns = append(anns, podContainer{Name: c.Name, Essential: true, Ports: strings.Join(ports, ","), LogGroup: group, LogStream: stream})
	}
	return anns
}

// HaltTask deletes the pod with its grace period (the containers'
// stopTimeout) and waits until it is gone; its output was followed live.
func (r *Runtime) HaltTask(ctx context.Context, t task.Task) error {
	pods := r.cs.CoreV1().Pods(r.namespace)
	p, err := pods.Get(ctx, podName(t.ID), metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := pods.Delete(ctx, p.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &p.UID}}); err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		return fmt.Errorf("delete pod %s: %w", p.Name, err)
	}
	grace := 30 * time.Second
	if g := p.Spec.TerminationGracePeriodSeconds; g != nil {
		grace = time.Duration(*g) * time.Second
	}
	deadline := time.Now().Add(grace + 15*time.Second)
	for time.Now().Before(deadline) {
		q, err := pods.Get(ctx, p.Name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) || (err == nil && q.UID != p.UID) {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("pod %s was still there %s after its deletion", p.Name, grace+15*time.Second)
}

// RemoveTask removes the pod and its secret, at once.
func (r *Runtime) RemoveTask(ctx context.Context, t task.Task) error { return r.remove(ctx, t.ID) }

func (r *Runtime) remove(ctx context.Context, id string) error {
	zero := int64(0)
	var errs []error
	if err := r.cs.CoreV1().Pods(r.namespace).Delete(ctx, podName(id), metav1.DeleteOptions{GracePeriodSeconds: &zero}); err != nil && !apierrors.IsNotFound(err) {
		errs = append(errs, fmt.Errorf("delete pod %s: %w", podName(id), err))
	}
	if err := r.cs.CoreV1().Secrets(r.namespace).Delete(ctx, podName(id), metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
		errs = append(errs, fmt.Errorf("delete secret %s: %w", podName(id), err))
	}
	return errors.Join(errs...)
}

// Failure reads why a task stopped from its pod: the essential container
// that ended (exit code, OOM kill, the kubelet's message), a failed
// liveness check from the pod's events, and the container's last lines.
func (r *Runtime) Failure(ctx context.Context, t task.Task) *task.Failure {
	p, err := r.cs.CoreV1().Pods(r.namespace).Get(ctx, podName(t.ID), metav1.GetOptions{})
	if err != nil {
		return nil
	}
	essential := map[string]bool{}
	for _, a := range containersOf(p) {
		essential[a.Name] = a.Essential
	}
	var pick *corev1.ContainerStatus
	statuses := append(append([]corev1.ContainerStatus{}, p.Status.InitContainerStatuses...), p.Status.ContainerStatuses...)
	for i := range statuses {
		s := &statuses[i]
		if s.State.Terminated != nil && (pick == nil || essential[s.Name] && !essential[pick.Name] ||
			pick.State.Terminated.ExitCode == 0 && s.State.Terminated.ExitCode != 0 && essential[s.Name] == essential[pick.Name]) {
			pick = s
		}
	}
	if pick == nil {
		switch {
		case p.Status.Reason != "": // evicted
			return &task.Failure{Kind: task.Exited, Task: t.ID, Container: "(pod)", Essential: true, ExitCode: 137, EngineError: p.Status.Reason + ": " + p.Status.Message}
		case p.DeletionTimestamp != nil:
			return &task.Failure{Kind: task.Exited, Task: t.ID, Container: "(pod)", Essential: true, EngineError: "its pod was deleted outside Slipway (kubectl delete, a node drained)"}
		}
		return nil
	}
	term := pick.State.Terminated
	f := &task.Failure{Kind: task.Exited, Task: t.ID, Container: pick.Name, Essential: essential[pick.Name], ExitCode: int(term.ExitCode),
		OOMKilled: term.Reason == "OOMKilled"}
	for _, c := range append(append([]corev1.Container{}, p.Spec.InitContainers...), p.Spec.Containers...) {
		if c.Name == pick.Name {
			if lim, ok := c.Resources.Limits[corev1.ResourceMemory]; ok {
				f.MemoryLimit = lim.Value()
			}
		}
	}
	if term.Reason != "" && term.Reason != "Error" && term.Reason != "Completed" && term.Reason != "OOMKilled" {
		f.EngineError = term.Reason
	}
	if ev, err := r.cs.CoreV1().Events(r.namespace).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=" + p.Name}); err == nil {
		for _, e := range ev.Items {
			if e.Reason == "Unhealthy" && strings.HasPrefix(e.Message, "Liveness probe failed") {
				f.Kind, f.Health = task.Unhealthy, strings.TrimSpace(strings.TrimPrefix(e.Message, "Liveness probe failed:"))
			}
		}
	}
	tail := int64(task.FailureOutputLines)
	if rc, err := r.cs.CoreV1().Pods(r.namespace).GetLogs(p.Name, &corev1.PodLogOptions{Container: pick.Name, TailLines: &tail}).Stream(ctx); err == nil {
		sc := bufio.NewScanner(io.LimitReader(rc, 64<<10))
		for sc.Scan() {
			if line := strings.TrimSpace(sc.Text()); line != "" {
				f.Output = append(f.Output, truncate(line, 512))
			}
		}
		rc.Close()
	}
	return f
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// Usage: the metrics API is an add-on (metrics-server) a cluster may not
// run; CPU and memory auto scaling say so, request counts still work.
func (r *Runtime) Usage(ctx context.Context, t task.Task) (task.Usage, error) {
	return task.Usage{}, task.ErrNoUsage
}

// MemoryMiB: the scheduler places pods by their requests.
func (r *Runtime) MemoryMiB(ctx context.Context) (int, error) { return 0, task.ErrPlacedByEngine }

// CheckMemory: the scheduler refuses what does not fit (see started).
func (r *Runtime) CheckMemory(ctx context.Context, need, reserved int) error { return nil }

// Watch follows the installation's pods and calls changed when one's
// containers stop, become ready or not, or it goes.
func (r *Runtime) Watch(ctx context.Context, changed func(), up func(bool)) {
	seen := map[types.UID]string{}
	for ctx.Err() == nil {
		w, err := r.stream.CoreV1().Pods(r.namespace).Watch(ctx, metav1.ListOptions{LabelSelector: r.selector(nil)})
		if err == nil {
			changed() // whatever happened while it was closed
			up(true)
		stream:
			for {
				select {
				case ev, ok := <-w.ResultChan():
					if !ok {
						break stream
					}
					p, isPod := ev.Object.(*corev1.Pod)
					if !isPod {
						continue
					}
					sig := signature(p)
					switch {
					case ev.Type == watch.Deleted:
						delete(seen, p.UID)
						changed()
					case ev.Type == watch.Added && seen[p.UID] == "":
						seen[p.UID] = sig // its starter knows
					case seen[p.UID] != sig:
						seen[p.UID] = sig
						changed()
					}
				case <-ctx.Done():
					w.Stop()
					return
				}
			}
			w.Stop()
			up(false)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(2 * time.Second):
		}
	}
}

// signature sums up what the reconciler acts on in a pod's status.
func signature(p *corev1.Pod) string {
	var b strings.Builder
	b.WriteString(string(p.Status.Phase))
	if p.DeletionTimestamp != nil {
		b.WriteString("|deleting")
	}
	for _, s := range p.Status.ContainerStatuses {
		state := "w"
		if s.State.Running != nil {
			state = "r"
		} else if s.State.Terminated != nil {
			state = "t"
		}
		fmt.Fprintf(&b, "|%s:%s:%t", s.Name, state, s.Ready)
	}
	return b.String()
}

// Logs streams a container's output from the kubelet. The API takes a
// start time to the second: lines at or before since are skipped here.
func (r *Runtime) Logs(ctx context.Context, t task.Task, c task.ContainerState, since time.Time, follow bool, stdout, stderr io.Writer) error {
	opts := &corev1.PodLogOptions{Container: c.Name, Follow: follow, Timestamps: true}
	if !since.IsZero() {
		st := metav1.NewTime(since.Truncate(time.Second))
		opts.SinceTime = &st
	}
	client := r.cs
	if follow {
		client = r.stream
	}
	rc, err := client.CoreV1().Pods(r.namespace).GetLogs(podName(t.ID), opts).Stream(ctx)
	if err != nil {
		return err
	}
	defer rc.Close()
	// Read in pieces: a container may write gigabytes without a newline,
	// and the collector cuts long lines itself; a line's time is at its start.
	br := bufio.NewReaderSize(rc, 64<<10)
	lineStart, skip := true, false
	for {
		chunk, err := br.ReadSlice('\n')
		if len(chunk) > 0 {
			if lineStart {
				skip = false
				if !since.IsZero() {
					if ts, _, ok := strings.Cut(string(chunk[:min(len(chunk), 40)]), " "); ok {
						if at, perr := time.Parse(time.RFC3339Nano, ts); perr == nil && !at.After(since) {
							skip = true
						}
					}
				}
			}
			if !skip {
				if _, werr := stdout.Write(chunk); werr != nil {
					return werr
				}
			}
			lineStart = chunk[len(chunk)-1] == '\n'
		}
		switch {
		case err == nil || errors.Is(err, bufio.ErrBufferFull):
		case err == io.EOF:
			return nil
		default:
			return err
		}
	}
}

// Running reports whether the container runs in the task's pod.
func (r *Runtime) Running(ctx context.Context, t task.Task, c task.ContainerState) bool {
	p, err := r.cs.CoreV1().Pods(r.namespace).Get(ctx, podName(t.ID), metav1.GetOptions{})
	if err != nil || string(p.UID)+"/"+c.Name != c.ID {
		return false
	}
	for _, s := range p.Status.ContainerStatuses {
		if s.Name == c.Name {
			return s.State.Running != nil
		}
	}
	return false
}

// pullSecretName is the pull secret of this runtime's environment: one
// per environment, since environments may share a namespace and each
// has a token of its own.
func (r *Runtime) pullSecretName() string {
	if r.App == "" {
		return pullSecretPrefix
	}
	return pullSecretPrefix + "-" + r.App + "-" + r.Env
}

// Forget deletes what the runtime keeps in the namespace besides tasks
// (the pull secret), once its environment is gone.
func (r *Runtime) Forget(ctx context.Context) error {
	err := r.cs.CoreV1().Secrets(r.namespace).Delete(ctx, r.pullSecretName(), metav1.DeleteOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}

// ensurePullSecret keeps the namespace's pull secret for Slipway's
// registry current, when the task's images come from it.
func (r *Runtime) ensurePullSecret(ctx context.Context, spec task.Spec) (bool, error) {
	if r.Registry == nil {
		return false, nil
	}
	reg := r.Registry()
	uses := false
	for _, c := range spec.Def.ContainerDefinitions {
		uses = uses || (reg.Host != "" && strings.HasPrefix(c.Image, reg.Host+"/"))
	}
	if !uses || reg.Token == "" {
		return false, nil
	}
	cfg, _ := json.Marshal(map[string]any{"auths": map[string]any{reg.Host: map[string]string{
		"username": reg.User, "password": reg.Token, "auth": base64.StdEncoding.EncodeToString([]byte(reg.User + ":" + reg.Token))}}})
	r.pullMu.Lock()
	defer r.pullMu.Unlock()
	if r.pullAuth == string(cfg) {
		return true, nil
	}
	secrets := r.cs.CoreV1().Secrets(r.namespace)
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: r.pullSecretName(), Labels: map[string]string{task.LabelManaged: "1"}},
		Type: corev1.SecretTypeDockerConfigJson, Data: map[string][]byte{corev1.DockerConfigJsonKey: cfg}}
	if r.Installation != "" {
		s.Labels[task.LabelInstallation] = r.Installation
	}
	if r.App != "" {
		s.Labels[task.LabelApp], s.Labels[task.LabelEnv] = r.App, r.Env
	}
	_, err := secrets.Update(ctx, s, metav1.UpdateOptions{})
	if apierrors.IsNotFound(err) {
		_, err = secrets.Create(ctx, s, metav1.CreateOptions{})
	}
	if err != nil {
		return false, fmt.Errorf("keep the registry's pull secret %s: %w", r.pullSecretName(), err)
	}
	r.pullAuth = string(cfg)
	return true, nil
}
