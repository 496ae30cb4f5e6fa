package coord

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/thaw-run/thaw/internal/abi"
	"github.com/thaw-run/thaw/internal/cluster"
	"github.com/thaw-run/thaw/internal/errdefs"
	"github.com/thaw-run/thaw/internal/membership"
	"github.com/thaw-run/thaw/internal/placement"
	"github.com/thaw-run/thaw/internal/registry"
	"github.com/thaw-run/thaw/internal/worker"
)

// GatewayOptions configure NewGateway.
type GatewayOptions struct {
	// Node says how to reach NATS, as for a worker (Options.Node).
	Node cluster.Options
	// Placement places every invocation (required).
	Placement *placement.Placer
	// Membership tunes the view (zero: defaults).
	Membership membership.Options
	// Logger receives logs (default slog.Default()).
	Logger *slog.Logger
}

// Gateway is a router-only member of a cluster (`thaw gateway`): it joins
// the cluster's NATS, reads the registry and the membership view, runs no
// functions and announces nothing, and places every invocation on a
// worker with the same placement code the workers use (the receiver is
// "": it has no instances). It is the server's Backend and Cluster: the
// management API's reads answer from the registry; a deploy is handed to
// a worker (deploy.go), a deletion written to the registry.
type Gateway struct {
	id      string
	node    *cluster.Node
	log     *slog.Logger
	metrics *prometheus.Registry
	router  *router

	base

	mu      sync.Mutex
	records map[string]registry.Record // the registry's live records
}

// NewGateway starts the NATS node and joins the cluster in the
// background.
func NewGateway(ctx context.Context, opts GatewayOptions) (*Gateway, error) {
	if opts.Placement == nil {
		return nil, fmt.Errorf("gateway: no placement: %w", errdefs.ErrInvalid)
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	opts.Node.Logger = opts.Logger
	node, err := cluster.Start(ctx, opts.Node)
	if err != nil {
		return nil, err
	}
	g := &Gateway{id: node.ID, node: node, log: opts.Logger.With("node", node.ID), metrics: prometheus.NewRegistry(),
		base: newBase(), records: map[string]registry.Record{}}
	g.router = &router{placer: opts.Placement, conn: node.Conn, log: g.log, member: g.member, idempotent: g.idempotent,
		metrics: newPlacementMetrics(g.metrics, opts.Placement.Policy().String())}
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		reg, mem, ok := joinBuckets(g.ctx, node, opts.Membership)
		if !ok {
			return
		}
		g.reg, g.mem = reg, mem
		close(g.joined)
		g.log.Info("gateway joined the cluster")
		g.follow()
	}()
	return g, nil
}

// follow keeps the registry's live records until the gateway closes.
func (g *Gateway) follow() {
	for g.ctx.Err() == nil {
		ch, err := g.reg.Watch(g.ctx)
		if err != nil {
			select {
			case <-g.ctx.Done():
			case <-time.After(resyncInterval):
			}
			continue
		}
		for ev := range ch {
			if ev.Synced {
				continue
			}
			g.mu.Lock()
			if ev.Deleted {
				delete(g.records, ev.Record.Name)
			} else {
				g.records[ev.Record.Name] = ev.Record
			}
			g.mu.Unlock()
		}
	}
}

// WaitJoined waits up to d for the cluster, reporting whether it joined.
func (g *Gateway) WaitJoined(ctx context.Context, d time.Duration) bool {
	select {
	case <-g.joined:
		return true
	case <-time.After(d):
	case <-ctx.Done():
	}
	return false
}

// Close leaves the cluster and closes the NATS node.
func (g *Gateway) Close() {
	g.cancel()
	g.wg.Wait()
	g.node.Close()
}

// record is the registry's live record of name.
func (g *Gateway) record(name string) (registry.Record, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	rec, ok := g.records[name]
	return rec, ok
}

func (g *Gateway) idempotent(name string) bool {
	rec, ok := g.record(name)
	return ok && rec.Config.Idempotent
}

// ID is the gateway's node id.
func (g *Gateway) ID() string { return g.id }

// Node is the NATS node.
func (g *Gateway) Node() *cluster.Node { return g.node }

// Registry holds the gateway's metrics (the placement counters).
func (g *Gateway) Registry() *prometheus.Registry { return g.metrics }

// Invoke places an invocation on a worker.
func (g *Gateway) Invoke(ctx context.Context, name string, req *abi.Request, opts worker.InvokeOptions) (*worker.Result, error) {
	return g.router.route(ctx, name, req, opts)
}

// Public reports whether the registry holds name and it is public.
func (g *Gateway) Public(name string) bool {
	rec, ok := g.record(name)
	return ok && rec.Config.Public
}

// Admit fails with ErrNotFound for a function the registry does not hold;
// the worker placement picks admits the rest.
func (g *Gateway) Admit(name string) error {
	if _, ok := g.record(name); !ok {
		return fmt.Errorf("function %q: %w", name, errdefs.ErrNotFound)
	}
	return nil
}

// Get describes a function as the registry records it (no instances: the
// gateway runs none).
func (g *Gateway) Get(name string) (*worker.Info, error) {
	rec, ok := g.record(name)
	if !ok {
		return nil, fmt.Errorf("function %q: %w", name, errdefs.ErrNotFound)
	}
	info := infoOf(rec)
	return &info, nil
}

// List describes every function the registry holds, by name.
func (g *Gateway) List() []worker.Info {
	g.mu.Lock()
	out := make([]worker.Info, 0, len(g.records))
	for _, rec := range g.records {
		out = append(out, infoOf(rec))
	}
	g.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func infoOf(rec registry.Record) worker.Info {
	return worker.Info{Name: rec.Name, Config: worker.Config(rec.Config).WithDefaults(), ModuleSHA: rec.ModuleSHA, ModuleSize: rec.ModuleSize,
		Deployed: rec.Deployed}
}

// State is the cluster as the gateway sees it.
func (g *Gateway) State() membership.State {
	if m := g.member(); m != nil {
		return m.State()
	}
	return membership.State{}
}

// Drain asks worker node to drain (on) or take placements again.
func (g *Gateway) Drain(ctx context.Context, node string, on bool) error {
	return drain(ctx, g.member(), node, on)
}
