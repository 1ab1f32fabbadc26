// Package certs keeps the TLS certificates of the load balancer's hosts:
// those people bring (slipway cert add) and those obtained and renewed
// through ACME, with keys sealed by the master key in the store. Expiry
// and renewal failures are reported to the services that claim the host.
package certs

import (
	"context"
	"crypto"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/slipway-dev/slipway/internal/lb"
	"github.com/slipway-dev/slipway/internal/store"
	"github.com/slipway-dev/slipway/internal/tlscert"
)

// Store is what the manager reads and writes.
type Store interface {
	store.CertificateStore
	ListServices(ctx context.Context, app, env string) ([]store.Service, error)
}

// Sealer seals keys at rest (secret.Keyring).
type Sealer interface {
	Seal(plain []byte) []byte
	Open(sealed []byte) ([]byte, error)
}

// ACME is where automatic certificates come from.
type ACME struct {
	DirectoryURL string
	Email        string
	HTTPClient   *http.Client // nil: http.DefaultClient
	// Profile names an issuance profile the directory offers ("" the default).
	Profile string
}

// Manager keeps certificates and answers ACME challenges.
type Manager struct {
	Store Store
	Keys  Sealer
	// ACME, when set, obtains a certificate for every host a service serves
	// over HTTPS that no certificate holds, and renews those it obtained.
	ACME *ACME
	Log  *slog.Logger
	// Apply puts the current certificates and challenge answers in force in
	// the load balancer, returning once it serves them.
	Apply func(ctx context.Context) error
	// Problem tells the services that claim host what is wrong with its
	// certificate (an event and a notice).
	Problem func(ctx context.Context, host, msg string)
	// CheckEvery is how often hosts and expiry are checked (0: a minute).
	CheckEvery time.Duration
	// Hosts need certificates whether or not a service claims them: the
	// control plane's own host, when it gets its certificate through ACME.
	Hosts []string
	// Now is the clock (nil: time.Now).
	Now func() time.Time

	mu         sync.Mutex
	challenges map[string]string
	cached     []lb.Certificate            // nil: read the store again
	parsed     map[string]*tls.Certificate // cached's, by chain, for TLSCertificate
	reported   map[string]report
	failures   map[string]failure // ACME failures by certificate name, for backoff
	wake       chan struct{}
	once       sync.Once
}

type report struct {
	msg string
	at  time.Time
}

type failure struct {
	n    int
	next time.Time
}

// ExpiryWarning is how long before expiry a certificate nobody renews (one
// brought by hand) gets reported, as ACM warns 45 days ahead.
const ExpiryWarning = 30 * 24 * time.Hour

// reportAgain is how often an unchanged problem is reported again.
const reportAgain = 24 * time.Hour

func (m *Manager) init() {
	m.once.Do(func() {
		m.wake = make(chan struct{}, 1)
		m.challenges = map[string]string{}
		m.reported = map[string]report{}
		m.failures = map[string]failure{}
	})
}

func (m *Manager) now() time.Time {
	if m.Now != nil {
		return m.Now()
	}
	return time.Now()
}

// Add stores a certificate brought by hand, refusing one that does not
// parse, whose key is not its own, that is expired, or (host given) that
// does not hold host; it replaces the certificate of the same name (its
// first host). Refusals are *tlscert.Error.
func (m *Manager) Add(ctx context.Context, certPEM, keyPEM []byte, host, by string) (store.Certificate, error) {
	info, err := tlscert.Parse(certPEM, keyPEM, m.now())
	if err != nil {
		return store.Certificate{}, err
	}
	if host != "" && !tlscert.CoversAny(info.Hosts, host) {
		return store.Certificate{}, &tlscert.Error{Field: "host", Reason: fmt.Sprintf("the certificate holds %s, not %s: issue one for %s", strings.Join(info.Hosts, ", "), host, host)}
	}
	c := store.Certificate{Name: info.Hosts[0], Hosts: info.Hosts, CertPEM: string(certPEM), NotBefore: info.NotBefore, NotAfter: info.NotAfter,
		Issuer: info.Issuer, Fingerprint: info.Fingerprint, Source: store.CertUploaded, UpdatedBy: by}
	if err := m.put(ctx, c, keyPEM); err != nil {
		return c, err
	}
	return c, nil
}

func (m *Manager) put(ctx context.Context, c store.Certificate, keyPEM []byte) error {
	if err := m.Store.PutCertificate(ctx, c, m.Keys.Seal(keyPEM)); err != nil {
		return err
	}
	m.changed(ctx)
	return nil
}

// Remove deletes a certificate; its hosts get the default certificate (or
// a new one through ACME).
func (m *Manager) Remove(ctx context.Context, name string) error {
	if err := m.Store.DeleteCertificate(ctx, name); err != nil {
		return err
	}
	m.changed(ctx)
	m.Wake()
	return nil
}

// changed drops the cached certificates and puts the new ones in force.
func (m *Manager) changed(ctx context.Context) {
	m.init()
	m.mu.Lock()
	m.cached, m.parsed = nil, nil
	m.mu.Unlock()
	if m.Apply != nil {
		if err := m.Apply(ctx); err != nil {
			m.Log.Warn("apply certificates to the load balancer", "err", err)
		}
	}
}

// ForLB returns every certificate not yet expired, keys opened, for the
// load balancer's table.
func (m *Manager) ForLB(ctx context.Context) ([]lb.Certificate, error) {
	m.init()
	m.mu.Lock()
	cached := m.cached
	m.mu.Unlock()
	if cached != nil {
		return cached, nil
	}
	list, err := m.Store.ListCertificates(ctx)
	if err != nil {
		return nil, err
	}
	out := []lb.Certificate{}
	now := m.now()
	for _, c := range list {
		if now.After(c.NotAfter) {
			continue
		}
		_, sealed, err := m.Store.SealedCertificate(ctx, c.Name)
		if err != nil {
			return nil, err
		}
		key, err := m.Keys.Open(sealed)
		if err != nil {
			return nil, fmt.Errorf("certificate %s: %w", c.Name, err)
		}
		out = append(out, lb.Certificate{CertPEM: c.CertPEM, KeyPEM: string(key)})
	}
	m.mu.Lock()
	m.cached = out
	m.mu.Unlock()
	return out, nil
}

// Challenges returns the HTTP-01 answers to serve now.
func (m *Manager) Challenges() map[string]string {
	m.init()
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.challenges) == 0 {
		return nil
	}
	return maps.Clone(m.challenges)
}

// Wake asks for a check soon (a service claimed a host).
func (m *Manager) Wake() {
	m.init()
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

// Run checks hosts and expiry until ctx ends.
func (m *Manager) Run(ctx context.Context) {
	m.init()
	every := m.CheckEvery
	if every == 0 {
		every = time.Minute
	}
	for {
		m.Check(ctx)
		select {
		case <-ctx.Done():
			return
		case <-m.wake:
		case <-time.After(every):
		}
	}
}

// Check makes one pass: every HTTPS host gets a certificate (through ACME
// when configured), ACME certificates are renewed once a third of their
// lifetime is left, and coming expiry or failures are reported.
func (m *Manager) Check(ctx context.Context) {
	m.init()
	hosts, err := m.httpsHosts(ctx)
	if err != nil {
		m.Log.Warn("certificates: list services", "err", err)
		return
	}
	list, err := m.Store.ListCertificates(ctx)
	if err != nil {
		m.Log.Warn("certificates: list", "err", err)
		return
	}
	now := m.now()
	for _, host := range hosts {
		if covering(list, host, now) != nil {
			continue
		}
		expired := covering(list, host, time.Time{}) != nil // its expiry is reported below
		switch {
		case m.ACME == nil && expired:
		case m.ACME == nil:
			m.report(ctx, host, fmt.Sprintf("no certificate holds host %s: HTTPS clients get the default certificate; add one with `slipway cert add --cert FILE --key FILE`, or start the server with --acme-directory", host))
		case host[0] == '*':
			m.report(ctx, host, fmt.Sprintf("no certificate holds host %s, and ACME cannot validate a wildcard over HTTP-01: add one with `slipway cert add`", host))
		default:
			m.obtain(ctx, host, "")
		}
	}
	for _, c := range list {
		switch {
		case c.Source == store.CertACME && m.ACME != nil:
			if now.After(renewAt(c)) && slices.ContainsFunc(hosts, func(h string) bool { return tlscert.CoversAny(c.Hosts, h) }) {
				m.obtain(ctx, c.Name, fmt.Sprintf("; the certificate in force expires %s", c.NotAfter.UTC().Format(time.RFC3339)))
			}
		case now.After(c.NotAfter):
			m.reportHosts(ctx, c, hosts, fmt.Sprintf("certificate %s expired on %s; HTTPS clients get the default certificate: add a new one with `slipway cert add`", c.Name, c.NotAfter.UTC().Format(time.RFC3339)))
		case c.NotAfter.Sub(now) < ExpiryWarning:
			m.reportHosts(ctx, c, hosts, fmt.Sprintf("certificate %s expires on %s: add a new one with `slipway cert add`", c.Name, c.NotAfter.UTC().Format(time.RFC3339)))
		}
	}
	// A certificate that expired since it was cached must leave the table.
	m.mu.Lock()
	dropped := false
	for _, c := range list {
		for _, lc := range m.cached {
			if now.After(c.NotAfter) && lc.CertPEM == c.CertPEM {
				m.cached, m.parsed, dropped = nil, nil, true
				break
			}
		}
	}
	m.mu.Unlock()
	if dropped && m.Apply != nil {
		if err := m.Apply(ctx); err != nil {
			m.Log.Warn("apply certificates to the load balancer", "err", err)
		}
	}
}

// renewAt is when an ACME certificate is renewed: a third of its lifetime
// before expiry, as certbot and Caddy do.
func renewAt(c store.Certificate) time.Time {
	return c.NotAfter.Add(-c.NotAfter.Sub(c.NotBefore) / 3)
}

func covering(list []store.Certificate, host string, now time.Time) *store.Certificate {
	for i, c := range list {
		if now.Before(c.NotAfter) && tlscert.CoversAny(c.Hosts, host) {
			return &list[i]
		}
	}
	return nil
}

// httpsHosts lists the hosts services serve over HTTPS.
func (m *Manager) httpsHosts(ctx context.Context) ([]string, error) {
	services, err := m.Store.ListServices(ctx, "", "")
	if err != nil {
		return nil, err
	}
	hosts := slices.Clone(m.Hosts)
	for _, s := range services {
		if l := s.LoadBalancer; l != nil && l.HTTPS {
			for _, h := range []string{l.Host, l.TestHost} {
				if h != "" && !slices.Contains(hosts, h) {
					hosts = append(hosts, h)
				}
			}
		}
	}
	slices.Sort(hosts)
	return hosts, nil
}

// obtain gets (or renews) the certificate named host through ACME. A
// failure leaves the certificate in force serving, records the error on
// it, reports it, and backs off.
func (m *Manager) obtain(ctx context.Context, host, context string) {
	m.mu.Lock()
	f := m.failures[host]
	m.mu.Unlock()
	if m.now().Before(f.next) {
		return
	}
	certPEM, keyPEM, err := m.issue(ctx, host)
	var info tlscert.Info
	if err == nil {
		info, err = tlscert.Parse(certPEM, keyPEM, m.now())
	}
	if err == nil {
		c := store.Certificate{Name: host, Hosts: info.Hosts, CertPEM: string(certPEM), NotBefore: info.NotBefore, NotAfter: info.NotAfter,
			Issuer: info.Issuer, Fingerprint: info.Fingerprint, Source: store.CertACME, UpdatedBy: "acme"}
		err = m.put(ctx, c, keyPEM)
	}
	if err != nil {
		if ctx.Err() != nil {
			return
		}
		f.n++
		f.next = m.now().Add(backoff(f.n, m.CheckEvery))
		m.mu.Lock()
		m.failures[host] = f
		m.mu.Unlock()
		m.Store.SetCertificateError(ctx, host, err.Error())
		m.report(ctx, host, fmt.Sprintf("ACME could not issue a certificate for %s%s: %v; next attempt %s", host, context, err, f.next.UTC().Format(time.RFC3339)))
		return
	}
	m.mu.Lock()
	delete(m.failures, host)
	delete(m.reported, host)
	m.mu.Unlock()
	m.Log.Info("certificate obtained through ACME", "host", host, "not_after", info.NotAfter)
}

// backoff doubles from the check interval up to an hour.
func backoff(n int, every time.Duration) time.Duration {
	if every == 0 {
		every = time.Minute
	}
	d := every
	for i := 1; i < n && d < time.Hour; i++ {
		d *= 2
	}
	return min(d, time.Hour)
}

func (m *Manager) issue(ctx context.Context, host string) (certPEM, keyPEM []byte, err error) {
	key, err := m.accountKey(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("ACME account key: %w", err)
	}
	iss := &tlscert.Issuer{DirectoryURL: m.ACME.DirectoryURL, Email: m.ACME.Email, HTTPClient: m.ACME.HTTPClient, AccountKey: key, Profile: m.ACME.Profile,
		Publish: func(ctx context.Context, token, keyAuth string) error {
			m.mu.Lock()
			m.challenges[token] = keyAuth
			m.mu.Unlock()
			if m.Apply == nil {
				return errors.New("no load balancer to answer the challenge")
			}
			return m.Apply(ctx)
		},
		Unpublish: func(token string) {
			m.mu.Lock()
			delete(m.challenges, token)
			m.mu.Unlock()
		},
	}
	obtainCtx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	return iss.Obtain(obtainCtx, []string{host})
}

// accountKey is the ACME account key of the directory, made and stored
// (sealed) on first use.
func (m *Manager) accountKey(ctx context.Context) (crypto.Signer, error) {
	sealed, err := m.Store.ACMEAccountKey(ctx, m.ACME.DirectoryURL)
	if errors.Is(err, store.ErrNotFound) {
		key, kerr := tlscert.NewAccountKey()
		if kerr != nil {
			return nil, kerr
		}
		pemKey, kerr := tlscert.MarshalKey(key)
		if kerr != nil {
			return nil, kerr
		}
		sealed, err = m.Store.PutACMEAccountKey(ctx, m.ACME.DirectoryURL, m.Keys.Seal(pemKey))
	}
	if err != nil {
		return nil, err
	}
	plain, err := m.Keys.Open(sealed)
	if err != nil {
		return nil, err
	}
	return tlscert.ParseKey(plain)
}

func (m *Manager) reportHosts(ctx context.Context, c store.Certificate, hosts []string, msg string) {
	for _, h := range hosts {
		if tlscert.CoversAny(c.Hosts, h) {
			m.report(ctx, h, msg)
		}
	}
}

// report tells the services of host about a problem, once per message and
// day.
func (m *Manager) report(ctx context.Context, host, msg string) {
	m.mu.Lock()
	last := m.reported[host]
	fresh := last.msg != msg || m.now().Sub(last.at) >= reportAgain
	if fresh {
		m.reported[host] = report{msg: msg, at: m.now()}
	}
	m.mu.Unlock()
	if !fresh {
		return
	}
	m.Log.Warn("certificate problem", "host", host, "problem", msg)
	if m.Problem != nil {
		m.Problem(ctx, host, msg)
	}
}

// TLSCertificate returns the certificate in force for host, for a TLS
// server of this process (the control plane's own HTTPS).
func (m *Manager) TLSCertificate(ctx context.Context, host string) (*tls.Certificate, error) {
	list, err := m.ForLB(ctx)
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.parsed == nil {
		m.parsed = map[string]*tls.Certificate{}
	}
	var best *tls.Certificate
	for _, c := range list {
		crt := m.parsed[c.CertPEM]
		if crt == nil {
			pair, err := tls.X509KeyPair([]byte(c.CertPEM), []byte(c.KeyPEM))
			if err != nil {
				continue
			}
			crt = &pair
			m.parsed[c.CertPEM] = crt
		}
		if tlscert.CoversAny(crt.Leaf.DNSNames, host) && (best == nil || crt.Leaf.NotAfter.After(best.Leaf.NotAfter)) {
			best = crt
		}
	}
	if best == nil {
		return nil, fmt.Errorf("no certificate for %s yet", host)
	}
	return best, nil
}
