package server

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"syscall"
	"time"

	"github.com/thaw-run/thaw/internal/coord"
	"github.com/thaw-run/thaw/internal/errdefs"
	"github.com/thaw-run/thaw/internal/store/stack"
	"github.com/thaw-run/thaw/internal/worker"
)

// RunOptions configure Start: the worker to open, the address to listen
// on and the HTTP server's limits.
type RunOptions struct {
	// Addr is the listen address; port 0 picks a free one.
	Addr string
	// Worker are the worker's options; Start opens it.
	Worker worker.Options
	// Server are the handler's options; Start sets Metrics to the
	// worker's registry and Logger to Worker.Logger.
	Server Options
	// MaxConns bounds open client connections (0: DefaultMaxConns),
	// lowered to half the process's descriptor limit.
	MaxConns int
	// ReadTimeout and IdleTimeout bound reading a request and an idle
	// keep-alive connection (0: the defaults); Server.WriteTimeout bounds
	// writing a response.
	ReadTimeout, IdleTimeout time.Duration
	// Cluster, if set, makes the worker a member of a cluster on NATS
	// (internal/coord): `thaw serve` always sets it (alone, NATS is
	// embedded without a port); in-process harnesses leave it nil.
	Cluster *coord.Options
	// Advertise is the HTTP HOST:PORT peers reach this worker at (default:
	// the listen address).
	Advertise string
}

// Running is a worker served over HTTP: `thaw serve`, and the private
// servers of `thaw demo` and `thaw bench suite`.
type Running struct {
	// URL is the server's base URL, http://host:port.
	URL string
	// Worker is the served worker.
	Worker *worker.Worker
	// Coordinator is the worker's cluster membership (nil without
	// RunOptions.Cluster).
	Coordinator *coord.Coordinator
	// Gateway is the router of StartGateway (nil for a worker; Worker and
	// Coordinator are nil for a gateway).
	Gateway *coord.Gateway
	http    *http.Server
	done    chan error
}

// Start opens the worker and serves it on opts.Addr until Close.
func Start(ctx context.Context, opts RunOptions) (*Running, error) {
	log := opts.Worker.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
		opts.Worker.Logger = log
	}
	var c *coord.Coordinator
	if opts.Cluster != nil {
		co := *opts.Cluster
		co.Logger = log
		if co.Node.DataDir == "" {
			co.Node.DataDir = opts.Worker.DataDir
		}
		var err error
		if c, err = coord.New(ctx, co); err != nil {
			return nil, fmt.Errorf("cluster: %w", err)
		}
		opts.Worker.KeepStored, opts.Worker.Holders, opts.Worker.Published = c.KeepStored, c.Holders, c.Published
		if opts.Worker.Store != nil {
			// The cluster chunk tier: the worker asks peers over the
			// coordinator's connection, its pager child over its own.
			sc := *opts.Worker.Store
			sc.Peer = stack.PeerTier(c.Node().Conn, c.ID())
			sc.PeerURL, sc.PeerNode = c.Node().ConnectURL(), c.ID()
			opts.Worker.Store = &sc
		}
	}
	w, err := worker.Open(ctx, opts.Worker)
	if err != nil {
		if c != nil {
			c.Close()
		}
		return nil, fmt.Errorf("open worker in %s: %w", opts.Worker.DataDir, err)
	}
	ln, err := net.Listen("tcp", opts.Addr)
	if err != nil {
		w.Close(ctx)
		if c != nil {
			c.Close()
		}
		return nil, fmt.Errorf("listen on %s: %v: %w", opts.Addr, err, errdefs.ErrUnavailable)
	}
	so := opts.Server
	so.Metrics, so.Logger = w.Registry(), log
	var b Backend = w
	if c != nil {
		advertise := opts.Advertise
		if advertise == "" {
			advertise = ln.Addr().String()
		}
		c.Attach(ctx, w, advertise)
		if err := c.ServeChunks(w.StoreCache()); err != nil {
			log.Warn("not serving chunks to peers", "err", err)
		}
		b, so.Cluster, so.Async = c, c, c
	}
	rs := serve(ln, New(b, so), opts, so.WriteTimeout, log)
	rs.Worker, rs.Coordinator = w, c
	return rs, nil
}

// serve serves h on ln with opts' connection bound and timeouts until
// Close.
func serve(ln net.Listener, h http.Handler, opts RunOptions, writeTimeout time.Duration, log *slog.Logger) *Running {
	limiter := NewConnLimiter(ConnBound(opts.MaxConns, log), log.Warn)
	rs := &Running{
		URL: "http://" + ln.Addr().String(),
		http: &http.Server{
			Handler:           h,
			ReadHeaderTimeout: DefaultReadHeaderTimeout,
			MaxHeaderBytes:    MaxHeaderBytes,
			// ReadTimeout covers headers and body; handlers lift it once
			// the body is read. The write deadline is set again when a
			// response starts (Options.WriteTimeout).
			ReadTimeout:  orDefault(opts.ReadTimeout, DefaultReadTimeout),
			WriteTimeout: orDefault(writeTimeout, DefaultWriteTimeout),
			IdleTimeout:  orDefault(opts.IdleTimeout, DefaultIdleTimeout),
			ConnState:    limiter.ConnState,
			// Accept errors (out of descriptors) and handler bugs.
			ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		},
		done: make(chan error, 1),
	}
	go func() { rs.done <- rs.http.Serve(limiter.Listener(ln)) }()
	return rs
}

// Done delivers the error the HTTP server stopped with
// (http.ErrServerClosed after Close).
func (rs *Running) Done() <-chan error { return rs.done }

// Close stops accepting requests, lets running ones finish for up to
// grace, and closes the worker.
func (rs *Running) Close(grace time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	err := rs.http.Shutdown(ctx)
	if err != nil {
		err = fmt.Errorf("shutdown: %w", err)
	}
	if rs.Coordinator != nil {
		rs.Coordinator.Close() // leaves the cluster, stops applying deploys
	}
	if rs.Gateway != nil {
		rs.Gateway.Close()
	}
	if rs.Worker != nil {
		rs.Worker.Close(context.Background())
	}
	return err
}

// ConnBound is the connection bound to apply: maxConns (or the default),
// lowered to half the process's descriptor limit so that connections can
// never take the descriptors restores, snapshots and the store need.
func ConnBound(maxConns int, log *slog.Logger) int {
	if maxConns <= 0 {
		maxConns = DefaultMaxConns
	}
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err == nil && rl.Cur < uint64(2*maxConns) {
		lowered := max(int(rl.Cur/2), 1)
		log.Warn("--max-conns lowered to half the open file limit", "max_conns", maxConns, "nofile", rl.Cur, "now", lowered)
		return lowered
	}
	return maxConns
}

// orDefault is d, or def when d is not positive.
func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}
