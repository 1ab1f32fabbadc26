package cli

import (
	"strings"
	"testing"

	"github.com/slipway-dev/slipway/internal/store"
)

func TestSourceLineNeverShowsCredentials(t *testing.T) {
	cases := []struct {
		name string
		app  store.App
		want string
	}{
		{"none", store.App{}, "-"},
		{"no credentials", store.App{SourceURL: "https://github.com/acme/x.git"}, "https://github.com/acme/x.git"},
		{"credentials sealed", store.App{SourceURL: "https://github.com/acme/x.git", SourceCredentials: true}, "https://github.com/acme/x.git (credentials set)"},
		// As a server older than the sealing answers.
		{"credentials in the URL", store.App{SourceURL: "https://ci:tok3n@github.com/acme/x.git"}, "https://github.com/acme/x.git (credentials set)"},
		{"unparsable URL with credentials", store.App{SourceURL: "https://ci:tok3n@github.com:x/acme.git"}, "https://github.com:x/acme.git (credentials set)"},
		{"ssh user name", store.App{SourceURL: "ssh://git@github.com/acme/x.git"}, "ssh://git@github.com/acme/x.git"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := sourceLine(c.app); got != c.want {
				t.Fatalf("sourceLine = %q, want %q", got, c.want)
			}
		})
	}
}

func TestCLISetSourceHidesCredentials(t *testing.T) {
	loggedIn(t)
	if _, _, err := slipway(t, "", "app", "create", "hello"); err != nil {
		t.Fatal(err)
	}
	const token = "ghp_s3cr3tt0k3n"
	out, _, err := slipway(t, "", "app", "set-source", "hello", "--url", "https://ci:"+token+"@github.com/acme/x.git")
	if err != nil || !strings.Contains(out, "https://github.com/acme/x.git (credentials set)") {
		t.Fatalf("set-source: %q %v", out, err)
	}
	for _, args := range [][]string{
		{"app", "show", "hello"},
		{"app", "show", "hello", "-o", "json"},
		{"app", "list"},
		{"app", "list", "-o", "json"},
	} {
		out, _, err := slipway(t, "", args...)
		if err != nil {
			t.Fatalf("%s: %v", strings.Join(args, " "), err)
		}
		if strings.Contains(out, token) || !strings.Contains(out, "github.com/acme/x.git") {
			t.Fatalf("%s: %q", strings.Join(args, " "), out)
		}
	}
}
