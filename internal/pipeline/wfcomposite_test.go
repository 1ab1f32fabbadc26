package pipeline

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestActionDir(t *testing.T) {
	for _, c := range []struct{ uses, want, err string }{
		{"./.github/actions/setup", ".github/actions/setup", ""},
		{"./.github/actions/setup/", ".github/actions/setup", ""},
		{"./", ".", ""},
		{"./a/../b", "b", ""},
		{"./../other", "", "outside the repository"},
		{"./a/../../x", "", "outside the repository"},
	} {
		got, err := actionDir(c.uses)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%s: err %v, want %q", c.uses, err, c.err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("%s: %q %v, want %q", c.uses, got, err, c.want)
		}
	}
}

// readAction reads action.yml or action.yaml from the checked-out
// workspace, never through a link out of it, never a FIFO or a directory.
func TestReadAction(t *testing.T) {
	base := t.TempDir()
	src := filepath.Join(base, "src")
	outside := t.TempDir()
	write := func(p, s string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	const good = "runs:\n  using: composite\n  steps:\n    - run: echo\n      shell: bash\n"
	write(filepath.Join(src, "yml", "action.yml"), good)
	write(filepath.Join(src, "yaml", "action.yaml"), good)
	write(filepath.Join(src, "bad", "action.yml"), "runs:\n  using: composite\n  steps:\n    - run: echo\n")
	write(filepath.Join(outside, "action.yml"), good)
	write(filepath.Join(base, "_runner", "action.yml"), good)
	if err := os.MkdirAll(filepath.Join(src, "link-out"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(outside, "action.yml"), filepath.Join(src, "link-out", "action.yml")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../_runner", filepath.Join(src, "link-up")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(src, "dir-out")); err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(src, "fifo"), 0o755)
	if err := syscall.Mkfifo(filepath.Join(src, "fifo", "action.yml"), 0o644); err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(src, "isdir", "action.yml"), 0o755)
	write(filepath.Join(src, "big", "action.yml"), strings.Repeat("#", 1<<20+1))

	j := &jobRun{base: base}
	for _, c := range []struct{ rel, err string }{
		{"yml", ""},
		{"yaml", ""},
		{"missing", "no action.yml or action.yaml at ./missing; check out the repository first (actions/checkout)"},
		{"bad", "bad/action.yml:4:7: runs.steps[0]: a run step in a composite action needs shell:"},
		{"link-out", "link-out/action.yml"},
		{"link-up", "link-up/action.yml"},
		{"dir-out", "dir-out/action.yml"},
		{"fifo", "not a regular file"},
		{"isdir", "not a regular file"},
		{"big", "big/action.yml"},
	} {
		a, err := j.readAction("./"+c.rel, c.rel)
		if c.err == "" {
			if err != nil || len(a.Steps) != 1 {
				t.Errorf("%s: %v", c.rel, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), c.err) {
			t.Errorf("%s: err %v, want %q", c.rel, err, c.err)
		}
	}
}
