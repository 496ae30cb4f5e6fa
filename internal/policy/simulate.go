package policy

import (
	"fmt"
	"time"

	"github.com/thaw-run/thaw/internal/stats"
)

// SimResult is the outcome of Simulate.
type SimResult struct {
	// Starts[i] is the request number instance i started at (1: cold boot
	// or the initialisation snapshot).
	Starts []int
	// Latencies[i] are the latencies of the requests instance i served.
	Latencies [][]time.Duration
	// MaxPool is the largest pool seen after pruning.
	MaxPool int
}

// Percentile returns the p-th percentile (0..100, nearest rank, as
// stats.Percentile) of the latencies of the requests served by instances
// from, from+1, ... (0 if there are none).
func (r SimResult) Percentile(p float64, from int) time.Duration {
	var all []time.Duration
	for _, l := range r.Latencies[min(max(from, 0), len(r.Latencies)):] {
		all = append(all, l...)
	}
	return stats.Percentile(all, p)
}

// Simulate drives p as the worker does, for n instances each evicted after
// evictEvery requests, where request number r takes curve(r): each
// instance restores the snapshot p chooses (or boots cold), serves its
// requests, is snapshotted after the request p names, and the pool is
// pruned when over capacity (p's PoolSize if it is a PoolSizer, else 12,
// the worker's default). The pool starts with the initialisation snapshot
// (request 0). Restore and boot costs are not modelled, except that the
// first request of an instance restored from a snapshot no instance has
// restored before takes firstRestore more: on thaw a snapshot's first
// restore is slower than its repeats (docs/policy.md). A cold boot and the
// initialisation snapshot both serve request 1 next.
//
// It exists to compare policies on synthetic warm-up curves, in tests,
// benchmarks and docs/policy.md.
func Simulate(p Policy, curve func(req int) time.Duration, evictEvery, n int, firstRestore time.Duration) SimResult {
	capacity := DefaultParams().Pool
	if s, ok := p.(PoolSizer); ok {
		capacity = s.PoolSize()
	}
	evictEvery = max(evictEvery, 1)
	pool := []Candidate{{ID: "init", Request: 0}}
	res := SimResult{Starts: make([]int, n), Latencies: make([][]time.Duration, n), MaxPool: len(pool)}
	restored := map[string]bool{}
	for i := range n {
		start, penalty := 1, time.Duration(0)
		if c := p.Choose(pool); c != Cold {
			start = pool[c].Request + 1
			if !restored[pool[c].ID] {
				restored[pool[c].ID], penalty = true, firstRestore
			}
		}
		at := p.CheckpointAt(start)
		res.Starts[i] = start
		lat := make([]time.Duration, evictEvery)
		for j := range lat {
			req := start + j
			lat[j] = curve(req)
			if j == 0 {
				lat[j] += penalty
			}
			p.Observe(req, lat[j])
			if req == at {
				pool = append(pool, Candidate{ID: fmt.Sprintf("s%d", i), Request: req})
			}
		}
		res.Latencies[i] = lat
		if len(pool) > capacity {
			var kept []Candidate
			for _, k := range p.Prune(pool, capacity) {
				kept = append(kept, pool[k])
			}
			pool = kept
		}
		res.MaxPool = max(res.MaxPool, len(pool))
	}
	return res
}

// Warmup returns a latency curve falling linearly from first at request 1
// to last at request over, and flat at last after: the shape of a JIT
// runtime warming up.
func Warmup(first, last time.Duration, over int) func(req int) time.Duration {
	return func(req int) time.Duration {
		if req >= over || over <= 1 {
			return last
		}
		f := float64(max(req, 1)-1) / float64(over-1)
		return first + time.Duration(f*float64(last-first))
	}
}

// Flat returns a curve where every request takes d.
func Flat(d time.Duration) func(req int) time.Duration {
	return func(int) time.Duration { return d }
}
