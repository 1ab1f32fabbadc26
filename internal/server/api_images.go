package server

import (
	"net/http"
	"strings"
	"time"

	"github.com/slipway-dev/slipway/internal/registry"
	"github.com/slipway-dev/slipway/internal/store"
)

func (s *Server) registryServe(w http.ResponseWriter, r *http.Request) {
	tok, _ := Caller(r.Context())
	s.reg.Serve(w, r, tok.Name)
}

func (s *Server) listImages(w http.ResponseWriter, r *http.Request) {
	imgs, err := s.db.ListImages(r.Context(), r.URL.Query().Get("repository"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, imgs)
}

// splitImageRef reads REPO:TAG or REPO@DIGEST.
func splitImageRef(ref string) (repo, tagOrDigest string, ok bool) {
	if repo, d, found := strings.Cut(ref, "@"); found {
		return repo, d, repo != "" && d != ""
	}
	i := strings.LastIndex(ref, ":")
	if i <= 0 || strings.Contains(ref[i:], "/") {
		return "", "", false
	}
	return ref[:i], ref[i+1:], ref[i+1:] != ""
}

func (s *Server) removeImage(w http.ResponseWriter, r *http.Request) {
	ref := r.URL.Query().Get("reference")
	repo, tagOrDigest, ok := splitImageRef(ref)
	if !ok {
		s.writeError(w, r, errBadRequest("reference", "reference %q must be REPOSITORY:TAG or REPOSITORY@sha256:…", ref))
		return
	}
	msg, err := s.reg.Remove(r.Context(), repo, tagOrDigest)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"message": msg})
}

type gcRequest struct {
	DryRun bool   `json:"dry_run"`
	Grace  string `json:"grace"`
}

func (s *Server) gcImages(w http.ResponseWriter, r *http.Request) {
	var req gcRequest
	if r.ContentLength != 0 {
		if err := decodeJSON(r, &req); err != nil {
			s.writeError(w, r, err)
			return
		}
	}
	grace := time.Hour
	if req.Grace != "" {
		g, err := time.ParseDuration(req.Grace)
		if err != nil || g < 0 {
			s.writeError(w, r, errBadRequest("grace", "grace %q must be a duration such as 1h or 0s", req.Grace))
			return
		}
		grace = g
	}
	rep, err := s.reg.GC(r.Context(), registry.GCOptions{DryRun: req.DryRun, Grace: grace})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, rep)
}

func (s *Server) getImagePolicy(w http.ResponseWriter, r *http.Request) {
	repo := r.URL.Query().Get("repository")
	if repo == "" {
		s.writeError(w, r, errBadRequest("repository", "repository is required"))
		return
	}
	p, err := s.db.GetPolicy(r.Context(), repo)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, p)
}

func (s *Server) setImagePolicy(w http.ResponseWriter, r *http.Request) {
	var p store.RepoPolicy
	if err := decodeJSON(r, &p); err != nil {
		s.writeError(w, r, err)
		return
	}
	app, _, _ := strings.Cut(p.Repo, "/")
	if _, err := s.db.GetApp(r.Context(), app); err != nil {
		s.writeError(w, r, errBadRequest("repository", "repository %q does not belong to an app", p.Repo))
		return
	}
	if p.KeepLast < 0 || p.KeepLast > 10000 {
		s.writeError(w, r, errBadRequest("keep_last", "keep_last must be 0 (keep all) to 10000"))
		return
	}
	if p.ExpireUntaggedDays < 0 || p.ExpireUntaggedDays > 3650 {
		s.writeError(w, r, errBadRequest("expire_untagged_days", "expire_untagged_days must be 0 (never) to 3650"))
		return
	}
	if err := s.db.SetPolicy(r.Context(), p); err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, p)
}
