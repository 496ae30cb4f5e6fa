// Package server is thaw's HTTP API: function management under /v1, function
// invocation under /fn/{name}/, Prometheus metrics and a health check.
//
// The server is an http.Handler over a Backend (a *worker.Worker in
// production, a fake in tests). Error categories from internal/errdefs
// become status codes in exactly one place, Status.
package server

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/thaw-run/thaw/internal/abi"
	"github.com/thaw-run/thaw/internal/worker"
)

// Backend is what the server needs from a worker.
type Backend interface {
	Deploy(ctx context.Context, name string, wasm []byte, cfg worker.Config) (*worker.Info, error)
	Get(name string) (*worker.Info, error)
	List() []worker.Info
	Delete(ctx context.Context, name string) error
	Invoke(ctx context.Context, name string, req *abi.Request, opts worker.InvokeOptions) (*worker.Result, error)
}

var _ Backend = (*worker.Worker)(nil)

// Limits applied when Options leave them zero.
const (
	// DefaultMaxBody bounds an invocation's request body; 6 MiB matches
	// what other platforms accept for synchronous invocations.
	DefaultMaxBody = 6 << 20
	// DefaultMaxModule bounds a deployed module. Go modules of real
	// functions are 3-20 MiB; the bound keeps a deploy from exhausting memory.
	DefaultMaxModule = 64 << 20
)

// Options configure a Server.
type Options struct {
	// Token, when set, is required as "Authorization: Bearer <token>" for
	// the management API, for invoking non-public functions and for the
	// experiment headers.
	Token string
	// MaxBody bounds invocation request bodies (default DefaultMaxBody).
	MaxBody int64
	// MaxModule bounds deployed modules (default DefaultMaxModule).
	MaxModule int64
	// Metrics, if set, serves GET /metrics.
	Metrics http.Handler
	// Logger receives request logs (default slog.Default()).
	Logger *slog.Logger
}

// Server is thaw's HTTP API. Create it with New.
type Server struct {
	b         Backend
	log       *slog.Logger
	tokenHash [sha256.Size]byte
	hasToken  bool
	maxBody   int64
	maxModule int64
	mux       *http.ServeMux
}

// New returns a server over b.
func New(b Backend, opts Options) *Server {
	s := &Server{b: b, log: opts.Logger, maxBody: opts.MaxBody, maxModule: opts.MaxModule, mux: http.NewServeMux()}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.maxBody <= 0 {
		s.maxBody = DefaultMaxBody
	}
	if s.maxModule <= 0 {
		s.maxModule = DefaultMaxModule
	}
	if opts.Token != "" {
		// Comparing fixed-size hashes keeps the comparison constant-time
		// even in the token's length.
		s.tokenHash, s.hasToken = sha256.Sum256([]byte(opts.Token)), true
	}
	m := s.mux
	m.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	if opts.Metrics != nil {
		m.Handle("GET /metrics", opts.Metrics)
	}
	m.HandleFunc("GET /v1/functions", s.management(s.list))
	m.HandleFunc("GET /v1/functions/{name}", s.management(s.get))
	m.HandleFunc("PUT /v1/functions/{name}", s.management(s.deploy))
	m.HandleFunc("DELETE /v1/functions/{name}", s.management(s.delete))
	m.HandleFunc("/v1/", func(w http.ResponseWriter, r *http.Request) {
		s.writeError(w, r, errNoRoute(r))
	})
	m.HandleFunc("/fn/{name}", s.invoke)
	m.HandleFunc("/fn/{name}/{rest...}", s.invoke)
	return s
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
	s.mux.ServeHTTP(sw, r)
	s.log.Debug("request", "method", r.Method, "path", r.URL.Path, "status", sw.status, "dur", time.Since(start))
}

// statusWriter remembers the status for the request log.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// authorized reports whether r carries the token, or no token is configured.
func (s *Server) authorized(r *http.Request) bool {
	if !s.hasToken {
		return true
	}
	auth := r.Header.Get("Authorization")
	scheme, tok, ok := strings.Cut(auth, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	h := sha256.Sum256([]byte(strings.TrimSpace(tok)))
	return subtle.ConstantTimeCompare(h[:], s.tokenHash[:]) == 1
}

// management wraps a management handler with the token check.
func (s *Server) management(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !s.authorized(r) {
			s.writeError(w, r, errUnauthorized("the management API"))
			return
		}
		h(w, r)
	}
}
