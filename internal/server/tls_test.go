package server

import (
	"crypto/tls"
	"testing"
)

// With TLS the server's links to itself are https://; image references
// name the registry by host:port alone, as the Docker engine wants them.
func TestSetAddrWithTLS(t *testing.T) {
	e := newEnvWith(t, Config{DataDir: t.TempDir(), TLS: &tls.Config{}})
	e.srv.SetAddr("0.0.0.0:7443")
	if got := e.srv.notify.BaseURL(); got != "https://127.0.0.1:7443" {
		t.Errorf("links in notices start %s", got)
	}
	if got := e.srv.engine.CurrentRegistry().Host; got != "127.0.0.1:7443" {
		t.Errorf("registry host %s", got)
	}
}
