package artifact

import (
	"archive/tar"
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fuzzEntries reads a test archive from lines "type|name|target-or-body":
// type f, d, l, h, c, b or p (file, directory, symlink, hard link, char
// device, block device, FIFO), any other byte is used as the tar type
// itself. "@" in a name or target stands for the sandbox's parent
// directory, so that absolute paths can aim at the files an escape would hit.
func fuzzEntries(script, parent string) []entry {
	types := map[byte]byte{'f': tar.TypeReg, 'd': tar.TypeDir, 'l': tar.TypeSymlink, 'h': tar.TypeLink,
		'c': tar.TypeChar, 'b': tar.TypeBlock, 'p': tar.TypeFifo}
	var entries []entry
	for line := range strings.SplitSeq(script, "\n") {
		if line == "" {
			continue
		}
		typ, ok := types[line[0]]
		if !ok {
			typ = line[0]
		}
		fields := strings.SplitN(line[1:], "|", 3)
		for len(fields) < 3 {
			fields = append(fields, "")
		}
		name := strings.ReplaceAll(fields[1], "@", parent)
		arg := strings.ReplaceAll(fields[2], "@", parent)
		e := entry{typ: typ, name: name}
		if typ == tar.TypeReg {
			e.body = arg
		} else {
			e.link = arg
		}
		entries = append(entries, e)
	}
	return entries
}

// tarOrNil builds the archive, or nil when archive/tar refuses the headers.
func tarOrNil(entries []entry) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		hdr := &tar.Header{Typeflag: e.typ, Name: e.name, Linkname: e.link, Mode: 0o644, Size: int64(len(e.body)), Format: tar.FormatPAX}
		if e.typ != tar.TypeReg {
			hdr.Size = 0
		}
		if tw.WriteHeader(hdr) != nil {
			return nil
		}
		if e.body != "" {
			tw.Write([]byte(e.body))
		}
	}
	if tw.Close() != nil {
		return nil
	}
	return buf.Bytes()
}

// FuzzUnpack: whatever the archive (names, symlink targets, types, order)
// and whether or not the target directory already holds a symlink out of
// it, Unpack succeeds or fails without a panic, nothing outside the target
// directory changes, and no symlink left inside it resolves to a place
// outside.
func FuzzUnpack(f *testing.F) {
	for _, seed := range []string{
		"f|a.txt|hello\nd|docs/|\nl|docs/link|../a.txt\nh|hard|a.txt",
		"f|../../pwned|x",
		"f|@/pwned|x",
		"f|a/../../pwned|x",
		"l|abs|@\nf|abs/pwned|x",
		"l|abs|/etc\nf|abs/passwd|x",
		"l|a|.\nl|b|a/..\nl|c|b/..\nf|c/pwned|x",
		"l|c|b/..\nl|b|a/..\nl|a|.\nf|c/pwned|x",
		"l|d|x/../..\nd|x|",
		"l|x|d\nl|d|.\nl|up|x/..\nf|up/pwned|x",
		"d|sub|\nl|l|sub\nf|l/x|x",
		"f|x|x\nl|l|x\nf|l|over",
		"l|l|../secret.txt\nf|l|over",
		"l|sub/l|../../secret.txt",
		"h|h|../outside.txt",
		"h|h|@/secret.txt",
		"l|l|.\nh|h|l/../outside.txt",
		"c|null|\nb|sda|\np|fifo|",
		"f|pre/pwned|x",
		"l|l|pre/secret.txt",
		"l|l|pre",
		"d|.|\nf|.|x",
		"S|sparse|",
	} {
		f.Add(seed, false)
		f.Add(seed, true)
	}
	f.Fuzz(func(t *testing.T, script string, plant bool) {
		parent, dst := sandbox(t)
		// plant: a build or checkout left a symlink out of the directory.
		if plant {
			if err := os.Symlink(parent, filepath.Join(dst, "pre")); err != nil {
				t.Fatal(err)
			}
		}
		archive := tarOrNil(fuzzEntries(script, parent))
		if archive == nil {
			return
		}
		before := snapshot(t, parent, dst)
		uerr := Unpack(bytes.NewReader(archive), dst)
		if uerr != nil && uerr.Error() == "" {
			t.Fatal("an error without a message")
		}
		compareOutside(t, parent, dst, before)
		realDst, rerr := filepath.EvalSymlinks(dst)
		if rerr != nil {
			t.Fatal(rerr)
		}
		filepath.WalkDir(dst, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.Type()&fs.ModeSymlink == 0 || (plant && p == filepath.Join(dst, "pre")) {
				return nil
			}
			to, err := filepath.EvalSymlinks(p)
			if err != nil {
				return nil // leads nowhere
			}
			if rel, err := filepath.Rel(realDst, to); err != nil || !filepath.IsLocal(rel) {
				l, _ := os.Readlink(p)
				t.Errorf("symlink %s -> %s resolves to %s, outside %s (Unpack: %v)", p, l, to, realDst, uerr)
			}
			return nil
		})
	})
}
