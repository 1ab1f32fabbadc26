package cli

import (
	"crypto/tls"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/slipway-dev/slipway/internal/certs"
)

func TestEdgeFlags(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "not.pem")
	os.WriteFile(notPEM, []byte("not a certificate"), 0o600)
	acme := "https://acme.example/dir"
	for _, c := range []struct {
		name string
		f    edgeFlags
		want string // "" for valid
	}{
		{"off", edgeFlags{}, ""},
		{"both listeners", edgeFlags{httpAddr: ":80", httpsAddr: ":443"}, ""},
		{"acme", edgeFlags{httpAddr: ":80", acmeDir: acme, acmeEmail: "ops@example.com"}, ""},
		{"bad address", edgeFlags{httpAddr: "80"}, `--http-listen "80" must be HOST:PORT or :PORT`},
		{"same address", edgeFlags{httpAddr: ":8080", httpsAddr: ":8080"}, "--http-listen and --https-listen must differ"},
		{"acme without a plain listener", edgeFlags{httpsAddr: ":443", acmeDir: acme}, "--acme-directory needs --http-listen"},
		{"acme over http", edgeFlags{httpAddr: ":80", acmeDir: "http://acme.example/dir"}, "must be an https:// URL"},
		{"email without acme", edgeFlags{acmeEmail: "ops@example.com"}, "need --acme-directory"},
		{"missing CA file", edgeFlags{httpAddr: ":80", acmeDir: acme, acmeCA: filepath.Join(dir, "none.pem")}, "--acme-ca-file: open"},
		{"CA file without a certificate", edgeFlags{httpAddr: ":80", acmeDir: acme, acmeCA: notPEM}, "holds no PEM certificate"},
		{"check interval", edgeFlags{certCheckEvery: time.Millisecond}, "--cert-check-interval must be at least 1s"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if c.f.certCheckEvery == 0 {
				c.f.certCheckEvery = time.Minute
			}
			_, _, err := c.f.config()
			if c.want == "" && err != nil || c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)) {
				t.Fatalf("config() = %v, want %q", err, c.want)
			}
		})
	}
}

func TestAutoTLSHost(t *testing.T) {
	acme := &certs.ACME{DirectoryURL: "https://acme.example/dir"}
	for _, c := range []struct {
		url   string
		given *tls.Config
		acme  *certs.ACME
		want  string
	}{
		{"https://slipway.example.com:8443", nil, acme, "slipway.example.com"},
		{"https://slipway.example.com", &tls.Config{}, acme, ""}, // --tls-cert wins
		{"https://slipway.example.com", nil, nil, ""},            // TLS may end at a proxy in front
		{"http://slipway.example.com", nil, acme, ""},
		{"", nil, acme, ""},
	} {
		if got := autoTLSHost(c.url, c.given, c.acme); got != c.want {
			t.Errorf("autoTLSHost(%q, tls %v, acme %v) = %q, want %q", c.url, c.given != nil, c.acme != nil, got, c.want)
		}
	}
}
