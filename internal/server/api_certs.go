package server

import (
	"errors"
	"net/http"

	"github.com/slipway-dev/slipway/internal/tlscert"
)

// AddCertificateRequest is a certificate brought by hand.
type AddCertificateRequest struct {
	CertPEM string `json:"cert_pem"`
	KeyPEM  string `json:"key_pem"`
	// Host, when given, must be one the certificate holds.
	Host string `json:"host,omitempty"`
}

func (s *Server) addCertificate(w http.ResponseWriter, r *http.Request) {
	var req AddCertificateRequest
	if err := decodeJSON(r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	tok, _ := Caller(r.Context())
	c, err := s.certs.Add(r.Context(), []byte(req.CertPEM), []byte(req.KeyPEM), req.Host, tok.Name)
	var ce *tlscert.Error
	if errors.As(err, &ce) {
		field := ce.Field
		if field != "host" {
			field += "_pem" // as the request names it
		}
		s.writeError(w, r, errBadRequest(field, "%s: %s", ce.Field, ce.Reason))
		return
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.log.Info("certificate added", "name", c.Name, "hosts", c.Hosts, "not_after", c.NotAfter, "by", tok.Name)
	c.CertPEM = ""
	writeJSON(w, http.StatusOK, c)
}

func (s *Server) listCertificates(w http.ResponseWriter, r *http.Request) {
	list, err := s.db.ListCertificates(r.Context())
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	for i := range list {
		list[i].CertPEM = "" // public, but long: `cert list` shows what matters
	}
	writeJSON(w, http.StatusOK, list)
}

func (s *Server) removeCertificate(w http.ResponseWriter, r *http.Request) {
	if err := s.certs.Remove(r.Context(), r.PathValue("name")); err != nil {
		s.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
