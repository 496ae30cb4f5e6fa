package restore

import (
	"context"
	"sync"
	"time"
)

// Spare regions.
//
// A bulk restore that finds no idle region of its function in the pool
// maps a new one, and pays on its start for what a reused region has
// already done: every working-set page is a first touch of fresh memory (a
// trip to the hypervisor on a virtual machine, 25 µs a page on this
// project's VMs), and the pager session is handed over instead of opened
// ahead (ahead.go). On such a VM that made a new-region restore of hello
// 2.3-2.6 ms against 0.3-0.4 ms in a reused region (docs/restore.md, "A
// read without a thread"). New regions are needed whenever more instances
// start than the pool holds regions for: a burst, load that grows, or the
// second restore after a quiet spell.
//
// So the pool keeps a spare: once an instance whose bulk restore left the
// pool without an idle region of its function has served its first
// request, the worker asks for one (Restorer.Spare). In the background, a
// bulk restore of the same snapshot goes into a new region, which is freed
// as soon as it is ready: its fill has touched the working-set pages, and
// its release prescrubs the region and opens a pager session ahead, as
// every bulk restore's does. The region then waits in the pool, and the
// next instance that needs one starts as fast as in a reused region. No
// guest request runs in a spare. Where the engine keeps closed instances
// with their regions (engine.Module.KeepsInstances: wasmtime), the worker
// has an instance restored over the spare's memory and closed at once
// (SpareFunc), so that the region also keeps an instance for the next
// restore to reset instead of instantiating (engine.Region.Bequeath); its
// restore hook is the only guest code that runs, and the next restore's
// fill overwrites every page that hook could have written in the working
// set (the rest is scrubbed).
//
// At most one spare per function is prepared at a time, and none when the
// pool could not keep the region (its budget, lowered by the worker's
// memory budget). A spare is an idle pooled region like any other: it
// counts against the pool's budget and is unmapped, least recently freed
// first, when room is needed. A spare that fails (the snapshot was
// replaced or damaged meanwhile, the pager is gone) is counted as failed
// and its region unmapped, unless the engine had already freed it back to
// the pool, where, like any region, it is scrubbed before its next use.

// spareOf is what a spare for the next restore of a snapshot needs: the
// restore's source, its pool key and memory cap, and whether it recorded
// (the pager session opened ahead serves only a restore with the same
// options).
type spareOf struct {
	src    Source
	key    string
	limit  uint64
	record bool
}

// SpareFunc finishes a spare's memory m, whose restore from src is ready
// once ready returns nil: it restores an engine instance over m's region,
// running ready while it instantiates (engine.Module.RestoreWhen), and
// closes it, which frees the region. It need not free the region on error.
type SpareFunc func(ctx context.Context, m *Memory, src Source, ready func() error) error

// spareTimeout bounds a spare's restore: it reads what a request's restore
// reads, in the background.
const spareTimeout = time.Minute

// spares tracks the spares being prepared.
type spares struct {
	mu   sync.Mutex
	busy map[string]bool // pool keys with a spare being prepared
	// done is signalled when a spare ends (a sync.WaitGroup would forbid
	// a Spare concurrent with WaitSpares).
	done         *sync.Cond
	made, failed int64
}

// cond returns s.done, made on first use; the caller holds s.mu.
func (s *spares) cond() *sync.Cond {
	if s.done == nil {
		s.done = sync.NewCond(&s.mu)
	}
	return s.done
}

// SpareCounts reports how many spares were prepared and how many failed.
func (r *Restorer) SpareCounts() (made, failed int64) {
	r.spares.mu.Lock()
	defer r.spares.mu.Unlock()
	return r.spares.made, r.spares.failed
}

// Spare prepares, in the background, a spare region for the next bulk
// restore of m's snapshot, if m's own restore left the pool without an
// idle region of its function (Spares set, a bulk restore that mapped a
// new region or took the last pooled one), no spare of the function is
// being prepared, and the pool could keep it. Call it once the instance
// has answered its first request: a spare's restore competes with the
// request's for the CPU. Only the first call for m does anything. With
// nil, the spare keeps only its memory.
func (r *Restorer) Spare(m *Memory, with SpareFunc) {
	m.mu.Lock()
	s := m.spare
	m.spare = nil
	m.mu.Unlock()
	if s == nil || r.Regions == nil || uint64(s.src.Meta().ImageSize) > r.Regions.Room() {
		return
	}
	r.spares.mu.Lock()
	if r.spares.busy[s.key] {
		r.spares.mu.Unlock()
		return
	}
	if r.spares.busy == nil {
		r.spares.busy = map[string]bool{}
	}
	r.spares.busy[s.key] = true
	r.spares.mu.Unlock()
	go func() {
		err := r.prepareSpare(s, with)
		r.spares.mu.Lock()
		delete(r.spares.busy, s.key)
		if err != nil {
			r.spares.failed++
		} else {
			r.spares.made++
		}
		r.spares.cond().Broadcast()
		r.spares.mu.Unlock()
	}()
}

// WaitSpares waits until no spare is being prepared. A worker calls it
// before it closes the pager and the pool, a benchmark before a trial.
func (r *Restorer) WaitSpares() {
	r.spares.mu.Lock()
	defer r.spares.mu.Unlock()
	for len(r.spares.busy) > 0 {
		r.spares.cond().Wait()
	}
}

// prepareSpare restores s's snapshot in bulk mode (and an instance over
// it, with) and frees the memory at once: the region goes back to the
// pool prescrubbed, with its working-set pages touched and a pager session
// opened ahead.
func (r *Restorer) prepareSpare(s *spareOf, with SpareFunc) error {
	ctx, cancel := context.WithTimeout(context.Background(), spareTimeout)
	defer cancel()
	m, ready, err := r.start(ctx, Bulk, s.src, s.limit, s.record, true)
	if err != nil {
		return err
	}
	if ready == nil {
		ready = func() error { return nil }
	}
	if with != nil {
		err = with(ctx, m, s.src, ready)
	} else {
		err = ready()
	}
	if err != nil {
		// Perhaps half filled: not pooled, if the region is still ours
		// (RestoreWhen frees it on error, and a pooled region is always
		// scrubbed).
		m.Region.NoReuse()
	}
	m.Region.Free()
	return err
}
