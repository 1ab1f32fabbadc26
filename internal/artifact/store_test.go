package artifact

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// entry is one tar header for a test archive; body is a regular file's content.
type entry struct {
	typ        byte
	name, link string
	body       string
}

func reg(name, body string) entry { return entry{typ: tar.TypeReg, name: name, body: body} }
func dir(name string) entry       { return entry{typ: tar.TypeDir, name: name} }
func sym(name, to string) entry   { return entry{typ: tar.TypeSymlink, name: name, link: to} }
func hard(name, to string) entry  { return entry{typ: tar.TypeLink, name: name, link: to} }

func makeTar(t testing.TB, entries []entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		hdr := &tar.Header{Typeflag: e.typ, Name: e.name, Linkname: e.link, Mode: 0o644, Format: tar.FormatPAX}
		switch e.typ {
		case tar.TypeXGlobalHeader:
			hdr = &tar.Header{Typeflag: e.typ, PAXRecords: map[string]string{"comment": "git archive"}, Format: tar.FormatPAX}
		case tar.TypeReg:
			hdr.Size = int64(len(e.body))
		case tar.TypeDir:
			hdr.Mode = 0o755
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatalf("write header %+v: %v", e, err)
		}
		if e.typ == tar.TypeReg {
			tw.Write([]byte(e.body))
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// snapshot describes every file under top, except the subtree skip, without
// following symbolic links: type, mode, link target and content digest.
func snapshot(t testing.TB, top, skip string) map[string]string {
	t.Helper()
	snap := map[string]string{}
	err := filepath.WalkDir(top, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == skip {
			return filepath.SkipDir
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		desc := fi.Mode().String()
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			l, _ := os.Readlink(p)
			desc += " -> " + l
		case fi.Mode().IsRegular():
			b, _ := os.ReadFile(p)
			desc += fmt.Sprintf(" %x", sha256.Sum256(b))
		}
		snap[p] = desc
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return snap
}

// sandbox is a parent directory holding files an escape could touch and
// the empty directory to unpack into.
func sandbox(t testing.TB) (parent, dst string) {
	t.Helper()
	parent = t.TempDir()
	dst = filepath.Join(parent, "work", "dst")
	for p, body := range map[string]string{"secret.txt": "secret", "work/outside.txt": "outside", "sibling/file": "x"} {
		os.MkdirAll(filepath.Dir(filepath.Join(parent, p)), 0o755)
		if err := os.WriteFile(filepath.Join(parent, p), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	return parent, dst
}

// compareOutside fails unless everything outside dst is as in before.
func compareOutside(t testing.TB, parent, dst string, before map[string]string) {
	t.Helper()
	after := snapshot(t, parent, dst)
	for p, d := range after {
		if before[p] != d {
			t.Errorf("outside the target: %s is now %q, was %q", p, d, before[p])
		}
	}
	for p := range before {
		if _, ok := after[p]; !ok {
			t.Errorf("outside the target: %s was removed", p)
		}
	}
}

func TestUnpackRefusesEscapes(t *testing.T) {
	cases := []struct {
		name    string
		entries func(parent string) []entry
		// pre runs in dst before unpacking: what a checkout or a build left there.
		pre  func(t *testing.T, parent, dst string)
		want string // in the error: the entry's name and the reason
	}{
		{"absolute name", func(p string) []entry { return []entry{reg(filepath.Join(p, "pwned"), "x")} }, nil, "pwned\" is not a relative path inside"},
		{"dot-dot name", func(string) []entry { return []entry{reg("../../pwned", "x")} }, nil, `"../../pwned" is not a relative path inside`},
		{"dot-dot inside name", func(string) []entry { return []entry{reg("a/../../pwned", "x")} }, nil, `"a/../../pwned" is not a relative path inside`},
		{"empty name", func(string) []entry { return []entry{reg("", "x")} }, nil, `"" is not a relative path inside`},
		{"absolute symlink", func(string) []entry { return []entry{sym("l", "/etc")} }, nil, `"l" is a symlink to the absolute path "/etc"`},
		{"symlink up", func(string) []entry { return []entry{sym("a/l", "../../secret.txt")} }, nil, `"a/l" is a symlink to "../../secret.txt", outside`},
		{"symlink chain", func(string) []entry {
			return []entry{sym("a", "."), sym("b", "a/.."), sym("c", "b/.."), reg("c/pwned", "x")}
		}, nil, `"b" is a symlink to "a/..", which climbs after descending`},
		{"write through an inside symlink", func(string) []entry {
			return []entry{dir("sub"), sym("l", "sub"), reg("l/x", "x")}
		}, nil, `"l/x" would be written through the symlink "l"`},
		{"directory through a symlink", func(string) []entry {
			return []entry{sym("l", "."), dir("l/d")}
		}, nil, `"l/d" would be written through the symlink "l"`},
		{"file over a symlink", func(string) []entry {
			return []entry{reg("x", "x"), sym("l", "x"), reg("l", "over")}
		}, nil, `"l" would replace the symlink already there`},
		{"symlink over a symlink", func(string) []entry {
			return []entry{sym("l", "x"), sym("l", "y")}
		}, nil, `"l" would replace the symlink already there`},
		{"hard link outside", func(string) []entry { return []entry{hard("h", "../outside.txt")} }, nil, `"h" is a hard link to "../outside.txt", outside`},
		{"hard link absolute", func(p string) []entry { return []entry{hard("h", filepath.Join(p, "secret.txt"))} }, nil, `"h" is a hard link to`},
		{"hard link through a symlink", func(string) []entry {
			return []entry{sym("l", "."), hard("h", "l/x")}
		}, nil, `"h" is a hard link through the symlink "l"`},
		{"hard link to a symlink", func(string) []entry {
			return []entry{sym("l", "x"), hard("h", "l")}
		}, nil, `"h" is a hard link to "l", which is not a regular file`},
		{"char device", func(string) []entry { return []entry{{typ: tar.TypeChar, name: "null"}} }, nil, `"null" is a character device`},
		{"block device", func(string) []entry { return []entry{{typ: tar.TypeBlock, name: "sda"}} }, nil, `"sda" is a block device`},
		{"fifo", func(string) []entry { return []entry{{typ: tar.TypeFifo, name: "pipe"}} }, nil, `"pipe" is a FIFO`},
		{"file through a symlink left by a build", func(string) []entry { return []entry{reg("out/pwned", "x")} },
			func(t *testing.T, parent, dst string) {
				if err := os.Symlink(parent, filepath.Join(dst, "out")); err != nil {
					t.Fatal(err)
				}
			}, `"out/pwned" would be written through the symlink "out"`},
		{"symlink through a symlink left by a build", func(string) []entry { return []entry{sym("l", "out/secret.txt")} },
			func(t *testing.T, parent, dst string) {
				if err := os.Symlink(parent, filepath.Join(dst, "out")); err != nil {
					t.Fatal(err)
				}
			}, `"l" is a symlink to "out/secret.txt", which leads outside`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			parent, dst := sandbox(t)
			if c.pre != nil {
				c.pre(t, parent, dst)
			}
			before := snapshot(t, parent, dst)
			err := Unpack(bytes.NewReader(makeTar(t, c.entries(parent))), dst)
			compareOutside(t, parent, dst, before)
			if err == nil {
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %q does not contain %q", err, c.want)
			}
			var ee *EntryError
			if !errors.As(err, &ee) {
				t.Fatalf("error %v is not an *EntryError", err)
			}
		})
	}
}

func TestUnpackKeepsATree(t *testing.T) {
	parent, dst := sandbox(t)
	before := snapshot(t, parent, dst)
	entries := []entry{
		{typ: tar.TypeXGlobalHeader, name: "pax_global_header"},
		dir("./"),
		dir("docs/"),
		reg("docs/a.md", "a"),
		sym("README.md", "docs/a.md"),
		sym("docs/up", "../src/main.go"), // up one level from docs stays inside
		sym("docs/self", "."),
		sym("dangling", "missing/file"),
		reg("src/main.go", "package main"), // its directory was never listed
		hard("src/copy.go", "src/main.go"),
		reg("docs/a.md", "again"), // a later entry replaces an earlier file
	}
	if err := Unpack(bytes.NewReader(makeTar(t, entries)), dst); err != nil {
		t.Fatal(err)
	}
	compareOutside(t, parent, dst, before)
	for name, want := range map[string]string{"docs/a.md": "again", "README.md": "again", "docs/up": "package main", "src/copy.go": "package main"} {
		b, err := os.ReadFile(filepath.Join(dst, name))
		if err != nil || string(b) != want {
			t.Errorf("%s: %q, %v; want %q", name, b, err, want)
		}
	}
	if l, err := os.Readlink(filepath.Join(dst, "dangling")); err != nil || l != "missing/file" {
		t.Errorf("dangling symlink: %q, %v", l, err)
	}
}

func TestUnpackCreatesTheTarget(t *testing.T) {
	dst := filepath.Join(t.TempDir(), "a", "b")
	if err := Unpack(bytes.NewReader(makeTar(t, []entry{reg("f", "x")})), dst); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(dst, "f")); err != nil || string(b) != "x" {
		t.Fatalf("%q %v", b, err)
	}
}

// TestPackRootStaysInRoot: a build that plants a symlink to a directory
// outside its own cannot make PackRoot read a file there, while Pack,
// given host paths, would.
func TestPackRootStaysInRoot(t *testing.T) {
	parent := t.TempDir()
	build := filepath.Join(parent, "build")
	os.MkdirAll(filepath.Join(build, "out"), 0o755)
	os.WriteFile(filepath.Join(parent, "secret.txt"), []byte("secret"), 0o600)
	os.WriteFile(filepath.Join(build, "out", "app"), []byte("binary"), 0o755)
	os.Symlink(parent, filepath.Join(build, "escape"))
	os.Symlink("app", filepath.Join(build, "out", "link"))
	root, err := os.OpenRoot(build)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()

	var buf bytes.Buffer
	err = PackRoot(&buf, root, []File{{Name: "leak", Path: "escape/secret.txt"}})
	if err == nil || !strings.Contains(err.Error(), "escape/secret.txt") {
		t.Fatalf("packing through a symlink out of the root: %v", err)
	}

	buf.Reset()
	files := []File{{Name: "app", Path: "out/app"}, {Name: "link", Path: filepath.Join("out", "link")}, {Name: "escape", Path: "escape"}}
	if err := PackRoot(&buf, root, files); err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(&buf)
	got := map[string]string{}
	for {
		hdr, err := tr.Next()
		if err != nil {
			break
		}
		b := new(bytes.Buffer)
		b.ReadFrom(tr)
		got[hdr.Name] = fmt.Sprintf("%c %s %s", hdr.Typeflag, hdr.Linkname, b)
	}
	want := map[string]string{"app": "0  binary", "link": "2 app ", "escape": "2 " + parent + " "}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("packed %q, want %q", got, want)
	}
}

// TestPackUnpackRoundTrip: what Pack writes, Unpack restores.
func TestPackUnpackRoundTrip(t *testing.T) {
	src := t.TempDir()
	os.MkdirAll(filepath.Join(src, "bin"), 0o755)
	os.WriteFile(filepath.Join(src, "bin", "tool"), []byte("#!/bin/sh\n"), 0o755)
	os.Symlink("bin/tool", filepath.Join(src, "tool"))
	var buf bytes.Buffer
	if err := Pack(&buf, []File{{Name: "bin/tool", Path: filepath.Join(src, "bin", "tool")}, {Name: "tool", Path: filepath.Join(src, "tool")}}); err != nil {
		t.Fatal(err)
	}
	dst := t.TempDir()
	if err := Unpack(&buf, dst); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(filepath.Join(dst, "tool"))
	if err != nil || st.Mode()&0o100 == 0 {
		t.Fatalf("tool: %v %v", st, err)
	}
}

func TestValidName(t *testing.T) {
	cases := []struct {
		name string
		ok   bool
	}{
		{"SourceArtifact", true},
		{"build_output-2", true},
		{"a", true},
		{strings.Repeat("x", 100), true},
		{strings.Repeat("x", 101), false},
		{"", false},
		{"has space", false},
		{"dot.ted", false},
		{"../up", false},
		{"a/b", false},
		{"ünïcode", false},
		{"tab\t", false},
	}
	for _, c := range cases {
		err := ValidName(c.name)
		if (err == nil) != c.ok {
			t.Errorf("ValidName(%q) = %v, want ok=%v", c.name, err, c.ok)
		}
		if err != nil && !strings.Contains(err.Error(), "letters, digits, _ and -") {
			t.Errorf("ValidName(%q): %q does not state the rule", c.name, err)
		}
	}
}
