package container

import (
	"strings"

	"context"
	"errors"
	"fmt"
	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/image"
	"io"
	"sync"
	"time"

	ctr "github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/pkg/stdcopy"
)

// BoxSpec describes a container that commands run in one after another: a
// build's phases, an invoke command, a deployment hook.
type BoxSpec struct {
	Image  string
	Shell  string // keeps the container alive; must exist in the image
	Mounts []mount.Mount
	// User is uid:gid ("": the image's user).
	User     string
	GroupAdd []string
	WorkDir  string
	Labels   map[string]string
	// HostNetwork shares the host's network, so commands reach the
	// registry and the services' listeners on loopback as the host does.
	HostNetwork bool
	// DropAllCaps drops every capability: nothing in the box needs one,
	// and the host's setuid programs (under a mounted /usr) stay inert.
	DropAllCaps bool
}

// Box is a running container made by StartBox; Remove it when done.
type Box struct {
	e      *Engine
	ID     string
	spec   BoxSpec
	remove sync.Once
}

// StartBox creates and starts a container that idles until commands are
// executed in it. Its main process is the shell waiting on an open stdin,
// so the image needs nothing but the shell.
func (e *Engine) StartBox(ctx context.Context, spec BoxSpec) (*Box, error) {
	shell := spec.Shell
	if shell == "" {
		shell = "sh"
	}
	pids := int64(4096) // a fork bomb stops here, not at the host's limit
	hc := &ctr.HostConfig{
		Mounts:      spec.Mounts,
		GroupAdd:    spec.GroupAdd,
		SecurityOpt: []string{"no-new-privileges"},
		Resources:   ctr.Resources{PidsLimit: &pids},
		Init:        boolPtr(false),
	}
	if spec.HostNetwork {
		hc.NetworkMode = "host"
	}
	if spec.DropAllCaps {
		hc.CapDrop = []string{"ALL"}
	}
	create, cancel := CreateContext(ctx)
	defer cancel()
	created, err := e.cli.ContainerCreate(create, &ctr.Config{
		Image: spec.Image, Cmd: []string{shell, "-c", "read -r _"}, OpenStdin: true,
		User: spec.User, WorkingDir: spec.WorkDir, Labels: spec.Labels,
	}, hc, nil, nil, "")
	if err != nil {
		return nil, fmt.Errorf("create container from %s: %w", spec.Image, err)
	}
	b := &Box{e: e, ID: created.ID, spec: spec}
	if err := ctx.Err(); err != nil {
		b.Remove()
		return nil, err
	}
	if err := e.cli.ContainerStart(create, created.ID, ctr.StartOptions{}); err != nil {
		b.Remove()
		return nil, fmt.Errorf("start container from %s: %w", spec.Image, err)
	}
	return b, nil
}

func boolPtr(b bool) *bool { return &b }

// Exec runs args in the box with env and copies their output to log. When
// ctx ends first, the whole box is killed (every process in it) and Exec
// returns 137 with ctx's error.
func (b *Box) Exec(ctx context.Context, args, env []string, log io.Writer) (int, error) {
	return b.ExecInput(ctx, args, env, nil, log)
}

// ExecInput is Exec with stdin read from in (nil: none): a build's shell
// reads its commands there.
func (b *Box) ExecInput(ctx context.Context, args, env []string, in io.Reader, log io.Writer) (int, error) {
	return b.ExecIO(ctx, args, env, in, log, log)
}

// ExecIO is ExecInput with standard output and standard error apart: a
// tar made in the box comes out on stdout, its complaints on stderr.
func (b *Box) ExecIO(ctx context.Context, args, env []string, in io.Reader, stdout, stderr io.Writer) (int, error) {
	bg := context.WithoutCancel(ctx)
	ex, err := b.e.cli.ContainerExecCreate(bg, b.ID, ctr.ExecOptions{
		User: b.spec.User, Env: env, WorkingDir: b.spec.WorkDir, Cmd: args,
		AttachStdout: true, AttachStderr: true, AttachStdin: in != nil,
	})
	if err != nil {
		return 127, fmt.Errorf("exec in container: %w", err)
	}
	att, err := b.e.cli.ContainerExecAttach(bg, ex.ID, ctr.ExecAttachOptions{})
	if err != nil {
		return 127, fmt.Errorf("attach to exec: %w", err)
	}
	defer att.Close()
	if in != nil {
		go func() {
			_, _ = io.Copy(att.Conn, in)
			_ = att.CloseWrite() // end of input: the shell reads EOF
		}()
	}
	copied := make(chan error, 1)
	go func() {
		_, err := stdcopy.StdCopy(stdout, stderr, att.Reader)
		copied <- err
	}()
	// A process the commands left in the background may hold the output
	// open after they end: the exec's own state says when they are done.
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return b.stop(bg, ex.ID, att.Close, copied), ctx.Err()
		case err := <-copied:
			if err != nil && !errors.Is(err, io.EOF) {
				return 1, fmt.Errorf("read exec output: %w", err)
			}
			return b.exitCode(bg, ex.ID)
		case <-tick.C:
			ins, err := b.e.cli.ContainerExecInspect(bg, ex.ID)
			if err != nil || ins.Running {
				continue
			}
			select {
			case <-copied:
			case <-time.After(200 * time.Millisecond):
				att.Close() // what the background process writes later is not the phase's
				<-copied
			}
			return ins.ExitCode, nil
		}
	}
}

// stop ends the exec as a timeout ends a host build: SIGTERM to every
// process in the box but its idle main one (which signals cannot reach),
// then, after a grace period, SIGKILL to the whole box. It returns the
// exec's exit code: 143 when the commands ended on the SIGTERM.
func (b *Box) stop(ctx context.Context, execID string, closeStream func(), copied <-chan error) int {
	shell := b.spec.Shell
	if shell == "" {
		shell = "sh"
	}
	if term, err := b.e.cli.ContainerExecCreate(ctx, b.ID, ctr.ExecOptions{User: b.spec.User, Cmd: []string{shell, "-c", "kill -TERM -1"}}); err == nil {
		_ = b.e.cli.ContainerExecStart(ctx, term.ID, ctr.ExecStartOptions{Detach: true})
	}
	select {
	case <-copied:
	case <-time.After(StopGrace):
	}
	_ = b.e.cli.ContainerKill(ctx, b.ID, "KILL")
	closeStream()
	select {
	case <-copied:
	case <-time.After(2 * time.Second):
	}
	if ins, err := b.e.cli.ContainerExecInspect(ctx, execID); err == nil && !ins.Running && ins.ExitCode != 0 {
		return ins.ExitCode
	}
	return 137
}

// StopGrace is how long processes have between SIGTERM and SIGKILL.
var StopGrace = 3 * time.Second

func (b *Box) exitCode(ctx context.Context, execID string) (int, error) {
	for range 50 {
		ins, err := b.e.cli.ContainerExecInspect(ctx, execID)
		if err != nil {
			return 1, fmt.Errorf("inspect exec: %w", err)
		}
		if !ins.Running {
			return ins.ExitCode, nil
		}
		time.Sleep(20 * time.Millisecond) // the stream can close a moment before the engine records the exit
	}
	return 1, errors.New("exec output ended but its process still runs")
}

// Halt kills every process in the box and returns once they are all gone;
// the container itself stays until Remove, which can then run in the
// background: removing it (its file system unmounted) took the engine
// twice as long as the kill.
func (b *Box) Halt(ctx context.Context) error {
	ctx, cancel := CreateContext(ctx)
	defer cancel()
	// Asked before the kill, so the exit cannot be missed; a box that is
	// not running answers at once.
	done, failed := b.e.cli.ContainerWait(ctx, b.ID, ctr.WaitConditionNotRunning)
	if err := b.e.cli.ContainerKill(ctx, b.ID, "KILL"); err != nil && !cerrdefs.IsConflict(err) {
		return fmt.Errorf("kill the build container: %w", err)
	}
	select {
	case <-done:
		return nil
	case err := <-failed:
		return fmt.Errorf("wait for the build container: %w", err)
	}
}

// Remove kills and removes the box, even when the caller's context ended.
// Callers remove it early and again on their way out: only the first
// call goes to the engine.
func (b *Box) Remove() {
	b.remove.Do(func() {
		ctx, cancel := CreateContext(context.Background())
		defer cancel()
		_ = b.e.cli.ContainerRemove(ctx, b.ID, ctr.RemoveOptions{Force: true})
	})
}

// RemoveLabelled removes every container that carries all the labels
// given (each "key" or "key=value") and says how many went.
func (e *Engine) RemoveLabelled(ctx context.Context, labels ...string) (int, error) {
	f := filters.NewArgs()
	for _, l := range labels {
		f.Add("label", l)
	}
	cs, err := e.cli.ContainerList(ctx, ctr.ListOptions{All: true, Filters: f})
	if err != nil {
		return 0, fmt.Errorf("list containers: %w", err)
	}
	var errs []error
	for _, c := range cs {
		if err := e.cli.ContainerRemove(ctx, c.ID, ctr.RemoveOptions{Force: true}); err != nil {
			errs = append(errs, err)
		}
	}
	return len(cs) - len(errs), errors.Join(errs...)
}

// RemoveAppImages removes the engine's images of app made by this
// installation (they carry both labels: the image action's and, through
// the docker shim, a buildspec's own docker build) and those tagged under
// registryHost/app, and says how many went.
func (e *Engine) RemoveAppImages(ctx context.Context, app, installation, registryHost string) (int, error) {
	imgs, err := e.cli.ImageList(ctx, image.ListOptions{All: true})
	if err != nil {
		return 0, fmt.Errorf("list images: %w", err)
	}
	n := 0
	var errs []error
	for _, img := range imgs {
		ours := img.Labels[LabelApp] == app && img.Labels[LabelInstallation] == installation && installation != ""
		var refs []string
		for _, tag := range img.RepoTags {
			if registryHost != "" && (strings.HasPrefix(tag, registryHost+"/"+app+":") || strings.HasPrefix(tag, registryHost+"/"+app+"/")) {
				refs = append(refs, tag)
			}
		}
		switch {
		case ours:
			refs = []string{img.ID} // every tag of it
		case len(refs) == 0:
			continue
		}
		for _, ref := range refs {
			if _, err := e.cli.ImageRemove(ctx, ref, image.RemoveOptions{Force: true, PruneChildren: true}); err != nil && !cerrdefs.IsNotFound(err) {
				errs = append(errs, fmt.Errorf("remove image %s: %w", ref, err))
				continue
			}
		}
		n++
	}
	return n, errors.Join(errs...)
}

// ImageLabels returns the labels of a local image.
func (e *Engine) ImageLabels(ctx context.Context, ref string) (map[string]string, error) {
	img, err := e.cli.ImageInspect(ctx, ref)
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", ref, err)
	}
	if img.Config == nil {
		return nil, nil
	}
	return img.Config.Labels, nil
}
