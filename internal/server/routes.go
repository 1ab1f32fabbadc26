package server

import (
	"fmt"
	"github.com/slipway-dev/slipway/internal/kube"
	"net/http"
	"strings"

	"github.com/slipway-dev/slipway/internal/auth"
	"github.com/slipway-dev/slipway/internal/httpguard"
	"github.com/slipway-dev/slipway/internal/source"
	"github.com/slipway-dev/slipway/internal/tlscert"
)

// Route is one registered endpoint and the least role that may call it.
type Route struct {
	Method  string
	Pattern string
	Role    auth.Role
	// Basic routes (git, registry) challenge with HTTP basic auth instead of Bearer.
	Basic bool
	// BodyLimit caps the request body; 0 means the API default, -1 no cap (git pushes).
	BodyLimit int64
	// Session routes (the web UI) authenticate with the session cookie and
	// check a CSRF token on every form.
	Session bool
	handler http.HandlerFunc
}

const defaultBodyLimit = 1 << 20

func (s *Server) buildHandler() http.Handler {
	s.routes = []Route{
		{Method: "GET", Pattern: "/healthz", Role: auth.Public, handler: s.healthz},
		{Method: "GET", Pattern: "/metrics", Role: auth.Viewer, handler: s.metrics.handler().ServeHTTP},
		{Method: "GET", Pattern: "/api/v1/whoami", Role: auth.Viewer, handler: s.whoami},
		{Method: "GET", Pattern: "/api/v1/status", Role: auth.Viewer, handler: s.status},

		{Method: "POST", Pattern: "/api/v1/tokens", Role: auth.Admin, handler: s.createToken},
		{Method: "GET", Pattern: "/api/v1/tokens", Role: auth.Admin, handler: s.listTokens},
		{Method: "DELETE", Pattern: "/api/v1/tokens/{id}", Role: auth.Admin, handler: s.revokeToken},

		{Method: "POST", Pattern: "/api/v1/apps", Role: auth.Admin, handler: s.createApp},
		{Method: "GET", Pattern: "/api/v1/apps", Role: auth.Viewer, handler: s.listApps},
		{Method: "GET", Pattern: "/api/v1/apps/{app}", Role: auth.Viewer, handler: s.showApp},
		{Method: "DELETE", Pattern: "/api/v1/apps/{app}", Role: auth.Admin, handler: s.deleteApp},
		{Method: "PUT", Pattern: "/api/v1/apps/{app}/source", Role: auth.Admin, handler: s.setAppSource},
		{Method: "PUT", Pattern: "/api/v1/apps/{app}/build", Role: auth.Admin, handler: s.setBuildSettings},
		{Method: "GET", Pattern: "/api/v1/apps/{app}/events", Role: auth.Viewer, handler: s.listEvents},

		{Method: "GET", Pattern: "/api/v1/runs", Role: auth.Viewer, handler: s.listRuns},
		{Method: "GET", Pattern: "/api/v1/runs/{id}", Role: auth.Viewer, handler: s.showRun},
		{Method: "POST", Pattern: "/api/v1/apps/{app}/runs", Role: auth.Deployer, handler: s.startRun},
		{Method: "GET", Pattern: "/api/v1/runs/{id}/logs", Role: auth.Viewer, handler: s.runLogs},
		{Method: "POST", Pattern: "/api/v1/runs/{id}/cancel", Role: auth.Deployer, handler: s.cancelRun},
		{Method: "POST", Pattern: "/api/v1/runs/{id}/retry", Role: auth.Deployer, handler: s.retryRun},
		{Method: "GET", Pattern: "/api/v1/apps/{app}/transitions", Role: auth.Viewer, handler: s.listTransitions},
		{Method: "PUT", Pattern: "/api/v1/apps/{app}/transitions/{stage}", Role: auth.Deployer, handler: s.setTransition},
		{Method: "GET", Pattern: "/api/v1/runs/{id}/artifacts/{name}", Role: auth.Viewer, handler: s.getArtifact},
		{Method: "POST", Pattern: "/api/v1/runs/{id}/approve", Role: auth.Deployer, handler: s.approveRun},
		{Method: "POST", Pattern: "/api/v1/runs/{id}/reject", Role: auth.Deployer, handler: s.rejectRun},

		{Method: "GET", Pattern: "/api/v1/secrets", Role: auth.Viewer, handler: s.listSecrets},
		{Method: "PUT", Pattern: "/api/v1/secrets/{name...}", Role: auth.Admin, BodyLimit: 2 * maxSecretBytes, handler: s.setSecret},
		{Method: "DELETE", Pattern: "/api/v1/secrets/{name...}", Role: auth.Admin, handler: s.deleteSecret},

		{Method: "GET", Pattern: "/api/v1/certificates", Role: auth.Admin, handler: s.listCertificates},
		{Method: "POST", Pattern: "/api/v1/certificates", Role: auth.Admin, BodyLimit: 3 * tlscert.MaxPEM, handler: s.addCertificate},
		{Method: "DELETE", Pattern: "/api/v1/certificates/{name}", Role: auth.Admin, handler: s.removeCertificate},

		{Method: "GET", Pattern: "/api/v1/apps/{app}/channels", Role: auth.Viewer, handler: s.listChannels},
		{Method: "PUT", Pattern: "/api/v1/apps/{app}/channels/{name}", Role: auth.Admin, handler: s.putChannel},
		{Method: "DELETE", Pattern: "/api/v1/apps/{app}/channels/{name}", Role: auth.Admin, handler: s.deleteChannel},
		{Method: "GET", Pattern: "/api/v1/apps/{app}/notifications", Role: auth.Viewer, handler: s.listDeliveries},

		{Method: "GET", Pattern: "/git/{repo}/info/refs", Role: auth.Viewer, Basic: true, BodyLimit: -1, handler: s.gitInfoRefs},
		{Method: "POST", Pattern: "/git/{repo}/git-upload-pack", Role: auth.Viewer, Basic: true, BodyLimit: -1, handler: s.gitUploadPack},
		{Method: "POST", Pattern: "/git/{repo}/git-receive-pack", Role: auth.Deployer, Basic: true, BodyLimit: -1, handler: s.gitReceivePack},

		// The OCI registry: viewers pull, deployers push, admins delete.
		{Method: "GET", Pattern: "/v2/", Role: auth.Viewer, Basic: true, BodyLimit: -1, handler: s.registryServe},
		{Method: "POST", Pattern: "/v2/", Role: auth.Deployer, Basic: true, BodyLimit: -1, handler: s.registryServe},
		{Method: "PUT", Pattern: "/v2/", Role: auth.Deployer, Basic: true, BodyLimit: -1, handler: s.registryServe},
		{Method: "PATCH", Pattern: "/v2/", Role: auth.Deployer, Basic: true, BodyLimit: -1, handler: s.registryServe},
		{Method: "DELETE", Pattern: "/v2/", Role: auth.Admin, Basic: true, BodyLimit: -1, handler: s.registryServe},

		{Method: "GET", Pattern: "/api/v1/images", Role: auth.Viewer, handler: s.listImages},
		{Method: "DELETE", Pattern: "/api/v1/images", Role: auth.Admin, handler: s.removeImage},
		{Method: "POST", Pattern: "/api/v1/images/gc", Role: auth.Admin, handler: s.gcImages},
		{Method: "GET", Pattern: "/api/v1/images/policy", Role: auth.Viewer, handler: s.getImagePolicy},
		{Method: "PUT", Pattern: "/api/v1/images/policy", Role: auth.Admin, handler: s.setImagePolicy},

		{Method: "POST", Pattern: "/api/v1/taskdefs", Role: auth.Deployer, handler: s.registerTaskDef},
		{Method: "GET", Pattern: "/api/v1/taskdefs", Role: auth.Viewer, handler: s.listTaskDefs},
		{Method: "GET", Pattern: "/api/v1/taskdefs/{family}/{revision}", Role: auth.Viewer, handler: s.showTaskDef},
		{Method: "DELETE", Pattern: "/api/v1/taskdefs/{family}/{revision}", Role: auth.Deployer, handler: s.deregisterTaskDef},
		{Method: "GET", Pattern: "/api/v1/apps/{app}/envs/{env}/runtime", Role: auth.Viewer, handler: s.getEnvRuntime},
		// Admin: a runtime is infrastructure, and its kubeconfig a credential.
		{Method: "PUT", Pattern: "/api/v1/apps/{app}/envs/{env}/runtime", Role: auth.Admin, BodyLimit: 2 * kube.MaxKubeconfig, handler: s.setEnvRuntime},
		{Method: "GET", Pattern: "/api/v1/services", Role: auth.Viewer, handler: s.listServices},
		{Method: "POST", Pattern: "/api/v1/apps/{app}/envs/{env}/services", Role: auth.Deployer, handler: s.createService},
		{Method: "GET", Pattern: "/api/v1/apps/{app}/envs/{env}/services/{name}", Role: auth.Viewer, handler: s.showService},
		{Method: "PATCH", Pattern: "/api/v1/apps/{app}/envs/{env}/services/{name}", Role: auth.Deployer, handler: s.updateService},
		{Method: "DELETE", Pattern: "/api/v1/apps/{app}/envs/{env}/services/{name}", Role: auth.Deployer, handler: s.deleteService},
		{Method: "GET", Pattern: "/api/v1/apps/{app}/envs/{env}/services/{name}/logs", Role: auth.Viewer, handler: s.serviceLogs},
		{Method: "PUT", Pattern: "/api/v1/apps/{app}/envs/{env}/services/{name}/autoscaling", Role: auth.Deployer, handler: s.putAutoscaling},
		{Method: "DELETE", Pattern: "/api/v1/apps/{app}/envs/{env}/services/{name}/autoscaling", Role: auth.Deployer, handler: s.deleteAutoscaling},

		{Method: "POST", Pattern: "/api/v1/apps/{app}/envs/{env}/services/{name}/deployments", Role: auth.Deployer, handler: s.createDeployment},
		{Method: "POST", Pattern: "/api/v1/apps/{app}/envs/{env}/services/{name}/rollback", Role: auth.Deployer, handler: s.rollbackService},
		{Method: "GET", Pattern: "/api/v1/deployments", Role: auth.Viewer, handler: s.listDeployments},
		{Method: "GET", Pattern: "/api/v1/deployments/{id}", Role: auth.Viewer, handler: s.showDeployment},
		{Method: "POST", Pattern: "/api/v1/deployments/{id}/stop", Role: auth.Deployer, handler: s.stopDeployment},
		{Method: "POST", Pattern: "/api/v1/deployments/{id}/promote", Role: auth.Deployer, handler: s.promoteDeployment},

		// Signed with the app's webhook secret instead of a token.
		{Method: "POST", Pattern: "/hooks/github/{app}", Role: auth.Public, BodyLimit: source.MaxWebhookBytes, handler: s.githubWebhook},
	}
	s.routes = append(s.routes, s.uiRoutes()...)
	mux := http.NewServeMux()
	for _, rt := range s.routes {
		if rt.Session {
			mux.Handle(rt.Method+" "+rt.Pattern, s.guardBody(limitBody(rt.BodyLimit, s.authorizeSession(rt, rt.handler).ServeHTTP)))
			continue
		}
		mux.Handle(rt.Method+" "+rt.Pattern, s.guardBody(s.authorize(rt, limitBody(rt.BodyLimit, rt.handler))))
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { s.unmatched(mux, w, r) })
	return s.observe(mux)
}

// guardBody holds every request body to the server's pace limits, before
// authentication: an unauthenticated client trickling a body in must not
// hold a handler either.
func (s *Server) guardBody(next http.Handler) http.Handler {
	l := httpguard.Defaults
	if s.cfg.BodyLimits != nil {
		l = *s.cfg.BodyLimits
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		l.Guard(w, r)
		next.ServeHTTP(w, r)
	})
}

func limitBody(limit int64, next http.HandlerFunc) http.Handler {
	if limit < 0 {
		return next
	}
	if limit == 0 {
		limit = defaultBodyLimit
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > limit {
			writeJSON(w, http.StatusRequestEntityTooLarge, map[string]*apiError{"error": {Code: "too_large",
				Message: "request body is over the " + humanBytes(limit) + " limit"}})
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, limit)
		next(w, r)
	})
}

func humanBytes(n int64) string {
	if n%(1<<20) == 0 {
		return fmt.Sprintf("%d MiB", n>>20)
	}
	return fmt.Sprintf("%d-byte", n)
}

// unmatched answers JSON 405 when the path exists for another method, else 404.
func (s *Server) unmatched(mux *http.ServeMux, w http.ResponseWriter, r *http.Request) {
	var allowed []string
	for _, m := range []string{"GET", "POST", "PUT", "PATCH", "DELETE"} {
		probe := r.Clone(r.Context())
		probe.Method = m
		if _, pattern := mux.Handler(probe); pattern != "" && pattern != "/" {
			allowed = append(allowed, m)
		}
	}
	if len(allowed) > 0 {
		w.Header().Set("Allow", strings.Join(allowed, ", "))
		writeJSON(w, http.StatusMethodNotAllowed, map[string]*apiError{"error": {Code: "method_not_allowed",
			Message: r.Method + " is not allowed on " + r.URL.Path + "; use " + strings.Join(allowed, " or ")}})
		return
	}
	if wantsPage(r) {
		s.uiError(w, r, http.StatusNotFound, "Not found", "There is no page at "+r.URL.Path+".")
		return
	}
	s.writeError(w, r, errNotFound("no route for %s %s", r.Method, r.URL.Path))
}

// wantsPage tells a browser's request for a page (an HTML error page
// answers it) from a client of the API, the registry or git (JSON).
func wantsPage(r *http.Request) bool {
	for _, prefix := range []string{"/api/", "/v2/", "/git/", "/hooks/"} {
		if strings.HasPrefix(r.URL.Path, prefix) {
			return false
		}
	}
	return (r.Method == http.MethodGet || r.Method == http.MethodHead) && strings.Contains(r.Header.Get("Accept"), "text/html")
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}
