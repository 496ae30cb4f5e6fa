package coord

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/thaw-run/thaw/internal/abi"
	"github.com/thaw-run/thaw/internal/errdefs"
	"github.com/thaw-run/thaw/internal/membership"
	"github.com/thaw-run/thaw/internal/placement"
	"github.com/thaw-run/thaw/internal/worker"
)

// Placement.
//
// A router places each invocation a worker (or a gateway) receives:
// internal/placement decides, a pure function over the cluster view that
// membership publishes; the router carries the decision out. It serves
// here, forwards to a peer (forward.go), or holds the request while a
// worker pre-warms an instance (Knative's activator), then places it again;
// past the hold bound it answers 429.
//
// Failures: a forward that never reached a worker (NATS "no responders",
// or a peer that refused it before running it: draining, closing, the
// function unknown there or its queue full) is placed again without that
// worker, up to maxRetries times. One that reached a worker which then
// failed (died mid-request: it left the membership view; the connection
// broke) is retried only for functions marked idempotent: otherwise it
// might run twice. Every request gets an answer: a peer that vanishes
// while it holds a request is noticed by the view within the membership
// TTL, and the wait ends with 503.

// PrewarmSubject prefixes a worker's pre-warm subject: a message there
// (the function's name) asks the worker to start an idle instance.
const PrewarmSubject = "thaw.prewarm."

// maxRetries bounds the extra placements of one invocation after
// undelivered (or, for idempotent functions, failed) forwards.
const maxRetries = 2

// viewMaxAge bounds how long a cached view serves without a membership
// change: the view drops a silent worker by the clock (the TTL), which no
// watch event announces.
const viewMaxAge = 250 * time.Millisecond

// peerCheck is how often a forward checks that its peer is still in the
// view.
const peerCheck = 250 * time.Millisecond

// holdPoll bounds a held request's wait between two placements when no
// membership change wakes it.
const holdPoll = 100 * time.Millisecond

// errNotDelivered marks a forward that never reached a worker, or that the
// worker refused before running it: safe to place again elsewhere.
var errNotDelivered = errors.New("not delivered")

// errPeerGone ends a forward whose worker left the cluster view (died,
// partitioned) while it held the request.
var errPeerGone = fmt.Errorf("the worker left the cluster while serving the request: %w", errdefs.ErrUnavailable)

// router carries out placement decisions for one worker or a gateway.
type router struct {
	// self is the receiving worker's id ("" for a gateway, which has no
	// instances).
	self   string
	placer *placement.Placer
	conn   *nats.Conn
	log    *slog.Logger
	// member returns the membership view, nil before the cluster is
	// joined.
	member func() *membership.Membership
	// local serves an invocation on this worker (nil in a gateway);
	// idle says how many idle instances a function has here now; draining
	// whether this worker is asked to drain.
	local    func(ctx context.Context, name string, req *abi.Request, opts worker.InvokeOptions) (*worker.Result, error)
	idle     func(name string) int
	draining func() bool
	// idempotent reports a function's config field: may it run twice?
	idempotent func(name string) bool

	metrics placementMetrics
	held    atomic.Int64 // requests held now
	view    atomic.Pointer[cachedView]
}

// cachedView is a placement view and when it goes stale.
type cachedView struct {
	view    placement.View
	changed <-chan struct{} // closed at the next membership change
	built   time.Time
}

// current returns the placement view of m's state, rebuilding it only
// after a membership change or viewMaxAge.
func (r *router) current(m *membership.Membership) placement.View {
	if cv := r.view.Load(); cv != nil && time.Since(cv.built) < viewMaxAge {
		select {
		case <-cv.changed:
		default:
			return cv.view
		}
	}
	changed := m.Changed()
	cv := &cachedView{view: View(m.State()), changed: changed, built: time.Now()}
	r.view.Store(cv)
	return cv.view
}

// View maps the membership state to placement's view. A worker's free
// slots are its slots (its memory budget in instances of the default
// size) less the instances serving requests: idle instances are evicted
// for new ones when memory runs short, so they do not count against it.
// A snapshot on the worker's disk counts as cached (SnapshotLocal), and so
// does its working set when the snapshot directory holds one; a snapshot
// whose chunks a restore reads are all in the worker's store disk cache
// (the function's snapshot_cached) is SnapshotCached.
func View(st membership.State) placement.View {
	v := placement.View{Workers: make([]placement.Worker, len(st.Workers))}
	for i, w := range st.Workers {
		pw := placement.Worker{ID: w.ID, Address: w.Address, Draining: w.Draining, Alive: true,
			Functions: make(map[string]placement.FunctionState, len(w.Functions))}
		busy := 0
		for _, f := range w.Functions {
			busy += f.Busy
			pw.Functions[f.Name] = placement.FunctionState{IdleWarm: f.Idle, Busy: f.Busy, Queued: f.Queued,
				SnapshotLocal: f.SnapshotLocal, SnapshotCached: f.SnapshotCached, WorkingSetCached: f.SnapshotLocal && f.WorkingSet}
		}
		pw.FreeSlots = w.Slots - busy
		v.Workers[i] = pw
	}
	return v
}

// viewFor is the view one placement of name decides on: without the
// workers already tried (excluded), and with this worker's idle count for
// name as it is now rather than as last published (the caller found none).
func (r *router) viewFor(m *membership.Membership, name string, excluded []string) placement.View {
	v := r.current(m)
	fix := -1
	for i, w := range v.Workers {
		if w.ID == r.self && r.self != "" && w.Functions[name].IdleWarm > 0 {
			fix = i
		}
	}
	if fix < 0 && len(excluded) == 0 {
		return v
	}
	out := placement.View{Workers: append([]placement.Worker(nil), v.Workers...)}
	if fix >= 0 {
		w := &out.Workers[fix]
		fns := make(map[string]placement.FunctionState, len(w.Functions))
		for k, f := range w.Functions {
			fns[k] = f
		}
		f := fns[name]
		f.IdleWarm = 0
		fns[name] = f
		w.Functions = fns
	}
	for i := range out.Workers {
		for _, id := range excluded {
			if out.Workers[i].ID == id {
				out.Workers[i].Alive = false
			}
		}
	}
	return out
}

// route serves one invocation where placement says.
func (r *router) route(ctx context.Context, name string, req *abi.Request, opts worker.InvokeOptions) (*worker.Result, error) {
	m := r.member()
	if m == nil {
		if r.local == nil {
			return nil, fmt.Errorf("invoke %s: not joined to the cluster yet: %w", name, errdefs.ErrUnavailable)
		}
		return r.serveLocal(ctx, name, req, opts, placement.LocalWarm)
	}
	if r.local != nil && opts != (worker.InvokeOptions{}) {
		// A restore mode or a dropped page cache is an experiment on this
		// worker's start path (X-Thaw-Mode): measuring another worker's
		// would answer a different question.
		return r.serveLocal(ctx, name, req, opts, placement.Pinned)
	}
	if r.local != nil && !r.draining() {
		// Locality's rule 1 with the live count, and a cluster of one: no
		// decision to make, and today's single-node path. (hash and random
		// decide every request: they are experiments' baselines.)
		if r.placer.Policy() == placement.Locality && r.idle(name) > 0 {
			return r.serveLocal(ctx, name, req, opts, placement.LocalWarm)
		}
		if alone(r.current(m), r.self) {
			return r.serveLocal(ctx, name, req, opts, placement.PeerCached)
		}
	}
	t0 := time.Now()
	var excluded []string
	var lastErr error
	holding, prewarmed := false, false
	defer func() {
		if holding {
			r.held.Add(-1)
		}
	}()
	for {
		v := r.viewFor(m, name, excluded)
		d := r.placer.Place(v, placement.Request{Function: name, Receiver: r.self, Waited: time.Since(t0), Held: int(r.held.Load())})
		switch {
		case (d.Reason == placement.Hold || d.Reason == placement.Reject) && lastErr != nil && r.local != nil,
			d.Reason == placement.Hold && d.Worker == "" && r.local != nil:
			// Every eligible worker was tried, or there is none (this one
			// drains, the others are gone): serving here, draining or
			// not, beats answering 503 or holding for nobody.
			return r.serveLocal(ctx, name, req, opts, placement.Any)
		case (d.Reason == placement.Hold || d.Reason == placement.Reject) && lastErr != nil:
			// Every eligible worker was tried: the last failure is the
			// answer.
			return nil, lastErr
		case d.Reason == placement.Reject:
			r.metrics.rejected.Inc()
			return nil, fmt.Errorf("invoke %s: no worker has room (held %s, %d requests held here): %w",
				name, time.Since(t0).Round(time.Millisecond), r.held.Load(), errdefs.ErrOverloaded)
		case d.Reason == placement.Hold:
			if !holding {
				holding = true
				r.held.Add(1)
				r.metrics.held.Inc()
			}
			if d.Worker != "" && !prewarmed {
				prewarmed = true
				r.prewarm(d.Worker, name)
			}
			if err := r.wait(ctx, m, d.HoldFor); err != nil {
				return nil, fmt.Errorf("invoke %s: held for room: %w", name, err)
			}
			continue
		case d.Worker == r.self:
			return r.serveLocal(ctx, name, req, opts, d.Reason)
		}
		r.metrics.forwarded.Inc()
		res, err := r.forward(ctx, m, d.Worker, name, req, opts)
		if err == nil {
			res.Timing.Placement = d.Reason.String()
			return res, nil
		}
		if len(excluded) >= maxRetries || ctx.Err() != nil || !r.retriable(name, err) {
			return nil, err
		}
		r.log.Debug("placing again", "function", name, "worker", d.Worker, "err", err)
		r.metrics.retried.Inc()
		lastErr = err
		excluded = append(excluded, d.Worker)
	}
}

// retriable reports whether a failed forward may be placed again: it
// never reached a worker, or the function is idempotent and its worker
// failed (not the function: its errors are answers).
func (r *router) retriable(name string, err error) bool {
	if errors.Is(err, errNotDelivered) {
		return true
	}
	return errors.Is(err, errdefs.ErrUnavailable) && r.idempotent(name)
}

// serveLocal serves an invocation on this worker and names it in the
// result's timing.
func (r *router) serveLocal(ctx context.Context, name string, req *abi.Request, opts worker.InvokeOptions, why placement.Reason) (*worker.Result, error) {
	r.metrics.local.Inc()
	res, err := r.local(ctx, name, req, opts)
	if res != nil {
		res.Timing.Worker, res.Timing.Placement = r.self, why.String()
	}
	return res, err
}

// wait holds a request until the membership changes, holdPoll passes or
// d (what is left of the hold bound) does, whichever is first.
func (r *router) wait(ctx context.Context, m *membership.Membership, d time.Duration) error {
	t := time.NewTimer(min(max(d, time.Millisecond), holdPoll))
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-m.Changed():
	case <-t.C:
	}
	return nil
}

// prewarm asks worker node to start an idle instance of name.
func (r *router) prewarm(node, name string) {
	if err := r.conn.Publish(PrewarmSubject+node, []byte(name)); err != nil {
		r.log.Debug("pre-warm request not sent", "worker", node, "function", name, "err", err)
	}
}

// forward hands an invocation to worker node and ends the wait with
// errPeerGone if node leaves the view meanwhile.
func (r *router) forward(ctx context.Context, m *membership.Membership, node, name string, req *abi.Request, opts worker.InvokeOptions) (*worker.Result, error) {
	fctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stop := watchPeer(peerCheck, func() bool { return alive(r.current(m), node) }, func() { cancel(errPeerGone) })
	defer stop()
	res, err := forward(fctx, r.conn, node, name, req, opts)
	if err != nil && ctx.Err() == nil && errors.Is(context.Cause(fctx), errPeerGone) {
		return nil, fmt.Errorf("forward %s to worker %s: %w", name, node, errPeerGone)
	}
	return res, err
}

// alone reports whether v knows of no worker but self (also before self's
// own entry arrived).
func alone(v placement.View, self string) bool {
	for _, w := range v.Workers {
		if w.ID != self {
			return false
		}
	}
	return true
}

// alive reports whether worker id is in v.
func alive(v placement.View, id string) bool {
	for _, w := range v.Workers {
		if w.ID == id {
			return w.Alive
		}
	}
	return false
}

// watchPeer calls gone once ok fails, checking every interval, until stop
// is called. It runs no goroutine between checks: most forwards end long
// before the first.
func watchPeer(interval time.Duration, ok func() bool, gone func()) (stop func()) {
	var mu sync.Mutex
	stopped := false
	var t *time.Timer
	check := func() {
		if !ok() {
			gone()
			return
		}
		mu.Lock()
		defer mu.Unlock()
		if !stopped {
			t.Reset(interval)
		}
	}
	mu.Lock()
	t = time.AfterFunc(interval, check)
	mu.Unlock()
	return func() {
		mu.Lock()
		stopped = true
		t.Stop()
		mu.Unlock()
	}
}
