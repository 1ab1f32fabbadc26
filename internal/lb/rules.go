package lb

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
)

// Rule routes the requests for one host (and path prefix) on a shared
// listener, as an ALB listener rule does: many services across apps and
// environments serve on one port, each claiming its host.
type Rule struct {
	// Host is "api.example.com" or "*.example.com" (one label, as in a
	// certificate's wildcard name).
	Host string `json:"host"`
	// PathPrefix is "" (every path) or "/api": "/api" and "/api/…", not "/apix".
	PathPrefix string `json:"path_prefix,omitempty"`
	// Priority orders rules as ALB does, lowest first; rules without one come
	// after those with one, the most specific first (an exact host before a
	// wildcard, a longer path prefix before a shorter one).
	Priority int     `json:"priority,omitempty"`
	Routes   []Route `json:"routes"`
	// RedirectHTTPS, on a plain listener, answers 308 to https://HOST:PORT
	// (no port for 443) instead of serving.
	RedirectHTTPS int `json:"redirect_https,omitempty"`
	// HSTS, on a TLS listener, adds Strict-Transport-Security to responses.
	HSTS bool `json:"hsts,omitempty"`
	// Owner names who claimed the rule, for errors about it.
	Owner string `json:"owner,omitempty"`
}

// MaxPriority is the highest rule priority, as on an ALB listener.
const MaxPriority = 50000

// ValidHost checks a host a rule or certificate names: lower-case DNS
// labels, optionally "*." first.
func ValidHost(h string) error {
	name := strings.TrimPrefix(h, "*.")
	if name == "" || len(h) > 253 {
		return fmt.Errorf("host %q must be a DNS name such as api.example.com or *.example.com", h)
	}
	for _, label := range strings.Split(name, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return fmt.Errorf("host %q must be a DNS name such as api.example.com or *.example.com", h)
		}
		for _, ch := range label {
			if !(ch >= 'a' && ch <= 'z' || ch >= '0' && ch <= '9' || ch == '-') {
				return fmt.Errorf("host %q must be lower-case letters, digits, '-' and '.' (and may start with *.)", h)
			}
		}
	}
	if net.ParseIP(name) != nil {
		return fmt.Errorf("host %q is an IP address; claim a DNS name", h)
	}
	return nil
}

// ValidPathPrefix checks a rule's path prefix; the error is to follow the
// field's name.
func ValidPathPrefix(p string) error {
	if p == "" {
		return nil
	}
	if p == "/" {
		return fmt.Errorf("\"/\" is every path: leave it out")
	}
	if !strings.HasPrefix(p, "/") || strings.ContainsAny(p, "?#* \t") {
		return fmt.Errorf("%q must start with / and have no ?, #, * or spaces", p)
	}
	return nil
}

// routeSet is where one rule (or a listener's default) sends requests.
type routeSet struct {
	key    string // the rule's host+path, "" for a listener's default
	routes []route
	turn   atomic.Uint64
	// redirect is the HTTPS port to redirect to, 0 to serve.
	redirect int
	hsts     bool
}

// pick chooses a group by weight among those with a healthy target.
func (rs *routeSet) pick() *group {
	if rs == nil {
		return nil
	}
	// One look at each group's health: a group that loses its last healthy
	// target between two looks must not leave the choice with nowhere to go
	// while another group still serves.
	var buf [4]route
	up := buf[:0]
	total := 0
	for _, r := range rs.routes {
		if r.weight > 0 && r.g.hasHealthy() {
			up = append(up, r)
			total += r.weight
		}
	}
	if total == 0 {
		return nil
	}
	// Deterministic weighted rotation: over any total consecutive requests
	// each group gets exactly its weight.
	n := int(rs.turn.Add(1) % uint64(total))
	for _, r := range up {
		if n < r.weight {
			return r.g
		}
		n -= r.weight
	}
	return nil
}

type compiledRule struct {
	path string
	set  *routeSet
}

// table is a listener's routing: its rules in order, then its default.
// Rules are indexed by host, so a request looks only at the rules that
// can match its host, however many services share the listener.
type table struct {
	rules    []compiledRule
	byHost   map[string][]int // exact host → its rules' indexes, in order
	byParent map[string][]int // "example.com" → the indexes of "*.example.com"'s rules
	def      *routeSet        // nil: requests no rule matches get a 404
	byKey    map[string]*routeSet
}

func ruleKey(host, path string) string { return host + path }

// newTable compiles a listener's routes and rules; old is the table it
// replaces, whose rotation counters carry over so weights stay exact
// across a change.
func newTable(l Listener, groups map[string]*group, old *table) *table {
	t := &table{byKey: map[string]*routeSet{}, byHost: map[string][]int{}, byParent: map[string][]int{}}
	set := func(key string, rs []Route) *routeSet {
		s := &routeSet{key: key}
		for _, r := range rs {
			s.routes = append(s.routes, route{g: groups[r.TargetGroup], weight: r.Weight})
		}
		if old != nil {
			if o := old.byKey[key]; o != nil {
				s.turn.Store(o.turn.Load())
			}
		}
		t.byKey[key] = s
		return s
	}
	if l.Routes != nil || len(l.Rules) == 0 {
		t.def = set("", l.Routes)
	}
	rules := append([]Rule(nil), l.Rules...)
	sort.SliceStable(rules, func(i, j int) bool { return ruleBefore(rules[i], rules[j]) })
	for _, r := range rules {
		s := set(ruleKey(r.Host, r.PathPrefix), r.Routes)
		s.redirect, s.hsts = r.RedirectHTTPS, r.HSTS
		host, wild := strings.CutPrefix(r.Host, "*.")
		if wild {
			t.byParent[host] = append(t.byParent[host], len(t.rules))
		} else {
			t.byHost[host] = append(t.byHost[host], len(t.rules))
		}
		t.rules = append(t.rules, compiledRule{path: r.PathPrefix, set: s})
	}
	return t
}

// ruleBefore orders rules: explicit priorities first, lowest first; then
// exact hosts before wildcards, longer path prefixes before shorter.
func ruleBefore(a, b Rule) bool {
	pa, pb := a.Priority, b.Priority
	if pa == 0 {
		pa = MaxPriority + 1
	}
	if pb == 0 {
		pb = MaxPriority + 1
	}
	if pa != pb {
		return pa < pb
	}
	wa, wb := strings.HasPrefix(a.Host, "*."), strings.HasPrefix(b.Host, "*.")
	if wa != wb {
		return !wa
	}
	if len(a.PathPrefix) != len(b.PathPrefix) {
		return len(a.PathPrefix) > len(b.PathPrefix)
	}
	return ruleKey(a.Host, a.PathPrefix) < ruleKey(b.Host, b.PathPrefix)
}

// match returns where a request for host (a Host header, maybe with a
// port) and path goes: the first rule that matches, else the default, nil
// when there is neither.
func match[S ~string | ~[]byte](t *table, host, path S) *routeSet {
	if len(t.rules) == 0 {
		return t.def
	}
	host = hostname(host)
	if len(host) > 253 {
		return t.def // no rule names a host that long
	}
	var buf [253]byte
	h := buf[:len(host)]
	for i := 0; i < len(host); i++ {
		ch := host[i]
		if ch >= 'A' && ch <= 'Z' {
			ch += 'a' - 'A'
		}
		h[i] = ch
	}
	// The first matching rule in order: of the host's own, and of the
	// wildcard one label up (a label of one or more characters).
	best := -1
	for _, i := range t.byHost[string(h)] {
		if pathMatches(t.rules[i].path, path) {
			best = i
			break
		}
	}
	if dot := bytes.IndexByte(h, '.'); dot > 0 {
		for _, i := range t.byParent[string(h[dot+1:])] {
			if best >= 0 && i > best {
				break
			}
			if pathMatches(t.rules[i].path, path) {
				best = i
				break
			}
		}
	}
	if best < 0 {
		return t.def
	}
	return t.rules[best].set
}

// hostname drops a port and a trailing dot from a Host header.
func hostname[S ~string | ~[]byte](h S) S {
	if len(h) > 0 && h[0] == '[' {
		return h // an IP literal: no rule names one
	}
	for i := len(h) - 1; i >= 0; i-- {
		if h[i] == ':' {
			h = h[:i]
			break
		}
		if h[i] < '0' || h[i] > '9' {
			break
		}
	}
	if len(h) > 0 && h[len(h)-1] == '.' {
		h = h[:len(h)-1]
	}
	return h
}

func pathMatches[S ~string | ~[]byte](prefix string, path S) bool {
	if prefix == "" {
		return true
	}
	if len(path) < len(prefix) {
		return false
	}
	for i := 0; i < len(prefix); i++ {
		if path[i] != prefix[i] {
			return false
		}
	}
	return len(path) == len(prefix) || prefix[len(prefix)-1] == '/' || path[len(prefix)] == '/' || path[len(prefix)] == '?'
}

// validateRules checks one listener's rules: valid hosts and prefixes, no
// host and prefix claimed twice, no priority used twice.
func validateRules(name string, l Listener, groups map[string]TargetGroup) error {
	claimed := map[string]Rule{}
	prios := map[string]Rule{}
	for i, r := range l.Rules {
		at := fmt.Sprintf("listeners.%s.rules[%d]", name, i)
		if err := ValidHost(r.Host); err != nil {
			return fmt.Errorf("%s.%w", at, err)
		}
		if err := ValidPathPrefix(r.PathPrefix); err != nil {
			return fmt.Errorf("%s.path_prefix %w", at, err)
		}
		if r.Priority < 0 || r.Priority > MaxPriority {
			return fmt.Errorf("%s.priority must be 0 (by specificity) to %d", at, MaxPriority)
		}
		if r.RedirectHTTPS < 0 || r.RedirectHTTPS > 65535 {
			return fmt.Errorf("%s.redirect_https must be a port", at)
		}
		k := ruleKey(r.Host, r.PathPrefix)
		if o, dup := claimed[k]; dup {
			return fmt.Errorf("%s: host %s%s is already claimed by %s", at, r.Host, r.PathPrefix, ownerOf(o))
		}
		claimed[k] = r
		// A priority orders the rules of one host; rules of different
		// hosts never match one request, whatever their order.
		if r.Priority != 0 {
			pk := r.Host + "#" + strconv.Itoa(r.Priority)
			if o, dup := prios[pk]; dup {
				return fmt.Errorf("%s: priority %d for host %s is already used by %s", at, r.Priority, r.Host, ownerOf(o))
			}
			prios[pk] = r
		}
		if err := validateRoutes(at, r.Routes, groups); err != nil {
			return err
		}
	}
	return nil
}

func ownerOf(r Rule) string {
	if r.Owner != "" {
		return r.Owner
	}
	return "the rule for " + r.Host + r.PathPrefix
}

func validateRoutes(at string, rs []Route, groups map[string]TargetGroup) error {
	for i, r := range rs {
		if _, ok := groups[r.TargetGroup]; !ok {
			return fmt.Errorf("%s.routes[%d].target_group %q does not exist", at, i, r.TargetGroup)
		}
		if r.Weight < 0 || r.Weight > 100 {
			return fmt.Errorf("%s.routes[%d].weight must be 0 to 100", at, i)
		}
	}
	return nil
}

// hstsValue is the Strict-Transport-Security a rule with HSTS sends: a
// year, as browsers' preload lists ask for.
const hstsValue = "max-age=31536000"

const challengePrefix = "/.well-known/acme-challenge/"

// challenge returns the key authorization of an ACME HTTP-01 request path.
func challenge[S ~string | ~[]byte](b *Balancer, path S) (string, bool) {
	if len(path) <= len(challengePrefix) || string(path[:len(challengePrefix)]) != challengePrefix {
		return "", false
	}
	m := b.challenges.Load()
	if m == nil {
		return "", false
	}
	ka, ok := (*m)[string(path[len(challengePrefix):])]
	return ka, ok
}

// httpsURL is where a redirected request goes: the same host and target
// on the HTTPS port.
func httpsURL[S ~string | ~[]byte](host S, port int, target S) string {
	u := "https://" + string(hostname(host))
	if port != 443 {
		u += ":" + strconv.Itoa(port)
	}
	return u + string(target)
}

func notFoundMessage[S ~string | ~[]byte](host S) string {
	return "load balancer: no service claims host " + strconv.Quote(string(hostname(host))) + " on this listener"
}

// route finds where a request of the net/http path goes, or answers it
// itself (true): an ACME challenge, a 404 for a host no rule claims, a
// redirect to HTTPS.
func (l *listener) route(b *Balancer, w http.ResponseWriter, r *http.Request, overTLS bool) (*routeSet, bool) {
	// The path as the client sent it, as the fast path matches it: the
	// decoded-and-re-encoded one may differ (/ap%69/{ is /api/%7B there).
	path := r.URL.EscapedPath()
	if raw, _, _ := strings.Cut(r.RequestURI, "?"); strings.HasPrefix(raw, "/") {
		path = raw
	}
	if !overTLS {
		if ka, ok := challenge(b, path); ok {
			w.Header().Set("Content-Type", "text/plain")
			io.WriteString(w, ka)
			return nil, true
		}
	}
	rs := match(l.table.Load(), r.Host, path)
	switch {
	case rs == nil:
		http.Error(w, notFoundMessage(r.Host), http.StatusNotFound)
		return nil, true
	case !overTLS && rs.redirect != 0:
		http.Redirect(w, r, httpsURL(r.Host, rs.redirect, r.URL.RequestURI()), http.StatusPermanentRedirect)
		return nil, true
	}
	return rs, false
}
