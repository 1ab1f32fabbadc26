package deploy

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/slipway-dev/slipway/internal/lb"
	"github.com/slipway-dev/slipway/internal/notify"
	"github.com/slipway-dev/slipway/internal/store"
	"github.com/slipway-dev/slipway/internal/tlscert"
)

// Edge is the load balancer's shared listeners, where services claim
// hosts: HTTPAddr serves plain HTTP (and ACME challenges), HTTPSAddr
// terminates TLS. Either may be empty (off).
type Edge struct {
	HTTPAddr, HTTPSAddr string
	// Reserved are hosts no service may claim: the control plane's own.
	Reserved []string
}

// Names of the shared listeners in the routing table.
const (
	EdgeHTTP  = "edge.http"
	EdgeHTTPS = "edge.https"
)

// CertSource gives the load balancer its certificates and the ACME
// challenge answers it must serve (certs.Manager).
type CertSource interface {
	ForLB(ctx context.Context) ([]lb.Certificate, error)
	Challenges() map[string]string
	Wake()
}

// usesPort reports whether a shared listener has port.
func (e Edge) usesPort(port int) bool {
	for _, addr := range []string{e.HTTPAddr, e.HTTPSAddr} {
		if _, p, err := net.SplitHostPort(addr); err == nil && p == strconv.Itoa(port) {
			return true
		}
	}
	return false
}

// httpsPort is the port a redirect to HTTPS names.
func (e Edge) httpsPort() int {
	_, p, err := net.SplitHostPort(e.HTTPSAddr)
	if err != nil {
		return 443
	}
	n, err := strconv.Atoi(p)
	if err != nil || n == 0 {
		return 443
	}
	return n
}

// edgeRules collects the rules services claim on the shared listeners.
type edgeRules struct {
	edge       Edge
	http, tls  []lb.Rule
	owner      map[string]store.Service // rule key → its service
	prios      map[string]store.Service // host#priority → its service
	lost       []lostClaim              // claims left out, for events
	httpsHosts bool
}

type lostClaim struct {
	s   store.Service
	why string
}

func ownerName(s store.Service) string {
	return fmt.Sprintf("service %s in %s/%s", s.Name, s.App, s.Env)
}

// add claims the service's hosts: its host for production traffic, its
// test host for a blue/green deployment's test traffic.
func (e *edgeRules) add(s store.Service, prod, test []lb.Route) {
	l := s.LoadBalancer
	if l.Host == "" {
		return
	}
	if e.owner == nil {
		e.owner, e.prios = map[string]store.Service{}, map[string]store.Service{}
	}
	claim := func(host string, prio int, routes []lb.Route) {
		r := lb.Rule{Host: host, PathPrefix: l.PathPrefix, Priority: prio, Routes: routes, Owner: ownerName(s)}
		// Claims are checked as they are made; one that slipped past (two
		// servers, a store edited by hand) is left out, never sent to
		// make the load balancer refuse every app's table.
		key := host + l.PathPrefix
		if o, taken := e.owner[key]; taken {
			e.lost = append(e.lost, lostClaim{s, fmt.Sprintf("host %s%s is not served: %s claims it too", host, l.PathPrefix, ownerName(o))})
			return
		}
		if prio != 0 {
			pk := host + "#" + strconv.Itoa(prio)
			if o, taken := e.prios[pk]; taken {
				e.lost = append(e.lost, lostClaim{s, fmt.Sprintf("host %s%s is not served: %s uses priority %d for it too", host, l.PathPrefix, ownerName(o), prio)})
				return
			}
			e.prios[pk] = s
		}
		e.owner[key] = s
		if e.edge.HTTPAddr != "" {
			plain := r
			if l.HTTPS && l.RedirectHTTPS && e.edge.HTTPSAddr != "" {
				plain.RedirectHTTPS = e.edge.httpsPort()
			}
			e.http = append(e.http, plain)
		}
		if l.HTTPS && e.edge.HTTPSAddr != "" {
			secure := r
			secure.HSTS = l.HSTS
			e.tls = append(e.tls, secure)
			e.httpsHosts = true
		}
	}
	claim(l.Host, l.Priority, prod)
	if l.TestHost != "" {
		claim(l.TestHost, 0, test)
	}
}

// apply adds the shared listeners to cfg, with certificates and challenge
// answers.
func (e *edgeRules) apply(ctx context.Context, cfg *lb.Config, certs CertSource) error {
	if e.edge.HTTPAddr != "" && len(e.http) > 0 {
		cfg.Listeners[EdgeHTTP] = lb.Listener{Addr: e.edge.HTTPAddr, Rules: e.http}
	}
	if e.edge.HTTPSAddr != "" && len(e.tls) > 0 {
		cfg.Listeners[EdgeHTTPS] = lb.Listener{Addr: e.edge.HTTPSAddr, Rules: e.tls, TLS: true}
	}
	if certs == nil {
		return nil
	}
	if ch := certs.Challenges(); len(ch) > 0 {
		cfg.Challenges = ch
		if _, ok := cfg.Listeners[EdgeHTTP]; !ok && e.edge.HTTPAddr != "" {
			// The challenge must be answered even before any service serves there.
			cfg.Listeners[EdgeHTTP] = lb.Listener{Addr: e.edge.HTTPAddr, Rules: []lb.Rule{}}
		}
	}
	if e.httpsHosts {
		list, err := certs.ForLB(ctx)
		if err != nil {
			return fmt.Errorf("certificates: %w", err)
		}
		cfg.Certificates = list
	}
	return nil
}

// checkEdge refuses what svc claims on the shared listeners when the
// server has no such listener, when it is reserved, or when it overlaps
// what another service claims: a host (or a wildcard covering it)
// belongs to one app, whatever the path, as a listener of an ALB belongs
// to one account; within the app, a host and path prefix belong to one
// service. A port of a shared listener is no service's listener_port.
func (m *Manager) checkEdge(svc store.Service, services []store.Service) error {
	l := svc.LoadBalancer
	for _, port := range []int{l.ListenerPort, l.TestListenerPort} {
		if port != 0 && m.Edge.usesPort(port) {
			return &ListenerError{Field: "load_balancer.listener_port", Detail: fmt.Sprintf("port %d is a shared listener's (--http-listen/--https-listen): claim a host there instead, or choose another port", port)}
		}
	}
	if l.Host == "" {
		return nil
	}
	if m.Edge.HTTPAddr == "" && m.Edge.HTTPSAddr == "" {
		return &ListenerError{Field: "load_balancer.host", Detail: "the server has no shared listener: start it with --http-listen ADDR and/or --https-listen ADDR, or give the service a listener_port"}
	}
	if l.HTTPS && m.Edge.HTTPSAddr == "" {
		return &ListenerError{Field: "load_balancer.https", Detail: "the server has no HTTPS listener: start it with --https-listen ADDR"}
	}
	if !l.HTTPS && m.Edge.HTTPAddr == "" {
		return &ListenerError{Field: "load_balancer.https", Detail: "the server has only an HTTPS listener: set https (and get a certificate) or start the server with --http-listen ADDR"}
	}
	mine := []struct{ field, host string }{{"load_balancer.host", l.Host}}
	if l.TestHost != "" {
		mine = append(mine, struct{ field, host string }{"load_balancer.test_host", l.TestHost})
	}
	for _, h := range mine {
		for _, r := range m.Edge.Reserved {
			if hostsOverlap(h.host, r) {
				return &ListenerError{Field: h.field, Detail: fmt.Sprintf("host %s is reserved: it is the control plane's own (%s)", h.host, r)}
			}
		}
	}
	for _, o := range services {
		ol := o.LoadBalancer
		if ol == nil || ol.Host == "" || o.App == svc.App && o.Env == svc.Env && o.Name == svc.Name {
			continue
		}
		for _, theirs := range []string{ol.Host, ol.TestHost} {
			if theirs == "" {
				continue
			}
			for _, h := range mine {
				switch {
				case o.App != svc.App && h.host == theirs:
					return &ListenerError{Field: h.field, Detail: fmt.Sprintf("host %s is already claimed by %s (a host belongs to one app, whatever the path)", theirs, ownerName(o))}
				case o.App != svc.App && hostsOverlap(h.host, theirs):
					return &ListenerError{Field: h.field, Detail: fmt.Sprintf("host %s overlaps %s, which %s claims (a host belongs to one app)", h.host, theirs, ownerName(o))}
				case h.host == theirs && l.PathPrefix == ol.PathPrefix:
					return &ListenerError{Field: h.field, Detail: fmt.Sprintf("host %s%s is already claimed by %s", theirs, ol.PathPrefix, ownerName(o))}
				case h.host == theirs && l.Priority != 0 && ol.Priority == l.Priority:
					return &ListenerError{Field: "load_balancer.priority", Detail: fmt.Sprintf("priority %d for host %s is already used by %s", l.Priority, theirs, ownerName(o))}
				}
			}
		}
	}
	return nil
}

// hostsOverlap reports whether two claimed hosts can match one request:
// the same, or a wildcard covering the other (or both wildcards of one
// domain).
func hostsOverlap(a, b string) bool {
	return a == b || tlscert.Covers(a, b) || tlscert.Covers(b, a)
}

// ClaimAndSave checks svc's ports and hosts and, under the same lock,
// saves it with save: two changes racing cannot both claim one host.
func (m *Manager) ClaimAndSave(ctx context.Context, svc store.Service, save func(context.Context) error) error {
	m.claimMu.Lock()
	defer m.claimMu.Unlock()
	if err := m.CheckListeners(ctx, svc); err != nil {
		return err
	}
	return save(ctx)
}

// validateEdge checks a service's host claim on its own.
func validateEdge(l *store.LoadBalancer) error {
	if l.Host == "" {
		if l.TestHost != "" || l.PathPrefix != "" || l.Priority != 0 || l.HTTPS || l.RedirectHTTPS || l.HSTS {
			return fmt.Errorf("load_balancer.host is required with test_host, path_prefix, priority, https, redirect_https or hsts")
		}
		return nil
	}
	for field, h := range map[string]string{"host": l.Host, "test_host": l.TestHost} {
		if h == "" {
			continue
		}
		if err := lb.ValidHost(h); err != nil {
			return fmt.Errorf("load_balancer.%s: %v", field, err)
		}
	}
	if l.TestHost == l.Host {
		return fmt.Errorf("load_balancer.test_host must differ from host (both %s): the test host serves green while the host serves blue", l.Host)
	}
	if err := lb.ValidPathPrefix(l.PathPrefix); err != nil {
		return fmt.Errorf("load_balancer.path_prefix %w", err)
	}
	if l.Priority < 0 || l.Priority > lb.MaxPriority {
		return fmt.Errorf("load_balancer.priority must be 1 to %d (lower first), or 0 to order by specificity", lb.MaxPriority)
	}
	if (l.RedirectHTTPS || l.HSTS) && !l.HTTPS {
		return fmt.Errorf("load_balancer.https is required with redirect_https or hsts")
	}
	return nil
}

// HostProblem tells the services that claim host about its certificate:
// a service event each, and a notice to each app's channels.
func (m *Manager) HostProblem(ctx context.Context, host, msg string) {
	services, err := m.Store.ListServices(ctx, "", "")
	if err != nil {
		m.Log.Warn("certificate problem: list services", "err", err)
		return
	}
	notified := map[string]bool{}
	for _, s := range services {
		l := s.LoadBalancer
		if l == nil || !l.HTTPS || !(tlscert.Covers(host, l.Host) || l.TestHost != "" && tlscert.Covers(host, l.TestHost) || host == l.Host || host == l.TestHost) {
			continue
		}
		m.event(ctx, s, "%s", msg)
		if !notified[s.App] && m.Notifier != nil {
			notified[s.App] = true
			m.Notifier.Notify(ctx, notify.Event{Kind: notify.CertificateProblem, App: s.App, Path: "/services/" + s.App + "/" + s.Env + "/" + s.Name,
				Title:  fmt.Sprintf("%s: certificate for %s", s.App, host),
				Text:   msg,
				Fields: map[string]string{"host": host, "environment": s.Env, "service": s.Name}})
		}
	}
}

// hookURLs tell a deployment's hooks where production and test traffic
// are served: SLIPWAY_PROD_URL and SLIPWAY_TEST_URL on 127.0.0.1. A host
// claimed on the shared plain listener is reached there, with
// SLIPWAY_PROD_HOST or SLIPWAY_TEST_HOST to send as the Host header (a
// url: hook sends it by itself).
func hookURLs(l *store.LoadBalancer, edge Edge) []string {
	var env []string
	edgeURL := ""
	if _, port, err := net.SplitHostPort(edge.HTTPAddr); err == nil {
		edgeURL = "http://127.0.0.1:" + port
	}
	for _, u := range []struct {
		name, host string
		port       int
	}{{"PROD", l.Host, l.ListenerPort}, {"TEST", l.TestHost, l.TestListenerPort}} {
		switch {
		case u.port != 0:
			env = append(env, fmt.Sprintf("SLIPWAY_%s_URL=http://127.0.0.1:%d", u.name, u.port))
		case u.host != "" && edgeURL != "":
			env = append(env, "SLIPWAY_"+u.name+"_URL="+edgeURL+l.PathPrefix, "SLIPWAY_"+u.name+"_HOST="+u.host)
		}
	}
	return env
}

// hostFor is the Host header a url: hook sends: the host of the service
// whose URL variable the hook's URL starts with, if it is served by host.
func hostFor(rawURL string, env []string) string {
	for _, name := range []string{"TEST", "PROD"} {
		if strings.HasPrefix(rawURL, "${SLIPWAY_"+name+"_URL}") || strings.HasPrefix(rawURL, "$SLIPWAY_"+name+"_URL") {
			return lookup(env, "SLIPWAY_"+name+"_HOST")
		}
	}
	return ""
}
