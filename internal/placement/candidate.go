package placement

import (
	"slices"
	"strings"
)

// candidate is an eligible (alive, non-draining) worker as one decision
// sees it: the function's state there and the numbers its orderings use.
type candidate struct {
	id     string
	free   int    // free slots (never negative)
	score  uint64 // Score(function, id)
	fn     FunctionState
	fns    map[string]FunctionState // all its functions, for load
	load   int                      // once loaded
	loaded bool
}

// candidates returns pointers to v's live, non-draining workers, in v's
// order.
func candidates(v View, function string) []*candidate {
	cs := make([]candidate, 0, len(v.Workers))
	for _, w := range v.Workers {
		if !w.Alive || w.Draining {
			continue
		}
		cs = append(cs, candidate{id: w.ID, free: max(w.FreeSlots, 0), score: Score(function, w.ID),
			fn: w.Functions[function], fns: w.Functions})
	}
	ps := make([]*candidate, len(cs))
	for i := range cs {
		ps[i] = &cs[i]
	}
	return ps
}

// Load is the requests running or queued over all the worker's functions,
// summed on first use: most decisions compare the load of a few workers
// only (the homes, the warm ones), and a worker may publish hundreds of
// functions.
func (a *candidate) Load() int {
	if !a.loaded {
		for _, f := range a.fns {
			a.load += max(f.Busy, 0) + max(f.Queued, 0)
		}
		a.loaded = true
	}
	return a.load
}

// higher orders by rendezvous score, then id: the homes' order.
func (a *candidate) higher(b *candidate) bool {
	if a.score != b.score {
		return a.score > b.score
	}
	return a.id < b.id
}

// lessLoaded is the "least loaded" order: fewer requests running or
// queued, then more free slots, then the higher rendezvous score (so ties
// between equally idle workers spread different functions over different
// workers, yet every caller breaks them alike), then id.
func (a *candidate) lessLoaded(b *candidate) bool {
	if a.Load() != b.Load() {
		return a.Load() < b.Load()
	}
	if a.free != b.free {
		return a.free > b.free
	}
	return a.higher(b)
}

// cacheRank says how much of a restore is on the worker's disk: the
// snapshot directory itself (2) beats chunks in the disk cache (0), and a
// cached working set adds 1 (a reap/bulk restore reads it in one pass).
func (a *candidate) cacheRank() int {
	r := 0
	if a.fn.SnapshotLocal {
		r += 2
	}
	if a.fn.WorkingSetCached {
		r++
	}
	return r
}

// cached reports whether a restore there reads no object store.
func (a *candidate) cached() bool { return a.fn.SnapshotLocal || a.fn.SnapshotCached }

// best returns the first of cs that ok accepts under less, and whether
// there was one.
func best(cs []*candidate, ok func(*candidate) bool, less func(a, b *candidate) bool) (*candidate, bool) {
	var b *candidate
	for _, c := range cs {
		if ok(c) && (b == nil || less(c, b)) {
			b = c
		}
	}
	return b, b != nil
}

func hasFree(c *candidate) bool { return c.free > 0 }

func sortByID(cs []*candidate) {
	slices.SortFunc(cs, func(a, b *candidate) int { return strings.Compare(a.id, b.id) })
}
