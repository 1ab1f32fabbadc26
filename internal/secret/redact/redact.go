// Package redact hides credentials in URLs (a Slack webhook's path, a
// token query parameter, user info) and in text that quotes them, such as
// Go's HTTP client errors. It imports nothing of Slipway's, so the store
// can use it.
package redact

import (
	"net/url"
	"regexp"
	"strings"
)

// URL shows where raw points without what may be a credential: user
// info is dropped, and a path, query or fragment becomes "/…" (a Slack
// webhook's path is its credential; other hooks carry tokens in any of
// them). "" when raw is not a URL with a host.
func URL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return ""
	}
	out := u.Scheme + "://" + u.Host
	switch {
	case u.RawQuery != "" || u.Fragment != "" || u.ForceQuery || (u.Path != "" && u.Path != "/"):
		return out + "/…"
	case u.Path == "/":
		return out + "/"
	}
	return out
}

// urlInText finds scheme://… up to a space, a quote or an angle bracket,
// the way URLs appear in Go's error strings, leaving out punctuation that
// ends it ("Post http://h/x: refused", "see http://h/x.").
var urlInText = regexp.MustCompile("[A-Za-z][A-Za-z0-9+.-]*://[^\\s\"'<>`]*[^\\s\"'<>`.,:;!?)\\]]")

// URLs replaces every URL in text with its URL form, for error
// strings that quote a URL whose path or query is a credential.
func URLs(text string) string {
	return urlInText.ReplaceAllStringFunc(text, func(m string) string {
		if r := URL(m); r != "" {
			return r
		}
		scheme, _, _ := strings.Cut(m, "://")
		return scheme + "://…"
	})
}
