package server

import (
	"net/http"

	"github.com/slipway-dev/slipway/internal/store"
)

// Status is one server's view of the servers sharing its database.
type Status struct {
	// Server is the id of the server that answered.
	Server string `json:"server"`
	// Controlling is whether it runs the control loops.
	Controlling bool `json:"controlling"`
	// Database is the engine: sqlite or postgres.
	Database string `json:"database"`
	// Servers are those heard from in the last minute, newest first, with
	// the leases each holds.
	Servers []store.Server `json:"servers"`
}

func (s *Server) status(w http.ResponseWriter, r *http.Request) {
	servers, err := s.db.ListServers(r.Context(), statusWindow)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, Status{Server: s.id, Controlling: s.controlling(), Database: string(s.db.Dialect()), Servers: servers})
}
