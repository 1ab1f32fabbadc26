package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net/http"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/slipway-dev/slipway/internal/auth"
	"github.com/slipway-dev/slipway/internal/store"
)

type ctxKey int

const ctxRequest ctxKey = iota

// requestInfo is filled in as the request passes the middleware, so the
// access log (outermost) sees who authenticated (innermost).
type requestInfo struct {
	id    string
	token *store.Token
}

func infoOf(ctx context.Context) *requestInfo {
	if ri, ok := ctx.Value(ctxRequest).(*requestInfo); ok {
		return ri
	}
	return &requestInfo{}
}

func requestID(ctx context.Context) string { return infoOf(ctx).id }

// Caller returns the token that authenticated the request.
func Caller(ctx context.Context) (store.Token, bool) {
	if t := infoOf(ctx).token; t != nil {
		return *t, true
	}
	return store.Token{}, false
}

type statusRecorder struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	n, err := s.ResponseWriter.Write(b)
	s.bytes += int64(n)
	return n, err
}

// Unwrap lets http.ResponseController reach Flush on the real writer (live logs, git).
func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// observe is the outermost middleware: request id, panic recovery, access log, metrics.
func (s *Server) observe(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		id := newRequestID()
		w.Header().Set("X-Request-Id", id)
		info := &requestInfo{id: id}
		r = r.WithContext(context.WithValue(r.Context(), ctxRequest, info))
		rec := &statusRecorder{ResponseWriter: w}
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p)
				}
				s.log.Error("panic", "request_id", id, "panic", p, "stack", string(debug.Stack()))
				if rec.status == 0 {
					writeJSON(rec, http.StatusInternalServerError, map[string]*apiError{"error": {Code: "internal", Message: "internal error; see the server log for request " + id}})
				}
			}
			status := rec.status
			if status == 0 {
				status = http.StatusOK
			}
			route := r.Pattern
			if route == "" {
				route = "unmatched"
			}
			elapsed := time.Since(start)
			s.metrics.requests.WithLabelValues(route, r.Method, strconv.Itoa(status)).Inc()
			s.metrics.duration.WithLabelValues(route).Observe(elapsed.Seconds())
			caller := ""
			if info.token != nil {
				caller = info.token.Name
			}
			s.log.Info("http", "request_id", id, "method", r.Method, "path", r.URL.Path, "route", route,
				"status", status, "bytes", rec.bytes, "duration_ms", float64(elapsed.Microseconds())/1000, "token", caller)
		}()
		next.ServeHTTP(rec, r)
	})
}

func newRequestID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// credentials extracts a token from "Bearer T" or HTTP basic auth (any user, token as password).
func credentials(r *http.Request) string {
	h := r.Header.Get("Authorization")
	if t, ok := strings.CutPrefix(h, "Bearer "); ok {
		return strings.TrimSpace(t)
	}
	if _, pass, ok := r.BasicAuth(); ok {
		return pass
	}
	return ""
}

// authorize wraps a route: it resolves the caller's token and checks the role.
func (s *Server) authorize(rt Route, next http.Handler) http.Handler {
	if rt.Role == auth.Public {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok, err := s.authenticate(r)
		if err != nil {
			var ae *apiError
			if errors.As(err, &ae) && ae.Status == http.StatusUnauthorized {
				// Git and Docker only send credentials after a Basic or Bearer challenge.
				if rt.Basic {
					w.Header().Set("WWW-Authenticate", `Basic realm="slipway"`)
				} else {
					w.Header().Set("WWW-Authenticate", `Bearer realm="slipway"`)
				}
			}
			s.writeError(w, r, err)
			return
		}
		infoOf(r.Context()).token = &tok
		if err := requireRole(tok, rt.Role); err != nil {
			s.writeError(w, r, err)
			return
		}
		if err := s.requireScope(tok, rt, r); err != nil {
			s.writeError(w, r, err)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func requireRole(tok store.Token, need auth.Role) error {
	have, _ := auth.ParseRole(tok.Role)
	if have < need {
		return &apiError{Status: http.StatusForbidden, Code: "forbidden",
			Message: "token " + tok.Name + " has role " + tok.Role + "; this needs role " + need.String() + " or above"}
	}
	return nil
}

func (s *Server) authenticate(r *http.Request) (store.Token, error) {
	unauth := func(msg string) error {
		return &apiError{Status: http.StatusUnauthorized, Code: "unauthenticated", Message: msg}
	}
	plain := credentials(r)
	if plain == "" {
		return store.Token{}, unauth("credentials required: send Authorization: Bearer <token> (git and registry: basic auth with the token as password)")
	}
	tok, err := s.db.TokenByHash(r.Context(), auth.Hash(plain))
	if errors.Is(err, store.ErrNotFound) {
		return tok, unauth("token is not valid")
	}
	if err != nil {
		return tok, err
	}
	if tok.RevokedAt != nil {
		return tok, unauth("token " + tok.Name + " was revoked")
	}
	s.touch(r.Context(), tok)
	return tok, nil
}

// touch records last use at most once a minute per token, keeping writes off the read path.
func (s *Server) touch(ctx context.Context, tok store.Token) {
	s.touchMu.Lock()
	last := s.touched[tok.ID]
	due := time.Since(last) > time.Minute
	if due {
		s.touched[tok.ID] = time.Now()
	}
	s.touchMu.Unlock()
	if due {
		if err := s.db.TouchToken(ctx, tok.ID, time.Now()); err != nil {
			s.log.Warn("record token use", "token", tok.Name, "err", err)
		}
	}
}
