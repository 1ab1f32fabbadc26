package server

import (
	"net/http"

	"github.com/slipway-dev/slipway/internal/store"
)

// buildSettingsRequest changes an app's build settings; absent fields keep
// their value.
type buildSettingsRequest struct {
	Executor     *string `json:"executor"`
	DockerAccess *bool   `json:"docker_access"`
}

// setBuildSettings is admin-only: docker access and the host executor each
// give the app's builds the host, like CodeBuild's privileged mode.
func (s *Server) setBuildSettings(w http.ResponseWriter, r *http.Request) {
	var req buildSettingsRequest
	if err := decodeJSON(r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	app, err := s.db.GetApp(r.Context(), r.PathValue("app"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	b := app.Build
	if req.Executor != nil {
		switch *req.Executor {
		case store.ExecutorSandbox, store.ExecutorHost:
			b.Executor = *req.Executor
		default:
			s.writeError(w, r, errBadRequest("executor", "executor %q is not one of %s (default: a container that sees only its workspace), %s (on the host as the server's user)",
				*req.Executor, store.ExecutorSandbox, store.ExecutorHost))
			return
		}
	}
	if req.DockerAccess != nil {
		b.DockerAccess = *req.DockerAccess
	}
	app, err = s.db.SetBuildSettings(r.Context(), app.Name, b)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.log.Warn("app build settings changed", "app", app.Name, "executor", b.Executor, "docker_access", b.DockerAccess,
		"by", callerName(r))
	writeJSON(w, http.StatusOK, app)
}

func callerName(r *http.Request) string {
	if t, ok := Caller(r.Context()); ok {
		return t.Name
	}
	return ""
}
