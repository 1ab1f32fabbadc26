package sandbox

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"sync"

	"github.com/slipway-dev/slipway/internal/container"
)

// LabelSandbox marks Slipway's default build image.
const LabelSandbox = "slipway.sandbox"

// topLinks are the top-level directories that merged-/usr systems make
// links into /usr; the image copies the host's links, and a host that has
// them as directories gets them mounted instead.
var topLinks = []string{"/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"}

// hostEtc are the few files under /etc that toolchains read: certificates
// (module proxies, git over HTTPS), Debian's alternatives (awk, editor …),
// the loader cache and name-service tables. Nothing secret: /etc itself,
// with shadow and the host's own configuration, stays out.
var hostEtc = []string{"/etc/alternatives", "/etc/ssl", "/etc/ca-certificates", "/etc/ld.so.cache",
	"/etc/nsswitch.conf", "/etc/protocols", "/etc/services", "/etc/localtime", "/etc/mime.types"}

// hostTools lists the host paths a default-image sandbox mounts read-only.
func hostTools() []string {
	out := []string{"/usr"}
	for _, p := range topLinks {
		if fi, err := os.Lstat(p); err == nil && fi.IsDir() {
			out = append(out, p)
		}
	}
	for _, p := range hostEtc {
		if _, err := os.Stat(p); err == nil {
			out = append(out, p)
		}
	}
	return out
}

// DefaultImage returns Slipway's default build image, importing it into
// the engine first if needed. It is made offline from a few entries —
// the host's /bin-style links, /tmp, a home and a passwd naming the build
// user — because everything else comes from the host's /usr, mounted
// read-only, so builds have the host's toolchains (go, git, bash, curl, the
// docker CLI) without an image pull.
func DefaultImage(ctx context.Context, eng *container.Engine) (string, error) {
	rootfs, err := rootFSOnce()
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(rootfs)
	ref := "slipway-build-sandbox:" + hex.EncodeToString(sum[:6])
	if err := eng.ImportOnce(ctx, ref, rootfs, []string{"LABEL " + LabelSandbox + "=1"}, "Slipway's default build image"); err != nil {
		return "", err
	}
	return ref, nil
}

// rootFSOnce is rootFS, made once per process: the host's layout does not
// change under a running server.
var rootFSOnce = sync.OnceValues(rootFS)

// rootFS is the default image's file system as a tar archive.
func rootFS() ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dir := func(name string, mode int64, uid int) error {
		return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: mode, Uid: uid, Gid: uid})
	}
	file := func(name, body string) error {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: int64(len(body))}); err != nil {
			return err
		}
		_, err := tw.Write([]byte(body))
		return err
	}
	steps := []func() error{
		func() error { return dir("etc", 0o755, 0) },
		func() error { return dir("tmp", 0o1777, 0) },
		func() error { return dir("home", 0o755, 0) },
		func() error { return dir("home/build", 0o755, BuildUID) },
		func() error { return dir("var", 0o755, 0) },
		func() error { return dir("var/run", 0o755, 0) },
		func() error { return dir("usr", 0o755, 0) },
		func() error {
			return file("etc/passwd", fmt.Sprintf("root:x:0:0:root:/root:/bin/sh\nbuild:x:%d:%d:Slipway build:%s:/bin/sh\n", BuildUID, BuildUID, Home))
		},
		func() error { return file("etc/group", fmt.Sprintf("root:x:0:\nbuild:x:%d:\n", BuildUID)) },
	}
	for _, p := range topLinks {
		if target, err := os.Readlink(p); err == nil {
			steps = append(steps, func() error {
				return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: p[1:], Linkname: target, Mode: 0o777})
			})
		}
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
