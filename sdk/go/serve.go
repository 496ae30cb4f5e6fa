package thaw

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/textproto"
	"net/url"
	"runtime/debug"
	"strings"

	"github.com/thaw-run/thaw/sdk/go/wire"
)

// maxStack bounds the stack trace sent with a panic report.
const maxStack = 8 << 10

// serve decodes the request in, serves it with h and appends the encoded
// response to out. It never panics: a handler panic becomes a response with
// wire.FlagPanic set, which the host turns into a guest fault.
func serve(h http.Handler, in, out []byte) (resp []byte) {
	req, err := wire.DecodeRequest(in)
	if err != nil {
		return badRequest(out, err)
	}
	hr, err := newHTTPRequest(req)
	if err != nil {
		return badRequest(out, err)
	}
	defer func() {
		if v := recover(); v != nil {
			stack := debug.Stack()
			if len(stack) > maxStack {
				stack = stack[:maxStack]
			}
			p := &wire.Response{Status: http.StatusInternalServerError, Panic: true,
				Header: http.Header{wire.StackHeader: {string(stack)}}, Body: []byte(fmt.Sprint(v))}
			resp = p.AppendTo(out[:0])
		}
	}()
	w := &responseWriter{header: http.Header{}, buf: out[:0], bodyAt: -1}
	h.ServeHTTP(w, hr)
	return w.finish()
}

// badRequest reports a request the SDK could not turn into an
// *http.Request. Only a broken host sends one, but answering 400 keeps the
// instance usable.
func badRequest(out []byte, err error) []byte {
	r := &wire.Response{Status: http.StatusBadRequest, Header: http.Header{"Content-Type": {"text/plain; charset=utf-8"}},
		Body: []byte("thaw: " + err.Error() + "\n")}
	return r.AppendTo(out[:0])
}

// newHTTPRequest builds the request a net/http server would have built. The
// body aliases the request buffer, which stays valid for the whole call.
func newHTTPRequest(r *wire.Request) (*http.Request, error) {
	uri := r.Path
	if uri == "" {
		uri = "/"
	}
	if r.RawQuery != "" {
		uri += "?" + r.RawQuery
	}
	// ParseRequestURI, as net/http's server uses, so "//x" stays a path.
	u, err := url.ParseRequestURI(uri)
	if err != nil {
		if !strings.HasPrefix(r.Path, "/") {
			return nil, fmt.Errorf("bad request path: %w", err)
		}
		// A host that sent the decoded path ("/100%"): take it literally
		// rather than fail the request.
		u = &url.URL{Path: r.Path, RawQuery: r.RawQuery}
		uri = u.RequestURI()
	}
	header := canonical(r.Header)
	host := header.Get("Host")
	header.Del("Host")
	var body io.ReadCloser = http.NoBody
	if len(r.Body) > 0 {
		body = io.NopCloser(bytes.NewReader(r.Body))
	}
	return &http.Request{
		Method:        r.Method,
		URL:           u,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        header,
		Body:          body,
		ContentLength: int64(len(r.Body)),
		Host:          host,
		RequestURI:    uri,
	}, nil
}

// canonical returns h with canonical keys ("content-type" becomes
// "Content-Type"), as net/http's server delivers them. Hosts written in Go
// send canonical keys already, and then h itself is returned: building a
// map costs microseconds in wasm, on every request.
func canonical(h http.Header) http.Header {
	if h == nil {
		return http.Header{}
	}
	for k := range h {
		if textproto.CanonicalMIMEHeaderKey(k) != k {
			c := make(http.Header, len(h))
			for k, vs := range h {
				ck := textproto.CanonicalMIMEHeaderKey(k)
				c[ck] = append(c[ck], vs...)
			}
			return c
		}
	}
	return h
}

// responseWriter encodes the response as the handler writes it, straight
// into the buffer the host will read: the head (status and headers) when
// the status is decided, then the body, whose length is patched at the
// end. The body is never copied.
type responseWriter struct {
	header http.Header
	buf    []byte
	bodyAt int // offset of the body length in buf, or -1 before the head
}

var _ http.Flusher = (*responseWriter)(nil)

// Header returns the headers to send; as with net/http, changes after
// WriteHeader or the first Write have no effect.
func (w *responseWriter) Header() http.Header { return w.header }

// WriteHeader fixes the status and headers. Informational (1xx) statuses
// cannot cross the ABI and are ignored, as are calls after the first.
func (w *responseWriter) WriteHeader(status int) {
	if w.bodyAt >= 0 {
		return
	}
	if status < 100 || status > 999 {
		// net/http panics here too; the panic reaches the host.
		panic(fmt.Sprintf("invalid WriteHeader code %v", status))
	}
	if status < 200 {
		return
	}
	w.buf = wire.AppendResponseHead(w.buf, status, w.header, false)
	w.bodyAt = len(w.buf)
	w.buf = append(w.buf, 0, 0, 0, 0)
}

// Write appends to the body, sending status 200 first if none was set.
func (w *responseWriter) Write(p []byte) (int, error) {
	if w.bodyAt < 0 {
		w.WriteHeader(http.StatusOK)
	}
	w.buf = append(w.buf, p...)
	return len(p), nil
}

// WriteString avoids a copy for io.WriteString and fmt.Fprint callers.
func (w *responseWriter) WriteString(s string) (int, error) {
	if w.bodyAt < 0 {
		w.WriteHeader(http.StatusOK)
	}
	w.buf = append(w.buf, s...)
	return len(s), nil
}

// Flush does nothing: the response leaves the guest when the handler
// returns. It exists for handlers that require an http.Flusher.
func (w *responseWriter) Flush() {}

// finish completes the encoding and returns it.
func (w *responseWriter) finish() []byte {
	if w.bodyAt < 0 {
		w.WriteHeader(http.StatusOK)
	}
	wire.PutBodyLength(w.buf[w.bodyAt:], len(w.buf)-w.bodyAt-4)
	return w.buf
}
