package cli

import (
	"context"
	"errors"
	"net/url"
	"os"
	"os/exec"
	"path"
	"sort"
	"strings"
)

// defaultApp is the app a command means when --app is not given:
// SLIPWAY_APP, else the app whose hosted repository on the logged-in server
// a remote of the git clone in the working directory points at, as gh
// finds a repository from its remotes.
func defaultApp(ctx context.Context) (string, error) {
	if v := os.Getenv("SLIPWAY_APP"); v != "" {
		return v, nil
	}
	missing := errors.New("--app is required: name the app with --app NAME, set SLIPWAY_APP, or run the command in a clone of the app's repository")
	cfg, err := loadConfig()
	if err != nil || cfg.URL == "" {
		return "", missing
	}
	out, err := exec.CommandContext(ctx, "git", "config", "--get-regexp", `^remote\..*\.url$`).Output()
	if err != nil {
		return "", missing
	}
	apps := appsOfRemotes(cfg.URL, strings.Split(strings.TrimSpace(string(out)), "\n"))
	switch len(apps) {
	case 0:
		return "", missing
	case 1:
		return apps[0], nil
	}
	return "", errors.New("--app is required: this clone's remotes point at several apps (" + strings.Join(apps, ", ") + "); choose one with --app NAME")
}

// appsOfRemotes returns the apps whose /git/NAME.git URLs on server appear
// among lines of `git config --get-regexp` output ("remote.origin.url URL").
func appsOfRemotes(server string, lines []string) []string {
	srv, err := url.Parse(server)
	if err != nil {
		return nil
	}
	base := strings.TrimSuffix(srv.Path, "/") + "/git/"
	seen := map[string]bool{}
	for _, line := range lines {
		_, raw, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		u, err := url.Parse(strings.TrimSpace(raw))
		if err != nil || u.Host != srv.Host || !strings.HasPrefix(u.Path, base) {
			continue
		}
		name := strings.TrimSuffix(strings.TrimSuffix(strings.TrimPrefix(u.Path, base), "/"), ".git")
		if name != "" && path.Base(name) == name {
			seen[name] = true
		}
	}
	apps := make([]string, 0, len(seen))
	for a := range seen {
		apps = append(apps, a)
	}
	sort.Strings(apps)
	return apps
}
