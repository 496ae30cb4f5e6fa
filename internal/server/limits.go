package server

import (
	"container/list"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/thaw-run/thaw/internal/api"
	"github.com/thaw-run/thaw/internal/errdefs"
)

// Defaults of the connection and memory bounds (cli's `thaw serve` flags).
const (
	// DefaultMaxConns bounds open client connections. Each costs a file
	// descriptor and about 10 KiB of buffers; restores need descriptors too.
	DefaultMaxConns = 4096
	// DefaultMaxBodyMemory bounds the invocation bodies held in memory at
	// once, worker-wide: about 40 bodies of the largest size.
	DefaultMaxBodyMemory = 256 << 20
	// DefaultReadTimeout bounds reading one request, headers and body: a
	// body that trickles in is cut there.
	DefaultReadTimeout = 60 * time.Second
	// DefaultWriteTimeout bounds writing one response, counted from its
	// first byte, so an invocation may run for as long as its function's
	// timeout allows.
	DefaultWriteTimeout = 60 * time.Second
	// DefaultIdleTimeout closes keep-alive connections idle this long.
	DefaultIdleTimeout = 60 * time.Second
	// DefaultReadHeaderTimeout bounds reading a request's headers.
	DefaultReadHeaderTimeout = 10 * time.Second
	// MaxHeaderBytes bounds a request's headers (net/http's default is
	// 1 MiB, which times DefaultMaxConns slow senders is 4 GiB); nginx
	// allows 32 KiB.
	MaxHeaderBytes = 64 << 10
	// deployReadTimeout bounds reading a deploy's module, which may be
	// 64 MiB over a slow link; only callers with the token get it.
	deployReadTimeout = 10 * time.Minute
	// newConnGrace is how long a connection that has sent nothing yet is
	// safe from being closed to make room for another: clients send their
	// request right after connecting.
	newConnGrace = time.Second
)

var (
	// errMisdirected marks a request whose Host is not one of this
	// server's names (Status: 421).
	errMisdirected = errors.New("misdirected request")
	// errForeignOrigin marks a browser request from a page of another
	// site to a server without a token (Status: 403).
	errForeignOrigin = errors.New("foreign origin")
	// errReadTimeout marks a request body that did not arrive within the
	// read timeout (Status: 408).
	errReadTimeout = errors.New("request body read timed out")
)

// bodyBudget bounds the bytes of request bodies held in memory at once.
// Requests reserve their body's size before reading it, and are refused
// (not queued: a waiting request holds a connection too) past the bound.
type bodyBudget struct {
	max  int64
	used atomic.Int64
}

// reserve takes n bytes from the budget, or fails with ErrUnavailable.
func (b *bodyBudget) reserve(n int64) error {
	for {
		used := b.used.Load()
		if used+n > b.max {
			return fmt.Errorf("request bodies already hold %d of the %d bytes allowed in memory (--max-body-memory-mib); retry later: %w", used, b.max, errdefs.ErrUnavailable)
		}
		if b.used.CompareAndSwap(used, used+n) {
			return nil
		}
	}
}

func (b *bodyBudget) release(n int64) { b.used.Add(-n) }

// checkHost rejects requests whose Host header is not an IP literal,
// localhost or one of the allowed names. A web page that rebinds its own
// DNS name to this server's address (DNS rebinding) can reach it from a
// browser, but its requests carry the page's name as Host: refusing
// unknown names closes that door. The port is not compared: rebinding
// keeps the port, and a proxy may change it.
//
// Without a token, every caller can do everything, so a page of another
// site must not be able to send even a blind request (a POST of
// text/plain needs no CORS preflight): a request whose Origin header names
// a host that would fail this same check is refused. With a token, private
// functions and the API need it, which a browser never adds by itself, and
// public functions may be called from any site.
func (s *Server) checkHost(r *http.Request) error {
	if s.anyHost {
		return nil
	}
	if r.Host != "" && !s.ourHost(r.Host) { // HTTP/1.0 without Host: not a browser
		host := hostname(r.Host)
		return fmt.Errorf("host %q is not a name of this server: call it by IP address or localhost, or start it with --allowed-host %s: %w: %w",
			sanitizeHeader(r.Host), sanitizeHeader(host), errMisdirected, errdefs.ErrInvalid)
	}
	if o := r.Header.Get("Origin"); o != "" && !s.hasToken {
		u, err := url.Parse(o)
		if err != nil || u.Host == "" || !s.ourHost(u.Host) {
			return fmt.Errorf("requests from pages of %q are refused by a server without a token (or start it with --allowed-host for that site's name): %w: %w",
				sanitizeHeader(o), errForeignOrigin, errdefs.ErrUnauthorized)
		}
	}
	return nil
}

// ourHost reports whether host (with or without a port) is an IP address,
// localhost or an allowed name.
func (s *Server) ourHost(host string) bool {
	h := hostname(host)
	return h == "localhost" || net.ParseIP(h) != nil || s.allowedHosts[h]
}

// hostname is host without its port and brackets, lower case, without a
// trailing dot.
func hostname(host string) string {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	return strings.TrimSuffix(strings.ToLower(strings.Trim(host, "[]")), ".")
}

// absPath finds absolute file paths in error messages: a slash after the
// start, a space, a quote, a parenthesis, '=' or ':', then at least two
// path elements.
var absPath = regexp.MustCompile(`(^|[\s"'(=:])(/[^\s"'():,;]+(?:/[^\s"'():,;]*)+)`)

// redactPaths replaces absolute file paths in a message for callers with
// ".../" and the path's last element, so error bodies and headers do not
// show the layout of the data directory or the host. The API's own paths
// (/v1/..., /fn/...) are kept: they are what the caller sent.
func redactPaths(msg string) string {
	return absPath.ReplaceAllStringFunc(msg, func(m string) string {
		i := strings.IndexByte(m, '/')
		lead, p := m[:i], m[i:]
		if strings.HasPrefix(p, "/v1/") || strings.HasPrefix(p, "/fn/") {
			return m
		}
		p = strings.TrimRight(p, "/.")
		base := p[strings.LastIndexByte(p, '/')+1:]
		return lead + ".../" + base
	})
}

// ConnLimiter bounds a listener's open connections. At the bound, a new
// connection closes the longest-idle keep-alive connection (or one that
// has sent nothing for a second) to make room, as nginx does when it runs
// out of connections; if every connection is busy, the new one is answered
// 503 and closed. Idle connections are thus never able to lock out a
// caller. Use Listener to wrap the listener and ConnState as the
// http.Server's ConnState hook.
type ConnLimiter struct {
	max int
	log func(msg string, args ...any)
	// refused counts connections refused at the bound since the last
	// log line; lastLog (unix nanoseconds) keeps a flood to a line per
	// logEvery.
	refused atomic.Int64
	lastLog atomic.Int64

	mu    sync.Mutex
	open  int
	conns map[net.Conn]*connEntry
	idle  list.List // *connEntry of idle keep-alive connections, oldest first
	fresh list.List // *connEntry of connections not yet past their first request line, oldest first
}

// connEntry is one tracked connection; elem is its place in idle or fresh.
type connEntry struct {
	c     net.Conn
	since time.Time
	elem  *list.Element
	in    *list.List
}

// NewConnLimiter returns a limiter allowing max open connections
// (DefaultMaxConns if max <= 0).
func NewConnLimiter(max int, log func(msg string, args ...any)) *ConnLimiter {
	if max <= 0 {
		max = DefaultMaxConns
	}
	if log == nil {
		log = func(string, ...any) {}
	}
	return &ConnLimiter{max: max, log: log, conns: map[net.Conn]*connEntry{}}
}

// Open returns the number of connections counted against the bound.
func (l *ConnLimiter) Open() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.open
}

// Listener wraps ln so that Accept applies the bound.
func (l *ConnLimiter) Listener(ln net.Listener) net.Listener {
	return &limitListener{Listener: ln, l: l}
}

type limitListener struct {
	net.Listener
	l *ConnLimiter
}

// overloaded is written to a connection refused at the bound.
var overloaded = func() []byte {
	body := `{"error":"too many open connections (--max-conns); retry later"}` + "\n"
	return fmt.Appendf(nil, "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n%s: unavailable\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s",
		api.HeaderError, len(body), body)
}()

func (ll *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := ll.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if ll.l.admit(c) {
			return c, nil
		}
		_ = c.SetWriteDeadline(time.Now().Add(time.Second))
		_, _ = c.Write(overloaded)
		_ = c.Close()
	}
}

// admit counts c, making room by closing an idle connection if needed.
func (l *ConnLimiter) admit(c net.Conn) bool {
	l.mu.Lock()
	var victim net.Conn
	if l.open >= l.max {
		e := l.evictable()
		if e == nil {
			l.mu.Unlock()
			l.logRefused()
			return false
		}
		victim = e.c
		l.forget(e)
	}
	l.open++
	e := &connEntry{c: c, since: time.Now()}
	l.conns[c] = e
	e.elem, e.in = l.fresh.PushBack(e), &l.fresh
	l.mu.Unlock()
	if victim != nil {
		_ = victim.Close()
	}
	return true
}

// logEvery is the least time between two log lines about refused
// connections.
const logEvery = 10 * time.Second

// logRefused counts a refused connection and logs the count at most once
// per logEvery.
func (l *ConnLimiter) logRefused() {
	l.refused.Add(1)
	now := time.Now().UnixNano()
	last := l.lastLog.Load()
	if now-last < int64(logEvery) || !l.lastLog.CompareAndSwap(last, now) {
		return
	}
	l.log("connections refused: every connection is busy (--max-conns)", "max_conns", l.max, "refused", l.refused.Swap(0))
}

// evictable returns the connection to close for a new one, or nil (l.mu).
func (l *ConnLimiter) evictable() *connEntry {
	if f := l.idle.Front(); f != nil {
		return f.Value.(*connEntry)
	}
	if f := l.fresh.Front(); f != nil {
		if e := f.Value.(*connEntry); time.Since(e.since) > newConnGrace {
			return e
		}
	}
	return nil
}

// forget stops counting e (l.mu).
func (l *ConnLimiter) forget(e *connEntry) {
	if e.in != nil {
		e.in.Remove(e.elem)
		e.in, e.elem = nil, nil
	}
	delete(l.conns, e.c)
	l.open--
}

// ConnState is the http.Server hook that tells the limiter which
// connections are idle and which are gone.
func (l *ConnLimiter) ConnState(c net.Conn, st http.ConnState) {
	l.mu.Lock()
	defer l.mu.Unlock()
	e, ok := l.conns[c]
	if !ok {
		return // closed to make room, or not from our listener
	}
	switch st {
	case http.StateClosed, http.StateHijacked:
		l.forget(e)
		return
	case http.StateNew:
		return // already in fresh
	}
	if e.in != nil {
		e.in.Remove(e.elem)
		e.in, e.elem = nil, nil
	}
	if st == http.StateIdle {
		e.since = time.Now()
		e.elem, e.in = l.idle.PushBack(e), &l.idle
	}
}
