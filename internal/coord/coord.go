// Package coord makes a worker a member of a thaw cluster: deploys and
// deletions go through the replicated registry (internal/registry) and
// reach every worker through its watch; the worker announces itself and
// its functions' state (internal/membership); drains release its warm
// instances.
//
// A Coordinator is the server's Backend: it embeds the *worker.Worker, so
// lookups and admission go straight to the worker, and only Deploy,
// Delete and Invoke are its own. Invoke places the invocation
// (Options.Placement, place.go): here when this worker has an idle
// instance or is alone, else on a peer over NATS (forward.go), or held
// while a worker pre-warms. The warm local path touches no NATS. A
// Gateway (gateway.go) is the same placement without a worker: `thaw
// gateway`.
//
// # Deploys
//
// A deploy on any worker reads the name's generation, stores the module
// in the registry's object store, deploys locally (compile, boot,
// snapshot: a module that fails fails here, before the registry sees
// it), and then writes the record with compare-and-swap on the generation
// it read. A deploy that loses the swap to a concurrent one re-reads and
// writes on top (deploys of a name are serialised, the last one wins), so
// every worker converges on one generation. Every other worker sees the
// record in its watch, fetches the module and deploys it (its own boot and
// snapshot), within a second plus compile time. A worker that cannot
// reach the registry (partitioned, no quorum) refuses deploys and
// deletions with errdefs.ErrUnavailable (503) and keeps serving what it
// has.
package coord

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/thaw-run/thaw/internal/api"
	"github.com/thaw-run/thaw/internal/async"
	"github.com/thaw-run/thaw/internal/cluster"
	"github.com/thaw-run/thaw/internal/errdefs"
	"github.com/thaw-run/thaw/internal/membership"
	"github.com/thaw-run/thaw/internal/placement"
	"github.com/thaw-run/thaw/internal/registry"
	"github.com/thaw-run/thaw/internal/store/peer"
	"github.com/thaw-run/thaw/internal/worker"
)

// Options configure New.
type Options struct {
	// Node says how to reach NATS (embedded alone, embedded in a cluster,
	// external).
	Node cluster.Options
	// Membership tunes presence (zero: defaults).
	Membership membership.Options
	// JoinTimeout bounds how long Attach waits for the registry before the
	// worker serves anyway (default 10s); joining continues in the
	// background.
	JoinTimeout time.Duration
	// Logger receives logs (default slog.Default()).
	Logger *slog.Logger
	// Placement, if set, places every invocation this worker receives
	// (place.go): here, on a peer (forward.go), or held while a worker
	// pre-warms. Nil: every invocation is served here, touching no NATS.
	Placement *placement.Placer
	// Async configures the cluster's queue of asynchronous invocations
	// (zero: defaults; Replicas is the node's). Every worker of a
	// cluster must use the same.
	Async async.Config
}

// maxApplying bounds the registry changes a worker applies at once (each
// may compile and boot a module).
const maxApplying = 2

// registryTimeout bounds one registry operation on a deploy's path: past
// it the registry counts as unreachable and the deploy gets 503.
const registryTimeout = 3 * time.Second

// Coordinator is a worker in a cluster. Create it with New, open the
// worker with KeepStored, then Attach it.
type Coordinator struct {
	*worker.Worker

	id      string
	opts    Options
	log     *slog.Logger
	node    *cluster.Node
	started time.Time
	address string

	base
	synced chan struct{} // closed once the registry watch delivered what existed

	applying chan struct{} // bounds concurrent applies (maxApplying)

	sub        *nats.Subscription // this worker's invocation subject
	prewarmSub *nats.Subscription // its pre-warm subject
	wsSub      *nats.Subscription // the working sets peers announce (workingset.go)
	router     *router            // nil without Options.Placement

	// asyncQ is the asynchronous queue once open (async.go); runner this
	// worker's runner on it (set before asyncQ).
	asyncQ        atomic.Pointer[async.Queue]
	runner        *async.Runner
	asyncEnqueued atomic.Int64

	chunks *peer.Server // this worker's disk cache served to peers (chunks.go)

	mu      sync.Mutex
	closing bool              // set by Close: no new forwarded invocations
	applied map[string]uint64 // generation of each function deployed here
	locks   map[string]*sync.Mutex
}

// New starts the NATS node and begins joining the cluster's buckets in
// the background.
func New(ctx context.Context, opts Options) (*Coordinator, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.JoinTimeout <= 0 {
		opts.JoinTimeout = 10 * time.Second
	}
	opts.Node.Logger = opts.Logger
	node, err := cluster.Start(ctx, opts.Node)
	if err != nil {
		return nil, err
	}
	c := &Coordinator{id: node.ID, opts: opts, log: opts.Logger.With("node", node.ID), node: node, started: time.Now().UTC(),
		base: newBase(), synced: make(chan struct{}), applying: make(chan struct{}, maxApplying), applied: map[string]uint64{}, locks: map[string]*sync.Mutex{}}
	c.wg.Add(1)
	go c.join()
	return c, nil
}

// ID is this worker's node id.
func (c *Coordinator) ID() string { return c.id }

// Node is the NATS node.
func (c *Coordinator) Node() *cluster.Node { return c.node }

// join opens the registry and membership buckets, retrying until the
// coordinator closes.
func (c *Coordinator) join() {
	defer c.wg.Done()
	reg, mem, ok := joinBuckets(c.ctx, c.node, c.opts.Membership)
	if !ok {
		return
	}
	c.reg, c.mem = reg, mem
	close(c.joined)
	c.log.Info("joined the cluster", "replicas", c.node.Replicas, "nats_clients", c.node.ClientURL(), "routes", c.node.ClusterAddr())
}

// joinBuckets opens the registry and membership buckets on node,
// retrying until ctx ends (ok false).
func joinBuckets(ctx context.Context, node *cluster.Node, mopts membership.Options) (*registry.Registry, *membership.Membership, bool) {
	for ctx.Err() == nil {
		reg, err := registry.Open(ctx, node)
		if err != nil {
			continue // Open retried until ctx ended
		}
		mem, err := membership.Open(ctx, node, mopts)
		if err != nil {
			continue
		}
		return reg, mem, true
	}
	return nil, nil, false
}

// KeepStored is worker.Options.KeepStored: a stored snapshot stays while
// a live record references it, and always before the registry's watch has
// delivered what exists (the safe side: a copy kept too long costs
// storage, one deleted too early a peer's restore).
func (c *Coordinator) KeepStored(name, id string) bool {
	select {
	case <-c.synced:
		return c.reg.References(name, id)
	default:
		return true
	}
}

// Attach starts coordinating w, reachable by peers at address (the
// HTTP HOST:PORT): it waits up to JoinTimeout for the cluster, then
// applies the registry to w, announces w and follows drain requests.
func (c *Coordinator) Attach(ctx context.Context, w *worker.Worker, address string) {
	c.Worker, c.address = w, address
	if p := c.opts.Placement; p != nil {
		c.router = &router{self: c.id, placer: p, conn: c.node.Conn, log: c.log, member: c.member,
			local: w.Invoke, idle: w.Idle, draining: c.draining, idempotent: c.idempotent,
			metrics: newPlacementMetrics(w.Registry(), p.Policy().String())}
	}
	if err := c.serveForwarded(); err != nil {
		c.log.Warn("not answering forwarded invocations", "err", err)
	}
	if err := c.servePrewarm(); err != nil {
		c.log.Warn("not answering pre-warm requests", "err", err)
	}
	if err := c.serveDeploys(); err != nil {
		c.log.Warn("not answering deploy requests from gateways", "err", err)
	}
	if err := c.serveWorkingSets(); err != nil {
		c.log.Warn("not adopting the working sets peers publish ahead of restores", "err", err)
	}
	joined := false
	select {
	case <-c.joined:
		joined = true
	case <-time.After(c.opts.JoinTimeout):
		c.log.Warn("cluster registry not reachable yet; serving local functions, refusing deploys until it is", "waited", c.opts.JoinTimeout)
	case <-ctx.Done():
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		select {
		case <-c.joined:
		case <-c.ctx.Done():
			return
		}
		c.wg.Add(3)
		go c.runAsync()
		go func() { defer c.wg.Done(); c.mem.Run(c.ctx, c.self) }()
		go func() { defer c.wg.Done(); c.drainLoop() }()
		c.follow()
	}()
	// Once joined, the registry's records arrive in milliseconds: wait
	// for them so that a deploy right after start sees them.
	if joined {
		select {
		case <-c.synced:
		case <-time.After(c.opts.JoinTimeout):
		case <-ctx.Done():
		}
	}
}

// Close stops coordinating (removing this worker's entry) and closes the
// NATS node. The worker is the caller's to close, after.
func (c *Coordinator) Close() {
	c.mu.Lock()
	c.closing = true
	c.mu.Unlock()
	for _, s := range []*nats.Subscription{c.sub, c.prewarmSub, c.wsSub} {
		if s != nil {
			_ = s.Unsubscribe()
		}
	}
	if c.chunks != nil {
		_ = c.chunks.Close()
	}
	c.cancel()
	c.wg.Wait()
	c.node.Close()
}

// lock serialises the coordinator's work on one function name.
func (c *Coordinator) lock(name string) func() {
	c.mu.Lock()
	l, ok := c.locks[name]
	if !ok {
		l = &sync.Mutex{}
		c.locks[name] = l
	}
	c.mu.Unlock()
	l.Lock()
	return l.Unlock
}

// registry returns the registry, or ErrUnavailable before the worker
// joined.
func (c *Coordinator) registry() (*registry.Registry, error) {
	select {
	case <-c.joined:
		return c.reg, nil
	default:
		return nil, fmt.Errorf("not joined to the cluster registry yet: %w", errdefs.ErrUnavailable)
	}
}

// Deploy deploys through the registry (see the package comment).
func (c *Coordinator) Deploy(ctx context.Context, name string, wasm []byte, cfg worker.Config) (*worker.Info, error) {
	if err := worker.ValidName(name); err != nil {
		return nil, err
	}
	reg, err := c.registry()
	if err != nil {
		return nil, fmt.Errorf("deploy %s: %w", name, err)
	}
	unlock := c.lock(name)
	defer unlock()
	rctx, cancel := context.WithTimeout(ctx, registryTimeout)
	err = reg.Writable(rctx)
	var prev uint64
	if err == nil {
		prev, err = reg.Generation(rctx, name)
	}
	cancel()
	if err != nil {
		return nil, fmt.Errorf("deploy %s: %w", name, err)
	}
	rctx, cancel = context.WithTimeout(ctx, 4*registryTimeout)
	sha, err := reg.PutModule(rctx, wasm)
	cancel()
	if err != nil {
		return nil, fmt.Errorf("deploy %s: %w", name, err)
	}
	info, err := c.Worker.Deploy(ctx, name, wasm, cfg)
	if err != nil {
		return nil, err
	}
	rec := registry.Record{Name: name, Config: api.Config(info.Config), ModuleSHA: sha, ModuleSize: len(wasm), Origin: c.id, Deployed: info.Deployed}
	if info.Snapshot != nil {
		rec.Snapshot = info.Snapshot.ID
	}
	gen, err := c.put(ctx, reg, rec, prev)
	if err != nil {
		// Deployed here but not in the registry. A function the
		// registry does not have goes at once: a refused deploy must
		// not be served (a partitioned worker refuses deploys). A
		// redeploy's previous version cannot be brought back without
		// the registry: this worker goes back to what the registry says
		// once it answers again.
		if prev == 0 {
			if derr := c.Worker.Delete(context.WithoutCancel(ctx), name); derr != nil && !errors.Is(derr, errdefs.ErrNotFound) {
				c.log.Warn("undoing a deploy the registry refused", "function", name, "err", derr)
			}
		}
		c.resync(name)
		return nil, fmt.Errorf("deploy %s: %w", name, err)
	}
	c.mu.Lock()
	c.applied[name] = gen
	c.mu.Unlock()
	c.log.Info("deployed to the cluster", "function", name, "generation", gen)
	return info, nil
}

// put writes rec on top of generation prev, re-reading and writing again
// when a concurrent deploy won the swap: the registry serialises deploys
// of a name, and the last one wins everywhere.
func (c *Coordinator) put(ctx context.Context, reg *registry.Registry, rec registry.Record, prev uint64) (uint64, error) {
	for attempt := 0; ; attempt++ {
		rctx, cancel := context.WithTimeout(ctx, registryTimeout)
		gen, err := reg.Put(rctx, rec, prev)
		cancel()
		if !errors.Is(err, errdefs.ErrConflict) || attempt >= 5 {
			return gen, err
		}
		rctx, cancel = context.WithTimeout(ctx, registryTimeout)
		prev, err = reg.Generation(rctx, rec.Name)
		cancel()
		if err != nil {
			return 0, err
		}
	}
}

// Delete deletes through the registry: the record goes first (every
// worker then deletes its copy), then this worker's.
func (c *Coordinator) Delete(ctx context.Context, name string) error {
	reg, err := c.registry()
	if err != nil {
		return fmt.Errorf("delete %s: %w", name, err)
	}
	unlock := c.lock(name)
	defer unlock()
	rctx, cancel := context.WithTimeout(ctx, registryTimeout)
	defer cancel()
	prev, err := reg.Generation(rctx, name)
	if err != nil {
		return fmt.Errorf("delete %s: %w", name, err)
	}
	if prev != 0 {
		if err := reg.Delete(rctx, name, prev); err != nil {
			return fmt.Errorf("delete %s: %w", name, err)
		}
	}
	err = c.Worker.Delete(ctx, name)
	if prev != 0 && errors.Is(err, errdefs.ErrNotFound) {
		return nil // deleted from the cluster; this worker never had it
	}
	return err
}

// base is what a Coordinator and a Gateway share: their lifetime, and
// the cluster's buckets once joined.
type base struct {
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	joined chan struct{} // closed once reg and mem are set
	reg    *registry.Registry
	mem    *membership.Membership
}

// newBase returns a base whose context ends with its cancel.
func newBase() base {
	ctx, cancel := context.WithCancel(context.Background())
	return base{ctx: ctx, cancel: cancel, joined: make(chan struct{})}
}

// member is the membership, nil before joining.
func (b *base) member() *membership.Membership {
	select {
	case <-b.joined:
		return b.mem
	default:
		return nil
	}
}

// draining reports whether this worker is asked to drain.
func (c *Coordinator) draining() bool {
	m := c.member()
	return m != nil && m.Draining(c.id)
}

// idempotent reports whether the local function name is marked
// idempotent.
func (c *Coordinator) idempotent(name string) bool {
	info, err := c.Worker.Get(name)
	return err == nil && info.Config.Idempotent
}

// State is the cluster as this worker sees it (empty before it joined).
func (c *Coordinator) State() membership.State {
	select {
	case <-c.joined:
		return c.mem.State()
	default:
		return membership.State{}
	}
}

// Drain asks worker node to drain (on) or to take placements again.
func (c *Coordinator) Drain(ctx context.Context, node string, on bool) error {
	return drain(ctx, c.member(), node, on)
}

// drain sets worker node's drain flag through m (nil: not joined yet).
func drain(ctx context.Context, m *membership.Membership, node string, on bool) error {
	if m == nil {
		return fmt.Errorf("drain %s: not joined to the cluster yet: %w", node, errdefs.ErrUnavailable)
	}
	if _, ok := m.State().Worker(node); !ok && on {
		return fmt.Errorf("worker %q: %w", node, errdefs.ErrNotFound)
	}
	rctx, cancel := context.WithTimeout(ctx, registryTimeout)
	defer cancel()
	return m.SetDrain(rctx, node, on)
}

// self is this worker's membership entry.
func (c *Coordinator) self() membership.Worker {
	budget, used := c.Worker.Memory()
	w := membership.Worker{Address: c.address, MemoryBytes: budget, MemoryUsed: used, Slots: int(budget / (api.DefaultMemoryMiB << 20)),
		Draining: c.mem.Draining(c.id), Started: c.started}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, s := range c.Worker.States() {
		w.Functions = append(w.Functions, membership.Function{Name: s.Name, Generation: c.applied[s.Name], Idle: s.Idle, Busy: s.Busy,
			Queued: s.Queued, Snapshot: s.Snapshot, SnapshotLocal: s.SnapshotLocal, WorkingSet: s.WorkingSet,
			SnapshotCached: s.Cached >= 1, Cached: s.Cached})
	}
	return w
}

// drainLoop releases idle instances while this worker is draining: each
// busy one is released when its request is done and it comes back idle.
func (c *Coordinator) drainLoop() {
	t := time.NewTicker(membership.DefaultPublishInterval)
	defer t.Stop()
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-t.C:
		}
		if !c.mem.Draining(c.id) {
			continue
		}
		for _, s := range c.Worker.States() {
			if s.Idle > 0 {
				_ = c.Worker.Evict(c.ctx, s.Name)
			}
		}
	}
}

// sameDeploy reports whether the local function s runs rec.
func sameDeploy(s worker.FunctionState, rec registry.Record) bool {
	return s.ModuleSHA == rec.ModuleSHA && reflect.DeepEqual(s.Config.WithDefaults(), worker.Config(rec.Config).WithDefaults())
}
