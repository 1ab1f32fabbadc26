package kubecluster

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"debug/elf"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"path"
	"runtime"
	"sort"
	"strings"
	"time"
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

// pauseCode is, per architecture, a loop that blocks in the kernel until a
// signal kills the process: all a pod sandbox's "pause" container does
// (containerd stops a sandbox with SIGKILL). It is machine code, as in
// internal/task/pause.go, because the real pause image cannot be pulled
// here and a static ELF of a few hundred bytes needs no compiler.
var pauseCode = map[string]struct {
	machine elf.Machine
	code    []byte
}{
	// loop: mov eax, 34 (pause); syscall; jmp loop
	"amd64": {elf.EM_X86_64, []byte{0xb8, 0x22, 0x00, 0x00, 0x00, 0x0f, 0x05, 0xeb, 0xf7}},
	// loop: x0..x3 = 0; x8 = 73 (ppoll: no fds, no timeout); svc #0; b loop
	"arm64": {elf.EM_AARCH64, words(0xd2800000, 0xd2800001, 0xd2800002, 0xd2800003, 0xd2800928, 0xd4000001, 0x17fffffa)},
}

func words(ws ...uint32) []byte {
	b := make([]byte, 4*len(ws))
	for i, w := range ws {
		binary.LittleEndian.PutUint32(b[4*i:], w)
	}
	return b
}

// pauseELF is a static executable for arch of one loadable segment: the
// ELF header, one program header, then the code it starts at.
func pauseELF(arch string) ([]byte, error) {
	pc, ok := pauseCode[arch]
	if !ok {
		return nil, fmt.Errorf("no pause program for %s (amd64 and arm64 are supported)", arch)
	}
	const base = 0x400000
	hdrSize, phSize := binary.Size(elf.Header64{}), binary.Size(elf.Prog64{})
	size := uint64(hdrSize + phSize + len(pc.code))
	h := elf.Header64{
		Type: uint16(elf.ET_EXEC), Machine: uint16(pc.machine), Version: uint32(elf.EV_CURRENT),
		Entry: base + uint64(hdrSize+phSize), Phoff: uint64(hdrSize),
		Ehsize: uint16(hdrSize), Phentsize: uint16(phSize), Phnum: 1,
	}
	copy(h.Ident[:], elf.ELFMAG)
	h.Ident[elf.EI_CLASS], h.Ident[elf.EI_DATA], h.Ident[elf.EI_VERSION] = byte(elf.ELFCLASS64), byte(elf.ELFDATA2LSB), byte(elf.EV_CURRENT)
	ph := elf.Prog64{Type: uint32(elf.PT_LOAD), Flags: uint32(elf.PF_R | elf.PF_X), Vaddr: base, Paddr: base, Filesz: size, Memsz: size, Align: 0x1000}
	var b bytes.Buffer
	_ = binary.Write(&b, binary.LittleEndian, h)
	_ = binary.Write(&b, binary.LittleEndian, ph)
	b.Write(pc.code)
	return b.Bytes(), nil
}

// pauseImage is the sandbox image: its reference (named after its
// content, so a changed program is a new image) and its tarball.
func pauseImage() (ref string, tarball []byte, err error) {
	bin, err := pauseELF(runtime.GOARCH)
	if err != nil {
		return "", nil, err
	}
	sum := sha256.Sum256(bin)
	ref = "localhost/slipway/pause:" + hex.EncodeToString(sum[:6])
	tarball, err = ImageBytes(ref, []File{{Name: "pause", Mode: 0o555, Data: bin}}, []string{"/pause"})
	return ref, tarball, err
}
