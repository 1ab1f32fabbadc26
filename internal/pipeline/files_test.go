package pipeline

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/slipway-dev/slipway/internal/build"
)

func TestReadSpecFile(t *testing.T) {
	outside := t.TempDir()
	secret := filepath.Join(outside, "admin.token")
	if err := os.WriteFile(secret, []byte("slw_secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.WriteFile(filepath.Join(dir, "buildspec.yml"), []byte("version: 0.2\n"), 0o644))
	must(os.WriteFile(filepath.Join(dir, "big.yml"), make([]byte, MaxSpecBytes+1), 0o644))
	must(os.Symlink("buildspec.yml", filepath.Join(dir, "inside.yml")))
	must(os.Symlink(secret, filepath.Join(dir, "absolute.yml")))
	must(os.Symlink("../"+filepath.Base(outside)+"/admin.token", filepath.Join(dir, "relative.yml")))
	must(os.Mkdir(filepath.Join(dir, "sub"), 0o755))
	must(os.Symlink("..", filepath.Join(dir, "sub", "up")))
	for _, c := range []struct {
		name    string
		want    string
		missing bool
		refused bool
	}{
		{name: "buildspec.yml", want: "version: 0.2\n"},
		{name: "inside.yml", want: "version: 0.2\n"},
		{name: "sub/up/buildspec.yml", want: "version: 0.2\n"},
		{name: "nope.yml", missing: true},
		{name: "absolute.yml", refused: true},
		{name: "relative.yml", refused: true},
		{name: "sub/up/../etc/passwd", refused: true},
		{name: "../../etc/passwd", refused: true},
		{name: "big.yml", refused: true},
		{name: "sub", refused: true},
	} {
		b, err := readSpecFile(dir, c.name)
		switch {
		case c.missing:
			if !isMissing(err) {
				t.Errorf("%s: %v, want a missing file", c.name, err)
			}
		case c.refused:
			if err == nil || isMissing(err) || strings.Contains(string(b), "slw_secret") {
				t.Errorf("%s: %q %v, want a refusal", c.name, b, err)
			}
		default:
			if err != nil || string(b) != c.want {
				t.Errorf("%s: %q %v, want %q", c.name, b, err, c.want)
			}
		}
	}
	var tl *build.TooLargeError
	if _, err := readSpecFile(dir, "big.yml"); !errors.As(err, &tl) || !strings.Contains(err.Error(), "over the 1048576-byte limit") {
		t.Errorf("big file: %v", err)
	}
}
