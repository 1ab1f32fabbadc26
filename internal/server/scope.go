package server

import (
	"context"
	"net/http"
	"strconv"
	"strings"

	"github.com/slipway-dev/slipway/internal/store"
)

// requireScope refuses what a token limited to one app (and perhaps to the
// registry) may not reach, as an ECR or ECS IAM policy scoped to resources
// would. A limited token reaches only requests whose app the server can
// tell: the registry and git by repository, API routes by {app}, a run's or
// a deployment's id, or a list's ?app= (or ?repository=) filter, which it
// must give. Everything else (tokens, task definitions, image gc, …) needs
// a global token.
func (s *Server) requireScope(tok store.Token, rt Route, r *http.Request) error {
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
	apps, err := s.requestApps(r.Context(), rt, r)
	if err != nil {
		return err
	}
	if apps == nil {
		return scopeErr(tok, "is limited to app "+tok.App+"; this needs a token for every app")
	}
	for _, a := range apps {
		if a != tok.App {
			return scopeErr(tok, "may only reach app "+tok.App)
		}
	}
	if tok.Env == "" {
		return nil
	}
	env, known, err := s.requestEnv(r.Context(), rt, r)
	if err != nil {
		return err
	}
	switch {
	case known && env != tok.Env:
		return scopeErr(tok, "may only reach environment "+tok.Env+" of app "+tok.App)
	case !known && !readOnly(rt, r):
		// Pushing, starting runs and approving change what reaches every
		// environment, production included.
		return scopeErr(tok, "is limited to environment "+tok.Env+" of app "+tok.App+"; this changes the whole app")
	}
	return nil
}

// requestEnv names the environment a request reaches, when it has one.
func (s *Server) requestEnv(ctx context.Context, rt Route, r *http.Request) (string, bool, error) {
	switch {
	case strings.Contains(rt.Pattern, "{env}"):
		return r.PathValue("env"), true, nil
	case strings.HasPrefix(rt.Pattern, "/api/v1/deployments/{id}"):
		id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
		if err != nil {
			return "", false, errBadRequest("id", "deployment id %q must be a positive number", r.PathValue("id"))
		}
		d, err := s.db.GetDeployment(ctx, id)
		if err != nil {
			return "", false, err
		}
		return d.Env, true, nil
	case r.Method == http.MethodGet && (rt.Pattern == "/api/v1/services" || rt.Pattern == "/api/v1/deployments"):
		if e := r.URL.Query().Get("env"); e != "" {
			return e, true, nil
		}
	}
	return "", false, nil
}

// readOnly is true for requests that only read: GET and HEAD, and git's
// fetch negotiation.
func readOnly(rt Route, r *http.Request) bool {
	return r.Method == http.MethodGet || r.Method == http.MethodHead || rt.Pattern == "/git/{repo}/git-upload-pack"
}

// requestApps names the apps a request reaches; nil when it cannot tell,
// and an empty list when the request reaches no app's objects.
func (s *Server) requestApps(ctx context.Context, rt Route, r *http.Request) ([]string, error) {
	q := r.URL.Query()
	switch {
	case strings.HasPrefix(rt.Pattern, "/v2/"):
		if r.URL.Path == "/v2/" || r.URL.Path == "/v2" {
			return []string{}, nil // the version check every client starts with
		}
		repo, ok := registryRepo(r.URL.Path)
		if !ok {
			return nil, nil // the catalog lists every app's repositories
		}
		apps := []string{repoApp(repo)}
		if from := q.Get("from"); from != "" { // a cross-repository blob mount reads from there
			apps = append(apps, repoApp(from))
		}
		return apps, nil
	case strings.HasPrefix(rt.Pattern, "/git/"):
		return []string{strings.TrimSuffix(r.PathValue("repo"), ".git")}, nil
	case strings.Contains(rt.Pattern, "{app}"):
		return []string{r.PathValue("app")}, nil
	case strings.HasPrefix(rt.Pattern, "/api/v1/runs/{id}"):
		id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
		if err != nil {
			return nil, errBadRequest("id", "run id %q must be a positive number", r.PathValue("id"))
		}
		run, err := s.db.GetRun(ctx, id)
		if err != nil {
			return nil, err
		}
		return []string{run.App}, nil
	case strings.HasPrefix(rt.Pattern, "/api/v1/deployments/{id}"):
		id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
		if err != nil {
			return nil, errBadRequest("id", "deployment id %q must be a positive number", r.PathValue("id"))
		}
		d, err := s.db.GetDeployment(ctx, id)
		if err != nil {
			return nil, err
		}
		return []string{d.App}, nil
	case r.Method == http.MethodGet && (rt.Pattern == "/api/v1/runs" || rt.Pattern == "/api/v1/deployments" ||
		rt.Pattern == "/api/v1/services" || rt.Pattern == "/api/v1/secrets"):
		if q.Get("app") == "" {
			return nil, errBadRequest("app", "a token limited to one app lists only that app's objects: add ?app=APP")
		}
		return []string{q.Get("app")}, nil
	case r.Method == http.MethodGet && (rt.Pattern == "/api/v1/images" || rt.Pattern == "/api/v1/images/policy"):
		if q.Get("repository") == "" {
			return nil, errBadRequest("repository", "a token limited to one app lists only that app's images: add ?repository=APP")
		}
		return []string{repoApp(q.Get("repository"))}, nil
	case rt.Pattern == "/api/v1/whoami" || rt.Pattern == "/healthz":
		return []string{}, nil
	}
	return nil, nil
}

func scopeErr(tok store.Token, msg string) error {
	return &apiError{Status: http.StatusForbidden, Code: "forbidden", Message: "token " + tok.Name + " " + msg}
}

// registryRepo reads the repository name from a distribution API path:
// /v2/NAME/{blobs,manifests,tags,referrers}/…, the last such segment
// deciding, as distribution's router does (a name may contain them).
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
