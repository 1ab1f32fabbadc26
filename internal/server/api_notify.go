package server

import (
	"errors"
	"net/http"

	"github.com/slipway-dev/slipway/internal/notify"
	"github.com/slipway-dev/slipway/internal/store"
)

// ChannelRequest configures a notification channel; settings are sealed
// at rest and never returned.
type ChannelRequest struct {
	Type     string          `json:"type"`
	Events   []string        `json:"events"`
	Settings notify.Settings `json:"settings"`
}

func (s *Server) putChannel(w http.ResponseWriter, r *http.Request) {
	app, name := r.PathValue("app"), r.PathValue("name")
	if _, err := s.db.GetApp(r.Context(), app); err != nil {
		s.writeError(w, r, err)
		return
	}
	var req ChannelRequest
	if err := decodeJSON(r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	events, err := notify.Validate(name, req.Type, req.Events, &req.Settings)
	var fe *notify.FieldError
	if errors.As(err, &fe) {
		field := fe.Field
		if field != "name" && field != "type" && field != "events" {
			field = "settings." + field
		}
		s.writeError(w, r, errBadRequest(field, "%s", fe.Message))
		return
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	c := store.Channel{App: app, Name: name, Type: req.Type, Events: events, Target: notify.Target(req.Type, req.Settings)}
	if err := s.db.PutChannel(r.Context(), c, s.notify.SealSettings(req.Settings)); err != nil {
		s.writeError(w, r, err)
		return
	}
	c, _, err = s.db.SealedChannel(r.Context(), app, name)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, c)
}

func (s *Server) listChannels(w http.ResponseWriter, r *http.Request) {
	app := r.PathValue("app")
	if _, err := s.db.GetApp(r.Context(), app); err != nil {
		s.writeError(w, r, err)
		return
	}
	cs, err := s.db.ListChannels(r.Context(), app)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, cs)
}

func (s *Server) deleteChannel(w http.ResponseWriter, r *http.Request) {
	app, name := r.PathValue("app"), r.PathValue("name")
	if err := s.db.DeleteChannel(r.Context(), app, name); err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"message": "removed notification channel " + name + " of app " + app})
}

func (s *Server) listDeliveries(w http.ResponseWriter, r *http.Request) {
	app := r.PathValue("app")
	if _, err := s.db.GetApp(r.Context(), app); err != nil {
		s.writeError(w, r, err)
		return
	}
	p, err := pageParams(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	ds, err := s.db.ListDeliveries(r.Context(), app, p)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, ds)
}
