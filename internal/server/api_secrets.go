package server

import (
	"net/http"

	"github.com/slipway-dev/slipway/internal/secret"
	"github.com/slipway-dev/slipway/internal/store"
)

// maxSecretBytes bounds one secret value (as Secrets Manager does, 64 KiB).
const maxSecretBytes = 64 << 10

type setSecretRequest struct {
	App   string `json:"app"`
	Env   string `json:"env"`
	Value string `json:"value"`
}

// secretScope checks that a scope's app and environment exist.
func (s *Server) secretScope(r *http.Request, app, env string) error {
	if env != "" && app == "" {
		return errBadRequest("env", "an environment scope needs its app too (--app)")
	}
	if app == "" {
		return nil
	}
	a, err := s.db.GetApp(r.Context(), app)
	if err != nil {
		return errBadRequest("app", "app %q does not exist", app)
	}
	if env != "" {
		for _, e := range a.Environments {
			if e == env {
				return nil
			}
		}
		return errBadRequest("env", "app %s has no environment %q", app, env)
	}
	return nil
}

func (s *Server) setSecret(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if err := secret.ValidName(name); err != nil {
		s.writeError(w, r, errBadRequest("name", "%v", err))
		return
	}
	var req setSecretRequest
	if err := decodeJSON(r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	if req.Value == "" {
		s.writeError(w, r, errBadRequest("value", "the secret value is empty; pipe it on stdin or use --from-file"))
		return
	}
	if len(req.Value) > maxSecretBytes {
		s.writeError(w, r, errBadRequest("value", "the secret value is %d bytes; the limit is %d", len(req.Value), maxSecretBytes))
		return
	}
	if err := s.secretScope(r, req.App, req.Env); err != nil {
		s.writeError(w, r, err)
		return
	}
	tok, _ := Caller(r.Context())
	version, err := s.vault.Set(r.Context(), name, req.App, req.Env, req.Value, tok.Name)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	sec, _, err := s.db.SealedSecret(r.Context(), name, req.App, req.Env)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.log.Info("secret set", "name", name, "app", req.App, "env", req.Env, "version", version, "by", tok.Name)
	writeJSON(w, http.StatusOK, sec)
}

func (s *Server) listSecrets(w http.ResponseWriter, r *http.Request) {
	list, err := s.db.ListSecrets(r.Context(), r.URL.Query().Get("app"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, list)
}

func (s *Server) deleteSecret(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	name, app, env := r.PathValue("name"), q.Get("app"), q.Get("env")
	if env != "" && app == "" {
		s.writeError(w, r, errBadRequest("env", "an environment scope needs its app too (--app)"))
		return
	}
	if err := s.db.DeleteSecret(r.Context(), name, app, env); err != nil {
		s.writeError(w, r, err)
		return
	}
	tok, _ := Caller(r.Context())
	s.log.Info("secret removed", "name", name, "app", app, "env", env, "by", tok.Name)
	writeJSON(w, http.StatusOK, store.Secret{Name: name, App: app, Env: env})
}
