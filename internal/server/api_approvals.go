package server

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/slipway-dev/slipway/internal/pipeline"
	"github.com/slipway-dev/slipway/internal/store"
)

type decisionRequest struct {
	Comment string `json:"comment"`
}

func (s *Server) approveRun(w http.ResponseWriter, r *http.Request) { s.decide(w, r, true) }
func (s *Server) rejectRun(w http.ResponseWriter, r *http.Request)  { s.decide(w, r, false) }

// decide records an approval or rejection of the run's pending approval.
func (s *Server) decide(w http.ResponseWriter, r *http.Request, approve bool) {
	id, err := runIDParam(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	var req decisionRequest
	if r.ContentLength != 0 {
		if err := decodeJSON(r, &req); err != nil {
			s.writeError(w, r, err)
			return
		}
	}
	ap, err := s.recordDecision(r, id, approve, req.Comment)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"approval": ap, "message": fmt.Sprintf("run %d %s at %s/%s", id, ap.State, ap.Stage, ap.Action)})
}

// recordDecision validates and records the caller's decision on a run's
// pending approval, for the API and the web UI alike.
func (s *Server) recordDecision(r *http.Request, id int64, approve bool, comment string) (store.Approval, error) {
	comment = strings.TrimSpace(comment)
	if !approve && comment == "" {
		return store.Approval{}, errBadRequest("comment", "a rejection needs a comment saying why (--comment)")
	}
	if len(comment) > 4000 {
		return store.Approval{}, errBadRequest("comment", "comment is %d bytes; keep it under 4000", len(comment))
	}
	if _, err := s.db.GetRun(r.Context(), id); err != nil {
		return store.Approval{}, err
	}
	tok, _ := Caller(r.Context())
	ap, err := s.engine.Decide(r.Context(), id, approve, tok.Name, comment)
	if errors.Is(err, pipeline.ErrNotWaiting) {
		return ap, &apiError{Status: http.StatusConflict, Code: "not_waiting", Message: err.Error() + "; only a run in state waiting at an approval action can be approved or rejected"}
	}
	if err != nil {
		return ap, err
	}
	s.log.Info("approval decided", "run", id, "stage", ap.Stage, "action", ap.Action, "state", ap.State, "by", tok.Name, "path", r.URL.Path)
	return ap, nil
}
