package lb

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"strings"
	"time"
)

// Certificate is a PEM chain (leaf first) and its PEM private key.
type Certificate struct {
	CertPEM string `json:"cert_pem"`
	KeyPEM  string `json:"key_pem"`
}

func (c Certificate) parse() (*tls.Certificate, error) {
	crt, err := tls.X509KeyPair([]byte(c.CertPEM), []byte(c.KeyPEM))
	if err != nil {
		return nil, fmt.Errorf("certificate and key: %w", err)
	}
	if crt.Leaf == nil {
		if crt.Leaf, err = x509.ParseCertificate(crt.Certificate[0]); err != nil {
			return nil, err
		}
	}
	return &crt, nil
}

// certTable finds the certificate for a server name: exact names first,
// then a wildcard one label up; among several, the one valid longest.
type certTable struct {
	exact    map[string]*tls.Certificate
	wildcard map[string]*tls.Certificate // by the name after "*."
	fallback *tls.Certificate            // for no SNI or an unknown name
}

func newCertTable(certs []Certificate, fallback *tls.Certificate) *certTable {
	t := &certTable{exact: map[string]*tls.Certificate{}, wildcard: map[string]*tls.Certificate{}, fallback: fallback}
	put := func(m map[string]*tls.Certificate, name string, c *tls.Certificate) {
		if o := m[name]; o == nil || c.Leaf.NotAfter.After(o.Leaf.NotAfter) {
			m[name] = c
		}
	}
	for _, c := range certs {
		crt, err := c.parse()
		if err != nil {
			continue // Validate refused it before
		}
		for _, name := range crt.Leaf.DNSNames {
			name = strings.ToLower(name)
			if rest, ok := strings.CutPrefix(name, "*."); ok {
				put(t.wildcard, rest, crt)
			} else {
				put(t.exact, name, crt)
			}
		}
	}
	return t
}

func (t *certTable) get(name string) *tls.Certificate {
	name = strings.ToLower(strings.TrimSuffix(name, "."))
	if c := t.exact[name]; c != nil {
		return c
	}
	if _, rest, ok := strings.Cut(name, "."); ok {
		if c := t.wildcard[rest]; c != nil {
			return c
		}
	}
	return t.fallback
}

// selfSigned makes the certificate served to clients that name no host,
// or one no certificate holds: it names no real host, so such a client
// learns nothing of which hosts are served, and gets a 404 if it goes on.
func selfSigned() (*tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "slipway default"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(10 * 365 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{"slipway.invalid"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, nil
}

// serverTLS is the TLS settings of every TLS listener: TLS 1.2 and later
// with Go's default (modern, forward-secret, AEAD) cipher suites, HTTP/2
// and HTTP/1.1 by ALPN, and the certificate the client's SNI names.
func (b *Balancer) serverTLS() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		NextProtos: []string{"h2", "http/1.1"},
		GetCertificate: func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
			t := b.certs.Load()
			if t == nil || t.fallback == nil {
				return nil, errors.New("no certificate")
			}
			return t.get(hello.ServerName), nil
		},
	}
}

// streamedConn is a connection whose reads and writes go through a stream:
// under tls.Server, the TLS records then skip the runtime's syscall state
// as the plain fast path's bytes do (see stream). Deadlines and Close are
// the connection's own.
type streamedConn struct {
	net.Conn
	rw io.ReadWriter
}

func (c *streamedConn) Read(p []byte) (int, error)  { return c.rw.Read(p) }
func (c *streamedConn) Write(p []byte) (int, error) { return c.rw.Write(p) }

// streamed is nc with its reads and writes on a stream where it has one.
func streamed(nc net.Conn) net.Conn { return &streamedConn{Conn: nc, rw: newStream(nc)} }

// validToken reports an ACME challenge token: base64url characters only,
// so it is safe in a path.
func validToken(s string) bool {
	if s == "" || len(s) > 256 {
		return false
	}
	for _, ch := range s {
		if !(ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9' || ch == '-' || ch == '_') {
			return false
		}
	}
	return true
}

// Sealer encrypts what the proxy keeps on disk (certificate keys), so its
// routing table holds no private key in plain text; secret.Keyring is one.
type Sealer interface {
	Seal(plain []byte) []byte
	Open(sealed []byte) ([]byte, error)
}

const sealedPrefix = "sealed:"

// sealKeys returns cfg with every certificate key sealed.
func sealKeys(cfg Config, s Sealer) Config {
	if len(cfg.Certificates) == 0 {
		return cfg
	}
	out := make([]Certificate, len(cfg.Certificates))
	for i, c := range cfg.Certificates {
		c.KeyPEM = sealedPrefix + base64.StdEncoding.EncodeToString(s.Seal([]byte(c.KeyPEM)))
		out[i] = c
	}
	cfg.Certificates = out
	return cfg
}

// openKeys reverses sealKeys.
func openKeys(cfg Config, s Sealer) (Config, error) {
	for i, c := range cfg.Certificates {
		enc, ok := strings.CutPrefix(c.KeyPEM, sealedPrefix)
		if !ok {
			return cfg, fmt.Errorf("certificates[%d]: key is not sealed", i)
		}
		raw, err := base64.StdEncoding.DecodeString(enc)
		if err != nil {
			return cfg, fmt.Errorf("certificates[%d]: %w", i, err)
		}
		plain, err := s.Open(raw)
		if err != nil {
			return cfg, fmt.Errorf("certificates[%d]: %w", i, err)
		}
		cfg.Certificates[i].KeyPEM = string(plain)
	}
	return cfg, nil
}

// withoutKeys is cfg for reading back: certificates without their keys.
func withoutKeys(cfg Config) Config {
	if len(cfg.Certificates) == 0 {
		return cfg
	}
	out := make([]Certificate, len(cfg.Certificates))
	for i, c := range cfg.Certificates {
		out[i] = Certificate{CertPEM: c.CertPEM}
	}
	cfg.Certificates = out
	return cfg
}
