package cli

import (
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"time"

	"github.com/slipway-dev/slipway/internal/certs"
	"github.com/slipway-dev/slipway/internal/deploy"
	"github.com/spf13/cobra"
)

// edgeFlags are the server's shared listeners and where their automatic
// certificates come from.
type edgeFlags struct {
	httpAddr, httpsAddr        string
	acmeDir, acmeEmail, acmeCA string
	acmeProfile                string
	certCheckEvery             time.Duration
}

func (e *edgeFlags) add(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&e.httpAddr, "http-listen", os.Getenv("SLIPWAY_HTTP_LISTEN"), "shared plain-HTTP listener where services claim hosts, e.g. :80 (env SLIPWAY_HTTP_LISTEN; default off)")
	f.StringVar(&e.httpsAddr, "https-listen", os.Getenv("SLIPWAY_HTTPS_LISTEN"), "shared HTTPS listener where services claim hosts, e.g. :443 (env SLIPWAY_HTTPS_LISTEN; default off)")
	f.StringVar(&e.acmeDir, "acme-directory", os.Getenv("SLIPWAY_ACME_DIRECTORY"), "ACME directory URL for automatic certificates, e.g. https://acme-v02.api.letsencrypt.org/directory (env SLIPWAY_ACME_DIRECTORY; default off)")
	f.StringVar(&e.acmeEmail, "acme-email", os.Getenv("SLIPWAY_ACME_EMAIL"), "contact address of the ACME account (env SLIPWAY_ACME_EMAIL)")
	f.StringVar(&e.acmeCA, "acme-ca-file", os.Getenv("SLIPWAY_ACME_CA_FILE"), "PEM CA that signs the ACME directory's own HTTPS certificate, for a private ACME server (env SLIPWAY_ACME_CA_FILE)")
	f.StringVar(&e.acmeProfile, "acme-profile", os.Getenv("SLIPWAY_ACME_PROFILE"), "ACME certificate profile to ask for (e.g. shortlived), when the directory offers profiles (env SLIPWAY_ACME_PROFILE)")
	every := time.Minute
	if d, err := time.ParseDuration(os.Getenv("SLIPWAY_CERT_CHECK_INTERVAL")); err == nil {
		every = d
	}
	f.DurationVar(&e.certCheckEvery, "cert-check-interval", every, "how often certificates are checked for expiry and renewal (env SLIPWAY_CERT_CHECK_INTERVAL)")
}

// config checks the flags and returns the server's edge and ACME settings.
func (e *edgeFlags) config() (deploy.Edge, *certs.ACME, error) {
	edge := deploy.Edge{HTTPAddr: e.httpAddr, HTTPSAddr: e.httpsAddr}
	for flag, addr := range map[string]string{"--http-listen": e.httpAddr, "--https-listen": e.httpsAddr} {
		if addr == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return edge, nil, fmt.Errorf("%s %q must be HOST:PORT or :PORT", flag, addr)
		}
	}
	if e.httpAddr != "" && e.httpAddr == e.httpsAddr {
		return edge, nil, fmt.Errorf("--http-listen and --https-listen must differ (both %s)", e.httpAddr)
	}
	if e.certCheckEvery < time.Second {
		return edge, nil, fmt.Errorf("--cert-check-interval must be at least 1s")
	}
	if e.acmeDir == "" {
		if e.acmeEmail != "" || e.acmeCA != "" || e.acmeProfile != "" {
			return edge, nil, fmt.Errorf("--acme-email, --acme-ca-file and --acme-profile need --acme-directory")
		}
		return edge, nil, nil
	}
	u, err := url.Parse(e.acmeDir)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return edge, nil, fmt.Errorf("--acme-directory %q must be an https:// URL", e.acmeDir)
	}
	if e.httpAddr == "" {
		return edge, nil, fmt.Errorf("--acme-directory needs --http-listen: the CA checks HTTP-01 challenges there (port 80 to the world)")
	}
	acme := &certs.ACME{DirectoryURL: e.acmeDir, Email: e.acmeEmail, Profile: e.acmeProfile}
	if e.acmeCA != "" {
		roots, err := rootsWith(e.acmeCA)
		if err != nil {
			return edge, nil, fmt.Errorf("--acme-ca-file: %w", err)
		}
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.TLSClientConfig = &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
		acme.HTTPClient = &http.Client{Transport: tr, Timeout: time.Minute}
	}
	return edge, acme, nil
}

// autoTLSHost is the control plane's host when it gets its certificate
// through ACME: a --public-url of https://HOST, no --tls-cert, and an ACME
// directory. A public URL on https without ACME stays as it was: TLS may
// end at a proxy in front.
func autoTLSHost(publicURL string, given *tls.Config, acme *certs.ACME) string {
	if given != nil || acme == nil {
		return ""
	}
	u, err := url.Parse(publicURL)
	if err != nil || u.Scheme != "https" {
		return ""
	}
	return u.Hostname()
}
