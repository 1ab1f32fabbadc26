package source

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// gitIn runs git in dir with a fixed identity and no user or system config.
func gitIn(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir(), "GIT_CONFIG_NOSYSTEM=1", "GIT_TERMINAL_PROMPT=0",
		"GIT_AUTHOR_NAME=Test", "GIT_AUTHOR_EMAIL=test@example.com",
		"GIT_COMMITTER_NAME=Test", "GIT_COMMITTER_EMAIL=test@example.com")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// serviceWithCommit returns a service hosting app "hello" whose one commit
// holds files, and that commit's SHA.
func serviceWithCommit(t *testing.T, files map[string][]byte) (*Service, string) {
	t.Helper()
	s, err := NewService(nil, t.TempDir(), nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	gitIn(t, work, "init", "-q", "-b", "main")
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(work, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	gitIn(t, work, "add", "-A")
	gitIn(t, work, "commit", "-q", "-m", "files")
	gitIn(t, work, "clone", "-q", "--bare", work, s.RepoPath("hello"))
	return s, gitIn(t, work, "rev-parse", "HEAD")
}

func TestReadFileCapsTheSize(t *testing.T) {
	files := map[string][]byte{
		"small.yaml": []byte("stages: []\n"),
		"at-cap":     make([]byte, MaxReadFileBytes),
		"over-cap":   make([]byte, MaxReadFileBytes+1),
		"huge.yaml":  make([]byte, 20<<20),
	}
	s, commit := serviceWithCommit(t, files)
	cases := []struct {
		path     string
		tooLarge bool
		missing  bool
	}{
		{path: "small.yaml"},
		{path: "at-cap"},
		{path: "over-cap", tooLarge: true},
		{path: "huge.yaml", tooLarge: true},
		{path: "absent.yaml", missing: true},
	}
	for _, c := range cases {
		t.Run(c.path, func(t *testing.T) {
			data, err := s.ReadFile(context.Background(), "hello", commit, c.path)
			var tl *FileTooLargeError
			switch {
			case c.tooLarge:
				if !errors.As(err, &tl) {
					t.Fatalf("got %d bytes, err %v; want a FileTooLargeError", len(data), err)
				}
				if tl.Path != c.path || tl.Size != int64(len(files[c.path])) || tl.Limit != MaxReadFileBytes {
					t.Fatalf("error fields %+v", tl)
				}
				if msg := err.Error(); !strings.Contains(msg, c.path) || !strings.Contains(msg, "1 MiB") {
					t.Fatalf("message %q does not name the file and the cap", msg)
				}
			case c.missing:
				if err == nil || errors.As(err, &tl) {
					t.Fatalf("missing file: err %v", err)
				}
			default:
				if err != nil || len(data) != len(files[c.path]) {
					t.Fatalf("got %d bytes, err %v; want %d bytes", len(data), err, len(files[c.path]))
				}
			}
		})
	}
}
