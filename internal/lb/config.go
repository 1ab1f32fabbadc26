// Package lb is Slipway's HTTP load balancer: listeners that route to
// weighted target groups whose targets are health-checked, with connection
// draining. It runs as its own long-lived process (`slipway proxy`) so apps
// keep serving while the control plane restarts; the server configures it
// over a local socket, and it persists its routing table to restart into
// its last state.
package lb

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"
)

// Duration is a time.Duration that reads and writes as "5s" in JSON.
type Duration struct{ time.Duration }

// MarshalJSON writes the duration as a string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// UnmarshalJSON reads "5s" or a number of nanoseconds.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		v, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("duration %q: %w", s, err)
		}
		d.Duration = v
		return nil
	}
	var n int64
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("duration must be a string such as \"5s\"")
	}
	d.Duration = time.Duration(n)
	return nil
}

// HealthCheck describes the active check of a target group's targets.
type HealthCheck struct {
	Path               string   `json:"path"`
	Interval           Duration `json:"interval"`
	Timeout            Duration `json:"timeout"`
	HealthyThreshold   int      `json:"healthy_threshold"`
	UnhealthyThreshold int      `json:"unhealthy_threshold"`
	// Matcher is the accepted status codes: "200", "200-399" or "200,204".
	Matcher string `json:"matcher"`
}

// TargetGroup is a set of targets (host:port) behind one health check.
type TargetGroup struct {
	Targets             []string    `json:"targets"`
	HealthCheck         HealthCheck `json:"health_check"`
	DeregistrationDelay Duration    `json:"deregistration_delay"`
}

// Route sends a weighted share of a listener's requests to a target group.
type Route struct {
	TargetGroup string `json:"target_group"`
	Weight      int    `json:"weight"`
}

// Listener accepts client connections on Addr. A listener of one service
// has only Routes; a shared one has Rules, and Routes (if any) for the
// requests no rule matches, which otherwise get a 404.
type Listener struct {
	Addr   string  `json:"addr"`
	Routes []Route `json:"routes"`
	Rules  []Rule  `json:"rules,omitempty"`
	// TLS terminates TLS on the listener with the certificate each client
	// names (SNI), from Config.Certificates.
	TLS bool `json:"tls,omitempty"`
}

// Config is the whole routing table, replaced atomically.
type Config struct {
	Listeners    map[string]Listener    `json:"listeners"`
	TargetGroups map[string]TargetGroup `json:"target_groups"`
	// Certificates serve the TLS listeners, each for the names it holds.
	Certificates []Certificate `json:"certificates,omitempty"`
	// Challenges are the ACME HTTP-01 answers plain listeners give:
	// /.well-known/acme-challenge/TOKEN → key authorization.
	Challenges map[string]string `json:"challenges,omitempty"`
}

// WithDefaults is the check with the load balancer's defaults filled in,
// as it will run.
func (hc HealthCheck) WithDefaults() HealthCheck {
	hc.defaults()
	return hc
}

func (hc *HealthCheck) defaults() {
	if hc.Path == "" {
		hc.Path = "/"
	}
	if hc.Interval.Duration == 0 {
		hc.Interval.Duration = 5 * time.Second
	}
	if hc.Timeout.Duration == 0 {
		hc.Timeout.Duration = 2 * time.Second
	}
	if hc.HealthyThreshold == 0 {
		hc.HealthyThreshold = 2
	}
	if hc.UnhealthyThreshold == 0 {
		hc.UnhealthyThreshold = 2
	}
	if hc.Matcher == "" {
		hc.Matcher = "200-399"
	}
}

// Validate checks a config and fills defaults; errors name the field.
func (c *Config) Validate() error {
	if c.Listeners == nil {
		c.Listeners = map[string]Listener{}
	}
	if c.TargetGroups == nil {
		c.TargetGroups = map[string]TargetGroup{}
	}
	for name, tg := range c.TargetGroups {
		tg.HealthCheck.defaults()
		hc := tg.HealthCheck
		if !strings.HasPrefix(hc.Path, "/") {
			return fmt.Errorf("target_groups.%s.health_check.path %q must start with /", name, hc.Path)
		}
		if hc.Timeout.Duration >= hc.Interval.Duration {
			return fmt.Errorf("target_groups.%s.health_check.timeout must be shorter than the interval", name)
		}
		if hc.HealthyThreshold < 1 || hc.HealthyThreshold > 10 || hc.UnhealthyThreshold < 1 || hc.UnhealthyThreshold > 10 {
			return fmt.Errorf("target_groups.%s.health_check thresholds must be 1 to 10", name)
		}
		if _, err := parseMatcher(hc.Matcher); err != nil {
			return fmt.Errorf("target_groups.%s.health_check.matcher: %w", name, err)
		}
		for i, t := range tg.Targets {
			if _, _, err := net.SplitHostPort(t); err != nil {
				return fmt.Errorf("target_groups.%s.targets[%d] %q must be host:port", name, i, t)
			}
		}
		c.TargetGroups[name] = tg
	}
	addrs := map[string]string{}
	for name, l := range c.Listeners {
		if _, _, err := net.SplitHostPort(l.Addr); err != nil {
			return fmt.Errorf("listeners.%s.addr %q must be host:port", name, l.Addr)
		}
		if other, dup := addrs[l.Addr]; dup {
			return fmt.Errorf("listeners.%s.addr %s is already used by listener %s", name, l.Addr, other)
		}
		addrs[l.Addr] = name
		if err := validateRoutes("listeners."+name, l.Routes, c.TargetGroups); err != nil {
			return err
		}
		if err := validateRules(name, l, c.TargetGroups); err != nil {
			return err
		}
	}
	for i, crt := range c.Certificates {
		if _, err := crt.parse(); err != nil {
			return fmt.Errorf("certificates[%d]: %w", i, err)
		}
	}
	for token := range c.Challenges {
		if !validToken(token) {
			return fmt.Errorf("challenges: token %q must be base64url characters", token)
		}
	}
	return nil
}

// parseMatcher reads "200", "200-299" or "200,204,301".
func parseMatcher(m string) (func(int) bool, error) {
	type span struct{ lo, hi int }
	var spans []span
	for _, part := range strings.Split(m, ",") {
		lo, hi, isRange := strings.Cut(strings.TrimSpace(part), "-")
		a, err := strconv.Atoi(lo)
		if err != nil || a < 100 || a > 599 {
			return nil, fmt.Errorf("%q is not a status code, range or list such as 200-399", m)
		}
		b := a
		if isRange {
			if b, err = strconv.Atoi(hi); err != nil || b < a || b > 599 {
				return nil, fmt.Errorf("%q is not a status code, range or list such as 200-399", m)
			}
		}
		spans = append(spans, span{a, b})
	}
	return func(code int) bool {
		for _, s := range spans {
			if code >= s.lo && code <= s.hi {
				return true
			}
		}
		return false
	}, nil
}

func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }
