// Package task runs ECS-style tasks — the containers of one task definition
// on a Docker network of their own — and reads their state back from the
// engine. Every container and network carries labels naming app,
// environment, service, task and revision, so nothing needs to be
// remembered elsewhere to find them again after a restart.
package task

import (
	"context"
	"crypto/rand"
	"encoding/hex"
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

	cerrdefs "github.com/containerd/errdefs"
	ctr "github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/registry"
	"github.com/docker/docker/client"
	"github.com/docker/go-connections/nat"

	"github.com/slipway-dev/slipway/internal/container"
	"github.com/slipway-dev/slipway/internal/taskdef"
)

// Labels Slipway puts on what it creates.
const (
	LabelManaged = "slipway.managed"
	// LabelInstallation: servers sharing one Docker engine never adopt or
	// stop each other's tasks.
	LabelInstallation = container.LabelInstallation
	LabelApp          = container.LabelApp
	LabelEnv          = "slipway.env"
	LabelService      = "slipway.service"
	LabelTask         = "slipway.task"
	LabelFamily       = "slipway.family"
	LabelRevision     = "slipway.revision"
	LabelContainer    = "slipway.container"
	LabelEssential    = "slipway.essential"
	LabelGroup        = "slipway.group" // the deployment's task set (blue/green)
	// LabelGeneration tells apart tasks of one revision in one group: a
	// rolling deployment of the revision already running replaces them.
	LabelGeneration = "slipway.generation"
	// LabelCreated dates a task to the nanosecond (the engine's listing
	// dates containers to the second), so "newest first" holds for tasks
	// started within one second.
	LabelCreated = "slipway.created"
	// LabelLogGroup and LabelLogStream name where a container's output is
	// kept (see LogNames).
	LabelLogGroup  = "slipway.log-group"
	LabelLogStream = "slipway.log-stream"
)

// Spec is a task to start.
type Spec struct {
	// ID is the task's id; "" makes one.
	ID                string
	App, Env, Service string
	Group             string
	Family            string
	Revision          int
	Generation        int64 // 0 for a set's first tasks of a revision
	Def               *taskdef.TaskDef
	// Secrets maps each container's secret names to their values.
	Secrets map[string]map[string]string
}

// ContainerState is one container of a task.
type ContainerState struct {
	Name      string `json:"name"`
	ID        string `json:"id"`
	Image     string `json:"image"`
	State     string `json:"state"`  // created, running, exited
	Health    string `json:"health"` // healthy, unhealthy, starting, none
	ExitCode  int    `json:"exit_code"`
	Essential bool   `json:"essential"`
	// Ports maps "containerPort/tcp" to the loopback host address.
	Ports map[string]string `json:"ports,omitempty"`
	// LogGroup and LogStream name where its output is kept.
	LogGroup  string `json:"log_group,omitempty"`
	LogStream string `json:"log_stream,omitempty"`
	// declared is its own ports as LabelPorts lists them.
	declared string
}

// Task is a running (or stopped) task as the engine reports it.
type Task struct {
	ID string `json:"id"`
	// Runtime is the Backend.Key of the backend that listed it.
	Runtime    string           `json:"runtime,omitempty"`
	App        string           `json:"app"`
	Env        string           `json:"environment"`
	Service    string           `json:"service"`
	Group      string           `json:"group,omitempty"`
	Family     string           `json:"family"`
	Revision   int              `json:"revision"`
	Generation int64            `json:"generation,omitempty"`
	Containers []ContainerState `json:"containers"`
	CreatedAt  time.Time        `json:"created_at"`
	// Address is the task's own address on its environment's network.
	Address string `json:"address,omitempty"`
	// ReservedMemoryMiB is what its task definition reserves.
	ReservedMemoryMiB int `json:"reserved_memory_mib,omitempty"`
	// holder is the container holding the namespace of a task of several
	// containers; not one of the task definition's, so not listed.
	holder *ContainerState
	// legacy: started before tasks shared their environment's network, it
	// has a network of its own.
	legacy bool
}

// Status summarises a task: RUNNING while every essential container runs,
// STOPPED once one has exited.
func (t Task) Status() string {
	if h := t.holder; h != nil && h.State != "running" {
		// Without it the containers lose their network: the whole task goes.
		if h.State == "created" {
			return "PROVISIONING"
		}
		return "STOPPED"
	}
	for _, c := range t.Containers {
		if c.Essential && c.State != "running" {
			if c.State == "created" {
				return "PROVISIONING"
			}
			return "STOPPED"
		}
	}
	return "RUNNING"
}

// Health is HEALTHY when every container with a health check passes it,
// UNHEALTHY when one fails, UNKNOWN while starting or without checks.
func (t Task) Health() string {
	health := "UNKNOWN"
	for _, c := range t.Containers {
		switch c.Health {
		case "unhealthy":
			return "UNHEALTHY"
		case "starting":
			return "UNKNOWN"
		case "healthy":
			health = "HEALTHY"
		}
	}
	return health
}

// HasHealthCheck reports whether any container has a health check of its
// own: without one, its health is UNKNOWN by definition (as on ECS), not
// because a check has not answered yet.
func (t Task) HasHealthCheck() bool {
	for _, c := range t.Containers {
		if c.Health != "none" {
			return true
		}
	}
	return false
}

// StoppedReason names the essential container that ended the task.
func (t Task) StoppedReason() string {
	if h := t.holder; h != nil && h.State == "exited" {
		return fmt.Sprintf("the task's network namespace holder exited (code %d); its containers lost their network", h.ExitCode)
	}
	for _, c := range t.Containers {
		if c.Essential && c.State == "exited" {
			return fmt.Sprintf("essential container %s exited with code %d", c.Name, c.ExitCode)
		}
	}
	return ""
}

// Endpoint is the host address of a container port, if published.
func (t Task) Endpoint(containerName string, port int) string {
	for _, c := range t.Containers {
		if c.Name == containerName {
			return c.Ports[fmt.Sprintf("%d/tcp", port)]
		}
	}
	return ""
}

// Registry lets the runtime pull from the built-in registry.
type Registry struct {
	Host, User, Token string
}

// Runtime starts and inspects tasks on the Docker engine.
type Runtime struct {
	eng      *container.Engine
	cli      *client.Client
	Registry func() Registry
	// Installation labels every task this runtime starts and limits List to
	// them ("" sees every installation's tasks).
	Installation string

	netMu    sync.Mutex
	networks map[string]bool // environment networks known to exist
	memMiB   int             // the engine's memory, once read
}

// NewRuntime connects to the engine.
func NewRuntime(ctx context.Context) (*Runtime, error) {
	eng, err := container.Connect(ctx)
	if err != nil {
		return nil, err
	}
	return &Runtime{eng: eng, cli: eng.Client(), networks: map[string]bool{}}, nil
}

// ErrImage marks a failure to get the task's image.
var ErrImage = errors.New("image not found")

// NewTaskID makes a task id; callers that start a task may make it first,
// to know the task as theirs while it is being created.
func NewTaskID() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Start creates the task's containers in the environment's network and
// starts them in dependsOn order. On any failure everything created is
// removed again; running out of something is a *CapacityError.
func (r *Runtime) Start(ctx context.Context, spec Spec) (t Task, err error) {
	id := spec.ID
	if id == "" {
		id = NewTaskID()
	}
	labels := map[string]string{LabelManaged: "1", LabelApp: spec.App, LabelEnv: spec.Env, LabelService: spec.Service,
		LabelTask: id, LabelFamily: spec.Family, LabelRevision: strconv.Itoa(spec.Revision), LabelGroup: spec.Group,
		LabelCreated: time.Now().UTC().Format(time.RFC3339Nano), LabelReservedMemory: strconv.Itoa(spec.Def.ReservedMemoryMiB())}
	if r.Installation != "" {
		labels[LabelInstallation] = r.Installation
	}
	if spec.Generation != 0 {
		labels[LabelGeneration] = strconv.FormatInt(spec.Generation, 10)
	}
	// Creates outlive ctx so that the cleanup below knows all they made.
	create, cancel := container.CreateContext(ctx)
	defer cancel()
	defer func() {
		if err != nil {
			r.remove(context.WithoutCancel(ctx), id)
		}
	}()
	netName, err := r.envNetwork(create, spec.App, spec.Env)
	if err != nil {
		return t, err
	}
	for _, c := range spec.Def.ContainerDefinitions {
		if err := r.ensureImage(ctx, c.Image); err != nil {
			return t, err
		}
	}
	defs := spec.Def.ContainerDefinitions
	ids := map[string]string{}
	owner := ""
	if len(defs) > 1 {
		if owner, err = r.createPause(create, spec, id, netName, labels); err != nil {
			return t, fmt.Errorf("network namespace holder: %w", err)
		}
		if err := r.cli.ContainerStart(create, owner, ctr.StartOptions{}); err != nil {
			return t, classifyNetworkError(fmt.Errorf("start the network namespace holder: %w", err))
		}
	}
	for _, c := range defs {
		if err := ctx.Err(); err != nil {
			return t, err
		}
		cid, err := r.create(create, spec, c, id, netName, owner, labels)
		if err != nil {
			return t, fmt.Errorf("container %s: %w", c.Name, err)
		}
		ids[c.Name] = cid
	}
	started := map[string]bool{}
	for len(started) < len(ids) {
		progress := false
		for _, c := range defs {
			if started[c.Name] || !depsStarted(c, started) {
				continue
			}
			for _, d := range c.DependsOn {
				dep := taskdef.Container{Name: d.ContainerName}
				if def, ok := spec.Def.Container(d.ContainerName); ok {
					dep = *def
				}
				if err := r.waitCondition(ctx, id, ids[d.ContainerName], dep, d); err != nil {
					var f *Failure
					if errors.As(err, &f) {
						f.Mask(secretMasker(spec.Secrets))
					}
					return t, fmt.Errorf("container %s waits for %s to be %s: %w", c.Name, d.ContainerName, d.Condition, err)
				}
			}
			if err := ctx.Err(); err != nil {
				return t, err
			}
			if err := r.cli.ContainerStart(create, ids[c.Name], ctr.StartOptions{}); err != nil {
				if ctx.Err() != nil {
					return t, fmt.Errorf("start container %s: %w", c.Name, err)
				}
				if ce := classifyNetworkError(err); ce != err {
					return t, ce
				}
				// The engine's answer and the container's state say why:
				// read them before the cleanup removes it.
				f := r.containerFailure(ctx, id, c.Name, ids[c.Name], c.IsEssential(), NotStarted, err)
				f.Mask(secretMasker(spec.Secrets))
				return t, f
			}
			started[c.Name] = true
			progress = true
		}
		if !progress {
			return t, errors.New("dependsOn forms a cycle")
		}
	}
	return r.Get(ctx, id)
}

func depsStarted(c taskdef.Container, started map[string]bool) bool {
	for _, d := range c.DependsOn {
		if !started[d.ContainerName] {
			return false
		}
	}
	return true
}

// waitCondition waits for container dep (cid) of task taskID to meet d's
// condition; when it stopped short of it, the error is its *Failure.
func (r *Runtime) waitCondition(ctx context.Context, taskID, cid string, dep taskdef.Container, d taskdef.Dependency) error {
	deadline := time.Now().Add(3 * time.Minute)
	for time.Now().Before(deadline) {
		info, err := r.cli.ContainerInspect(ctx, cid)
		if err != nil {
			return err
		}
		st := info.State
		switch d.Condition {
		case "START":
			if st.Running || st.Status == "exited" {
				return nil
			}
		case "HEALTHY":
			if st.Health != nil && st.Health.Status == "healthy" {
				return nil
			}
			if !st.Running {
				return r.containerFailure(ctx, taskID, dep.Name, cid, dep.IsEssential(), Exited, nil)
			}
		case "COMPLETE":
			if st.Status == "exited" {
				return nil
			}
		case "SUCCESS":
			if st.Status == "exited" {
				if st.ExitCode == 0 {
					return nil
				}
				return r.containerFailure(ctx, taskID, dep.Name, cid, dep.IsEssential(), Exited, nil)
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	return errors.New("timed out after 3m")
}

func (r *Runtime) ensureImage(ctx context.Context, ref string) error {
	if _, err := r.cli.ImageInspect(ctx, ref); err == nil {
		return nil
	}
	opts := image.PullOptions{}
	if r.Registry != nil {
		reg := r.Registry()
		if reg.Host != "" && strings.HasPrefix(ref, reg.Host+"/") {
			auth, _ := registry.EncodeAuthConfig(registry.AuthConfig{Username: reg.User, Password: reg.Token, ServerAddress: reg.Host})
			opts.RegistryAuth = auth
		}
	}
	rc, err := r.cli.ImagePull(ctx, ref, opts)
	if err != nil {
		return fmt.Errorf("%w: %s: %v", ErrImage, ref, err)
	}
	defer rc.Close()
	if _, err := io.Copy(io.Discard, rc); err != nil {
		return fmt.Errorf("%w: %s: %v", ErrImage, ref, err)
	}
	if _, err := r.cli.ImageInspect(ctx, ref); err != nil {
		return fmt.Errorf("%w: %s", ErrImage, ref)
	}
	return nil
}

// create makes one container of a task. Without an owner it holds the
// task's network namespace itself (a task of one container); otherwise it
// joins the owner's.
func (r *Runtime) create(ctx context.Context, spec Spec, c taskdef.Container, id, netName, owner string, base map[string]string) (string, error) {
	labels := map[string]string{}
	for k, v := range base {
		labels[k] = v
	}
	labels[LabelContainer] = c.Name
	labels[LabelEssential] = strconv.FormatBool(c.IsEssential())
	labels[LabelPorts] = portSpec(c)
	labels[LabelLogGroup], labels[LabelLogStream] = LogNames(spec.App, spec.Env, spec.Service, id, c)
	var env []string
	for _, e := range c.Environment {
		env = append(env, e.Name+"="+e.Value)
	}
	for _, s := range c.Secrets {
		v, ok := spec.Secrets[c.Name][s.Name]
		if !ok {
			return "", fmt.Errorf("secret %s (%s) is not available", s.Name, s.ValueFrom)
		}
		env = append(env, s.Name+"="+v)
	}
	cfg := &ctr.Config{
		Image: c.Image, Env: env, Cmd: c.Command, Entrypoint: c.EntryPoint, WorkingDir: c.WorkingDirectory,
		User: c.User, Labels: labels,
	}
	if c.StopTimeout > 0 {
		st := c.StopTimeout
		cfg.StopTimeout = &st
	}
	if hc := c.HealthCheck; hc != nil {
		sec := func(v, def int) time.Duration {
			if v == 0 {
				v = def
			}
			return time.Duration(v) * time.Second
		}
		retries := hc.Retries
		if retries == 0 {
			retries = 3
		}
		cfg.Healthcheck = &ctr.HealthConfig{Test: hc.Command, Interval: sec(hc.Interval, 30), Timeout: sec(hc.Timeout, 5),
			Retries: retries, StartPeriod: time.Duration(hc.StartPeriod) * time.Second}
	}
	host := &ctr.HostConfig{NetworkMode: ctr.NetworkMode("container:" + owner)}
	var netCfg *network.NetworkingConfig
	if owner == "" {
		labels[LabelNetworkOwner] = ownerContainer
		host, netCfg = r.ownerConfig(spec, netName, cfg)
	}
	if c.CPU > 0 {
		host.NanoCPUs = int64(c.CPU) * 1e9 / 1024
	}
	if c.Memory > 0 {
		host.Memory = int64(c.Memory) << 20
	}
	if c.MemoryReservation > 0 {
		host.MemoryReservation = int64(c.MemoryReservation) << 20
	}
	created, err := r.cli.ContainerCreate(ctx, cfg, host, netCfg, nil, "slipway-"+id+"-"+c.Name)
	if err != nil {
		if cerrdefs.IsNotFound(err) && owner == "" {
			r.forgetNetwork(netName) // removed behind our back: the next start makes it again
		}
		return "", err
	}
	return created.ID, nil
}

// ownerConfig is what the holder of a task's network namespace gets: the
// environment's network with the service's name as an alias, the task's
// container names on loopback, and every port of the task; a port is
// published on the host only where a distinct hostPort is asked for
// (127.0.0.1 only), since the load balancer reaches the task's address.
func (r *Runtime) ownerConfig(spec Spec, netName string, cfg *ctr.Config) (*ctr.HostConfig, *network.NetworkingConfig) {
	exposed := nat.PortSet{}
	bindings := nat.PortMap{}
	for _, c := range spec.Def.ContainerDefinitions {
		for _, pm := range c.PortMappings {
			p := nat.Port(pm.Port())
			exposed[p] = struct{}{}
			if pm.HostPort != 0 && pm.HostPort != pm.ContainerPort {
				bindings[p] = []nat.PortBinding{{HostIP: "127.0.0.1", HostPort: strconv.Itoa(pm.HostPort)}}
			}
		}
	}
	cfg.ExposedPorts = exposed
	host := &ctr.HostConfig{NetworkMode: ctr.NetworkMode(netName), PortBindings: bindings, ExtraHosts: hostsEntries(spec.Def)}
	return host, &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{netName: {Aliases: []string{spec.Service}}}}
}

// createPause makes the holder of a multi-container task's namespace.
func (r *Runtime) createPause(ctx context.Context, spec Spec, id, netName string, base map[string]string) (string, error) {
	img, err := r.pauseImage(ctx)
	if err != nil {
		return "", err
	}
	labels := maps.Clone(base)
	labels[LabelContainer] = pauseName
	labels[LabelEssential] = "true"
	labels[LabelNetworkOwner] = ownerHolder
	cfg := &ctr.Config{Image: img, Labels: labels}
	host, netCfg := r.ownerConfig(spec, netName, cfg)
	// It holds nothing but the namespace: a small memory limit, no
	// capabilities, and a stop that kills at once (it ignores SIGTERM as
	// PID 1 without handlers would).
	host.Memory = 8 << 20
	host.CapDrop = []string{"ALL"}
	host.SecurityOpt = []string{"no-new-privileges"}
	zero := 0
	cfg.StopTimeout = &zero
	created, err := r.cli.ContainerCreate(ctx, cfg, host, netCfg, nil, "slipway-"+id+"-"+pauseName)
	if err != nil {
		if cerrdefs.IsNotFound(err) {
			r.forgetNetwork(netName)
		}
		return "", err
	}
	return created.ID, nil
}

// List returns the tasks whose containers carry all the given labels.
func (r *Runtime) List(ctx context.Context, match map[string]string) ([]Task, error) {
	f := filters.NewArgs(filters.Arg("label", LabelManaged+"=1"))
	if r.Installation != "" {
		f.Add("label", LabelInstallation+"="+r.Installation)
	}
	for k, v := range match {
		f.Add("label", k+"="+v)
	}
	cs, err := r.cli.ContainerList(ctx, ctr.ListOptions{All: true, Filters: f})
	if err != nil {
		return nil, fmt.Errorf("list containers: %w", err)
	}
	byTask := map[string]*Task{}
	var order []string
	owners := map[string]ctr.Summary{} // task id → its namespace's owner
	for _, c := range cs {
		id := c.Labels[LabelTask]
		t, ok := byTask[id]
		if !ok {
			rev, _ := strconv.Atoi(c.Labels[LabelRevision])
			gen, _ := strconv.ParseInt(c.Labels[LabelGeneration], 10, 64)
			mem, _ := strconv.Atoi(c.Labels[LabelReservedMemory])
			t = &Task{ID: id, Runtime: DockerKey, App: c.Labels[LabelApp], Env: c.Labels[LabelEnv], Service: c.Labels[LabelService], Group: c.Labels[LabelGroup],
				Family: c.Labels[LabelFamily], Revision: rev, Generation: gen, CreatedAt: time.Unix(c.Created, 0).UTC(), ReservedMemoryMiB: mem}
			if at, err := time.Parse(time.RFC3339Nano, c.Labels[LabelCreated]); err == nil {
				t.CreatedAt = at // tasks started before this label existed keep the engine's second
			}
			byTask[id] = t
			order = append(order, id)
		}
		cs := ContainerState{Name: c.Labels[LabelContainer], ID: c.ID, Image: c.Image, State: c.State, Health: "none",
			Essential: c.Labels[LabelEssential] != "false", Ports: map[string]string{},
			LogGroup: c.Labels[LabelLogGroup], LogStream: c.Labels[LabelLogStream]}
		if cs.LogGroup == "" || cs.LogStream == "" { // started before logs were kept
			cs.LogGroup, cs.LogStream = LogNames(t.App, t.Env, t.Service, t.ID, taskdef.Container{Name: cs.Name})
		}
		if strings.Contains(c.Status, "(healthy)") {
			cs.Health = "healthy"
		} else if strings.Contains(c.Status, "(unhealthy)") {
			cs.Health = "unhealthy"
		} else if strings.Contains(c.Status, "(health: starting)") {
			cs.Health = "starting"
		}
		if c.State == "exited" {
			// The listing says "Exited (137) 2 seconds ago": after every task
			// was killed, an inspect per container made one pass take seconds.
			if n, err := fmt.Sscanf(c.Status, "Exited (%d)", &cs.ExitCode); n != 1 || err != nil {
				if info, err := r.cli.ContainerInspect(ctx, c.ID); err == nil {
					cs.ExitCode = info.State.ExitCode
				}
			}
		}
		if c.Labels[LabelNetworkOwner] != "" {
			owners[id] = c
		} else if _, known := c.Labels[LabelPorts]; !known {
			t.legacy = true
			// Started in a network of its own, before tasks shared one
			// namespace: its ports are published on loopback.
			for _, p := range c.Ports {
				if p.PublicPort != 0 && (p.IP == "127.0.0.1" || p.IP == "") {
					cs.Ports[fmt.Sprintf("%d/%s", p.PrivatePort, p.Type)] = fmt.Sprintf("127.0.0.1:%d", p.PublicPort)
				}
			}
		}
		cs.declared = c.Labels[LabelPorts]
		if c.Labels[LabelNetworkOwner] == ownerHolder {
			h := cs
			t.holder = &h
			continue
		}
		t.Containers = append(t.Containers, cs)
	}
	for id, o := range owners {
		t := byTask[id]
		if o.NetworkSettings != nil {
			for _, n := range o.NetworkSettings.Networks {
				if n != nil && n.IPAddress != "" {
					t.Address = n.IPAddress
				}
			}
		}
		published := map[string]string{}
		for _, p := range o.Ports {
			if p.PublicPort != 0 && (p.IP == "127.0.0.1" || p.IP == "") {
				published[fmt.Sprintf("%d/%s", p.PrivatePort, p.Type)] = fmt.Sprintf("127.0.0.1:%d", p.PublicPort)
			}
		}
		for i := range t.Containers {
			c := &t.Containers[i]
			for _, p := range strings.Split(c.declared, ",") {
				port, _, _ := strings.Cut(p, "/")
				switch {
				case p == "":
				case t.Address != "":
					c.Ports[p] = net.JoinHostPort(t.Address, port)
				case published[p] != "":
					c.Ports[p] = published[p]
				}
			}
		}
	}
	out := make([]Task, 0, len(order))
	for _, id := range order {
		t := byTask[id]
		sort.Slice(t.Containers, func(i, j int) bool { return t.Containers[i].Name < t.Containers[j].Name })
		out = append(out, *t)
	}
	sort.Slice(out, func(i, j int) bool {
		return out[i].CreatedAt.Before(out[j].CreatedAt) || (out[i].CreatedAt.Equal(out[j].CreatedAt) && out[i].ID < out[j].ID)
	})
	return out, nil
}

// Get returns one task.
func (r *Runtime) Get(ctx context.Context, id string) (Task, error) {
	ts, err := r.List(ctx, map[string]string{LabelTask: id})
	if err != nil {
		return Task{}, err
	}
	if len(ts) == 0 {
		return Task{}, fmt.Errorf("task %s not found", id)
	}
	return ts[0], nil
}

// Stop stops a task's containers gracefully (each within its stopTimeout)
// and removes them and the task's network.
func (r *Runtime) Stop(ctx context.Context, id string) error {
	if err := r.Halt(ctx, id); err != nil {
		return err
	}
	return r.remove(ctx, id)
}

// Halt stops a task's running containers gracefully (each within its
// stopTimeout) and leaves them, with their output, for Remove: a log
// collector reads the last lines in between.
func (r *Runtime) Halt(ctx context.Context, id string) error {
	t, err := r.Get(ctx, id)
	if err != nil {
		return err
	}
	return r.HaltTask(ctx, t)
}

// HaltTask is Halt of a task as listed: no listing again, which the engine
// answers by going through all its containers (once per task stopped, when
// hundreds stop at once).
func (r *Runtime) HaltTask(ctx context.Context, t Task) error {
	var wg sync.WaitGroup
	for _, c := range t.Containers {
		if c.State == "running" {
			// Together, each within its own stopTimeout, as ECS stops a task.
			wg.Add(1)
			go func() {
				defer wg.Done()
				_ = r.cli.ContainerStop(ctx, c.ID, ctr.StopOptions{})
			}()
		}
	}
	wg.Wait()
	if h := t.holder; h != nil && h.State == "running" {
		_ = r.cli.ContainerStop(ctx, h.ID, ctr.StopOptions{}) // last: the others kept their network until they stopped
	}
	return nil
}

// Remove removes a task's containers and its network.
func (r *Runtime) Remove(ctx context.Context, id string) error { return r.remove(ctx, id) }

// RemoveTask removes the containers of a task as listed (see HaltTask), and
// the network of its own a task started by an earlier version had.
func (r *Runtime) RemoveTask(ctx context.Context, t Task) error {
	var errs []error
	ids := make([]string, 0, len(t.Containers)+1)
	for _, c := range t.Containers {
		ids = append(ids, c.ID)
	}
	if t.holder != nil {
		ids = append(ids, t.holder.ID)
	}
	for _, id := range ids {
		if err := r.cli.ContainerRemove(ctx, id, ctr.RemoveOptions{Force: true}); err != nil && !cerrdefs.IsNotFound(err) {
			errs = append(errs, err)
		}
	}
	if t.legacy {
		if err := r.cli.NetworkRemove(ctx, "slipway-"+t.ID); err != nil && !cerrdefs.IsNotFound(err) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (r *Runtime) remove(ctx context.Context, id string) error {
	f := filters.NewArgs(filters.Arg("label", LabelTask+"="+id))
	cs, err := r.cli.ContainerList(ctx, ctr.ListOptions{All: true, Filters: f})
	if err != nil {
		return err
	}
	var errs []error
	legacy := true
	for _, c := range cs {
		if err := r.cli.ContainerRemove(ctx, c.ID, ctr.RemoveOptions{Force: true}); err != nil && !cerrdefs.IsNotFound(err) {
			errs = append(errs, err)
		}
		_, shared := c.Labels[LabelPorts]
		legacy = legacy && !shared
	}
	if legacy { // a task started before tasks shared their environment's network had one of its own
		if err := r.cli.NetworkRemove(ctx, "slipway-"+id); err != nil && !cerrdefs.IsNotFound(err) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// LockedWriter lets several goroutines share one writer without mixing
// their writes: the demo's progress and the notices it receives.
type LockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

// NewLockedWriter serialises writes to w.
func NewLockedWriter(w io.Writer) *LockedWriter { return &LockedWriter{w: w} }

func (l *LockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

// Usage is what a task's running containers use: CPU time since they
// started, and memory now (less the page cache the kernel can reclaim, as
// `docker stats` counts it).
type Usage struct {
	CPU         time.Duration
	MemoryBytes uint64
}

// Usage reads the engine's one-shot statistics of the task's running containers.
func (r *Runtime) Usage(ctx context.Context, t Task) (Usage, error) {
	var u Usage
	for _, c := range t.Containers {
		if c.State != "running" {
			continue
		}
		resp, err := r.cli.ContainerStatsOneShot(ctx, c.ID)
		if err != nil {
			return Usage{}, fmt.Errorf("statistics of container %s: %w", c.Name, err)
		}
		var st ctr.StatsResponse
		err = json.NewDecoder(resp.Body).Decode(&st)
		resp.Body.Close()
		if err != nil {
			return Usage{}, fmt.Errorf("statistics of container %s: %w", c.Name, err)
		}
		u.CPU += time.Duration(st.CPUStats.CPUUsage.TotalUsage)
		mem := st.MemoryStats.Usage
		// cgroup v1 names the reclaimable cache total_inactive_file, v2 inactive_file.
		for _, k := range []string{"total_inactive_file", "inactive_file"} {
			if v, ok := st.MemoryStats.Stats[k]; ok && v < mem {
				mem -= v
				break
			}
		}
		u.MemoryBytes += mem
	}
	return u, nil
}
