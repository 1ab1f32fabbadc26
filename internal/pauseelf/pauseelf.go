// Package pauseelf builds the smallest program that holds a namespace:
// a static executable that blocks in the kernel until a signal kills it,
// the whole job of a task's namespace holder on Docker and of a pod
// sandbox's "pause" container. It is machine code rather than a Go
// program because no image can be pulled and no compiler counted on, and
// a static ELF of a few hundred bytes needs neither.
package pauseelf

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"fmt"
)

// code is, per architecture, the loop the program runs.
var code = map[string]struct {
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

// ErrArch is an architecture there is no program for.
var ErrArch = fmt.Errorf("no pause program for this architecture (amd64 and arm64 are supported)")

// Build returns the executable for arch (a GOARCH): one loadable segment,
// the ELF header, one program header, then the code it starts at.
func Build(arch string) ([]byte, error) {
	pc, ok := code[arch]
	if !ok {
		return nil, fmt.Errorf("%s: %w", arch, ErrArch)
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
