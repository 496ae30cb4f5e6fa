package placement

import (
	"fmt"
	"math/rand/v2"
	"sync"

	"github.com/thaw-run/thaw/internal/errdefs"
)

// Policy names a placement policy (thaw serve --placement).
type Policy int

// The policies.
const (
	// Locality: warm, then cached, then home, then any, then hold
	// (PlaceLocality). The default.
	Locality Policy = iota
	// Hash: always the function's first rendezvous home (PlaceHash).
	Hash
	// Random: uniform over the workers with a free slot (PlaceRandom).
	Random
)

var policyNames = [...]string{"locality", "hash", "random"}

// String is the policy's flag value.
func (p Policy) String() string {
	if p >= 0 && int(p) < len(policyNames) {
		return policyNames[p]
	}
	return fmt.Sprintf("policy(%d)", int(p))
}

// ParsePolicy parses "locality", "hash" or "random".
func ParsePolicy(s string) (Policy, error) {
	for i, n := range policyNames {
		if s == n {
			return Policy(i), nil
		}
	}
	return 0, fmt.Errorf("placement policy %q: want locality, hash or random: %w", s, errdefs.ErrInvalid)
}

// Placer places requests under one policy. It is safe for concurrent use;
// only Random keeps state (its generator, behind a mutex).
type Placer struct {
	policy Policy
	opts   Options
	mu     sync.Mutex
	rng    *rand.Rand
}

// New returns a Placer for policy p. seed seeds Random's generator (a
// fixed seed replays the same choices for the same sequence of calls).
func New(p Policy, o Options, seed uint64) *Placer {
	return &Placer{policy: p, opts: o, rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
}

// Policy is the placer's policy.
func (p *Placer) Policy() Policy { return p.policy }

// Place decides where r goes in v.
func (p *Placer) Place(v View, r Request) Decision {
	switch p.policy {
	case Hash:
		return PlaceHash(v, r, p.opts)
	case Random:
		p.mu.Lock()
		defer p.mu.Unlock()
		return PlaceRandom(v, r, p.opts, p.rng)
	default:
		return PlaceLocality(v, r, p.opts)
	}
}

// PlaceLocality is the locality policy: the first rule that finds a worker
// decides.
//
//  1. LocalWarm: the receiver, alive and not draining, has an idle warm
//     instance: no hop, no start.
//  2. PeerWarm: the least-loaded other worker with an idle warm instance
//     (one hop, no start; OpenWhisk and Lambda route to warm containers
//     for the same reason).
//  3. PeerCached: a worker with a free slot whose disk holds the snapshot
//     (vHive: a restore from local disk costs a fraction of one from the
//     object store): the receiver if it qualifies (no hop), else the one
//     with the most of the restore on disk (cacheRank), then least loaded.
//  4. Home: of the function's k rendezvous homes, the least loaded with a
//     free slot (OpenWhisk's home invoker: a function's misses, and its
//     object-store fetches, land on few workers, whose caches then hit).
//  5. Any: the least-loaded worker with a free slot.
//  6. Hold: the caller holds the request and asks the least-loaded home to
//     pre-warm (Knative's activator), for what is left of the hold bound;
//     Reject once the bound is spent or the caller holds MaxHeld requests.
//
// "Least loaded" is lessLoaded: fewest requests running or queued over the
// worker's functions, then most free slots, then the higher rendezvous
// score, then id; so a decision never depends on the order of v.Workers.
func PlaceLocality(v View, r Request, o Options) Decision {
	o = o.withDefaults()
	cs := candidates(v, r.Function)
	for _, c := range cs {
		if c.id == r.Receiver && r.Receiver != "" && c.fn.IdleWarm > 0 {
			return Decision{Worker: c.id, Reason: LocalWarm}
		}
	}
	if c, ok := best(cs, func(c *candidate) bool { return c.fn.IdleWarm > 0 }, (*candidate).lessLoaded); ok {
		return Decision{Worker: c.id, Reason: PeerWarm}
	}
	cachedFree := func(c *candidate) bool { return c.cached() && c.free > 0 }
	if c, ok := best(cs, cachedFree, func(a, b *candidate) bool {
		if ar, br := a.id == r.Receiver, b.id == r.Receiver; ar != br {
			return ar
		}
		if a.cacheRank() != b.cacheRank() {
			return a.cacheRank() > b.cacheRank()
		}
		return a.lessLoaded(b)
	}); ok {
		return Decision{Worker: c.id, Reason: PeerCached}
	}
	hs := homes(cs, o.Homes)
	if c, ok := best(hs, hasFree, (*candidate).lessLoaded); ok {
		return Decision{Worker: c.id, Reason: Home}
	}
	if c, ok := best(cs, hasFree, (*candidate).lessLoaded); ok {
		return Decision{Worker: c.id, Reason: Any}
	}
	return hold(hs, r, o)
}

// PlaceHash is the hash policy: the function's first rendezvous home,
// whatever its warmth or load (its own queue bounds it); Hold or Reject
// only when no worker is eligible.
func PlaceHash(v View, r Request, o Options) Decision {
	o = o.withDefaults()
	hs := homes(candidates(v, r.Function), 1)
	if len(hs) == 0 {
		return hold(nil, r, o)
	}
	return Decision{Worker: hs[0].id, Reason: Home}
}

// PlaceRandom is the random policy: uniform over the live, non-draining
// workers with a free slot, drawn from rng (what a NATS queue group does,
// the baseline locality is measured against); Hold or Reject when none has
// a slot. The draw is over the workers in id order, so a seed replays the
// same choices whatever the order of v.Workers.
func PlaceRandom(v View, r Request, o Options, rng *rand.Rand) Decision {
	o = o.withDefaults()
	cs := candidates(v, r.Function)
	var free []*candidate
	for _, c := range cs {
		if c.free > 0 {
			free = append(free, c)
		}
	}
	if len(free) == 0 {
		return hold(homes(cs, o.Homes), r, o)
	}
	sortByID(free)
	return Decision{Worker: free[rng.IntN(len(free))].id, Reason: Any}
}

// hold is the last rule of every policy: Hold with what is left of the
// bound, asking the least-loaded of hs (the function's homes) to pre-warm,
// or Reject when the bound is spent or the caller's hold queue is full.
func hold(hs []*candidate, r Request, o Options) Decision {
	waited := max(r.Waited, 0)
	if waited >= o.HoldBound || r.Held >= o.MaxHeld {
		return Decision{Reason: Reject}
	}
	d := Decision{Reason: Hold, HoldFor: o.HoldBound - waited}
	if c, ok := best(hs, func(*candidate) bool { return true }, (*candidate).lessLoaded); ok {
		d.Worker = c.id
	}
	return d
}
