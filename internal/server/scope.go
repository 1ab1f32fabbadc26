package server

import (
	"net/http"
	"strings"

	"github.com/slipway-dev/slipway/internal/store"
)

// requireScope refuses what a token limited to one app (and perhaps to the
// registry) may not reach, as an ECR or ECS IAM policy scoped to resources
// would. A limited token reaches only routes whose app it can tell from
// the request: the registry by repository, git by repository, and API
// routes with {app} in their pattern; everything else needs a global token.
func requireScope(tok store.Token, rt Route, r *http.Request) error {
	if tok.App == "" && !tok.RegistryOnly {
		return nil
	}
	isRegistry := strings.HasPrefix(rt.Pattern, "/v2/")
	if tok.RegistryOnly && !isRegistry {
		return scopeErr(tok, "may only use the registry")
	}
	if tok.App == "" {
		return nil
	}
	var apps []string
	switch {
	case isRegistry:
		repo, ok := registryRepo(r.URL.Path)
		if !ok {
			if r.URL.Path == "/v2/" || r.URL.Path == "/v2" {
				return nil // the version check every client starts with
			}
			return scopeErr(tok, "may not list or reach registry paths outside its app's repositories")
		}
		apps = append(apps, repoApp(repo))
		if from := r.URL.Query().Get("from"); from != "" { // a cross-repository blob mount reads from there
			apps = append(apps, repoApp(from))
		}
	case strings.HasPrefix(rt.Pattern, "/git/"):
		apps = append(apps, strings.TrimSuffix(r.PathValue("repo"), ".git"))
	case strings.Contains(rt.Pattern, "{app}"):
		apps = append(apps, r.PathValue("app"))
	default:
		return scopeErr(tok, "may only reach its app's objects")
	}
	for _, a := range apps {
		if a != tok.App {
			return scopeErr(tok, "may only reach app "+tok.App)
		}
	}
	return nil
}

func scopeErr(tok store.Token, msg string) error {
	return &apiError{Status: http.StatusForbidden, Code: "forbidden", Message: "token " + tok.Name + " " + msg}
}

// registryRepo reads the repository name from a distribution API path:
// /v2/NAME/{blobs,manifests,tags,referrers}/…
func registryRepo(p string) (string, bool) {
	rest, ok := strings.CutPrefix(p, "/v2/")
	if !ok {
		return "", false
	}
	parts := strings.Split(rest, "/")
	for i := len(parts) - 2; i >= 1; i-- {
		switch parts[i] {
		case "blobs", "manifests", "tags", "referrers":
			return strings.Join(parts[:i], "/"), true
		}
	}
	return "", false
}

// repoApp is the app a repository belongs to: APP or APP/NAME.
func repoApp(repo string) string {
	app, _, _ := strings.Cut(repo, "/")
	return app
}
