package cli

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/thaw-run/thaw/internal/coord"
	"github.com/thaw-run/thaw/internal/errdefs"
	"github.com/thaw-run/thaw/internal/server"
)

// gatewayOptions are the flags of `thaw gateway`.
type gatewayOptions struct {
	Addr           string
	DataDir        string
	InsecureListen bool
	LogLevel       string
	AllowedHosts   []string
	Cluster        clusterFlags
}

func newGatewayCommand(g *globalOptions) *cobra.Command {
	opts := gatewayOptions{}
	cmd := &cobra.Command{
		Use:   "gateway",
		Short: "Run a router: join a cluster and place each invocation on a worker",
		Long: `Run a router-only member of a thaw cluster (docs/cluster.md): it joins the
cluster's NATS with the same flags as "thaw serve" (usually --nats-url, a
worker's --nats-listen address), runs no functions, and places every
invocation under /fn/NAME/... on a worker with the placement policy of
--placement, as a worker does with what it receives. GET /v1/functions and
/v1/cluster answer from the registry and the membership view; deploys and
deletions go to a worker. /metrics serves the placement counters.`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runGateway(cmd.Context(), g, opts)
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.Addr, "addr", "127.0.0.1:8090", "address to listen on")
	f.StringVar(&opts.DataDir, "data", filepath.Join(defaultDataDir(), "gateway"), "directory for the gateway's node id (and an embedded NATS's data)")
	f.BoolVar(&opts.InsecureListen, "insecure-listen", false, "allow a non-loopback address without a token")
	f.StringVar(&opts.LogLevel, "log-level", "info", "log level: debug, info, warn, error")
	f.StringArrayVar(&opts.AllowedHosts, "allowed-host", nil, "a name requests may be addressed to (Host header) besides IP addresses and localhost; repeatable; \"*\" allows any")
	opts.Cluster.registerNATS(f)
	return cmd
}

func runGateway(ctx context.Context, g *globalOptions, opts gatewayOptions) error {
	log, err := newLogger(opts.LogLevel, g.stderr)
	if err != nil {
		return err
	}
	if g.Token == "" && !isLoopback(opts.Addr) && !opts.InsecureListen {
		return fmt.Errorf("refusing to listen on %s without a token: set --token or $THAW_TOKEN, listen on 127.0.0.1, or pass --insecure-listen: %w", opts.Addr, errdefs.ErrInvalid)
	}
	p, err := opts.Cluster.placer()
	if err != nil {
		return err
	}
	rs, err := server.StartGateway(ctx, server.GatewayOptions{
		Run:     server.RunOptions{Addr: opts.Addr, Server: server.Options{Token: g.Token, AllowedHosts: opts.AllowedHosts}},
		Gateway: coord.GatewayOptions{Node: opts.Cluster.node(opts.DataDir), Placement: p},
		Logger:  log,
	})
	if err != nil {
		return err
	}
	if !rs.Gateway.WaitJoined(ctx, 10*time.Second) {
		log.Warn("cluster not reachable yet; invocations answer 503 until it is")
	}
	log.Info("listening", "url", rs.URL, "role", "gateway", "node", rs.Gateway.ID(), "placement", opts.Cluster.Placement,
		"allowed_hosts", strings.Join(opts.AllowedHosts, ","))
	return runUntilDone(ctx, rs, log, "gateway")
}
