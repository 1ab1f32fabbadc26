// Package tlscert checks certificates people bring and obtains them from
// ACME directories.
package tlscert

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Info is what a certificate says about itself.
type Info struct {
	Hosts       []string  `json:"hosts"` // the DNS names it holds, as written
	NotBefore   time.Time `json:"not_before"`
	NotAfter    time.Time `json:"not_after"`
	Issuer      string    `json:"issuer"`
	Fingerprint string    `json:"fingerprint"` // SHA-256 of the leaf, hex
}

// Error is a certificate or key refused, naming which and why.
type Error struct {
	Field  string // "cert" or "key"
	Reason string
}

func (e *Error) Error() string { return e.Field + ": " + e.Reason }

// MaxPEM bounds what a client may send as a certificate chain or key.
const MaxPEM = 64 << 10

// Parse checks a PEM chain (leaf first) and its PEM private key: both
// decode, the key is the leaf's, the leaf names at least one DNS name, may
// serve TLS and is valid at now.
func Parse(certPEM, keyPEM []byte, now time.Time) (Info, error) {
	var info Info
	if len(certPEM) > MaxPEM {
		return info, &Error{"cert", fmt.Sprintf("is %d bytes; at most %d", len(certPEM), MaxPEM)}
	}
	if len(keyPEM) > MaxPEM {
		return info, &Error{"key", fmt.Sprintf("is %d bytes; at most %d", len(keyPEM), MaxPEM)}
	}
	block, _ := pem.Decode(certPEM)
	if block == nil || block.Type != "CERTIFICATE" {
		return info, &Error{"cert", "is not a PEM certificate (-----BEGIN CERTIFICATE-----)"}
	}
	leaf, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return info, &Error{"cert", err.Error()}
	}
	if b, _ := pem.Decode(keyPEM); b == nil || !strings.HasSuffix(b.Type, "PRIVATE KEY") {
		return info, &Error{"key", "is not a PEM private key (-----BEGIN PRIVATE KEY-----)"}
	}
	if _, err := tls.X509KeyPair(certPEM, keyPEM); err != nil {
		if strings.Contains(err.Error(), "does not match") {
			return info, &Error{"key", "is not the key of the certificate (its public key differs): pass the key the certificate was issued for"}
		}
		return info, &Error{"key", strings.TrimPrefix(err.Error(), "tls: ")}
	}
	switch {
	case now.After(leaf.NotAfter):
		return info, &Error{"cert", fmt.Sprintf("expired on %s", leaf.NotAfter.UTC().Format(time.RFC3339))}
	case now.Before(leaf.NotBefore):
		return info, &Error{"cert", fmt.Sprintf("is not valid before %s", leaf.NotBefore.UTC().Format(time.RFC3339))}
	case len(leaf.DNSNames) == 0:
		return info, &Error{"cert", "names no DNS host (subjectAltName): issue it for the hosts it will serve"}
	case len(leaf.ExtKeyUsage) > 0 && !slices.Contains(leaf.ExtKeyUsage, x509.ExtKeyUsageServerAuth) && !slices.Contains(leaf.ExtKeyUsage, x509.ExtKeyUsageAny):
		return info, &Error{"cert", "may not serve TLS (its extended key usage lacks serverAuth)"}
	}
	sum := sha256.Sum256(leaf.Raw)
	info = Info{Hosts: leaf.DNSNames, NotBefore: leaf.NotBefore, NotAfter: leaf.NotAfter, Issuer: leaf.Issuer.String(), Fingerprint: hex.EncodeToString(sum[:])}
	return info, nil
}

// Covers reports whether a certificate name (maybe "*.example.com")
// serves host, as a TLS client checks it: a wildcard stands for exactly
// one label.
func Covers(name, host string) bool {
	name, host = strings.ToLower(name), strings.ToLower(host)
	if name == host {
		return true
	}
	rest, ok := strings.CutPrefix(name, "*.")
	if !ok {
		return false
	}
	label, parent, ok := strings.Cut(host, ".")
	return ok && label != "" && parent == rest
}

// CoversAny reports whether one of names serves host.
func CoversAny(names []string, host string) bool {
	for _, n := range names {
		if Covers(n, host) {
			return true
		}
	}
	return false
}
