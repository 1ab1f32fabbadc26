// Package notify delivers notices about runs, approvals and deployments to
// an app's channels (Slack-style webhooks, signed webhooks, e-mail) through a
// durable queue that retries with backoff and never blocks a pipeline.
package notify

import (
	"errors"
	"fmt"
	"net/mail"
	"net/url"
	"regexp"
	"slices"
	"strings"

	"github.com/slipway-dev/slipway/internal/secret/redact"
)

// Event kinds.
const (
	ApprovalNeeded       = "approval.needed"
	RunFailed            = "run.failed"
	RunSucceeded         = "run.succeeded"
	DeploymentRolledBack = "deployment.rolled_back"
	ServiceUnhealthy     = "service.unhealthy"
	// CertificateProblem is a host's certificate expiring, expired, missing
	// or failing to renew.
	CertificateProblem = "certificate.problem"
)

// Kinds lists every event a channel may subscribe to.
var Kinds = []string{ApprovalNeeded, RunFailed, RunSucceeded, DeploymentRolledBack, ServiceUnhealthy, CertificateProblem}

// Channel types.
const (
	TypeSlack   = "slack"
	TypeWebhook = "webhook"
	TypeEmail   = "email"
)

// Settings are a channel's sealed configuration; which fields apply depends
// on the type.
type Settings struct {
	// slack and webhook
	URL string `json:"url,omitempty"`
	// webhook: the HMAC-SHA256 key of the X-Slipway-Signature-256 header
	Secret string `json:"secret,omitempty"`
	// email
	Host     string   `json:"host,omitempty"`
	Port     int      `json:"port,omitempty"`
	Username string   `json:"username,omitempty"`
	Password string   `json:"password,omitempty"`
	From     string   `json:"from,omitempty"`
	To       []string `json:"to,omitempty"`
	// TLS is starttls (default: required), tls (implicit, port 465) or none.
	TLS string `json:"tls,omitempty"`
	// InsecureSkipVerify accepts a self-signed server certificate.
	InsecureSkipVerify bool `json:"insecure_skip_verify,omitempty"`
}

// FieldError names the setting that is wrong.
type FieldError struct {
	Field   string
	Message string
}

func (e *FieldError) Error() string { return e.Message }

func bad(field, format string, args ...any) error {
	return &FieldError{Field: field, Message: fmt.Sprintf(format, args...)}
}

var channelName = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)

// Validate checks a channel definition and fills defaults; events empty
// means every event.
func Validate(name, typ string, events []string, s *Settings) ([]string, error) {
	if !channelName.MatchString(name) {
		return nil, bad("name", "channel name %q must match ^[a-z0-9][a-z0-9-]{0,62}$", name)
	}
	for _, e := range events {
		if !slices.Contains(Kinds, e) {
			return nil, bad("events", "unknown event %q; use %s", e, strings.Join(Kinds, ", "))
		}
	}
	if len(events) == 0 {
		events = slices.Clone(Kinds)
	}
	switch typ {
	case TypeSlack, TypeWebhook:
		u, err := url.Parse(s.URL)
		if s.URL == "" || err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, bad("url", "a %s channel needs url, an http:// or https:// URL", typ)
		}
		if typ == TypeWebhook && s.Secret == "" {
			return nil, bad("secret", "a webhook channel needs secret, the key receivers check the X-Slipway-Signature-256 header with")
		}
	case TypeEmail:
		if s.Host == "" {
			return nil, bad("host", "an email channel needs host, the SMTP server")
		}
		if s.Port == 0 {
			s.Port = 587
			if s.TLS == "tls" {
				s.Port = 465
			}
		}
		if s.Port < 1 || s.Port > 65535 {
			return nil, bad("port", "port %d is not a TCP port", s.Port)
		}
		if _, err := mail.ParseAddress(s.From); err != nil {
			return nil, bad("from", "from %q is not an e-mail address", s.From)
		}
		if len(s.To) == 0 {
			return nil, bad("to", "an email channel needs at least one to address")
		}
		for _, a := range s.To {
			if _, err := mail.ParseAddress(a); err != nil {
				return nil, bad("to", "to %q is not an e-mail address", a)
			}
		}
		switch s.TLS {
		case "":
			s.TLS = "starttls"
		case "starttls", "tls", "none":
		default:
			return nil, bad("tls", "tls %q: use starttls, tls or none", s.TLS)
		}
		if s.Username != "" && s.Password == "" {
			return nil, bad("password", "username is set without password")
		}
	default:
		return nil, bad("type", "channel type %q: use slack, webhook or email", typ)
	}
	return events, nil
}

// Target is what a channel points at, without credentials, for listings.
func Target(typ string, s Settings) string {
	switch typ {
	case TypeEmail:
		return fmt.Sprintf("smtp://%s:%d → %s", s.Host, s.Port, strings.Join(s.To, ", "))
	}
	// Slack URLs carry their credential in the path; other hooks may in
	// theirs, their query or their user info.
	return redact.URL(s.URL)
}

var errNoChannel = errors.New("channel no longer exists")
