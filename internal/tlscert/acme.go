package tlscert

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	mathrand "math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/acme"
)

// Steps of Obtain, as reported in ObtainError.Step.
const (
	StepInput     = "input"     // the Issuer or the hosts are unusable; nothing was sent
	StepDirectory = "directory" // fetching the ACME directory
	StepAccount   = "account"   // registering or looking up the account
	StepOrder     = "order"     // creating the order
	StepAuthorize = "authorize" // fetching an authorization and picking its HTTP-01 challenge
	StepPublish   = "publish"   // Issuer.Publish
	StepChallenge = "challenge" // telling the CA the challenge answer is in place
	StepValidate  = "validate"  // waiting for the CA to validate the host
	StepFinalize  = "finalize"  // waiting for the order, sending the CSR, downloading the chain
)

// DefaultWaitTimeout bounds each wait for the CA (validation, issuance)
// when Issuer.WaitTimeout is zero.
const DefaultWaitTimeout = 2 * time.Minute

// ObtainError says which host and which step of Obtain failed. Err keeps
// the ACME problem (*acme.Error, *acme.AuthorizationError, *acme.OrderError)
// for errors.As, and context.DeadlineExceeded when a wait timed out.
type ObtainError struct {
	// Host is the host whose authorization failed, or for steps that concern
	// the whole certificate the first host (the certificate's name).
	Host string
	Step string
	Err  error
}

func (e *ObtainError) Error() string {
	if e.Host == "" {
		return fmt.Sprintf("tlscert: acme %s: %v", e.Step, e.Err)
	}
	return fmt.Sprintf("tlscert: acme %s for %q: %v", e.Step, e.Host, e.Err)
}

func (e *ObtainError) Unwrap() error { return e.Err }

// Issuer obtains certificates from an ACME directory (Let's Encrypt or any
// RFC 8555 server) with HTTP-01 challenges. It keeps no state between calls,
// so it is safe for concurrent use as long as its fields do not change.
type Issuer struct {
	DirectoryURL string       // e.g. https://acme-v02.api.letsencrypt.org/directory
	Email        string       // optional account contact
	HTTPClient   *http.Client // nil: http.DefaultClient
	AccountKey   crypto.Signer
	// Profile optionally names an issuance profile the directory advertises
	// (e.g. Let's Encrypt's "shortlived"); empty lets the CA choose.
	Profile string
	// WaitTimeout bounds waiting for validation and for issuance, each;
	// zero means DefaultWaitTimeout.
	WaitTimeout time.Duration

	// Publish makes http://HOST/.well-known/acme-challenge/TOKEN answer
	// keyAuth. Unpublish is called once for every token given to Publish
	// (even if Publish failed) when its authorization is over.
	Publish   func(ctx context.Context, token, keyAuth string) error
	Unpublish func(token string)
}

// NewAccountKey makes an ECDSA P-256 key, which every ACME CA accepts and
// which keeps the signed requests small.
func NewAccountKey() (crypto.Signer, error) {
	return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
}

// MarshalKey encodes key as a PKCS#8 "PRIVATE KEY" PEM block.
func MarshalKey(key crypto.Signer) ([]byte, error) {
	if key == nil {
		return nil, errors.New("tlscert: marshal key: key is nil")
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("tlscert: marshal key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// ParseKey decodes the first PEM block of b, which must be PKCS#8.
func ParseKey(b []byte) (crypto.Signer, error) {
	block, _ := pem.Decode(b)
	if block == nil {
		return nil, errors.New("tlscert: parse key: no PEM block")
	}
	if block.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("tlscert: parse key: PEM block is %q, want \"PRIVATE KEY\" (PKCS#8)", block.Type)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("tlscert: parse key: %w", err)
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("tlscert: parse key: %T is not a signing key", k)
	}
	return s, nil
}

// Obtain registers the account if needed (accepting the directory's terms),
// orders one certificate for hosts (the first is the common name), solves
// HTTP-01 for every host still unauthorized, finalizes with a fresh ECDSA
// P-256 key, and returns the PEM chain (leaf first) and the PKCS#8 PEM key.
// Hosts are lowercased and duplicates dropped. Errors are *ObtainError.
func (i *Issuer) Obtain(ctx context.Context, hosts []string) (certPEM, keyPEM []byte, err error) {
	hosts, err = checkHosts(hosts)
	if err != nil {
		return nil, nil, err
	}
	name := hosts[0]
	fail := func(host, step string, err error) ([]byte, []byte, error) {
		return nil, nil, &ObtainError{Host: host, Step: step, Err: err}
	}
	switch {
	case i.DirectoryURL == "":
		// acme.Client would silently fall back to Let's Encrypt production.
		return fail(name, StepInput, errors.New("Issuer.DirectoryURL is empty"))
	case i.AccountKey == nil:
		return fail(name, StepInput, errors.New("Issuer.AccountKey is nil"))
	case i.Publish == nil || i.Unpublish == nil:
		return fail(name, StepInput, errors.New("Issuer.Publish and Issuer.Unpublish are required"))
	}

	c := &acme.Client{
		DirectoryURL: i.DirectoryURL,
		Key:          i.AccountKey,
		HTTPClient:   i.HTTPClient,
		UserAgent:    "slipway",
		RetryBackoff: retryBackoff,
	}
	dir, err := c.Discover(ctx)
	if err != nil {
		return fail(name, StepDirectory, err)
	}
	acct := &acme.Account{}
	if i.Email != "" {
		acct.Contact = []string{"mailto:" + i.Email}
	}
	// An existing account answers ErrAccountAlreadyExists and the client
	// keeps its URL, so registering every time doubles as the lookup.
	if _, err := c.Register(ctx, acct, acme.AcceptTOS); err != nil && !errors.Is(err, acme.ErrAccountAlreadyExists) {
		return fail(name, StepAccount, err)
	}

	var opts []acme.OrderOption
	if i.Profile != "" {
		if _, ok := dir.Profiles[acme.ProfileName(i.Profile)]; !ok {
			return fail(name, StepOrder, fmt.Errorf("directory has no profile %q (it offers %s)", i.Profile, profileList(dir)))
		}
		opts = append(opts, acme.WithOrderIssuanceProfile(acme.ProfileName(i.Profile)))
	}
	order, err := c.AuthorizeOrder(ctx, acme.DomainIDs(hosts...), opts...)
	if err != nil {
		return fail(name, StepOrder, err)
	}

	if host, step, err := i.authorize(ctx, c, order); err != nil {
		return fail(host, step, err)
	}

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fail(name, StepFinalize, err)
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject:  pkix.Name{CommonName: name},
		DNSNames: hosts,
	}, key)
	if err != nil {
		return fail(name, StepFinalize, err)
	}
	waitCtx, cancel := context.WithTimeout(ctx, i.waitTimeout())
	defer cancel()
	if order, err = c.WaitOrder(waitCtx, order.URI); err != nil {
		return fail(name, StepFinalize, i.waitErr(ctx, waitCtx, "order to become ready", err))
	}
	der, _, err := c.CreateCertFromOrder(waitCtx, order, csr, true)
	if err != nil {
		return fail(name, StepFinalize, i.waitErr(ctx, waitCtx, "certificate", err))
	}
	if err := checkChain(der, key, hosts); err != nil {
		return fail(name, StepFinalize, err)
	}

	var chain bytes.Buffer
	for _, d := range der {
		_ = pem.Encode(&chain, &pem.Block{Type: "CERTIFICATE", Bytes: d}) // writes to a bytes.Buffer cannot fail
	}
	keyPEM, err = MarshalKey(key)
	if err != nil {
		return fail(name, StepFinalize, err)
	}
	return chain.Bytes(), keyPEM, nil
}

// pendingAuthz is an authorization Obtain has to solve.
type pendingAuthz struct {
	host, url string
	chal      *acme.Challenge
	accepted  bool // the CA validates it and finishes it either way
}

// authorize solves HTTP-01 for every pending authorization of order. It
// publishes and accepts all challenges before waiting on any, so the CA
// validates the hosts in parallel. It returns the failing host and step.
func (i *Issuer) authorize(ctx context.Context, c *acme.Client, order *acme.Order) (host, step string, err error) {
	var todo []*pendingAuthz
	for _, u := range order.AuthzURLs {
		z, err := c.GetAuthorization(ctx, u)
		if err != nil {
			return hostOf(order, u), StepAuthorize, err
		}
		switch z.Status {
		case acme.StatusValid:
			continue // the CA still trusts an earlier validation
		case acme.StatusPending:
		default:
			return z.Identifier.Value, StepAuthorize, fmt.Errorf("authorization is %s", z.Status)
		}
		var offered []string
		p := &pendingAuthz{host: z.Identifier.Value, url: z.URI}
		for _, ch := range z.Challenges {
			offered = append(offered, ch.Type)
			if ch.Type == "http-01" {
				p.chal = ch
			}
		}
		if p.chal == nil {
			return p.host, StepAuthorize, fmt.Errorf("CA offers no http-01 challenge (offers %s)", strings.Join(offered, ", "))
		}
		todo = append(todo, p)
	}

	published := map[string]bool{}
	unpublish := func(token string) {
		if published[token] {
			delete(published, token)
			i.Unpublish(token)
		}
	}
	defer func() {
		for token := range published {
			unpublish(token)
		}
		if err != nil {
			deactivate(ctx, c, todo)
		}
	}()

	for _, p := range todo {
		keyAuth, err := c.HTTP01ChallengeResponse(p.chal.Token)
		if err != nil {
			return p.host, StepAuthorize, err
		}
		published[p.chal.Token] = true
		if err := i.Publish(ctx, p.chal.Token, keyAuth); err != nil {
			return p.host, StepPublish, err
		}
		if _, err := c.Accept(ctx, p.chal); err != nil {
			return p.host, StepChallenge, err
		}
		p.accepted = true
	}

	waitCtx, cancel := context.WithTimeout(ctx, i.waitTimeout())
	defer cancel()
	for _, p := range todo {
		_, err := c.WaitAuthorization(waitCtx, p.url)
		unpublish(p.chal.Token)
		if err != nil {
			return p.host, StepValidate, i.waitErr(ctx, waitCtx, "validation", err)
		}
	}
	return "", "", nil
}

// deactivate gives up the authorizations Obtain never asked the CA to
// validate, which would otherwise stay pending for days and count against
// the CA's cap on pending authorizations. Accepted ones end by themselves;
// leaving them alone also keeps Pebble working, which wedges when an
// authorization is deactivated during its validation (2.10.3 leaks a
// challenge lock in prepAuthorizationForDisplay).
func deactivate(ctx context.Context, c *acme.Client, todo []*pendingAuthz) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	for _, p := range todo {
		if !p.accepted {
			_ = c.RevokeAuthorization(ctx, p.url) // best effort: the authorization expires anyway
		}
	}
}

func (i *Issuer) waitTimeout() time.Duration {
	if i.WaitTimeout > 0 {
		return i.WaitTimeout
	}
	return DefaultWaitTimeout
}

// waitErr tells a wait that ran out of WaitTimeout apart from the caller's
// ctx ending, which is reported as is.
func (i *Issuer) waitErr(ctx, waitCtx context.Context, what string, err error) error {
	if ctx.Err() == nil && waitCtx.Err() != nil {
		return fmt.Errorf("timed out after %v waiting for the CA's %s: %w", i.waitTimeout(), what, context.DeadlineExceeded)
	}
	return err
}

// checkHosts refuses what HTTP-01 cannot validate and drops duplicates,
// which would otherwise repeat identifiers in the order.
func checkHosts(hosts []string) ([]string, error) {
	if len(hosts) == 0 {
		return nil, &ObtainError{Step: StepInput, Err: errors.New("no hosts")}
	}
	out := make([]string, 0, len(hosts))
	seen := map[string]bool{}
	for _, h := range hosts {
		h = strings.ToLower(strings.TrimSpace(h))
		var err error
		switch {
		case h == "":
			err = errors.New("empty host name")
		case strings.Contains(h, "*"):
			err = errors.New("wildcard names need a DNS-01 challenge; HTTP-01 cannot validate them")
		case net.ParseIP(h) != nil || strings.HasPrefix(h, "["):
			err = errors.New("IP addresses are not supported; use a DNS name")
		case strings.ContainsAny(h, "/:@ ") || strings.HasSuffix(h, "."):
			err = errors.New("not a DNS name")
		}
		if err != nil {
			return nil, &ObtainError{Host: h, Step: StepInput, Err: err}
		}
		if !seen[h] {
			seen[h] = true
			out = append(out, h)
		}
	}
	return out, nil
}

// checkChain makes sure the CA certified our key for our hosts before the
// caller stores and serves the chain.
func checkChain(der [][]byte, key *ecdsa.PrivateKey, hosts []string) error {
	if len(der) == 0 {
		return errors.New("CA returned no certificate")
	}
	leaf, err := x509.ParseCertificate(der[0])
	if err != nil {
		return fmt.Errorf("CA returned an unreadable certificate: %w", err)
	}
	if pub, ok := leaf.PublicKey.(*ecdsa.PublicKey); !ok || !pub.Equal(&key.PublicKey) {
		return errors.New("CA returned a certificate for another key")
	}
	for _, h := range hosts {
		if err := leaf.VerifyHostname(h); err != nil {
			return fmt.Errorf("CA returned a certificate that does not cover %q", h)
		}
	}
	return nil
}

func hostOf(order *acme.Order, authzURL string) string {
	for n, u := range order.AuthzURLs {
		if u == authzURL && n < len(order.Identifiers) {
			// RFC 8555 does not promise the same order, but CAs keep it.
			return order.Identifiers[n].Value
		}
	}
	return ""
}

func profileList(dir acme.Directory) string {
	if len(dir.Profiles) == 0 {
		return "none"
	}
	var names []string
	for n := range dir.Profiles {
		names = append(names, strconv.Quote(string(n)))
	}
	return strings.Join(names, ", ")
}

// retryBackoff replaces acme's default, which retries 5xx and 429 answers
// until ctx ends: a few quick retries, then the error goes back to the
// caller, who owns the renewal schedule (and a rate limit's Retry-After).
func retryBackoff(n int, _ *http.Request, res *http.Response) time.Duration {
	if n > 4 {
		return 0
	}
	if v := res.Header.Get("Retry-After"); v != "" {
		d := time.Duration(0)
		if s, err := strconv.Atoi(v); err == nil {
			d = time.Duration(s) * time.Second
		} else if t, err := http.ParseTime(v); err == nil {
			d = time.Until(t)
		}
		if d > 30*time.Second {
			return 0
		}
		if d > 0 {
			return d
		}
	}
	jitter := time.Duration(mathrand.Int64N(int64(250 * time.Millisecond)))
	return time.Duration(1<<(n-1))*time.Second + jitter
}
