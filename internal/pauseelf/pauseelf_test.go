package pauseelf

import (
	"bytes"
	"debug/elf"
	"errors"
	"testing"
)

func TestBuild(t *testing.T) {
	for _, tt := range []struct {
		arch    string
		machine elf.Machine
	}{{"amd64", elf.EM_X86_64}, {"arm64", elf.EM_AARCH64}} {
		b, err := Build(tt.arch)
		if err != nil {
			t.Fatal(err)
		}
		f, err := elf.NewFile(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("%s: %v", tt.arch, err)
		}
		if f.Type != elf.ET_EXEC || f.Machine != tt.machine || len(f.Progs) != 1 || f.Entry != f.Progs[0].Vaddr+uint64(len(b))-uint64(len(code[tt.arch].code)) {
			t.Errorf("%s: type %v, machine %v, %d program headers, entry %#x", tt.arch, f.Type, f.Machine, len(f.Progs), f.Entry)
		}
	}
	if _, err := Build("riscv64"); !errors.Is(err, ErrArch) {
		t.Fatalf("riscv64: %v", err)
	}
}
