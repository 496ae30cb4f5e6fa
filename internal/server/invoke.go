package server

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/thaw-run/thaw/internal/abi"
	"github.com/thaw-run/thaw/internal/errdefs"
	"github.com/thaw-run/thaw/internal/restore"
	"github.com/thaw-run/thaw/internal/worker"
)

// invoke serves ANY /fn/{name}/{rest...} with the function, passing it the
// path after the name, the query, the headers and the body.
func (s *Server) invoke(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	authed := s.authorized(r)
	if !authed {
		// Unauthenticated callers learn nothing about which private
		// functions exist: unknown and private both answer 401.
		info, err := s.b.Get(name)
		if err != nil || !info.Config.Public {
			s.writeError(w, r, errUnauthorized(fmt.Sprintf("function %q", name)))
			return
		}
	}
	opts, err := invokeOptions(r.Header)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if opts != (worker.InvokeOptions{}) && !authed {
		s.writeError(w, r, errUnauthorized("the "+HeaderMode+" and "+HeaderDropCache+" headers"))
		return
	}
	req, err := s.request(w, r, authed)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	res, err := s.b.Invoke(r.Context(), name, req, opts)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	resp := res.Response
	status := resp.Status
	if status == 0 {
		status = http.StatusOK
	}
	if status < 100 || status > 999 {
		s.writeError(w, r, fmt.Errorf("function %q answered with status %d: %w", name, resp.Status, errdefs.ErrGuest))
		return
	}
	h := w.Header()
	for k, vs := range resp.Header {
		if reservedResponseHeader(k) {
			continue
		}
		h[k] = append([]string(nil), vs...)
	}
	h.Set(HeaderServerTiming, ServerTiming(res.Timing))
	h.Set(HeaderStart, res.Timing.StartKind)
	if res.Timing.Fallback != "" {
		h.Set(HeaderFallback, sanitizeHeader(res.Timing.Fallback))
	}
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		_, _ = w.Write(resp.Body)
	}
}

// invokeOptions reads the experiment headers.
func invokeOptions(h http.Header) (worker.InvokeOptions, error) {
	var opts worker.InvokeOptions
	if v := h.Get(HeaderMode); v != "" {
		m, err := restore.ParseMode(v)
		if err != nil {
			return opts, fmt.Errorf("%s: %w", HeaderMode, err)
		}
		opts.Mode = m
	}
	switch v := h.Get(HeaderDropCache); v {
	case "", "0", "false":
	case "1", "true":
		opts.DropCache = true
	default:
		return opts, fmt.Errorf("%s: %q is not 0 or 1: %w", HeaderDropCache, v, errdefs.ErrInvalid)
	}
	return opts, nil
}

// request converts r into the guest's request, bounding the body.
func (s *Server) request(w http.ResponseWriter, r *http.Request, authed bool) (*abi.Request, error) {
	if r.ContentLength > s.maxBody {
		return nil, fmt.Errorf("request body of %d bytes exceeds the %d-byte limit: %w", r.ContentLength, s.maxBody, errdefs.ErrTooLarge)
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.maxBody))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, fmt.Errorf("request body exceeds the %d-byte limit: %w", s.maxBody, errdefs.ErrTooLarge)
		}
		return nil, fmt.Errorf("read request body: %v: %w", err, errdefs.ErrInvalid)
	}
	hdr := r.Header.Clone()
	hdr.Del(HeaderMode)
	hdr.Del(HeaderDropCache)
	if s.hasToken && authed {
		// The platform's token is not the function's business.
		hdr.Del("Authorization")
	}
	if hdr == nil {
		hdr = http.Header{}
	}
	// The ABI carries the path percent-encoded, as it arrived: cut the
	// escaped path after /fn/{name} rather than re-joining decoded segments,
	// so an encoded slash (%2F) stays one segment.
	path := "/" + r.PathValue("rest")
	if esc := r.URL.EscapedPath(); strings.HasPrefix(esc, "/fn/") {
		if i := strings.IndexByte(esc[len("/fn/"):], '/'); i >= 0 {
			path = esc[len("/fn/")+i:]
		} else {
			path = "/"
		}
	}
	return &abi.Request{Method: r.Method, Path: path, RawQuery: r.URL.RawQuery, Header: hdr, Body: body}, nil
}

// reservedResponseHeader reports headers only the server may set, so a
// function cannot pass off its answer as a platform error or fake timings.
func reservedResponseHeader(k string) bool {
	switch http.CanonicalHeaderKey(k) {
	case HeaderError, HeaderServerTiming, HeaderStart, HeaderFallback, "Content-Length", "Transfer-Encoding", "Connection":
		return true
	}
	return false
}

// sanitizeHeader makes an error message safe as a one-line header value.
func sanitizeHeader(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
	if len(s) > 512 {
		s = s[:512]
	}
	return s
}
