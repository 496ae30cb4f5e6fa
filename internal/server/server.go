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

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"

	"github.com/thaw-run/thaw/internal/abi"
	"github.com/thaw-run/thaw/internal/membership"
	"github.com/thaw-run/thaw/internal/worker"
)

// Backend is what the server needs from a worker.
type Backend interface {
	Deploy(ctx context.Context, name string, wasm []byte, cfg worker.Config) (*worker.Info, error)
	Get(name string) (*worker.Info, error)
	List() []worker.Info
	Delete(ctx context.Context, name string) error
	Invoke(ctx context.Context, name string, req *abi.Request, opts worker.InvokeOptions) (*worker.Result, error)
	// Public reports whether a function exists and is public, cheaply: it
	// decides every unauthenticated request, so it must not wait for a
	// function's lock or read the disk.
	Public(name string) bool
	// Admit fails with ErrOverloaded when a function's queue is full, so
	// the server can refuse a request before reading its body.
	Admit(name string) error
}

var _ Backend = (*worker.Worker)(nil)

// Cluster is what the server needs from a clustered worker
// (*coord.Coordinator) for the cluster endpoints under /v1/cluster.
type Cluster interface {
	// ID is the answering worker's node id.
	ID() string
	// State is the cluster as this worker sees it.
	State() membership.State
	// Drain asks worker node to drain (on) or take placements again.
	Drain(ctx context.Context, node string, on bool) error
}

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
	// Metrics, if set, is served at GET /metrics. With a token, callers
	// without it see no series labelled with a function that is not
	// public (serveMetrics).
	Metrics prometheus.Gatherer
	// AllowedHosts are the names a request's Host header may carry besides
	// IP addresses and localhost (checkHost); "*" allows any.
	AllowedHosts []string
	// MaxBodyMemory bounds the bytes of invocation bodies held in memory
	// at once (default DefaultMaxBodyMemory; at least MaxBody).
	MaxBodyMemory int64
	// WriteTimeout bounds writing a response, from its first byte
	// (default DefaultWriteTimeout).
	WriteTimeout time.Duration
	// Logger receives request logs (default slog.Default()).
	Logger *slog.Logger
	// Cluster, if set, serves GET /v1/cluster and POST/DELETE
	// /v1/cluster/drain/{node}; without it they answer 404.
	Cluster Cluster
	// Async, if set, serves asynchronous invocations: ANY
	// /async/fn/{name}/... and GET /async/results/{id}; without it they
	// answer 404.
	Async Async
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
	// anyHost and allowedHosts say which Host headers are ours (checkHost).
	anyHost      bool
	allowedHosts map[string]bool
	bodies       bodyBudget
	writeTimeout time.Duration
	// metricsAll serves callers with the token (or any without one);
	// metricsPublic the others (serveMetrics).
	metricsAll, metricsPublic http.Handler
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
	s.bodies.max = opts.MaxBodyMemory
	if s.bodies.max <= 0 {
		s.bodies.max = DefaultMaxBodyMemory
	}
	if s.bodies.max < s.maxBody {
		// Otherwise a body of the allowed size could never be read.
		s.bodies.max = s.maxBody
	}
	s.writeTimeout = opts.WriteTimeout
	if s.writeTimeout <= 0 {
		s.writeTimeout = DefaultWriteTimeout
	}
	s.allowedHosts = map[string]bool{}
	for _, h := range opts.AllowedHosts {
		if h == "*" {
			s.anyHost = true
		}
		s.allowedHosts[strings.TrimSuffix(strings.ToLower(h), ".")] = true
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
		s.metricsAll = promhttp.HandlerFor(opts.Metrics, promhttp.HandlerOpts{})
		s.metricsPublic = promhttp.HandlerFor(prometheus.GathererFunc(func() ([]*dto.MetricFamily, error) {
			mfs, err := opts.Metrics.Gather()
			return publicOnly(mfs, s.b.Public), err
		}), promhttp.HandlerOpts{})
		m.HandleFunc("GET /metrics", s.serveMetrics)
	}
	m.HandleFunc("GET /v1/functions", s.management(s.list))
	m.HandleFunc("GET /v1/functions/{name}", s.management(s.get))
	m.HandleFunc("PUT /v1/functions/{name}", s.management(s.deploy))
	m.HandleFunc("DELETE /v1/functions/{name}", s.management(s.delete))
	if opts.Cluster != nil {
		m.HandleFunc("GET /v1/cluster", s.management(s.clusterState(opts.Cluster)))
		m.HandleFunc("POST /v1/cluster/drain/{node}", s.management(s.drain(opts.Cluster, true)))
		m.HandleFunc("DELETE /v1/cluster/drain/{node}", s.management(s.drain(opts.Cluster, false)))
	}
	m.HandleFunc("/v1/", func(w http.ResponseWriter, r *http.Request) {
		s.writeError(w, r, errNoRoute(r))
	})
	if opts.Async != nil {
		m.HandleFunc("/async/fn/{name}", s.invokeAsync(opts.Async))
		m.HandleFunc("/async/fn/{name}/{rest...}", s.invokeAsync(opts.Async))
		m.HandleFunc("GET /async/results/{id}", s.asyncResult(opts.Async))
	}
	m.HandleFunc("/fn/{name}", s.invoke)
	m.HandleFunc("/fn/{name}/{rest...}", s.invoke)
	return s
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	sw := &statusWriter{ResponseWriter: w, status: http.StatusOK, timeout: s.writeTimeout}
	// A health check reveals nothing and is often sent by probes under
	// another name; everything else must be addressed to us.
	if r.URL.Path != "/healthz" {
		if err := s.checkHost(r); err != nil {
			s.writeError(sw, r, err)
			return
		}
	}
	s.mux.ServeHTTP(sw, r)
	s.log.Debug("request", "method", r.Method, "path", r.URL.Path, "status", sw.status, "dur", time.Since(start))
}

// statusWriter remembers the status for the request log, and starts the
// write timeout when the response starts: an invocation may run for as
// long as its function's timeout allows before the first byte, and only
// the writing itself is bounded.
type statusWriter struct {
	http.ResponseWriter
	status  int
	timeout time.Duration
	started bool
}

func (w *statusWriter) start() {
	if !w.started {
		w.started = true
		// Not every ResponseWriter supports deadlines (httptest's
		// recorder does not); the server's own WriteTimeout then applies.
		_ = http.NewResponseController(w.ResponseWriter).SetWriteDeadline(time.Now().Add(w.timeout))
	}
}

func (w *statusWriter) WriteHeader(code int) {
	w.start()
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	w.start()
	return w.ResponseWriter.Write(b)
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
		if r.Method == http.MethodPut {
			// A deploy's module may be 64 MiB over a slow link; the
			// caller has the token. The handler lifts the deadline
			// once the module is read.
			_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(deployReadTimeout))
		} else {
			liftReadDeadline(w)
		}
		h(w, r)
	}
}

// serveMetrics serves the worker's metrics. With a token configured, a
// caller without it gets every series except those labelled with a
// function that is not public: monitoring keeps working unauthenticated,
// and private function names stay private.
func (s *Server) serveMetrics(w http.ResponseWriter, r *http.Request) {
	if s.authorized(r) {
		s.metricsAll.ServeHTTP(w, r)
		return
	}
	s.metricsPublic.ServeHTTP(w, r)
}

// publicOnly drops the series labelled with a function that public says
// is not public, and the families left empty.
func publicOnly(mfs []*dto.MetricFamily, public func(string) bool) []*dto.MetricFamily {
	out := mfs[:0]
	for _, mf := range mfs {
		ms := mf.Metric[:0]
		for _, m := range mf.Metric {
			keep := true
			for _, lp := range m.GetLabel() {
				if lp.GetName() == "function" && !public(lp.GetValue()) {
					keep = false
					break
				}
			}
			if keep {
				ms = append(ms, m)
			}
		}
		mf.Metric = ms
		if len(ms) > 0 {
			out = append(out, mf)
		}
	}
	return out
}
