package server

import (
	"context"
	"fmt"
	"log/slog"
	"net"

	"github.com/thaw-run/thaw/internal/coord"
	"github.com/thaw-run/thaw/internal/errdefs"
)

// GatewayOptions configure StartGateway.
type GatewayOptions struct {
	// Run holds the listen address, the handler's options and the HTTP
	// limits, as for a worker (Worker, Cluster and Advertise are unused).
	Run RunOptions
	// Gateway says how to join the cluster and which placement to use.
	Gateway coord.GatewayOptions
	// Logger receives logs (default: discarded).
	Logger *slog.Logger
}

// StartGateway serves `thaw gateway`: the same HTTP API over a
// coord.Gateway, which places every invocation on a worker of the
// cluster and runs none itself. /metrics serves the gateway's placement
// counters.
func StartGateway(ctx context.Context, opts GatewayOptions) (*Running, error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	opts.Gateway.Logger = log
	g, err := coord.NewGateway(ctx, opts.Gateway)
	if err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	ln, err := net.Listen("tcp", opts.Run.Addr)
	if err != nil {
		g.Close()
		return nil, fmt.Errorf("listen on %s: %v: %w", opts.Run.Addr, err, errdefs.ErrUnavailable)
	}
	so := opts.Run.Server
	so.Metrics, so.Logger, so.Cluster = g.Registry(), log, g
	rs := serve(ln, New(g, so), opts.Run, so.WriteTimeout, log)
	rs.Gateway = g
	return rs, nil
}

var (
	_ Backend = (*coord.Gateway)(nil)
	_ Cluster = (*coord.Gateway)(nil)
)
