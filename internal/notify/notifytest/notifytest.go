// Package notifytest runs real receivers on loopback for tests: an SMTP
// server with STARTTLS and AUTH, and an HTTP endpoint that records requests.
package notifytest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// Mail is one message the SMTP server accepted.
type Mail struct {
	From, User string
	To         []string
	Data       string
	TLS        bool
}

// SMTP is a loopback mail server that requires STARTTLS before AUTH PLAIN.
type SMTP struct {
	Host       string
	Port       int
	User, Pass string

	mu    sync.Mutex
	mails []Mail
}

// NewSMTP starts the server; it stops when the test ends.
func NewSMTP(t testing.TB, user, pass string) *SMTP {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m := &SMTP{Host: "127.0.0.1", Port: ln.Addr().(*net.TCPAddr).Port, User: user, Pass: pass}
	srv := smtp.NewServer(m)
	srv.Domain = "localhost"
	srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{selfSigned(t)}}
	srv.AllowInsecureAuth = false
	srv.ReadTimeout, srv.WriteTimeout = 10*time.Second, 10*time.Second
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })
	return m
}

// Mails returns what was delivered so far.
func (m *SMTP) Mails() []Mail {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]Mail(nil), m.mails...)
}

// NewSession implements smtp.Backend.
func (m *SMTP) NewSession(c *smtp.Conn) (smtp.Session, error) {
	return &session{srv: m, conn: c}, nil
}

type session struct {
	srv  *SMTP
	conn *smtp.Conn
	cur  Mail
}

func (s *session) AuthMechanisms() []string { return []string{sasl.Plain} }

func (s *session) Auth(string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(_, user, pass string) error {
		if user != s.srv.User || pass != s.srv.Pass {
			return errors.New("invalid credentials")
		}
		s.cur.User = user
		return nil
	}), nil
}

func (s *session) Mail(from string, _ *smtp.MailOptions) error {
	if s.srv.User != "" && s.cur.User == "" {
		return &smtp.SMTPError{Code: 530, Message: "authentication required"}
	}
	s.cur.From = from
	return nil
}

func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.cur.To = append(s.cur.To, to)
	return nil
}

func (s *session) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	_, s.cur.TLS = s.conn.TLSConnectionState()
	s.cur.Data = string(b)
	s.srv.mu.Lock()
	s.srv.mails = append(s.srv.mails, s.cur)
	s.srv.mu.Unlock()
	s.cur = Mail{User: s.cur.User}
	return nil
}

func (s *session) Reset()        { s.cur = Mail{User: s.cur.User} }
func (s *session) Logout() error { return nil }

func selfSigned(t testing.TB) tls.Certificate {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// Request is one request an HTTP receiver got.
type Request struct {
	Header http.Header
	Body   []byte
}

// Receiver is a loopback HTTP endpoint standing in for Slack or a webhook consumer.
type Receiver struct {
	URL string

	mu       sync.Mutex
	requests []Request
	status   int
}

// NewReceiver starts a receiver answering status (200 when 0).
func NewReceiver(t testing.TB, status int) *Receiver {
	rc := &Receiver{status: status}
	if rc.status == 0 {
		rc.status = http.StatusOK
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		rc.requests = append(rc.requests, Request{Header: r.Header.Clone(), Body: b})
		st := rc.status
		rc.mu.Unlock()
		w.WriteHeader(st)
		_, _ = w.Write([]byte(strconv.Itoa(st)))
	}))
	t.Cleanup(srv.Close)
	rc.URL = srv.URL
	return rc
}

// Requests returns what arrived so far.
func (rc *Receiver) Requests() []Request {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]Request(nil), rc.requests...)
}
