package server

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/thaw-run/thaw/internal/abi"
	"github.com/thaw-run/thaw/internal/api"
	"github.com/thaw-run/thaw/internal/errdefs"
	"github.com/thaw-run/thaw/internal/restore"
	"github.com/thaw-run/thaw/internal/worker"
)

// invoke serves ANY /fn/{name}/{rest...} with the function, passing it the
// path after the name, the query, the headers and the body.
func (s *Server) invoke(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	authed := s.authorized(r)
	// Unauthenticated callers learn nothing about which private functions
	// exist: unknown and private both answer 401. Public is a map lookup:
	// a flood of them neither reads the disk nor waits for the function.
	if !authed && !s.b.Public(name) {
		s.writeError(w, r, errUnauthorized(fmt.Sprintf("function %q", name)))
		return
	}
	opts, err := invokeOptions(r.Header)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if opts != (worker.InvokeOptions{}) && !authed {
		s.writeError(w, r, errUnauthorized("the "+api.HeaderMode+" and "+api.HeaderDropCache+" headers"))
		return
	}
	// Admit, then read: a request the function's queue cannot take is
	// refused before its body costs memory, and the body's size is
	// reserved from the worker-wide budget before the first byte is read.
	if err := s.b.Admit(name); err != nil {
		s.writeError(w, r, err)
		return
	}
	req, reserved, err := s.request(w, r, authed, "/fn/")
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	// The body stays reserved while the handler holds it (until the
	// response is written).
	defer s.bodies.release(reserved)
	// The instance's settling starts once the response is out
	// (worker.WithAfterResponse): the CPU it wakes is not the caller's
	// wait. The deferred Run covers every path that sends no response.
	ctx, after := worker.WithAfterResponse(r.Context())
	defer after.Run()
	res, err := s.b.Invoke(ctx, name, req, opts)
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
	h.Set(api.HeaderServerTiming, ServerTiming(res.Timing))
	h.Set(api.HeaderStart, res.Timing.StartKind)
	if res.Timing.Worker != "" {
		h.Set(api.HeaderNode, res.Timing.Worker)
	}
	if res.Timing.Fallback != "" {
		// The log has the whole reason (worker); the caller gets it
		// without file paths.
		h.Set(api.HeaderFallback, sanitizeHeader(redactPaths(res.Timing.Fallback)))
	}
	if bodyAllowed(status) {
		// Sized, so that the flush below sends the whole response.
		h.Set("Content-Length", strconv.Itoa(len(resp.Body)))
	}
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		_, _ = w.Write(resp.Body)
	}
	_ = http.NewResponseController(w).Flush()
	after.Run()
}

// bodyAllowed reports whether a response with status may have a body
// (RFC 9110: not 1xx, 204 or 304).
func bodyAllowed(status int) bool {
	return status >= 200 && status != http.StatusNoContent && status != http.StatusNotModified
}

// invokeOptions reads the experiment headers.
func invokeOptions(h http.Header) (worker.InvokeOptions, error) {
	var opts worker.InvokeOptions
	if v := h.Get(api.HeaderMode); v != "" {
		m, err := restore.ParseMode(v)
		if err != nil {
			return opts, fmt.Errorf("%s: %w", api.HeaderMode, err)
		}
		opts.Mode = m
	}
	switch v := h.Get(api.HeaderDropCache); v {
	case "", "0", "false":
	case "1", "true":
		opts.DropCache = true
	default:
		return opts, fmt.Errorf("%s: %q is not 0 or 1: %w", api.HeaderDropCache, v, errdefs.ErrInvalid)
	}
	return opts, nil
}

// request converts r, addressed to prefix+NAME/..., into the guest's
// request, bounding the body. It returns the bytes reserved from the body
// budget, which the caller releases once the body is no longer needed.
func (s *Server) request(w http.ResponseWriter, r *http.Request, authed bool, prefix string) (*abi.Request, int64, error) {
	body, reserved, err := s.readBody(w, r)
	if err != nil {
		return nil, 0, err
	}
	hdr := r.Header.Clone()
	hdr.Del(api.HeaderMode)
	hdr.Del(api.HeaderDropCache)
	if s.hasToken && authed {
		// The platform's token is not the function's business.
		hdr.Del("Authorization")
	}
	if hdr == nil {
		hdr = http.Header{}
	}
	// The ABI carries the path percent-encoded, as it arrived: cut the
	// escaped path after prefix{name} rather than re-joining decoded
	// segments, so an encoded slash (%2F) stays one segment.
	path := "/" + r.PathValue("rest")
	if esc := r.URL.EscapedPath(); strings.HasPrefix(esc, prefix) {
		if i := strings.IndexByte(esc[len(prefix):], '/'); i >= 0 {
			path = esc[len(prefix)+i:]
		} else {
			path = "/"
		}
	}
	return &abi.Request{Method: r.Method, Path: path, RawQuery: r.URL.RawQuery, Header: hdr, Body: body}, reserved, nil
}

// readBody reads an invocation body of at most maxBody bytes after
// reserving its size (its Content-Length, or maxBody when chunked) from
// the body budget, and returns the body and the bytes still reserved.
// The server's read timeout (set when the request began) cuts a body that
// trickles in.
func (s *Server) readBody(w http.ResponseWriter, r *http.Request) ([]byte, int64, error) {
	if r.ContentLength > s.maxBody {
		return nil, 0, fmt.Errorf("request body of %d bytes exceeds the %d-byte limit: %w", r.ContentLength, s.maxBody, errdefs.ErrTooLarge)
	}
	if r.ContentLength == 0 || r.Body == nil || r.Body == http.NoBody {
		liftReadDeadline(w)
		return nil, 0, nil
	}
	want := r.ContentLength
	if want < 0 {
		want = s.maxBody
	}
	if err := s.bodies.reserve(want); err != nil {
		return nil, 0, err
	}
	var body []byte
	var err error
	if r.ContentLength > 0 {
		// The length is known and bounded: one exact allocation.
		body = make([]byte, r.ContentLength)
		_, err = io.ReadFull(r.Body, body)
	} else {
		body, err = io.ReadAll(http.MaxBytesReader(w, r.Body, s.maxBody))
	}
	if err != nil {
		s.bodies.release(want)
		var mbe *http.MaxBytesError
		var ne net.Error
		switch {
		case errors.As(err, &mbe):
			return nil, 0, fmt.Errorf("request body exceeds the %d-byte limit: %w", s.maxBody, errdefs.ErrTooLarge)
		case errors.As(err, &ne) && ne.Timeout():
			return nil, 0, fmt.Errorf("request body did not arrive within the read timeout (--read-timeout): %w: %w", errReadTimeout, errdefs.ErrTimeout)
		}
		return nil, 0, fmt.Errorf("read request body: %v: %w", err, errdefs.ErrInvalid)
	}
	liftReadDeadline(w)
	if extra := want - int64(len(body)); extra > 0 {
		s.bodies.release(extra)
		want = int64(len(body))
	}
	return body, want, nil
}

// reservedResponseHeader reports headers only the server may set, so a
// function cannot pass off its answer as a platform error or fake timings.
func reservedResponseHeader(k string) bool {
	switch http.CanonicalHeaderKey(k) {
	case api.HeaderError, api.HeaderServerTiming, api.HeaderStart, api.HeaderFallback, api.HeaderNode, "Content-Length", "Transfer-Encoding", "Connection":
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

// liftReadDeadline lifts the read timeout once a request's body has been
// read: the server keeps reading the connection in the background during
// the handler, and a deadline expiring there would cancel the request's
// context in the middle of a long call. A body left unread keeps the
// deadline, so the server's discarding it after the handler is bounded.
func liftReadDeadline(w http.ResponseWriter) {
	// ErrNotSupported (httptest's recorder) leaves nothing to lift.
	_ = http.NewResponseController(w).SetReadDeadline(time.Time{})
}
