package server

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/slipway-dev/slipway/internal/auth"
	"github.com/slipway-dev/slipway/internal/store"
	"github.com/slipway-dev/slipway/internal/web"
)

// Web UI sessions: a random id in an HttpOnly, SameSite=Strict cookie,
// stored hashed with the token it stands for and a CSRF token for its forms.
const (
	sessionCookie = "slipway_session"
	signinCookie  = "slipway_signin" // double-submit CSRF for the sign-in form
	sessionTTL    = 12 * time.Hour
)

type uiCtxKey struct{}

// uiPage is what every page template gets.
type uiPage struct {
	Title     string
	Nav       string
	Tok       store.Token
	CSRF      string
	CanDeploy bool
	IsAdmin   bool
	Flash     string
	Error     string
	Data      any
}

func randomID() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func hashID(id string) []byte {
	h := sha256.Sum256([]byte(id))
	return h[:]
}

func (s *Server) setCookie(w http.ResponseWriter, r *http.Request, name, value string, ttl time.Duration) {
	_, viaHTTPS := s.forwarded(r) // the browser spoke HTTPS to the server that passed this on
	c := &http.Cookie{Name: name, Value: value, Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode,
		Secure: r.TLS != nil || viaHTTPS || strings.HasPrefix(s.cfg.PublicURL, "https://")}
	if ttl < 0 {
		c.MaxAge = -1
	} else {
		c.Expires = time.Now().Add(ttl)
	}
	http.SetCookie(w, c)
}

// session resolves the request's UI session and its (still valid) token.
func (s *Server) session(r *http.Request) (store.Session, store.Token, error) {
	c, err := r.Cookie(sessionCookie)
	if err != nil || c.Value == "" {
		return store.Session{}, store.Token{}, store.ErrNotFound
	}
	sess, tok, err := s.db.GetSession(r.Context(), hashID(c.Value))
	if err != nil {
		return sess, tok, err
	}
	if tok.RevokedAt != nil {
		return sess, tok, errors.New("token revoked")
	}
	return sess, tok, nil
}

// authorizeSession guards UI routes: no session sends a browser to sign in;
// a form without the session's CSRF token is refused.
func (s *Server) authorizeSession(rt Route, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sess, tok, err := s.session(r)
		if err != nil {
			if r.Method == http.MethodGet && !strings.HasPrefix(r.URL.Path, "/ui/") {
				http.Redirect(w, r, "/signin?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
				return
			}
			s.uiError(w, r, http.StatusForbidden, "Signed out", "Your session has ended. Sign in again.")
			return
		}
		infoOf(r.Context()).token = &tok
		if requireRole(tok, rt.Role) != nil {
			s.uiError(w, r, http.StatusForbidden, "Not allowed", "Token "+tok.Name+" has role "+tok.Role+"; this needs role "+rt.Role.String()+" or above.")
			return
		}
		if r.Method != http.MethodGet {
			if subtle.ConstantTimeCompare([]byte(r.PostFormValue("csrf")), []byte(sess.CSRF)) != 1 {
				s.uiError(w, r, http.StatusForbidden, "Form expired", "The form did not carry this session's CSRF token. Reload the page and try again.")
				return
			}
		}
		s.touch(r.Context(), tok)
		ctx := context.WithValue(r.Context(), uiCtxKey{}, sess)
		if r.Method == http.MethodGet && !strings.HasPrefix(r.URL.Path, "/ui/") { // a page, not a live stream
			ctx = context.WithValue(ctx, flashKey{}, s.takeFlash(w, r))
		}
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// page builds the common page data for the signed-in caller.
func (s *Server) page(r *http.Request, title, nav string, data any) uiPage {
	p := uiPage{Title: title, Nav: nav, Data: data}
	if f, ok := r.Context().Value(flashKey{}).(flash); ok {
		p.Flash, p.Error = f.Msg, f.Err
	}
	if sess, ok := r.Context().Value(uiCtxKey{}).(store.Session); ok {
		p.CSRF = sess.CSRF
	}
	if tok, ok := Caller(r.Context()); ok {
		p.Tok = tok
		role, _ := auth.ParseRole(tok.Role)
		p.CanDeploy, p.IsAdmin = role >= auth.Deployer, role >= auth.Admin
	}
	return p
}

func (s *Server) uiError(w http.ResponseWriter, r *http.Request, status int, title, msg string) {
	s.ui.Page(w, status, "error", s.page(r, title, "", web.ConsoleText(msg)))
}

// uiFail shows a store error as a page.
func (s *Server) uiFail(w http.ResponseWriter, r *http.Request, err error) {
	var ae *apiError
	switch {
	case errors.As(err, &ae):
		s.uiError(w, r, ae.Status, http.StatusText(ae.Status), ae.Message)
	case errors.Is(err, store.ErrNotFound):
		s.uiError(w, r, http.StatusNotFound, "Not found", err.Error())
	case store.Unavailable(err):
		s.log.Warn("page failed: database unreachable", "request_id", requestID(r.Context()), "path", r.URL.Path, "err", err)
		w.Header().Set("Retry-After", "5")
		s.uiError(w, r, http.StatusServiceUnavailable, "Database unreachable", "Slipway cannot reach its database right now. Try again in a few seconds.")
	default:
		s.log.Error("page failed", "request_id", requestID(r.Context()), "path", r.URL.Path, "err", err)
		s.uiError(w, r, http.StatusInternalServerError, "Something went wrong", "See the server log for request "+requestID(r.Context())+".")
	}
}

// back redirects to a page after a form, with a message or an error.
func (s *Server) back(w http.ResponseWriter, r *http.Request, path, msg, errMsg string) {
	if msg != "" || errMsg != "" {
		b, _ := json.Marshal(flash{Msg: web.ConsoleText(msg), Err: web.ConsoleText(errMsg)})
		s.setCookie(w, r, flashCookie, base64.RawURLEncoding.EncodeToString(b), time.Minute)
	}
	http.Redirect(w, r, path, http.StatusSeeOther)
}

// flashCookie carries a form's outcome to the page it returns to, once:
// in the URL, a link from anyone could make a page say anything in
// Slipway's voice, and a reload would say it again.
const flashCookie = "slipway_flash"

type flash struct {
	Msg string `json:"msg,omitempty"`
	Err string `json:"err,omitempty"`
}

type flashKey struct{}

// takeFlash reads the flash cookie and clears it.
func (s *Server) takeFlash(w http.ResponseWriter, r *http.Request) flash {
	c, err := r.Cookie(flashCookie)
	if err != nil || c.Value == "" {
		return flash{}
	}
	s.setCookie(w, r, flashCookie, "", -1)
	var f flash
	if b, err := base64.RawURLEncoding.DecodeString(c.Value); err == nil && len(b) <= 4096 {
		_ = json.Unmarshal(b, &f)
	}
	return f
}

func (s *Server) uiSigninForm(w http.ResponseWriter, r *http.Request) {
	csrf := randomID()
	s.setCookie(w, r, signinCookie, csrf, 10*time.Minute)
	// The form carries next back; a foreign one is dropped here already.
	next := r.URL.Query().Get("next")
	if next != "" {
		next = localNext(next)
	}
	p := uiPage{Title: "Sign in", CSRF: csrf, Data: next, Error: s.takeFlash(w, r).Err}
	s.ui.Page(w, http.StatusOK, "signin", p)
}

func (s *Server) uiSignin(w http.ResponseWriter, r *http.Request) {
	c, err := r.Cookie(signinCookie)
	if err != nil || c.Value == "" || subtle.ConstantTimeCompare([]byte(c.Value), []byte(r.PostFormValue("csrf"))) != 1 {
		s.back(w, r, "/signin", "", "The sign-in form expired; try again.")
		return
	}
	tok, err := s.db.TokenByHash(r.Context(), auth.Hash(strings.TrimSpace(r.PostFormValue("token"))))
	if err != nil || tok.RevokedAt != nil {
		s.log.Warn("web sign-in refused", "remote", r.RemoteAddr)
		s.back(w, r, "/signin", "", "That token is not valid.")
		return
	}
	if tok.App != "" || tok.RegistryOnly {
		// The console's pages list every app; a limited token reaches one.
		s.back(w, r, "/signin", "", "Token "+tok.Name+" is limited to app "+tok.App+"; the web console needs a token for every app. Use the CLI or API with this one.")
		return
	}
	id := randomID()
	if err := s.db.CreateSession(r.Context(), hashID(id), store.Session{TokenID: tok.ID, CSRF: randomID(), ExpiresAt: time.Now().Add(sessionTTL)}); err != nil {
		s.uiFail(w, r, err)
		return
	}
	s.setCookie(w, r, sessionCookie, id, sessionTTL)
	s.setCookie(w, r, signinCookie, "", -1)
	s.log.Info("web sign-in", "token", tok.Name)
	http.Redirect(w, r, localNext(r.PostFormValue("next")), http.StatusSeeOther)
}

// localNext returns next when it is a path on this site, else /apps, so
// sign-in is never an open redirect. Browsers drop tabs and newlines from
// a URL and read a backslash as a slash, so "/\t/evil.example", or
// "/./\evil.example" (http.Redirect cleans it to "/\evil.example"), would
// leave the site: a control character or backslash anywhere is refused,
// as is a second leading slash.
func localNext(next string) string {
	const fallback = "/apps"
	if !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.ContainsRune(next, '\\') {
		return fallback
	}
	if strings.ContainsFunc(next, unicode.IsControl) || !utf8.ValidString(next) {
		return fallback
	}
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || u.Opaque != "" {
		return fallback
	}
	return next
}

func (s *Server) uiSignout(w http.ResponseWriter, r *http.Request) {
	if c, err := r.Cookie(sessionCookie); err == nil {
		_ = s.db.DeleteSession(r.Context(), hashID(c.Value))
	}
	s.setCookie(w, r, sessionCookie, "", -1)
	http.Redirect(w, r, "/signin", http.StatusSeeOther)
}

func (s *Server) uiRoot(w http.ResponseWriter, r *http.Request) {
	http.Redirect(w, r, "/apps", http.StatusSeeOther)
}

// uiRoutes lists the web UI's routes; Session routes use the cookie.
func (s *Server) uiRoutes() []Route {
	return []Route{
		{Method: "GET", Pattern: "/signin", Role: auth.Public, handler: s.uiSigninForm},
		{Method: "POST", Pattern: "/signin", Role: auth.Public, handler: s.uiSignin},
		{Method: "GET", Pattern: "/static/", Role: auth.Public, handler: web.Static().ServeHTTP},
		{Method: "POST", Pattern: "/signout", Role: auth.Viewer, Session: true, handler: s.uiSignout},
		{Method: "GET", Pattern: "/{$}", Role: auth.Viewer, Session: true, handler: s.uiRoot},
		{Method: "GET", Pattern: "/apps", Role: auth.Viewer, Session: true, handler: s.uiApps},
		{Method: "GET", Pattern: "/apps/{app}", Role: auth.Viewer, Session: true, handler: s.uiApp},
		{Method: "GET", Pattern: "/runs", Role: auth.Viewer, Session: true, handler: s.uiRuns},
		{Method: "GET", Pattern: "/runs/{id}", Role: auth.Viewer, Session: true, handler: s.uiRun},
		{Method: "POST", Pattern: "/runs/{id}/decide", Role: auth.Deployer, Session: true, handler: s.uiDecide},
		{Method: "POST", Pattern: "/runs/{id}/cancel", Role: auth.Deployer, Session: true, handler: s.uiCancelRun},
		{Method: "POST", Pattern: "/runs/{id}/retry", Role: auth.Deployer, Session: true, handler: s.uiRetryRun},
		{Method: "POST", Pattern: "/runs/{id}/rerun", Role: auth.Deployer, Session: true, handler: s.uiRerun},
		{Method: "GET", Pattern: "/runs/{id}/actions/{aid}", Role: auth.Viewer, Session: true, handler: s.uiAction},
		{Method: "GET", Pattern: "/runs/{id}/actions/{aid}/raw", Role: auth.Viewer, Session: true, handler: s.uiActionRaw},
		{Method: "GET", Pattern: "/runs/{id}/artifacts/{name}", Role: auth.Viewer, Session: true, handler: s.uiArtifact},
		{Method: "GET", Pattern: "/services", Role: auth.Viewer, Session: true, handler: s.uiServices},
		{Method: "GET", Pattern: "/services/{app}/{env}/{name}", Role: auth.Viewer, Session: true, handler: s.uiService},
		{Method: "POST", Pattern: "/services/{app}/{env}/{name}/rollback", Role: auth.Deployer, Session: true, handler: s.uiRollback},
		{Method: "POST", Pattern: "/services/{app}/{env}/{name}/replace-tasks", Role: auth.Deployer, Session: true, handler: s.uiReplaceTasks},
		{Method: "POST", Pattern: "/services/{app}/{env}/{name}/autoscaling", Role: auth.Deployer, Session: true, handler: s.uiAutoscaling},
		{Method: "GET", Pattern: "/deployments", Role: auth.Viewer, Session: true, handler: s.uiDeployments},
		{Method: "GET", Pattern: "/deployments/{id}", Role: auth.Viewer, Session: true, handler: s.uiDeployment},
		{Method: "POST", Pattern: "/deployments/{id}/stop", Role: auth.Deployer, Session: true, handler: s.uiStopDeployment},
		{Method: "POST", Pattern: "/deployments/{id}/promote", Role: auth.Deployer, Session: true, handler: s.uiPromoteDeployment},
		{Method: "GET", Pattern: "/registry", Role: auth.Viewer, Session: true, handler: s.uiRegistry},
		{Method: "GET", Pattern: "/secrets", Role: auth.Viewer, Session: true, handler: s.uiSecrets},
		{Method: "GET", Pattern: "/notifications", Role: auth.Viewer, Session: true, handler: s.uiNotifications},
		{Method: "GET", Pattern: "/tokens", Role: auth.Admin, Session: true, handler: s.uiTokens},
		{Method: "POST", Pattern: "/tokens", Role: auth.Admin, Session: true, handler: s.uiCreateToken},
		{Method: "POST", Pattern: "/tokens/{id}/revoke", Role: auth.Admin, Session: true, handler: s.uiRevokeToken},
		{Method: "GET", Pattern: "/ui/apps/events", Role: auth.Viewer, Session: true, BodyLimit: -1, handler: s.uiAppsEvents},
		{Method: "GET", Pattern: "/ui/apps/{app}/events", Role: auth.Viewer, Session: true, BodyLimit: -1, handler: s.uiAppEvents},
		{Method: "GET", Pattern: "/ui/runs/events", Role: auth.Viewer, Session: true, BodyLimit: -1, handler: s.uiRunsEvents},
		{Method: "GET", Pattern: "/ui/runs/{id}/events", Role: auth.Viewer, Session: true, BodyLimit: -1, handler: s.uiRunEvents},
		{Method: "GET", Pattern: "/ui/runs/{id}/logs", Role: auth.Viewer, Session: true, BodyLimit: -1, handler: s.uiRunLogs},
		{Method: "GET", Pattern: "/ui/runs/{id}/actions/{aid}/lines", Role: auth.Viewer, Session: true, handler: s.uiActionLines},
		{Method: "GET", Pattern: "/ui/runs/{id}/actions/{aid}/events", Role: auth.Viewer, Session: true, BodyLimit: -1, handler: s.uiActionEvents},
		{Method: "GET", Pattern: "/ui/deployments/{id}/events", Role: auth.Viewer, Session: true, BodyLimit: -1, handler: s.uiDeploymentEvents},
		{Method: "GET", Pattern: "/ui/services/{app}/{env}/{name}/events", Role: auth.Viewer, Session: true, BodyLimit: -1, handler: s.uiServiceEvents},
	}
}
