package server

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"

	"github.com/thaw-run/thaw/internal/api"
	"github.com/thaw-run/thaw/internal/errdefs"
)

// Status maps an error to its HTTP status code. It is the only place where
// error categories become status codes.
func Status(err error) int {
	var mbe *http.MaxBytesError
	switch {
	case err == nil:
		return http.StatusOK
	case errors.Is(err, errMisdirected):
		return http.StatusMisdirectedRequest
	case errors.Is(err, errForeignOrigin):
		return http.StatusForbidden
	case errors.Is(err, errReadTimeout):
		return http.StatusRequestTimeout
	case errors.Is(err, errdefs.ErrInvalid):
		return http.StatusBadRequest
	case errors.Is(err, errdefs.ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, errdefs.ErrTooLarge), errors.As(err, &mbe):
		return http.StatusRequestEntityTooLarge
	case errors.Is(err, errdefs.ErrOverloaded):
		return http.StatusTooManyRequests
	case errors.Is(err, errdefs.ErrGuest):
		return http.StatusBadGateway
	case errors.Is(err, errdefs.ErrTimeout), errors.Is(err, context.DeadlineExceeded):
		return http.StatusGatewayTimeout
	case errors.Is(err, errdefs.ErrUnauthorized):
		return http.StatusUnauthorized
	case errors.Is(err, errdefs.ErrConflict):
		return http.StatusConflict
	case errors.Is(err, errdefs.ErrUnavailable):
		return http.StatusServiceUnavailable
	default:
		return http.StatusInternalServerError
	}
}

// category is the errdefs category name of err for the X-Thaw-Error header.
func category(err error) string {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return "too_large"
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return "timeout"
	}
	return errdefs.Category(err)
}

// writeError answers with err's status, category header (api.HeaderError)
// and JSON body (api.ErrorBody).
// The body never shows absolute file paths (redactPaths); the log gets the
// whole message.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	status := Status(err)
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set(api.HeaderError, category(err))
	if status == http.StatusUnauthorized {
		h.Set("WWW-Authenticate", `Bearer realm="thaw"`)
	}
	if r.ContentLength != 0 && (status < 500 || status == http.StatusServiceUnavailable) {
		// A request refused before its body was read: close the
		// connection rather than read the body to reuse it (the server
		// would otherwise wait for it before answering).
		h.Set("Connection", "close")
	}
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(api.ErrorBody{Error: redactPaths(err.Error())})
	s.logFailure(r, status, err)
}

// logFailure logs a failed request: a warning for the server's own
// failures (5xx), debug for the caller's.
func (s *Server) logFailure(r *http.Request, status int, err error) {
	level := s.log.Debug
	if status >= 500 {
		level = s.log.Warn
	}
	level("request failed", "method", r.Method, "path", r.URL.Path, "status", status, "err", err)
}

// writeJSON answers with v as JSON.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
