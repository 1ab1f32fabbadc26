package kubecluster

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"path"
	"runtime"
	"sort"
	"strings"
	"time"

	"github.com/slipway-dev/slipway/internal/pauseelf"
)

// File is one regular file of an image's layer. Its parent directories
// are made for it.
type File struct {
	Name string // path in the image, e.g. "bin/busybox"
	Mode int64  // permission bits, e.g. 0o755
	Data []byte
}

// WriteImage writes a FROM-scratch image of one layer holding files, named
// ref (a full reference, e.g. "localhost/slipway/web:1"), as an OCI image
// layout tarball, the form `ctr images import` (Cluster.ImportImage) takes.
// Tests build their images this way because nothing can be pulled here.
func WriteImage(w io.Writer, ref string, files []File, entrypoint []string) error {
	layer, err := layerTar(files)
	if err != nil {
		return err
	}
	layerDigest := digestOf(layer)
	config, _ := json.Marshal(map[string]any{
		"architecture": runtime.GOARCH,
		"os":           "linux",
		"config":       map[string]any{"Entrypoint": entrypoint, "Env": []string{"PATH=/bin"}},
		"rootfs":       map[string]any{"type": "layers", "diff_ids": []string{layerDigest}},
	})
	manifest, _ := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     "application/vnd.oci.image.manifest.v1+json",
		"config":        descriptor("application/vnd.oci.image.config.v1+json", config),
		"layers":        []any{descriptor("application/vnd.oci.image.layer.v1.tar", layer)},
	})
	tag := ref[strings.LastIndex(ref, ":")+1:]
	md := descriptor("application/vnd.oci.image.manifest.v1+json", manifest)
	// containerd names the image after io.containerd.image.name; the OCI
	// annotation alone would need ctr's --base-name.
	md["annotations"] = map[string]string{"io.containerd.image.name": ref, "org.opencontainers.image.ref.name": tag}
	index, _ := json.Marshal(map[string]any{"schemaVersion": 2, "manifests": []any{md}})

	tw := tar.NewWriter(w)
	for _, f := range []struct {
		name string
		data []byte
	}{
		{"oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`)},
		{"index.json", index},
		{blobPath(manifest), manifest},
		{blobPath(config), config},
		{blobPath(layer), layer},
	} {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: f.name, Mode: 0o644, Size: int64(len(f.data))}); err != nil {
			return err
		}
		if _, err := tw.Write(f.data); err != nil {
			return err
		}
	}
	return tw.Close()
}

// ImageBytes is WriteImage into memory.
func ImageBytes(ref string, files []File, entrypoint []string) ([]byte, error) {
	var b bytes.Buffer
	err := WriteImage(&b, ref, files, entrypoint)
	return b.Bytes(), err
}

func layerTar(files []File) ([]byte, error) {
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	// A fixed time keeps an image's digest the same from run to run.
	mtime := time.Unix(0, 0)
	dirs := map[string]bool{}
	var names []string
	for _, f := range files {
		for d := path.Dir(f.Name); d != "." && d != "/"; d = path.Dir(d) {
			dirs[d] = true
		}
	}
	for d := range dirs {
		names = append(names, d)
	}
	sort.Strings(names) // a parent before its children
	for _, d := range names {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d + "/", Mode: 0o755, ModTime: mtime}); err != nil {
			return nil, err
		}
	}
	for _, f := range files {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: f.Name, Mode: f.Mode, Size: int64(len(f.Data)), ModTime: mtime}); err != nil {
			return nil, err
		}
		if _, err := tw.Write(f.Data); err != nil {
			return nil, err
		}
	}
	err := tw.Close()
	return b.Bytes(), err
}

func digestOf(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

func blobPath(b []byte) string { return "blobs/sha256/" + strings.TrimPrefix(digestOf(b), "sha256:") }

func descriptor(mediaType string, b []byte) map[string]any {
	return map[string]any{"mediaType": mediaType, "digest": digestOf(b), "size": len(b)}
}

// pauseImage is the sandbox image: its reference (named after its
// content, so a changed program is a new image) and its tarball.
func pauseImage() (ref string, tarball []byte, err error) {
	bin, err := pauseelf.Build(runtime.GOARCH)
	if err != nil {
		return "", nil, err
	}
	sum := sha256.Sum256(bin)
	ref = "localhost/slipway/pause:" + hex.EncodeToString(sum[:6])
	tarball, err = ImageBytes(ref, []File{{Name: "pause", Mode: 0o555, Data: bin}}, []string{"/pause"})
	return ref, tarball, err
}
