// Package sandbox runs what a repository's files make Slipway execute —
// build phases, invoke commands, deployment hooks — in a container that
// sees only its own workspace, its app's build home and, read-only, the
// host's toolchains. It never sees the data directory (tokens, master key,
// database, other apps' workspaces, artifacts, caches), the server's
// process or the Docker engine, unless an admin gave the app Docker access.
package sandbox

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/docker/docker/api/types/mount"
	"github.com/slipway-dev/slipway/internal/container"
)

// Paths inside the sandbox.
const (
	// Root is where the workspace (the action's directory) is mounted.
	Root = "/slipway"
	// Home is the app's build home: caches a build keeps (Go's module and
	// build caches, ~/.npm …) persist there between that app's builds only.
	Home = "/home/build"
)

// BuildUID is the identity commands run as when the server runs as root:
// nobody, which owns nothing on the host.
const BuildUID = 65534

// Options say what one sandbox may reach.
type Options struct {
	// Image is the action's own image; "" is Slipway's default build image
	// with the host's toolchains mounted read-only.
	Image string
	// Workspace is the host directory mounted read-write at Root.
	Workspace string
	// HomeDir is the host directory mounted read-write at Home ("": none).
	HomeDir string
	// Docker mounts the engine's socket: equivalent to root on the host,
	// so only an admin's per-app setting turns it on.
	Docker bool
	// Hide lists host paths masked with an empty directory should a
	// mounted host directory contain them (the data directory).
	Hide   []string
	Labels map[string]string
	// GoCacheSeed seeds a new HomeDir's Go build cache (see GoCacheSeed).
	GoCacheSeed string
	// Log hears what Start did beyond starting the container.
	Log io.Writer
}

// Start makes the sandbox: it hands the workspace's contents and the home
// to the build identity and starts the container. Remove the box when done.
func Start(ctx context.Context, eng *container.Engine, o Options) (*container.Box, error) {
	image := o.Image
	if image == "" {
		var err error
		if image, err = DefaultImage(ctx, eng); err != nil {
			return nil, err
		}
	}
	if o.Docker {
		if err := writeDockerShim(o.Workspace, o.Labels); err != nil {
			return nil, err
		}
	}
	fresh, err := handOver(o.Workspace, o.HomeDir)
	if err != nil {
		return nil, err
	}
	// Only a home no build has used yet is seeded: the server then
	// touches nothing a build made.
	if fresh && o.Image == "" {
		n, err := seedGoCache(o.HomeDir, o.GoCacheSeed)
		if err != nil {
			return nil, err
		}
		if n > 0 && o.Log != nil {
			fmt.Fprintf(o.Log, "[slipway] New build home: its Go build cache starts from the server's (%d entries, shared read-only)\n", n)
		}
	}
	mounts := []mount.Mount{{Type: mount.TypeBind, Source: o.Workspace, Target: Root}}
	if o.HomeDir != "" {
		mounts = append(mounts, mount.Mount{Type: mount.TypeBind, Source: o.HomeDir, Target: Home})
	}
	var sources []string
	if o.Image == "" {
		for _, p := range hostTools() {
			mounts = append(mounts, mount.Mount{Type: mount.TypeBind, Source: p, Target: p, ReadOnly: true})
			sources = append(sources, p)
		}
	}
	for _, h := range o.Hide {
		// The path as mounts see it: absolute, links resolved.
		if abs, err := filepath.Abs(h); err == nil {
			h = abs
		}
		if real, err := filepath.EvalSymlinks(h); err == nil {
			h = real
		}
		for _, s := range sources {
			if h == s || strings.HasPrefix(h, s+"/") {
				mounts = append(mounts, mount.Mount{Type: mount.TypeTmpfs, Target: h, TmpfsOptions: &mount.TmpfsOptions{SizeBytes: 1 << 20}})
				break
			}
		}
	}
	// An action's own image runs as the build user without capabilities
	// too: as root with Docker's default ones it could write the seeded
	// cache files and sniff loopback traffic.
	spec := container.BoxSpec{Image: image, Mounts: mounts, WorkDir: Root + "/src", Labels: o.Labels, HostNetwork: true,
		User: User(), DropAllCaps: true}
	if o.Docker {
		sock, gid, err := dockerSocket()
		if err != nil {
			return nil, err
		}
		mounts = append(mounts, mount.Mount{Type: mount.TypeBind, Source: sock, Target: "/var/run/docker.sock"})
		spec.Mounts = mounts
		spec.GroupAdd = []string{fmt.Sprint(gid)}
	} else {
		spec.Mounts = mounts
	}
	return eng.StartBox(ctx, spec)
}

// User is the uid:gid commands run as: nobody when the server is root
// (which then hands the workspace over), else the server's own user, the
// only one whose files it can give.
func User() string {
	if os.Geteuid() == 0 {
		return fmt.Sprintf("%d:%d", BuildUID, BuildUID)
	}
	return fmt.Sprintf("%d:%d", os.Geteuid(), os.Getegid())
}

// handOver gives the workspace's contents (not the directory itself, so a
// build cannot swap its src for a link the server would then follow) and
// the home directory to the build identity.
func handOver(workspace, home string) (fresh bool, err error) {
	if err := os.Chmod(workspace, 0o755); err != nil {
		return false, err
	}
	if home != "" {
		if _, err := os.Lstat(home); os.IsNotExist(err) {
			fresh = true
		}
		if err := os.MkdirAll(home, 0o700); err != nil {
			return false, fmt.Errorf("build home: %w", err)
		}
	}
	if os.Geteuid() != 0 {
		return fresh, nil
	}
	chown := func(path string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if path == workspace {
			return nil
		}
		return os.Lchown(path, BuildUID, BuildUID)
	}
	if err := filepath.WalkDir(workspace, chown); err != nil {
		return false, fmt.Errorf("hand the workspace to the build user: %w", err)
	}
	if home == "" {
		return fresh, nil
	}
	if fi, err := os.Stat(home); err == nil {
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Uid == BuildUID {
			return fresh, nil // handed over by an earlier build; its files are the build's
		}
	}
	home = filepath.Clean(home)
	if err := filepath.WalkDir(home, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if linkedElsewhere(d) {
			return nil // a seeded cache file: it must stay the server's, read-only to builds
		}
		return os.Lchown(path, BuildUID, BuildUID)
	}); err != nil {
		return false, fmt.Errorf("hand the build home to the build user: %w", err)
	}
	return fresh, nil
}

// linkedElsewhere is true for a regular file with more than one name.
func linkedElsewhere(d fs.DirEntry) bool {
	if !d.Type().IsRegular() {
		return false
	}
	fi, err := d.Info()
	if err != nil {
		return false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && st.Nlink > 1
}

// dockerSocket is the engine's Unix socket and its group.
func dockerSocket() (string, uint32, error) {
	sock := "/var/run/docker.sock"
	if h := os.Getenv("DOCKER_HOST"); h != "" {
		p, ok := strings.CutPrefix(h, "unix://")
		if !ok {
			return "", 0, fmt.Errorf("docker access for builds needs the engine on a Unix socket; DOCKER_HOST is %s", h)
		}
		sock = p
	}
	fi, err := os.Stat(sock)
	if err != nil {
		return "", 0, fmt.Errorf("docker access for builds: %w", err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return "", 0, fmt.Errorf("docker access for builds: cannot read the owner of %s", sock)
	}
	return sock, st.Gid, nil
}
