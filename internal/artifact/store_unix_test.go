//go:build unix

package artifact

import (
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestPackRefusesSpecialFiles: Unpack refuses devices and FIFOs, so Pack
// refuses them where they were made, naming the file.
func TestPackRefusesSpecialFiles(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Skip("no FIFOs here:", err)
	}
	sock := filepath.Join(dir, "s")
	if l, err := net.Listen("unix", sock); err == nil {
		defer l.Close()
	} else {
		sock = ""
	}
	cases := []struct{ path, want string }{
		{fifo, "fifo: it is a FIFO"},
		{os.DevNull, "null: it is a character device"},
		{sock, "s: it is a socket"},
	}
	for _, c := range cases {
		if c.path == "" {
			continue
		}
		for name, pack := range map[string]func() error{
			"Pack": func() error { return Pack(io.Discard, []File{{Name: "x", Path: c.path}}) },
			"PackRoot": func() error {
				root, err := os.OpenRoot(filepath.Dir(c.path))
				if err != nil {
					return err
				}
				defer root.Close()
				return PackRoot(io.Discard, root, []File{{Name: "x", Path: filepath.Base(c.path)}})
			},
		} {
			if err := pack(); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("%s %s: %v, want %q", name, c.path, err, c.want)
			}
		}
	}
}
