package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/thaw-run/thaw/internal/async"
	"github.com/thaw-run/thaw/internal/cluster"
	"github.com/thaw-run/thaw/internal/coord"
	"github.com/thaw-run/thaw/internal/engine"
	"github.com/thaw-run/thaw/internal/errdefs"
	"github.com/thaw-run/thaw/internal/faultguard"
	"github.com/thaw-run/thaw/internal/placement"
	"github.com/thaw-run/thaw/internal/server"
	"github.com/thaw-run/thaw/internal/store"
	"github.com/thaw-run/thaw/internal/worker"
)

// serveOptions are the flags of `thaw serve`.
type serveOptions struct {
	Addr           string
	DataDir        string
	MaxBody        int64
	MaxModule      int64
	InsecureListen bool
	NoPager        bool
	RegionPoolMiB  int
	SpareRegions   bool
	LogLevel       string
	// Engine is the WebAssembly engine of functions whose config names
	// none ("": the fastest in this build).
	Engine string
	// MaxConns bounds open client connections; MaxBodyMemoryMiB the
	// invocation bodies held in memory at once (0: the server's defaults).
	MaxConns         int
	MaxBodyMemoryMiB int
	// ReadTimeout, WriteTimeout and IdleTimeout bound reading a request,
	// writing a response and an idle keep-alive connection (0: defaults).
	ReadTimeout  time.Duration
	WriteTimeout time.Duration
	IdleTimeout  time.Duration
	// AllowedHosts are the names besides IP addresses and localhost that
	// requests may be addressed to ("*": any).
	AllowedHosts []string
	// MemoryBudgetMiB bounds all instances' memory (0: from the machine).
	MemoryBudgetMiB int
	// Cluster are the cluster flags (docs/cluster.md).
	Cluster clusterFlags
	// Store optionally names a snapshot store (the flags of `thaw store`);
	// without --store-dir or --s3-endpoint the worker keeps snapshots
	// locally only.
	Store storeFlags
}

func newServeCommand(g *globalOptions) *cobra.Command {
	opts := serveOptions{}
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run a worker: the HTTP API and the functions deployed to it",
		Long: `Run a worker serving the management API under /v1, invocations under
/fn/NAME/..., Prometheus metrics at /metrics and /healthz.

With --store-dir or --s3-endpoint every snapshot is also published, in the
background, to the snapshot store (docs/store.md), and a snapshot whose local
directory is missing is restored from there. The store's master secret comes
from --key-file or $THAW_STORE_KEY; its disk cache defaults to DATA/store-cache.

With --token (or $THAW_TOKEN) the management API and non-public functions
require "Authorization: Bearer TOKEN". Without a token the server only
listens on a loopback address unless --insecure-listen is given.

Requests must be addressed to an IP address, localhost, or a name given
with --allowed-host (DNS rebinding defence); others answer 421. At most
--max-conns connections are open at once (at the bound, the longest-idle
keep-alive connection is closed to make room), and invocation bodies hold at
most --max-body-memory-mib in memory: past it, requests with a body answer
503 before their body is read.`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runServe(cmd.Context(), g, opts)
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.Addr, "addr", "127.0.0.1:8080", "address to listen on")
	f.StringVar(&opts.DataDir, "data", defaultDataDir(), "data directory: functions, snapshots, compiled code ($THAW_DATA)")
	f.Int64Var(&opts.MaxBody, "max-body", server.DefaultMaxBody, "largest invocation request body in bytes")
	f.Int64Var(&opts.MaxModule, "max-module", server.DefaultMaxModule, "largest deployable module in bytes")
	f.BoolVar(&opts.InsecureListen, "insecure-listen", false, "allow a non-loopback address without a token")
	f.BoolVar(&opts.NoPager, "no-pager", false, "run without the userfaultfd pager (lazy, reap and bulk restores fall back to cold)")
	engineFlag(f, &opts.Engine)
	f.IntVar(&opts.RegionPoolMiB, "region-pool-mib", worker.DefaultRegionPoolMiB, "memory of finished instances kept for eager and bulk restores of the same function to reuse (0 or less: none)")
	f.BoolVar(&opts.SpareRegions, "spare-regions", true, "prepare a spare region in the background for the next bulk restore of a function whose restore found none in the region pool")
	f.IntVar(&opts.MemoryBudgetMiB, "memory-budget-mib", 0, "memory all instances may reserve together, each its function's memory_mib; past it requests queue or get 503 and deploys that cannot fit get 400 (0: 3/4 of the machine's memory or cgroup limit)")
	f.StringVar(&opts.LogLevel, "log-level", "info", "log level: debug, info, warn, error")
	f.IntVar(&opts.MaxConns, "max-conns", server.DefaultMaxConns, "most open client connections; at the bound the longest-idle one is closed for a new one, else the new one gets 503")
	f.IntVar(&opts.MaxBodyMemoryMiB, "max-body-memory-mib", server.DefaultMaxBodyMemory>>20, "most MiB of invocation request bodies held in memory at once, worker-wide; past it requests with a body get 503")
	f.DurationVar(&opts.ReadTimeout, "read-timeout", server.DefaultReadTimeout, "longest time to read a request's headers and body (a body that trickles in is cut: 408)")
	f.DurationVar(&opts.WriteTimeout, "write-timeout", server.DefaultWriteTimeout, "longest time to write a response, from its first byte (an invocation itself may run for its function's timeout)")
	f.DurationVar(&opts.IdleTimeout, "idle-timeout", server.DefaultIdleTimeout, "close keep-alive connections idle this long")
	f.StringArrayVar(&opts.AllowedHosts, "allowed-host", nil, "a name requests may be addressed to (Host header) besides IP addresses and localhost; repeatable; \"*\" allows any (behind a proxy that checks Host)")
	opts.Store.register(f)
	opts.Cluster.register(f)
	return cmd
}

// clusterFlags are the flags of `thaw serve` that place the worker in a
// cluster. Without any, the worker is a cluster of one over an embedded
// NATS that listens on no port.
type clusterFlags struct {
	ClusterListen string
	Peers         []string
	NATSURL       string
	NATSListen    string
	NodeID        string
	Advertise     string
	// Placement is the placement policy and HoldBound how long a request
	// may wait for room (docs/placement.md).
	Placement string
	HoldBound time.Duration
	// AsyncAckWait is how long an asynchronous invocation's run may go
	// without a heartbeat before another worker runs it.
	AsyncAckWait time.Duration
}

func (cf *clusterFlags) register(f *pflag.FlagSet) {
	cf.registerNATS(f)
	f.StringVar(&cf.Advertise, "advertise", "", "HTTP HOST:PORT other workers reach this one at (default: the listen address)")
	f.DurationVar(&cf.AsyncAckWait, "async-ack-wait", async.DefaultAckWait, "how soon an asynchronous invocation whose worker died is run by another (the same on every worker of a cluster)")
}

// registerNATS defines the flags a gateway shares with a worker: how to
// join the cluster's NATS, and the placement.
func (cf *clusterFlags) registerNATS(f *pflag.FlagSet) {
	f.StringVar(&cf.Placement, "placement", placement.Locality.String(), "placement policy for the invocations received here: locality (warm, then cached, then the function's home workers), hash (always the function's first home) or random (docs/placement.md)")
	f.DurationVar(&cf.HoldBound, "placement-hold", placement.DefaultHoldBound, "how long a request waits for a worker with room (pre-warming one) before it gets 429")
	f.StringVar(&cf.ClusterListen, "cluster-listen", "", "HOST:PORT the embedded NATS accepts routes from other thaw processes on (forms a cluster with --cluster-peers)")
	f.StringSliceVar(&cf.Peers, "cluster-peers", nil, "HOST:PORT,... route addresses of the other thaw processes (this one's own may be listed)")
	f.StringVar(&cf.NATSURL, "nats-url", "", "connect to an external NATS (with JetStream) at URL instead of embedding one")
	f.StringVar(&cf.NATSListen, "nats-listen", "", "HOST:PORT on which the embedded NATS accepts clients (a gateway, a CLI); default none, or a loopback port in a cluster")
	f.StringVar(&cf.NodeID, "node-id", "", "this worker's id in the cluster (default: the one stored in the data directory, else hostname-based; stored for restarts)")
}

// options are the coordinator's options for dataDir.
func (cf *clusterFlags) options(dataDir string) (*coord.Options, error) {
	p, err := cf.placer()
	if err != nil {
		return nil, err
	}
	return &coord.Options{Node: cf.node(dataDir), Placement: p, Async: async.Config{AckWait: cf.AsyncAckWait}}, nil
}

// node says how to reach NATS, with dataDir for the embedded server's
// data and the node id.
func (cf *clusterFlags) node(dataDir string) cluster.Options {
	return cluster.Options{DataDir: dataDir, NodeID: cf.NodeID, ClusterListen: cf.ClusterListen, Peers: cf.Peers,
		ClientListen: cf.NATSListen, URL: cf.NATSURL}
}

// placer is the --placement policy's placer (random: seeded at random).
func (cf *clusterFlags) placer() (*placement.Placer, error) {
	p, err := placement.ParsePolicy(cf.Placement)
	if err != nil {
		return nil, fmt.Errorf("--placement: %w", err)
	}
	if cf.HoldBound <= 0 {
		return nil, fmt.Errorf("--placement-hold %s: want a positive duration: %w", cf.HoldBound, errdefs.ErrInvalid)
	}
	return placement.New(p, placement.Options{HoldBound: cf.HoldBound}, rand.Uint64()), nil
}

// defaultDataDir is $THAW_DATA, else $XDG_DATA_HOME/thaw, else
// ~/.local/share/thaw.
func defaultDataDir() string {
	if d := os.Getenv("THAW_DATA"); d != "" {
		return d
	}
	if d := os.Getenv("XDG_DATA_HOME"); d != "" {
		return filepath.Join(d, "thaw")
	}
	if home, err := os.UserHomeDir(); err == nil {
		return filepath.Join(home, ".local", "share", "thaw")
	}
	return "thaw-data"
}

// isLoopback reports whether a listen address only accepts local
// connections. An empty host listens on every interface.
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil || host == "" {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(strings.Trim(host, "[]"))
	return ip != nil && ip.IsLoopback()
}

// engineFlag defines --engine, the WebAssembly engine of guests whose
// function config names none.
func engineFlag(f *pflag.FlagSet, p *string) {
	f.StringVar(p, "engine", "", fmt.Sprintf("WebAssembly engine of functions whose config names none: %s (default %q)", strings.Join(engine.Known, " or "), engine.Default()))
}

// engineOrDefault is name, or the engine "" stands for.
func engineOrDefault(name string) string {
	if name == "" {
		return engine.Default()
	}
	return name
}

// startServer checks the listen address against the token, opens the
// worker with opts' store and limits, and starts serving; Close stops both.
func startServer(ctx context.Context, token string, opts serveOptions, log *slog.Logger) (*server.Running, error) {
	if token == "" && !isLoopback(opts.Addr) && !opts.InsecureListen {
		return nil, fmt.Errorf("refusing to listen on %s without a token: set --token or $THAW_TOKEN, listen on 127.0.0.1, or pass --insecure-listen: %w", opts.Addr, errdefs.ErrInvalid)
	}
	wopts := worker.Options{DataDir: opts.DataDir, Logger: log, NoPager: opts.NoPager, RegionPoolMiB: regionPool(opts.RegionPoolMiB),
		NoSpareRegions: !opts.SpareRegions, MemoryBudgetMiB: opts.MemoryBudgetMiB, Engine: opts.Engine}
	if !faultguard.Available {
		log.Warn("built without cgo: only the wazero engine, and no fault guard (two pagers dying together can freeze the worker)", "engines", engine.Names())
	}
	if opts.MemoryBudgetMiB < 0 {
		return nil, fmt.Errorf("--memory-budget-mib %d is negative: %w", opts.MemoryBudgetMiB, errdefs.ErrInvalid)
	}
	if opts.Store.Dir != "" || opts.Store.S3Endpoint != "" {
		cfg, err := opts.Store.config()
		if err != nil {
			return nil, fmt.Errorf("snapshot store: %w", err)
		}
		if opts.Store.KeyFile != "" {
			// config checked the key file against the store directory;
			// it must not live in the worker's data directory either.
			if _, err := store.LoadSecret(opts.Store.KeyFile, opts.DataDir); err != nil {
				return nil, fmt.Errorf("snapshot store: %w", err)
			}
		}
		wopts.Store = &cfg
	}
	copts, err := opts.Cluster.options(opts.DataDir)
	if err != nil {
		return nil, err
	}
	rs, err := server.Start(ctx, server.RunOptions{
		Addr:   opts.Addr,
		Worker: wopts,
		Server: server.Options{
			Token:         token,
			MaxBody:       opts.MaxBody,
			MaxModule:     opts.MaxModule,
			AllowedHosts:  opts.AllowedHosts,
			MaxBodyMemory: int64(opts.MaxBodyMemoryMiB) << 20,
			WriteTimeout:  opts.WriteTimeout,
		},
		MaxConns:    opts.MaxConns,
		ReadTimeout: opts.ReadTimeout,
		IdleTimeout: opts.IdleTimeout,
		Cluster:     copts,
		Advertise:   opts.Cluster.Advertise,
	})
	if err != nil {
		return nil, err
	}
	log.Info("listening", "url", rs.URL, "node", rs.Coordinator.ID(), "placement", opts.Cluster.Placement, "nats_clients", rs.Coordinator.Node().ClientURL(), "data", opts.DataDir, "auth", token != "", "store", opts.Store.describe(),
		"max_conns", server.ConnBound(opts.MaxConns, slog.New(slog.DiscardHandler)), "allowed_hosts", strings.Join(opts.AllowedHosts, ","))
	return rs, nil
}

func newLogger(level string, w io.Writer) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: %v: %w", level, err, errdefs.ErrInvalid)
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l})), nil
}

func runServe(ctx context.Context, g *globalOptions, opts serveOptions) error {
	log, err := newLogger(opts.LogLevel, g.stderr)
	if err != nil {
		return err
	}
	rs, err := startServer(ctx, g.Token, opts, log)
	if err != nil {
		return err
	}
	return runUntilDone(ctx, rs, log, "serve")
}

// runUntilDone serves until ctx ends (a signal), then shuts rs down
// gracefully, or returns the error the HTTP server stopped with.
func runUntilDone(ctx context.Context, rs *server.Running, log *slog.Logger, what string) error {
	select {
	case <-ctx.Done():
		log.Info("shutting down")
	case err := <-rs.Done():
		if !errors.Is(err, http.ErrServerClosed) {
			_ = rs.Close(time.Second)
			return fmt.Errorf("%s: %w", what, err)
		}
	}
	return rs.Close(30 * time.Second)
}

// describe names the store for logs (never the key): "none", the directory
// or the S3 endpoint and bucket, and the tenant.
func (sf *storeFlags) describe() string {
	switch {
	case sf.Dir != "":
		return sf.Dir + " (tenant " + sf.Tenant + ")"
	case sf.S3Endpoint != "":
		return "s3://" + sf.S3Endpoint + "/" + sf.S3Bucket + "/" + sf.S3Prefix + " (tenant " + sf.Tenant + ")"
	}
	return "none"
}
