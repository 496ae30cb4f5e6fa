// Package placement decides which worker of a cluster serves an invocation.
//
// Placement is a pure function of a cluster View (the workers, their free
// slots and, per function, their warm instances and cached snapshots, as the
// membership registry publishes them) and a Request (the function and the
// worker that received it). It reads no clock, no network and no global
// state, so every worker and a router-only gateway that see the same View
// make the same Decision, and the rules are tested here as a table.
//
// Three policies (Policy, ParsePolicy):
//
//   - locality, the default, prefers the worker where the request starts
//     fastest and otherwise concentrates a function's cold starts on few
//     workers. In order: the receiving worker if it has an idle warm
//     instance (LocalWarm); a peer with an idle warm instance (PeerWarm); a
//     worker with the snapshot cached and a free slot (PeerCached); one of
//     the function's k home workers by rendezvous hashing with a free slot
//     (Home); any worker with a free slot (Any); else the caller holds the
//     request and pre-warms a home worker (Hold) until the hold bound, past
//     which it answers 429 (Reject). This is OpenWhisk's home invoker
//     (a function's requests go to a hashed home so its containers stay
//     warm), vHive's snapshot-aware scheduling (restore where the snapshot
//     and working set are already on local disk, not where the object
//     store must be read), and Knative's activator (hold a request while
//     capacity comes up rather than fail it).
//   - hash always picks the function's first home, regardless of warmth (an
//     experiment's baseline: OpenWhisk without overflow).
//   - random picks uniformly among live, non-draining workers with a free
//     slot (what a NATS queue group does), from a seeded generator.
//
// Every policy only ever names a worker that is alive and not draining.
// docs/placement.md gives the rules, why, and every tie-break.
package placement

import (
	"fmt"
	"time"
)

// View is the cluster as one worker (or the gateway) sees it: the
// membership registry's workers with their published per-function state.
// Worker ids are unique (they are the registry's keys); with duplicates the
// decision still names a live, non-draining worker, but which one may depend
// on their order.
type View struct {
	Workers []Worker
}

// Worker is one worker's published state.
type Worker struct {
	// ID names the worker in the cluster (thaw serve --node-id).
	ID string
	// Address is where peers forward requests to (--advertise).
	Address string
	// FreeSlots is how many more instances the worker can start now
	// (capacity and memory budget left); 0 or less means none.
	FreeSlots int
	// Draining workers finish what they run and take nothing new.
	Draining bool
	// Alive is false once the worker's presence entry expired.
	Alive bool
	// Functions is the worker's state per function name; a function the
	// worker has never seen is absent.
	Functions map[string]FunctionState
}

// FunctionState is one function's state on one worker.
type FunctionState struct {
	// IdleWarm counts instances that could serve a request now.
	IdleWarm int
	// Busy counts instances serving a request.
	Busy int
	// Queued counts requests waiting for an instance.
	Queued int
	// SnapshotLocal: the function's snapshot directory is on local disk.
	SnapshotLocal bool
	// SnapshotCached: the snapshot's chunks are in the worker's disk cache
	// (a restore reads no object store).
	SnapshotCached bool
	// WorkingSetCached: the snapshot's working set is on local disk or in
	// the disk cache (a reap/bulk restore reads it in one pass).
	WorkingSetCached bool
}

// Request is one invocation to place.
type Request struct {
	// Function is the function's name.
	Function string
	// Receiver is the id of the worker that received the request (empty
	// for a router-only gateway, which has no local instances).
	Receiver string
	// Waited is how long the caller has held this request already (0 on
	// its first placement).
	Waited time.Duration
	// Held counts the other requests the caller holds now.
	Held int
}

// Reason says why a Decision picked its worker.
type Reason int

// The reasons, in locality's order of preference.
const (
	// LocalWarm: the receiving worker has an idle warm instance.
	LocalWarm Reason = iota + 1
	// PeerWarm: another worker has an idle warm instance.
	PeerWarm
	// PeerCached: a worker has the function's snapshot on local disk or
	// in its disk cache and a free slot (the receiver first).
	PeerCached
	// Home: one of the function's rendezvous-hash homes has a free slot.
	Home
	// Any: some worker has a free slot.
	Any
	// Hold: no worker can take the request now; the caller holds it up to
	// Decision.HoldFor and asks Decision.Worker (a home, if any worker is
	// eligible) to pre-warm, then places it again.
	Hold
	// Reject: the hold bound is spent or the caller's hold queue is full:
	// answer 429.
	Reject
	// Pinned is never a decision of Place: the request said how its
	// instance starts (an experiment's restore mode), so it is served by
	// the worker that received it, whatever the cluster state.
	Pinned
)

var reasonNames = [...]string{"", "local-warm", "peer-warm", "peer-cached", "home", "any", "hold", "reject", "pinned"}

// String is the reason's name, as logs and Server-Timing show it.
func (r Reason) String() string {
	if r > 0 && int(r) < len(reasonNames) {
		return reasonNames[r]
	}
	return fmt.Sprintf("reason(%d)", int(r))
}

// Decision is where a request goes.
type Decision struct {
	// Worker is the chosen worker's id: the one to serve the request, or
	// for Hold the one to pre-warm ("" when no worker is eligible). Empty
	// for Reject.
	Worker string
	// Reason says which rule chose it.
	Reason Reason
	// HoldFor is, for Hold, how much longer the caller may hold the
	// request (the bound less Request.Waited); 0 otherwise.
	HoldFor time.Duration
}

// Defaults of Options.
const (
	DefaultHomes     = 2
	DefaultHoldBound = 5 * time.Second
	DefaultMaxHeld   = 1000
)

// Options tune a policy. The zero value means the defaults.
type Options struct {
	// Homes is k, how many rendezvous-hash homes a function has
	// (DefaultHomes when 0 or less). Two keep a function's misses on few
	// workers and survive one of them being busy.
	Homes int
	// HoldBound is how long a request may be held in total
	// (DefaultHoldBound when 0 or less).
	HoldBound time.Duration
	// MaxHeld is how many requests a caller may hold at once
	// (DefaultMaxHeld when 0 or less).
	MaxHeld int
}

func (o Options) withDefaults() Options {
	if o.Homes <= 0 {
		o.Homes = DefaultHomes
	}
	if o.HoldBound <= 0 {
		o.HoldBound = DefaultHoldBound
	}
	if o.MaxHeld <= 0 {
		o.MaxHeld = DefaultMaxHeld
	}
	return o
}
