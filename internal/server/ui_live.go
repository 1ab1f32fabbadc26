package server

import (
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/slipway-dev/slipway/internal/store"
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
	// A page's plots, likewise: outside the live region, so a new sample
	// is not read out.
	Charts    string `json:"charts,omitempty"`
	ChartsKey string `json:"chartsKey,omitempty"`
	// A deployment's timeline, keyed by its length.
	Timeline    string `json:"timeline,omitempty"`
	TimelineKey string `json:"timelineKey,omitempty"`
}

// listPoll is how often a live list (apps, runs, an app's page) is
// re-read: these read more than one subject's page does.
const listPoll = 2 * time.Second

// streamFragments sends render's output as "update" events whenever it
// changes, until render reports the subject finished (then "end") or the
// client goes away.
func (s *Server) streamFragments(w http.ResponseWriter, r *http.Request, render func() (liveUpdate, bool, error)) {
	s.streamFragmentsEvery(w, r, livePoll, render)
}

// streamFragmentsEvery is streamFragments re-reading every poll.
func (s *Server) streamFragmentsEvery(w http.ResponseWriter, r *http.Request, poll time.Duration, render func() (liveUpdate, bool, error)) {
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
		case <-time.After(poll):
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
		if err != nil {
			return liveUpdate{}, false, err
		}
		timeline, err := s.ui.Fragment("deployment", "timeline", v)
		// A finished deployment may still change: its blue set is kept for
		// the termination wait, and a rollback stays possible.
		return liveUpdate{HTML: html, Charts: string(v.Plots.Charts), ChartsKey: v.Plots.Key,
			Timeline: timeline, TimelineKey: strconv.Itoa(len(v.Detail.Events))}, false, err
	})
}

func (s *Server) uiServiceEvents(w http.ResponseWriter, r *http.Request) {
	s.streamFragments(w, r, func() (liveUpdate, bool, error) {
		v, err := s.serviceView(r)
		if err != nil {
			return liveUpdate{}, false, err
		}
		html, err := s.ui.Fragment("service", "service-live", v)
		return liveUpdate{HTML: html, Charts: string(v.Plots.Charts), ChartsKey: v.Plots.Key}, false, err
	})
}

func (s *Server) uiAppsEvents(w http.ResponseWriter, r *http.Request) {
	s.streamFragmentsEvery(w, r, listPoll, func() (liveUpdate, bool, error) {
		cards, err := s.appCards(r.Context())
		if err != nil {
			return liveUpdate{}, false, err
		}
		html, err := s.ui.Fragment("apps", "apps-live", cards)
		return liveUpdate{HTML: html}, false, err
	})
}

func (s *Server) uiRunsEvents(w http.ResponseWriter, r *http.Request) {
	app := r.URL.Query().Get("app")
	s.streamFragmentsEvery(w, r, listPoll, func() (liveUpdate, bool, error) {
		runs, err := s.db.ListRuns(r.Context(), app, store.Page{Limit: 100})
		if err != nil {
			return liveUpdate{}, false, err
		}
		html, err := s.ui.Fragment("runs", "runs-live", s.runRows(r.Context(), runs))
		return liveUpdate{HTML: html}, false, err
	})
}

func (s *Server) uiAppEvents(w http.ResponseWriter, r *http.Request) {
	if _, err := s.db.GetApp(r.Context(), r.PathValue("app")); err != nil {
		s.writeError(w, r, err)
		return
	}
	s.streamFragmentsEvery(w, r, time.Second, func() (liveUpdate, bool, error) {
		v, err := s.appView(r.Context(), r.PathValue("app"))
		if err != nil {
			return liveUpdate{}, false, err
		}
		html, err := s.ui.Fragment("app", "app-live", v)
		return liveUpdate{HTML: html}, false, err
	})
}
