package worker

import (
	"context"
	"math"
	"sync"
	"time"

	"github.com/thaw-run/thaw/internal/restore"
	"github.com/thaw-run/thaw/internal/snapshot"
	"github.com/thaw-run/thaw/internal/store"
	"github.com/thaw-run/thaw/internal/storesnap"
)

// How much of each function's snapshot the worker's store disk cache
// holds (FunctionState.Cached), for the cluster's placement: a worker
// whose disk cache holds what a restore reads restores without the object
// store (internal/placement's PeerCached rule).
//
// The measure is of the chunks a restore of the function's current
// snapshot reads from the store in the function's restore mode: the
// working set's (ws.img) for reap and bulk, the chunks of memory.img
// holding the working set's pages for lazy, every stored chunk of
// memory.img for eager and mmap, and for a snapshot without a working set
// every stored chunk of memory.img. Cached is the fraction of their bytes
// the disk cache holds. It is computed off the request path, by a
// goroutine of the store, every cachedRefresh and after each publish (which
// fills the cache): a lookup per chunk in the disk cache's index, a stat
// of the chunk's file for those not indexed (the pager child adds its
// fetches to the directory behind the index's back). Opening the stored
// snapshot reads its manifest (once: the store keeps it open); one that is
// not in the store yet is asked for again at most every reopenAfter.

// cachedRefresh is how often the cache measure is refreshed.
const cachedRefresh = 2 * time.Second

// cachedOpenTimeout bounds opening a stored snapshot for the measure.
const cachedOpenTimeout = 5 * time.Second

// containser is what the measure asks of the disk cache
// (disk.Backend.Contains).
type containser interface {
	Contains(name string) bool
}

// cachedState is the measure of each function's current stored snapshot,
// by store id.
type cachedState struct {
	cache containser
	kick  chan struct{}
	stop  chan struct{}
	done  chan struct{}

	mu   sync.Mutex
	byID map[string]cachedSnap
}

// cachedSnap is one stored snapshot's measure.
type cachedSnap struct {
	fraction float64
	// failed is when opening the stored snapshot last failed (zero if it
	// did not): not retried on a tick before reopenAfter.
	failed time.Time
}

// newCachedState returns the measure over cache (a disk cache), nil
// without one: then every function's Cached is 0.
func newCachedState(cache store.Backend) *cachedState {
	c, ok := cache.(containser)
	if !ok {
		return nil
	}
	return &cachedState{cache: c, kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{}),
		byID: map[string]cachedSnap{}}
}

// run refreshes the measure of fns() every cachedRefresh and when poked,
// until stopped or ctx ends.
func (c *cachedState) run(ctx context.Context, s *workerStore, fns func() []*function) {
	defer close(c.done)
	t := time.NewTicker(cachedRefresh)
	defer t.Stop()
	force := true
	for {
		c.refresh(ctx, s, fns(), force)
		select {
		case <-c.stop:
			return
		case <-ctx.Done():
			return
		case <-t.C:
			force = false
		case <-c.kick:
			force = true
		}
	}
}

// poke asks for a refresh now (a publish filled the cache), retrying
// snapshots that could not be opened.
func (c *cachedState) poke() {
	if c == nil {
		return
	}
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// close stops run and waits for it.
func (c *cachedState) close() {
	if c == nil {
		return
	}
	close(c.stop)
	<-c.done
}

// fraction is the measure of stored snapshot id (0 if unknown).
func (c *cachedState) fraction(id string) float64 {
	if c == nil {
		return 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.byID[id].fraction
}

// refresh measures the current snapshot of every function of fns and
// forgets the others.
func (c *cachedState) refresh(ctx context.Context, s *workerStore, fns []*function, force bool) {
	c.mu.Lock()
	old := c.byID
	c.mu.Unlock()
	next := make(map[string]cachedSnap, len(fns))
	for _, f := range fns {
		f.ckpt.mu.Lock()
		snap := f.ckpt.snap
		f.ckpt.mu.Unlock()
		mode := f.rec.Config.WithDefaults().mode()
		if snap == nil || mode == restore.Cold {
			continue
		}
		id := storesnap.ID(f.rec.Name, snap.Meta.ID)
		prev := old[id]
		if !force && !prev.failed.IsZero() && time.Since(prev.failed) < reopenAfter {
			next[id] = prev
			continue
		}
		octx, cancel := context.WithTimeout(ctx, cachedOpenTimeout)
		sn, err := s.open(octx, f, snap.Meta.ID, mode != restore.Eager && mode != restore.Mmap)
		cancel()
		if err != nil {
			next[id] = cachedSnap{failed: time.Now()}
			continue
		}
		next[id] = cachedSnap{fraction: c.measure(sn, mode)}
	}
	c.mu.Lock()
	c.byID = next
	c.mu.Unlock()
}

// measure is the fraction of the bytes a restore of sn in mode reads from
// the store that the disk cache holds, rounded down to a hundredth (so
// that a cache filling a chunk at a time does not rewrite the worker's
// membership entry on every chunk, and 1 means all of them).
func (c *cachedState) measure(sn *storesnap.Snapshot, mode restore.Mode) float64 {
	objs, err := restoreObjects(sn, mode)
	if err != nil {
		return 0
	}
	var total, held int64
	for _, o := range objs {
		total += int64(o.Size)
		if c.cache.Contains(o.Name) {
			held += int64(o.Size)
		}
	}
	if total == 0 {
		return 1 // nothing stored to read
	}
	return math.Floor(float64(held)/float64(total)*100) / 100
}

// restoreObjects lists the stored chunks a restore of sn in mode reads
// from the store (the faults outside a working set left out: they are
// what the working set failed to predict).
func restoreObjects(sn *storesnap.Snapshot, mode restore.Mode) ([]store.ChunkObject, error) {
	if mode.UsesWorkingSet() && sn.WS != nil {
		return sn.Snap.ChunkObjects(snapshot.WSImageFile)
	}
	objs, err := sn.Snap.ChunkObjects(snapshot.ImageFile)
	if err != nil || mode != restore.Lazy || sn.WS == nil {
		return objs, err
	}
	// The chunks holding a page of the working set: both lists are in
	// page order.
	var out []store.ChunkObject
	runs := sn.WS.Runs
	j := 0
	for _, o := range objs {
		end := o.Off + int64(o.Size)
		for j < len(runs) && int64(runs[j].Start+runs[j].Count)*snapshot.PageSize <= o.Off {
			j++
		}
		if j < len(runs) && int64(runs[j].Start)*snapshot.PageSize < end {
			out = append(out, o)
		}
	}
	return out, nil
}
