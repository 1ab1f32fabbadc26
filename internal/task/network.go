package task

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"

	"github.com/slipway-dev/slipway/internal/taskdef"
)

// Task networking, as ECS's awsvpc mode and a Kubernetes pod have it: the
// containers of one task share one network namespace (they reach each other
// on localhost, and by container name, which the task's hosts file maps to
// 127.0.0.1), and the namespace has one address on a Docker network per app
// and environment. A network per task would spend one of the engine's
// address pools on every task (about 30 in all); a network per environment
// spends one per environment and keeps apps and environments apart, since
// the engine isolates its bridge networks from each other, while the tasks
// of one environment reach each other as they would in one VPC, the
// services' names resolving to their tasks' addresses.
//
// The namespace's owner is the task's only container, or for a task of
// several containers a holder that only waits (the "pause" container): any
// of theirs may exit while the others run. The load balancer reaches a
// task at its address, so no port is published on the host unless a port
// mapping asks for a distinct hostPort.

// Labels of task networking.
const (
	// LabelNetworkOwner marks the container that holds a task's network
	// namespace; LabelPorts lists a container's own ports ("8080/tcp,…"),
	// which the engine reports on the owner only.
	LabelNetworkOwner = "slipway.network-owner"
	LabelPorts        = "slipway.ports"
	// LabelReservedMemory is the memory (MiB) a task reserves, read back to
	// place the next one.
	LabelReservedMemory = "slipway.reserved-memory"
)

// Values of LabelNetworkOwner: the task's own container, or the holder
// that a task of several containers gets.
const (
	ownerContainer = "container"
	ownerHolder    = "holder"
)

// pauseName is the container name of a task's namespace holder.
const pauseName = "netns"

// NetworkName is the Docker network of app's environment env: readable,
// and unique per installation and name pair through the hash.
func (r *Runtime) NetworkName(app, env string) string {
	sum := sha256.Sum256([]byte(r.Installation + "\x00" + app + "\x00" + env))
	return fmt.Sprintf("slipway-%s-%s-%s", app, env, hex.EncodeToString(sum[:4]))
}

// envNetwork makes sure the environment's network exists and returns its name.
func (r *Runtime) envNetwork(ctx context.Context, app, env string) (string, error) {
	name := r.NetworkName(app, env)
	r.netMu.Lock()
	defer r.netMu.Unlock()
	if r.networks[name] {
		return name, nil
	}
	if _, err := r.cli.NetworkInspect(ctx, name, network.InspectOptions{}); err == nil {
		r.networks[name] = true
		return name, nil
	}
	labels := map[string]string{LabelManaged: "1", LabelApp: app, LabelEnv: env}
	if r.Installation != "" {
		labels[LabelInstallation] = r.Installation
	}
	if _, err := r.cli.NetworkCreate(ctx, name, network.CreateOptions{Driver: "bridge", Labels: labels}); err != nil && !cerrdefs.IsConflict(err) {
		return "", classifyNetworkError(fmt.Errorf("create the network of %s/%s: %w", app, env, err))
	}
	r.networks[name] = true
	return name, nil
}

// forgetNetwork drops a network from the cache after the engine said it
// does not exist (removed behind the runtime's back), so the next start
// makes it again.
func (r *Runtime) forgetNetwork(name string) {
	r.netMu.Lock()
	delete(r.networks, name)
	r.netMu.Unlock()
}

// classifyNetworkError names the engine's running out of address pools.
func classifyNetworkError(err error) error {
	if strings.Contains(err.Error(), "non-overlapping IPv4 address pool") || strings.Contains(err.Error(), "could not find an available") {
		return &CapacityError{Resource: ResourceNetwork, Detail: "the Docker engine's address pools are all in use: remove unused networks (docker network prune) or give the engine more pools (default-address-pools in daemon.json)", Err: err}
	}
	return err
}

// PruneNetworks removes the environment networks of this installation that
// no task uses any longer and whose app and environment keep reports
// false (the engine refuses to remove a network still in use).
func (r *Runtime) PruneNetworks(ctx context.Context, keep func(app, env string) bool) error {
	f := filters.NewArgs(filters.Arg("label", LabelManaged+"=1"))
	if r.Installation != "" {
		f.Add("label", LabelInstallation+"="+r.Installation)
	}
	nets, err := r.cli.NetworkList(ctx, network.ListOptions{Filters: f})
	if err != nil {
		return err
	}
	var errs []error
	for _, n := range nets {
		app, env := n.Labels[LabelApp], n.Labels[LabelEnv]
		if n.Labels[LabelTask] != "" || keep(app, env) {
			continue // a task's own network goes with its task
		}
		err := r.cli.NetworkRemove(ctx, n.ID)
		r.forgetNetwork(n.Name)
		if err != nil && !cerrdefs.IsNotFound(err) && !strings.Contains(err.Error(), "active endpoints") {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// hostsEntries map every container name of the task to the shared
// namespace's loopback, so containers that reached each other by name on
// a network of their own still do.
func hostsEntries(def *taskdef.TaskDef) []string {
	var out []string
	for _, c := range def.ContainerDefinitions {
		out = append(out, c.Name+":127.0.0.1")
	}
	return out
}

// portSpec is a container's own ports as LabelPorts keeps them.
func portSpec(c taskdef.Container) string {
	var ps []string
	for _, pm := range c.PortMappings {
		ps = append(ps, pm.Port())
	}
	return strings.Join(ps, ",")
}
