package cli

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"
)

// serverTLS loads `slipway server`'s --tls-cert and --tls-key: nil for
// plain HTTP when neither is given. What every client would refuse at its
// first call (a pair that does not load or match, a certificate out of its
// validity period) is refused at start instead.
func serverTLS(certFile, keyFile string, now time.Time) (*tls.Config, *x509.Certificate, error) {
	switch {
	case certFile == "" && keyFile == "":
		return nil, nil, nil
	case keyFile == "":
		return nil, nil, errors.New("--tls-cert needs --tls-key: pass the certificate's private key (PEM) as well, or neither flag for plain HTTP")
	case certFile == "":
		return nil, nil, errors.New("--tls-key needs --tls-cert: pass the certificate (PEM: the server's first, then any intermediates) as well, or neither flag for plain HTTP")
	}
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return nil, nil, fmt.Errorf("--tls-cert: %w", err)
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, nil, fmt.Errorf("--tls-key: %w", err)
	}
	if !hasPEM(certPEM, "CERTIFICATE") {
		msg := fmt.Sprintf("--tls-cert %s holds no PEM certificate (-----BEGIN CERTIFICATE-----)", certFile)
		if hasPEM(certPEM, "PRIVATE KEY") {
			msg += " but a private key: are --tls-cert and --tls-key swapped?"
		}
		return nil, nil, errors.New(msg)
	}
	if !hasPEM(keyPEM, "PRIVATE KEY") {
		return nil, nil, fmt.Errorf("--tls-key %s holds no PEM private key (-----BEGIN PRIVATE KEY----- or an RSA or EC one)", keyFile)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, nil, fmt.Errorf("--tls-key %s is not the private key of the certificate in --tls-cert %s (%v): pass the key the certificate was issued for", keyFile, certFile, err)
	}
	leaf := pair.Leaf
	if leaf == nil { // GODEBUG=x509keypairleaf=0
		if leaf, err = x509.ParseCertificate(pair.Certificate[0]); err != nil {
			return nil, nil, fmt.Errorf("--tls-cert %s: %w", certFile, err)
		}
	}
	if now.After(leaf.NotAfter) {
		return nil, nil, fmt.Errorf("--tls-cert %s expired on %s: renew the certificate (clients refuse an expired one)", certFile, leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	if now.Before(leaf.NotBefore) {
		return nil, nil, fmt.Errorf("--tls-cert %s is not valid before %s: check this machine's clock, or the certificate's dates", certFile, leaf.NotBefore.UTC().Format(time.RFC3339))
	}
	// TLS 1.2 and up with Go's default cipher suites; HTTP/2 first, HTTP/1.1
	// for clients without it (git over some curl builds, docker).
	return &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{pair}, NextProtos: []string{"h2", "http/1.1"}}, leaf, nil
}

// hasPEM says whether b holds a PEM block whose type ends in kind.
func hasPEM(b []byte, kind string) bool {
	for {
		var block *pem.Block
		block, b = pem.Decode(b)
		if block == nil {
			return false
		}
		if strings.HasSuffix(block.Type, kind) {
			return true
		}
	}
}

// loginURL is the URL the start-up message tells people to log in at:
// the listen address, or with TLS a name the certificate holds when it
// does not hold the address (a login there would fail verification).
func loginURL(addr string, leaf *x509.Certificate) string {
	if leaf == nil {
		return "http://" + addr
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil || leaf.VerifyHostname(host) == nil {
		return "https://" + addr
	}
	names := append([]string(nil), leaf.DNSNames...)
	for _, ip := range leaf.IPAddresses {
		names = append(names, ip.String())
	}
	for _, n := range names {
		if !strings.Contains(n, "*") { // a wildcard is no host to log in at
			return "https://" + net.JoinHostPort(n, port)
		}
	}
	return "https://" + addr
}
