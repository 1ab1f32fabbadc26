package tlscert_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/acme"

	"github.com/slipway-dev/slipway/internal/tlscert"
	"github.com/slipway-dev/slipway/internal/tlscert/pebbletest"
)

// challenges is the HTTP-01 responder Pebble validates against. It serves
// only what Issuer.Publish handed it, so a valid certificate proves that
// Publish reached it, and it records Unpublish.
type challenges struct {
	mu          sync.Mutex
	answers     map[string]string // token → key authorization
	published   []string
	unpublished []string
	fetched     map[string]int
	wrong       bool          // serve a wrong key authorization
	block       chan struct{} // when set, hold requests until it is closed
	publishErr  error
}

func startChallenges(t *testing.T) (*challenges, int) {
	t.Helper()
	c := &challenges{answers: map[string]string{}, fetched: map[string]int{}}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &httptest.Server{Listener: l, Config: &http.Server{Handler: c}}
	srv.Start()
	t.Cleanup(func() {
		c.mu.Lock()
		if c.block != nil {
			close(c.block) // let Pebble's pending fetches end so Close does not wait
			c.block = nil
		}
		c.mu.Unlock()
		srv.Close()
	})
	return c, l.Addr().(*net.TCPAddr).Port
}

func (c *challenges) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	token, ok := strings.CutPrefix(r.URL.Path, "/.well-known/acme-challenge/")
	c.mu.Lock()
	c.fetched[token]++
	answer, found := c.answers[token]
	block, wrong := c.block, c.wrong
	c.mu.Unlock()
	if block != nil {
		select {
		case <-block:
		case <-r.Context().Done():
		}
		return
	}
	if !ok || !found {
		http.NotFound(w, r)
		return
	}
	if wrong {
		answer = "not-" + answer
	}
	fmt.Fprint(w, answer)
}

func (c *challenges) Publish(_ context.Context, token, keyAuth string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.published = append(c.published, token)
	if c.publishErr != nil {
		return c.publishErr
	}
	c.answers[token] = keyAuth
	return nil
}

func (c *challenges) Unpublish(token string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.unpublished = append(c.unpublished, token)
	delete(c.answers, token)
}

// checkUnpublished asserts every published token was unpublished once and
// returns how many there were.
func (c *challenges) checkUnpublished(t *testing.T) int {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	pub, unpub := slices.Sorted(slices.Values(c.published)), slices.Sorted(slices.Values(c.unpublished))
	if !slices.Equal(pub, unpub) {
		t.Errorf("published %q but unpublished %q", pub, unpub)
	}
	if len(c.answers) != 0 {
		t.Errorf("answers left after Obtain: %v", c.answers)
	}
	n := len(c.published)
	c.published, c.unpublished = nil, nil
	return n
}

func newIssuer(t *testing.T, p *pebbletest.Pebble, c *challenges) *tlscert.Issuer {
	t.Helper()
	key, err := tlscert.NewAccountKey()
	if err != nil {
		t.Fatal(err)
	}
	return &tlscert.Issuer{
		DirectoryURL: p.DirectoryURL,
		Email:        "ops@slipway.test",
		HTTPClient:   p.HTTPClient,
		AccountKey:   key,
		Publish:      c.Publish,
		Unpublish:    c.Unpublish,
	}
}

// verifyChain checks the chain against Pebble's root for every host, that
// the key belongs to the leaf, and returns the leaf.
func verifyChain(t *testing.T, p *pebbletest.Pebble, certPEM, keyPEM []byte, hosts ...string) *x509.Certificate {
	t.Helper()
	var certs []*x509.Certificate
	for rest := certPEM; ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			t.Fatalf("chain holds a %q block", b.Type)
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		certs = append(certs, c)
	}
	if len(certs) < 2 {
		t.Fatalf("chain has %d certificates, want leaf and intermediate", len(certs))
	}
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	for _, h := range hosts {
		if _, err := certs[0].Verify(x509.VerifyOptions{DNSName: h, Roots: p.Roots, Intermediates: inter}); err != nil {
			t.Errorf("verify for %s: %v", h, err)
		}
	}
	if _, err := tls.X509KeyPair(certPEM, keyPEM); err != nil {
		t.Errorf("key does not match the leaf: %v", err)
	}
	if _, err := tlscert.ParseKey(keyPEM); err != nil {
		t.Errorf("ParseKey(keyPEM): %v", err)
	}
	return certs[0]
}

func TestIntegrationObtain(t *testing.T) {
	t.Parallel()
	ch, port := startChallenges(t)
	p := pebbletest.Start(t, pebbletest.Options{HTTPPort: port})
	iss := newIssuer(t, p, ch)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()

	certPEM, keyPEM, err := iss.Obtain(ctx, []string{"app.slipway.test", "WWW.slipway.test", "app.slipway.test"})
	if err != nil {
		t.Fatal(err)
	}
	leaf := verifyChain(t, p, certPEM, keyPEM, "app.slipway.test", "www.slipway.test")
	if got := slices.Sorted(slices.Values(leaf.DNSNames)); !slices.Equal(got, []string{"app.slipway.test", "www.slipway.test"}) {
		t.Errorf("DNSNames = %q", got)
	}
	if n := ch.checkUnpublished(t); n != 2 {
		t.Errorf("published %d tokens, want one per host", n)
	}
	ch.mu.Lock()
	for token, n := range ch.fetched {
		if n == 0 {
			t.Errorf("Pebble never fetched %s", token)
		}
	}
	ch.mu.Unlock()

	// The account key as the server would store and reload it: the account
	// exists now, and the certificate key is fresh.
	b, err := tlscert.MarshalKey(iss.AccountKey)
	if err != nil {
		t.Fatal(err)
	}
	if iss.AccountKey, err = tlscert.ParseKey(b); err != nil {
		t.Fatal(err)
	}
	certPEM2, keyPEM2, err := iss.Obtain(ctx, []string{"app.slipway.test"})
	if err != nil {
		t.Fatal(err)
	}
	verifyChain(t, p, certPEM2, keyPEM2, "app.slipway.test")
	if string(keyPEM2) == string(keyPEM) {
		t.Error("second certificate reuses the first key")
	}
	if n := ch.checkUnpublished(t); n != 1 {
		t.Errorf("second Obtain published %d tokens, want 1", n)
	}
}

// TestIntegrationShortLived obtains certificates that expire within minutes,
// through an ACME profile, as renewal tests need.
func TestIntegrationShortLived(t *testing.T) {
	t.Parallel()
	ch, port := startChallenges(t)
	p := pebbletest.Start(t, pebbletest.Options{
		HTTPPort: port,
		Validity: 3 * time.Minute,
		Profiles: map[string]time.Duration{"shortlived": 90 * time.Second},
	})
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()

	for _, tc := range []struct {
		profile  string
		min, max time.Duration
	}{
		{"shortlived", 80 * time.Second, 90 * time.Second},
		{"default", 170 * time.Second, 3 * time.Minute},
	} {
		iss := newIssuer(t, p, ch)
		iss.Profile = tc.profile
		start := time.Now()
		certPEM, keyPEM, err := iss.Obtain(ctx, []string{tc.profile + ".slipway.test"})
		if err != nil {
			t.Fatalf("%s: %v", tc.profile, err)
		}
		leaf := verifyChain(t, p, certPEM, keyPEM, tc.profile+".slipway.test")
		if d := leaf.NotAfter.Sub(leaf.NotBefore); d < tc.min || d > tc.max {
			t.Errorf("%s: validity %v, want %v to %v", tc.profile, d, tc.min, tc.max)
		}
		if leaf.NotAfter.After(start.Add(tc.max + time.Minute)) {
			t.Errorf("%s: NotAfter %v is not within minutes", tc.profile, leaf.NotAfter)
		}
	}

	iss := newIssuer(t, p, ch)
	iss.Profile = "nosuch"
	_, _, err := iss.Obtain(ctx, []string{"x.slipway.test"})
	checkObtainError(t, err, tlscert.StepOrder, "x.slipway.test", `"nosuch"`)
}

// TestIntegrationFailures drives real orders into each failure Obtain must
// report with its host and step, and checks Unpublish still runs.
func TestIntegrationFailures(t *testing.T) {
	t.Parallel()
	ch, port := startChallenges(t)
	p := pebbletest.Start(t, pebbletest.Options{HTTPPort: port})

	t.Run("publish", func(t *testing.T) {
		ch.mu.Lock()
		ch.publishErr = errors.New("proxy unreachable")
		ch.mu.Unlock()
		defer func() { ch.mu.Lock(); ch.publishErr = nil; ch.mu.Unlock() }()
		iss := newIssuer(t, p, ch)
		_, _, err := iss.Obtain(t.Context(), []string{"pub.slipway.test"})
		checkObtainError(t, err, tlscert.StepPublish, "pub.slipway.test", "proxy unreachable")
		ch.checkUnpublished(t)
	})

	t.Run("wrong answer", func(t *testing.T) {
		ch.mu.Lock()
		ch.wrong = true
		ch.mu.Unlock()
		defer func() { ch.mu.Lock(); ch.wrong = false; ch.mu.Unlock() }()
		iss := newIssuer(t, p, ch)
		_, _, err := iss.Obtain(t.Context(), []string{"ok.slipway.test", "bad.slipway.test"})
		// Both hosts get the wrong answer; the first one waited on fails,
		// and the CA's order of authorizations decides which that is.
		host := "ok.slipway.test"
		if oe, ok := errors.AsType[*tlscert.ObtainError](err); ok && oe.Host == "bad.slipway.test" {
			host = oe.Host
		}
		checkObtainError(t, err, tlscert.StepValidate, host, "did not match")
		if _, ok := errors.AsType[*acme.AuthorizationError](err); !ok {
			t.Errorf("error %v does not wrap *acme.AuthorizationError", err)
		}
		if n := ch.checkUnpublished(t); n != 2 {
			t.Errorf("published %d tokens, want 2", n)
		}
	})

	t.Run("timeout", func(t *testing.T) {
		ch.mu.Lock()
		ch.block = make(chan struct{}) // Pebble's fetch hangs for its own 15 s
		ch.mu.Unlock()
		iss := newIssuer(t, p, ch)
		iss.WaitTimeout = 1500 * time.Millisecond
		start := time.Now()
		_, _, err := iss.Obtain(t.Context(), []string{"slow.slipway.test"})
		checkObtainError(t, err, tlscert.StepValidate, "slow.slipway.test", "timed out after 1.5s")
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("error %v is not context.DeadlineExceeded", err)
		}
		if d := time.Since(start); d > 10*time.Second {
			t.Errorf("Obtain took %v with WaitTimeout 1.5s", d)
		}
		ch.checkUnpublished(t)
	})
}

func checkObtainError(t *testing.T, err error, step, host, detail string) {
	t.Helper()
	oe, ok := errors.AsType[*tlscert.ObtainError](err)
	if !ok {
		t.Fatalf("error %v (%T) is not an *ObtainError", err, err)
	}
	if oe.Step != step || oe.Host != host {
		t.Errorf("Step, Host = %q, %q, want %q, %q (%v)", oe.Step, oe.Host, step, host, err)
	}
	if !strings.Contains(err.Error(), detail) {
		t.Errorf("error %q does not mention %q", err, detail)
	}
}

func TestObtainErrors(t *testing.T) {
	t.Parallel()
	key, err := tlscert.NewAccountKey()
	if err != nil {
		t.Fatal(err)
	}
	// A port nothing listens on: listen, then close.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + l.Addr().String() + "/directory"
	l.Close()
	mux := http.NewServeMux()
	mux.HandleFunc("/notacme", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, `{}`) })
	srv := httptest.NewServer(mux)
	defer srv.Close()
	canceled, cancel := context.WithCancel(t.Context())
	cancel()

	// base is an Issuer that would work but for its directory.
	base := func(dir string) tlscert.Issuer {
		return tlscert.Issuer{DirectoryURL: dir, AccountKey: key,
			Publish: func(context.Context, string, string) error { return nil }, Unpublish: func(string) {}}
	}
	noKey, noPublish := base(closed), base(closed)
	noKey.AccountKey, noPublish.Publish = nil, nil
	one := []string{"a.test"}

	for _, tc := range []struct {
		name   string
		iss    tlscert.Issuer
		ctx    context.Context
		hosts  []string
		step   string
		host   string
		detail string
	}{
		{"no hosts", base(closed), nil, nil, tlscert.StepInput, "", "no hosts"},
		{"empty host", base(closed), nil, []string{"a.test", " "}, tlscert.StepInput, "", "empty host"},
		{"wildcard", base(closed), nil, []string{"*.a.test"}, tlscert.StepInput, "*.a.test", "wildcard"},
		{"wildcard second", base(closed), nil, []string{"a.test", "*.b.test"}, tlscert.StepInput, "*.b.test", "HTTP-01"},
		{"ip", base(closed), nil, []string{"192.0.2.1"}, tlscert.StepInput, "192.0.2.1", "IP"},
		{"port", base(closed), nil, []string{"a.test:443"}, tlscert.StepInput, "a.test:443", "not a DNS name"},
		{"no directory", base(""), nil, one, tlscert.StepInput, "a.test", "DirectoryURL"},
		{"no key", noKey, nil, one, tlscert.StepInput, "a.test", "AccountKey"},
		{"no publish", noPublish, nil, one, tlscert.StepInput, "a.test", "Publish"},
		{"unreachable directory", base(closed), nil, one, tlscert.StepDirectory, "a.test", "connection refused"},
		{"malformed directory", base("http://[::1"), nil, one, tlscert.StepDirectory, "a.test", "[::1"},
		{"404 directory", base(srv.URL + "/missing"), nil, one, tlscert.StepDirectory, "a.test", "404"},
		{"not acme", base(srv.URL + "/notacme"), nil, one, tlscert.StepDirectory, "a.test", "RFC 8555"},
		{"canceled", base(srv.URL + "/notacme"), canceled, one, tlscert.StepDirectory, "a.test", "canceled"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := tc.ctx
			if ctx == nil {
				ctx = t.Context()
			}
			start := time.Now()
			certPEM, keyPEM, err := tc.iss.Obtain(ctx, tc.hosts)
			if certPEM != nil || keyPEM != nil {
				t.Error("Obtain returned PEM with an error")
			}
			checkObtainError(t, err, tc.step, tc.host, tc.detail)
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("took %v; errors like these must not be retried for long", d)
			}
		})
	}
}

// A CA's rate limit reaches the caller with its Retry-After, so the server
// can reschedule the renewal.
func TestObtainRateLimit(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/problem+json")
		w.Header().Set("Retry-After", "3600")
		w.WriteHeader(http.StatusTooManyRequests)
		fmt.Fprint(w, `{"type":"urn:ietf:params:acme:error:rateLimited","detail":"slow down"}`)
	}))
	defer srv.Close()
	key, err := tlscert.NewAccountKey()
	if err != nil {
		t.Fatal(err)
	}
	iss := tlscert.Issuer{DirectoryURL: srv.URL, AccountKey: key,
		Publish: func(context.Context, string, string) error { return nil }, Unpublish: func(string) {}}
	_, _, err = iss.Obtain(t.Context(), []string{"a.test"})
	ae, ok := errors.AsType[*acme.Error](err)
	if !ok {
		t.Fatalf("error %v does not wrap *acme.Error", err)
	}
	if d, ok := acme.RateLimit(ae); !ok || d != time.Hour {
		t.Errorf("acme.RateLimit = %v, %v; want 1h, true", d, ok)
	}
}

func TestKeys(t *testing.T) {
	t.Parallel()
	key, err := tlscert.NewAccountKey()
	if err != nil {
		t.Fatal(err)
	}
	if k, ok := key.(*ecdsa.PrivateKey); !ok || k.Curve.Params().Name != "P-256" {
		t.Fatalf("NewAccountKey = %T, want ECDSA P-256", key)
	}
	b, err := tlscert.MarshalKey(key)
	if err != nil {
		t.Fatal(err)
	}
	back, err := tlscert.ParseKey(b)
	if err != nil {
		t.Fatal(err)
	}
	if !back.(*ecdsa.PrivateKey).Equal(key) {
		t.Error("ParseKey(MarshalKey(k)) != k")
	}
	if _, err := tlscert.MarshalKey(nil); err == nil {
		t.Error("MarshalKey(nil) succeeded")
	}

	sec1, err := x509.MarshalECPrivateKey(key.(*ecdsa.PrivateKey))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, in, detail string
	}{
		{"empty", "", "no PEM block"},
		{"not pem", "hello", "no PEM block"},
		{"sec1", string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: sec1})), "PKCS#8"},
		{"garbage", string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte("x")})), "parse key"},
	} {
		if _, err := tlscert.ParseKey([]byte(tc.in)); err == nil || !strings.Contains(err.Error(), tc.detail) {
			t.Errorf("%s: ParseKey error %v, want one mentioning %q", tc.name, err, tc.detail)
		}
	}
}
