package server

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/slipway-dev/slipway/internal/pipeline"
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
	req.Comment = strings.TrimSpace(req.Comment)
	if !approve && req.Comment == "" {
		s.writeError(w, r, errBadRequest("comment", "a rejection needs a comment saying why (--comment)"))
		return
	}
	if len(req.Comment) > 4000 {
		s.writeError(w, r, errBadRequest("comment", "comment is %d bytes; keep it under 4000", len(req.Comment)))
		return
	}
	if _, err := s.db.GetRun(r.Context(), id); err != nil {
		s.writeError(w, r, err)
		return
	}
	tok, _ := Caller(r.Context())
	ap, err := s.engine.Decide(r.Context(), id, approve, tok.Name, req.Comment)
	if errors.Is(err, pipeline.ErrNotWaiting) {
		s.writeError(w, r, &apiError{Status: http.StatusConflict, Code: "not_waiting", Message: err.Error() + "; only a run in state waiting at an approval action can be approved or rejected"})
		return
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.log.Info("approval decided", "run", id, "stage", ap.Stage, "action", ap.Action, "state", ap.State, "by", tok.Name)
	writeJSON(w, http.StatusOK, map[string]any{"approval": ap, "message": fmt.Sprintf("run %d %s at %s/%s", id, ap.State, ap.Stage, ap.Action)})
}
