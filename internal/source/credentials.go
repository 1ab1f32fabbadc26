package source

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"

	"github.com/slipway-dev/slipway/internal/store"
)

// A source URL's credentials are sealed apart from it (store.AppSource)
// and reach git only through its environment, which only the server's
// user can read: a command line is visible to every local user (ps,
// /proc/PID/cmdline), and git hands the URL on to git-remote-http's.

// SourceURLError is a source URL that cannot be stored. Its message never
// holds the URL's credentials.
type SourceURLError struct {
	Reason string
}

func (e *SourceURLError) Error() string { return e.Reason }

// sourceCredentials is what is sealed for a source URL's userinfo.
type sourceCredentials struct {
	Username string `json:"username"`
	Password string `json:"password"`
}

// splitSource checks a source URL and cuts out its credentials (nil when
// it has none).
func splitSource(raw string) (public string, creds *sourceCredentials, err error) {
	if raw == "" || strings.HasPrefix(raw, "-") || strings.ContainsAny(raw, "\n\r\x00") {
		return "", nil, &SourceURLError{Reason: "source URL is not a git URL (https://…, ssh://…, file://… or a path)"}
	}
	public, user, err := store.SplitSourceCredentials(raw)
	var ue *store.SourceURLError
	if errors.As(err, &ue) {
		return "", nil, &SourceURLError{Reason: ue.Error()}
	}
	if err != nil {
		return "", nil, err
	}
	if user == nil {
		return public, nil, nil
	}
	u, err := url.Parse(public)
	if err != nil {
		return "", nil, &SourceURLError{Reason: fmt.Sprintf("source URL %s does not parse", public)}
	}
	if s := strings.ToLower(u.Scheme); s != "http" && s != "https" {
		return "", nil, &SourceURLError{Reason: fmt.Sprintf("source URL %s has a password, which git does not use over %s: use a deploy key, or an https URL with the token as the password", public, u.Scheme)}
	}
	pw, _ := user.Password()
	creds = &sourceCredentials{Username: user.Username(), Password: pw}
	// The credential protocol is line-based: git refuses such values.
	if strings.ContainsAny(creds.Username+creds.Password, "\n\r\x00") {
		return "", nil, &SourceURLError{Reason: fmt.Sprintf("the user name or password of source URL %s holds a line break or NUL, which git cannot send", public)}
	}
	return public, creds, nil
}

// SealSource checks a source URL and splits it for storage: the URL
// without credentials, and the credentials sealed with the master key.
// Errors are *SourceURLError.
func (s *Service) SealSource(raw string) (store.AppSource, error) {
	public, creds, err := splitSource(raw)
	if err != nil {
		return store.AppSource{}, err
	}
	src := store.AppSource{URL: public}
	if creds != nil {
		plain, err := json.Marshal(creds)
		if err != nil {
			return store.AppSource{}, err
		}
		src.Credentials = s.Keys.Seal(plain)
	}
	return src, nil
}

// openSource returns the URL git fetches from and the credentials to give
// it (nil for none), for either form a source is stored in.
func (s *Service) openSource(src store.AppSource) (string, *sourceCredentials, error) {
	if len(src.Credentials) == 0 {
		// Stored before credentials were sealed apart: they may be in the URL.
		public, creds, err := splitSource(src.URL)
		if err != nil {
			return "", nil, fmt.Errorf("%w; set the source again with slipway app set-source", err)
		}
		return public, creds, nil
	}
	plain, err := s.Keys.Open(src.Credentials)
	if err != nil {
		return "", nil, fmt.Errorf("open the credentials of source %s: %w", src.URL, err)
	}
	var creds sourceCredentials
	if err := json.Unmarshal(plain, &creds); err != nil {
		return "", nil, fmt.Errorf("open the credentials of source %s: %w", src.URL, err)
	}
	return src.URL, &creds, nil
}

// The credential helper answers git's "get" with the user name and password
// from its environment: the command line it runs with names the variables,
// not their values.
const (
	envSourceUser     = "SLIPWAY_SOURCE_USERNAME"
	envSourcePassword = "SLIPWAY_SOURCE_PASSWORD"
	credentialHelper  = `!f() { test "$1" = get && printf 'username=%s\npassword=%s\n' "$` + envSourceUser + `" "$` + envSourcePassword + `"; }; f`
)

// env is what git needs in its environment to authenticate to fetchURL:
// the credential helper, for that scheme and host only, after an empty
// helper that drops those of the user's git config (a "store" helper there
// would write the password to a file).
func (c *sourceCredentials) env(fetchURL string) ([]string, error) {
	if c == nil {
		return nil, nil
	}
	u, err := url.Parse(fetchURL)
	if err != nil {
		return nil, err
	}
	return []string{
		"GIT_CONFIG_COUNT=2",
		"GIT_CONFIG_KEY_0=credential.helper",
		"GIT_CONFIG_VALUE_0=",
		"GIT_CONFIG_KEY_1=credential." + u.Scheme + "://" + u.Host + ".helper",
		"GIT_CONFIG_VALUE_1=" + credentialHelper,
		envSourceUser + "=" + c.Username,
		envSourcePassword + "=" + c.Password,
	}, nil
}

// userinfoInURL is the userinfo of a URL in free text.
var userinfoInURL = regexp.MustCompile(`([a-zA-Z][a-zA-Z0-9+.-]*://)[^/?#\s@'"]+@`)

// MaskURLUserinfo replaces the userinfo of every URL in text with ***.
func MaskURLUserinfo(text string) string {
	return userinfoInURL.ReplaceAllString(text, "${1}***@")
}

// scrub masks the credentials in text (git's stderr, say), as they are and
// in the forms git or curl could print them, and any URL's userinfo.
func (c *sourceCredentials) scrub(text string) string {
	text = MaskURLUserinfo(text)
	if c == nil {
		return text
	}
	secrets := []string{base64.StdEncoding.EncodeToString([]byte(c.Username + ":" + c.Password))}
	for _, v := range []string{c.Password, c.Username} {
		if v == "" {
			continue
		}
		secrets = append(secrets, v, url.QueryEscape(v), url.PathEscape(v))
		if c.Password != "" {
			break // a user name beside a password is no secret; alone it may be a token
		}
	}
	for _, v := range secrets {
		text = strings.ReplaceAll(text, v, "***")
	}
	return text
}

// sealStoredCredentials moves credentials that rows written before they
// were sealed apart hold in their URL into sealed storage. A row it cannot
// move is logged and still fetched from (openSource reads both forms).
func (s *Service) sealStoredCredentials(ctx context.Context) {
	urls, err := s.Store.UnsealedSourceURLs(ctx)
	if err != nil {
		s.Log.Error("list source URLs to seal credentials of", "err", err)
		return
	}
	for app, raw := range urls {
		src, err := s.SealSource(raw)
		if err != nil {
			s.Log.Warn("source URL credentials left unsealed; set the source again", "app", app, "err", err)
			continue
		}
		if src.Credentials == nil {
			continue // an '@' that is no credential, as in ssh://git@host
		}
		if _, err := s.Store.UpgradeAppSource(ctx, app, raw, src); err != nil {
			s.Log.Error("seal source URL credentials", "app", app, "err", err)
			continue
		}
		s.Log.Info("sealed the credentials of a source URL stored in the clear", "app", app, "source", src.URL)
	}
}
