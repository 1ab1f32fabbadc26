package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strings"

	"github.com/slipway-dev/slipway/internal/jsonpath"
	"github.com/slipway-dev/slipway/internal/registry"
	"github.com/slipway-dev/slipway/internal/store"
)

// apiError is the one error shape every route answers with.
type apiError struct {
	Status  int    `json:"-"`
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
}

func (e *apiError) Error() string { return e.Message }

func errBadRequest(field, format string, args ...any) *apiError {
	return &apiError{Status: http.StatusBadRequest, Code: "invalid_argument", Field: field, Message: fmt.Sprintf(format, args...)}
}

func errNotFound(format string, args ...any) *apiError {
	return &apiError{Status: http.StatusNotFound, Code: "not_found", Message: fmt.Sprintf(format, args...)}
}

// errGone answers for what existed and is no longer kept.
func errGone(format string, args ...any) *apiError {
	return &apiError{Status: http.StatusGone, Code: "gone", Message: fmt.Sprintf(format, args...)}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// writeError maps store errors to statuses; anything unknown is a 500 whose
// detail goes to the log, not to the client.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	var ae *apiError
	switch {
	case errors.As(err, &ae):
	case errors.Is(err, store.ErrNotFound):
		ae = &apiError{Status: http.StatusNotFound, Code: "not_found", Message: err.Error()}
	case errors.Is(err, store.ErrExists):
		ae = &apiError{Status: http.StatusConflict, Code: "already_exists", Message: err.Error()}
	case errors.Is(err, store.ErrConflict):
		ae = &apiError{Status: http.StatusConflict, Code: "conflict", Message: err.Error()}
	case store.Unavailable(err):
		s.log.Warn("request failed: database unreachable", "request_id", requestID(r.Context()), "err", err)
		w.Header().Set("Retry-After", "5")
		ae = &apiError{Status: http.StatusServiceUnavailable, Code: "unavailable", Message: "the database is unreachable; try again shortly (request " + requestID(r.Context()) + ")"}
	default:
		s.log.Error("request failed", "request_id", requestID(r.Context()), "err", err)
		ae = &apiError{Status: http.StatusInternalServerError, Code: "internal", Message: "internal error; see the server log for request " + requestID(r.Context())}
	}
	if strings.HasPrefix(r.URL.Path, "/v2/") {
		// Docker and other registry clients read the distribution spec's error shape.
		code := map[int]string{401: "UNAUTHORIZED", 403: "DENIED", 404: "NAME_UNKNOWN"}[ae.Status]
		if code == "" {
			code = "UNKNOWN"
		}
		registry.OCIError(w, ae.Status, code, ae.Message)
		return
	}
	writeJSON(w, ae.Status, map[string]*apiError{"error": ae})
}

// decodeJSON reads one JSON object into v, refusing unknown fields so a typo
// in a request is an error rather than a silently ignored setting.
func decodeJSON(r *http.Request, v any) error {
	// The whole body (bounded by the route's limit) is kept so that a type
	// error can be named by its full path.
	body, err := io.ReadAll(r.Body)
	if err == nil && len(bytes.TrimSpace(body)) == 0 {
		err = io.EOF
	}
	var dec *json.Decoder
	if err == nil {
		dec = json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		err = dec.Decode(v)
	}
	if err == nil {
		if dec.More() {
			return errBadRequest("", "request body holds more than one JSON value; send exactly one object")
		}
		return nil
	}
	var maxErr *http.MaxBytesError
	var syntaxErr *json.SyntaxError
	var typeErr *json.UnmarshalTypeError
	switch {
	case errors.As(err, &maxErr):
		return &apiError{Status: http.StatusRequestEntityTooLarge, Code: "too_large", Message: "request body is over the " + humanBytes(maxErr.Limit) + " limit"}
	case errors.Is(err, io.EOF):
		return errBadRequest("", "request body is empty; send a JSON object")
	case errors.As(err, &syntaxErr):
		return errBadRequest("", "malformed JSON at byte %d: %v", syntaxErr.Offset, err)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return errBadRequest("", "malformed JSON: the body ends in the middle of a value")
	case errors.As(err, &typeErr):
		field, problem := jsonpath.TypeError(body, typeErr)
		return errBadRequest(field, "field %q %s", field, problem)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		name := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		field := jsonpath.UnknownField(body, reflect.TypeOf(v), name)
		return errBadRequest(field, "unknown field %q; remove it or check its spelling", field)
	}
	return errBadRequest("", "malformed JSON: %v", err)
}
