package server

import (
	"fmt"
	"net/http"
	"time"
)

// livePoll is how often a live page's data is re-read; an update is sent
// only when the rendered fragment changed.
const livePoll = 300 * time.Millisecond

// liveUpdate is one Server-Sent Event of a live page.
type liveUpdate struct {
	HTML string `json:"html"`
	// The approval panel of a run page, replaced only when its key changes.
	Panel    string `json:"panel,omitempty"`
	PanelKey string `json:"panelKey,omitempty"`
	// A run's buttons, likewise.
	Controls    string `json:"controls,omitempty"`
	ControlsKey string `json:"controlsKey,omitempty"`
}

// streamFragments sends render's output as "update" events whenever it
// changes, until render reports the subject finished (then "end") or the
// client goes away.
func (s *Server) streamFragments(w http.ResponseWriter, r *http.Request, render func() (liveUpdate, bool, error)) {
	es := startEvents(w)
	var last liveUpdate // rendered fragments are never empty, so the first one is sent
	for {
		u, done, err := render()
		if err != nil {
			es.event("", "end", map[string]string{"error": err.Error()})
			_ = es.flush()
			return
		}
		if u != last {
			last = u
			es.event("", "update", u)
			if es.flush() != nil {
				return
			}
		} else if es.keepalive() != nil {
			return
		}
		if done {
			es.event("", "end", struct{}{})
			_ = es.flush()
			return
		}
		select {
		case <-r.Context().Done():
			return
		case <-time.After(livePoll):
		}
	}
}

func (s *Server) uiRunEvents(w http.ResponseWriter, r *http.Request) {
	run, ok := s.pathRun(w, r)
	if !ok {
		return
	}
	id := run.ID
	tails := newLogTails()
	s.streamFragments(w, r, func() (liveUpdate, bool, error) {
		v, err := s.runView(r.Context(), id, tails)
		if err != nil {
			return liveUpdate{}, false, err
		}
		v.Controls = s.runControls(r, v.Run, fmt.Sprintf("/runs/%d", id))
		html, err := s.ui.Fragment("run", "run-live", v)
		if err != nil {
			return liveUpdate{}, false, err
		}
		p := s.page(r, "", "", v)
		panel, err := s.ui.Fragment("run", "approval-panel", p)
		if err != nil {
			return liveUpdate{}, false, err
		}
		controls, err := s.ui.Fragment("run", "run-controls", v.Controls)
		if err != nil {
			return liveUpdate{}, false, err
		}
		return liveUpdate{HTML: html, Panel: panel, PanelKey: v.PanelKey, Controls: controls, ControlsKey: v.Controls.Key()}, v.Run.EndedAt != nil, nil
	})
}

func (s *Server) uiDeploymentEvents(w http.ResponseWriter, r *http.Request) {
	id, err := deploymentID(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.streamFragments(w, r, func() (liveUpdate, bool, error) {
		v, err := s.deploymentView(r.Context(), id)
		if err != nil {
			return liveUpdate{}, false, err
		}
		html, err := s.ui.Fragment("deployment", "deployment-live", s.page(r, "", "", v))
		// A finished deployment may still change: its blue set is kept for
		// the termination wait, and a rollback stays possible.
		return liveUpdate{HTML: html}, false, err
	})
}

func (s *Server) uiServiceEvents(w http.ResponseWriter, r *http.Request) {
	s.streamFragments(w, r, func() (liveUpdate, bool, error) {
		v, err := s.serviceView(r)
		if err != nil {
			return liveUpdate{}, false, err
		}
		html, err := s.ui.Fragment("service", "service-live", v)
		return liveUpdate{HTML: html}, false, err
	})
}
