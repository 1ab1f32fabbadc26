package task

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"debug/elf"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"runtime"
)

// LabelPause marks the image of the containers that hold a multi-container
// task's network namespace.
const LabelPause = "slipway.pause"

// pauseCode is, per architecture, a loop that blocks in the kernel until a
// signal kills the process: the whole job of a task's namespace owner (a
// Kubernetes pod's "pause" container). It is machine code rather than a Go
// program because the server cannot pull an image or count on a compiler,
// and a static ELF of a few hundred bytes needs neither.
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
		return nil, fmt.Errorf("multi-container tasks need a namespace holder for %s, which this build lacks (amd64 and arm64 are supported)", arch)
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

// pauseImage returns the namespace holder's image, importing it into the
// engine first if needed (an image of one file, made offline).
func (r *Runtime) pauseImage(ctx context.Context) (string, error) {
	bin, err := pauseELF(runtime.GOARCH)
	if err != nil {
		return "", err
	}
	var layer bytes.Buffer
	tw := tar.NewWriter(&layer)
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "pause", Mode: 0o555, Size: int64(len(bin))}); err != nil {
		return "", err
	}
	tw.Write(bin)
	if err := tw.Close(); err != nil {
		return "", err
	}
	sum := sha256.Sum256(bin)
	ref := "slipway-pause:" + hex.EncodeToString(sum[:6])
	if err := r.eng.ImportOnce(ctx, ref, layer.Bytes(), []string{"LABEL " + LabelPause + "=1", `ENTRYPOINT ["/pause"]`}, "the task network namespace holder's image"); err != nil {
		return "", err
	}
	return ref, nil
}
