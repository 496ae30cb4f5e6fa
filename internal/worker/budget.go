package worker

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/thaw-run/thaw/internal/engine"
	"github.com/thaw-run/thaw/internal/errdefs"
)

// memBudget is the worker-wide memory budget (Options.MemoryBudgetMiB).
//
// Every instance reserves its function's memory cap (memory_mib) before it
// starts and gives it back when its memory region is released. Reserving
// the cap rather than what the guest has touched is what makes the bound
// hold: regions are MAP_NORESERVE, so without it instances could grow
// until the kernel's OOM killer took the whole worker. Idle regions kept
// by the region pool count too, but they are only a cache: a reservation
// that needs their room unmaps them (Trim), and the pool keeps no more
// than the room reservations leave (its limit).
type memBudget struct {
	total uint64
	pool  *engine.RegionPool // nil without a region pool

	mu       sync.Mutex
	reserved uint64
	wake     chan struct{} // closed and replaced when memory may have come free
}

func newMemBudget(total uint64, pool *engine.RegionPool) *memBudget {
	b := &memBudget{total: total, pool: pool, wake: make(chan struct{})}
	if pool != nil {
		pool.SetLimit(b.room)
	}
	return b
}

// room is what reservations leave of the budget: the most the region pool
// may keep.
func (b *memBudget) room() uint64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.total - b.reserved
}

// used is the memory charged to the budget: reservations and the idle
// regions the pool keeps.
func (b *memBudget) used() uint64 {
	b.mu.Lock()
	r := b.reserved
	b.mu.Unlock()
	if b.pool != nil {
		_, held := b.pool.Idle()
		r += held
	}
	return r
}

// tryReserve takes n bytes if reservations leave room for them, unmapping
// pooled regions to make that room real.
func (b *memBudget) tryReserve(n uint64) (*reservation, bool) {
	b.mu.Lock()
	if n > b.total-b.reserved {
		b.mu.Unlock()
		return nil, false
	}
	b.reserved += n
	room := b.total - b.reserved
	b.mu.Unlock()
	if b.pool != nil {
		b.pool.Trim(room)
	}
	return &reservation{b: b, n: n}, true
}

// notify wakes requests waiting for memory: some may have come free, or
// an instance became idle and can be evicted.
func (b *memBudget) notify() {
	b.mu.Lock()
	close(b.wake)
	b.wake = make(chan struct{})
	b.mu.Unlock()
}

func (b *memBudget) waitChan() <-chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.wake
}

// reservation is one instance's share of the budget.
type reservation struct {
	b    *memBudget
	n    uint64
	once sync.Once
}

// release gives the reservation back; only the first call counts.
func (r *reservation) release() {
	r.once.Do(func() {
		r.b.mu.Lock()
		r.b.reserved -= r.n
		r.b.mu.Unlock()
		r.b.notify()
	})
}

// attach ties the reservation to the instance's memory: it is released
// when the region is, however the instance ends (closed, killed at its
// deadline, evicted).
func (r *reservation) attach(inst engine.Instance) { inst.Region().OnFree(r.release) }

// memoryCap is what an instance of f reserves.
func (f *function) memoryCap() uint64 { return uint64(f.rec.Config.MemoryMiB) << 20 }

// reserveMemory reserves the memory cap of a new instance of f. When the
// budget is short it evicts idle instances (least recently used first,
// never below a function's min_instances); when none is left to evict it
// waits, in f's bounded queue and for at most f's timeout, for a busy
// instance to finish, if there is one. Otherwise, or past the queue bound
// or the wait, it fails with errdefs.ErrUnavailable (503): the worker
// refuses work rather than overcommit memory.
func (w *Worker) reserveMemory(ctx context.Context, f *function) (*reservation, error) {
	n := f.memoryCap()
	if n > w.budget.total {
		return nil, w.refuse(f, fmt.Errorf("function %q: memory_mib %d exceeds the worker's memory budget of %d MiB: %w",
			f.rec.Name, f.rec.Config.MemoryMiB, w.budget.total>>20, errdefs.ErrUnavailable))
	}
	var deadline <-chan time.Time
	waiting := false
	defer func() {
		if waiting {
			f.pool.leaveMemoryQueue()
		}
	}()
	for {
		// Take the wake channel before trying, so that a release between
		// the try and the wait is not missed.
		wake := w.budget.waitChan()
		if r, ok := w.budget.tryReserve(n); ok {
			return r, nil
		}
		if w.evictIdle(f) {
			continue
		}
		pending := 1 // f's slot for this request, until it is counted as waiting
		if waiting {
			pending = 0
		}
		if !w.othersBusy(f, pending) {
			return nil, w.refuse(f, fmt.Errorf("function %q: worker memory budget exhausted (%d of %d MiB reserved, %d MiB needed, no instance to evict): %w",
				f.rec.Name, w.budget.used()>>20, w.budget.total>>20, n>>20, errdefs.ErrUnavailable))
		}
		if !waiting {
			if q, ok := f.pool.joinMemoryQueue(); !ok {
				return nil, w.refuse(f, fmt.Errorf("function %q: worker memory budget exhausted (%d of %d MiB reserved) and %d requests already queued: %w",
					f.rec.Name, w.budget.used()>>20, w.budget.total>>20, q, errdefs.ErrUnavailable))
			}
			waiting = true
			deadline = time.After(time.Duration(f.rec.Config.Timeout))
			// Other waiters re-check: this request's slot no longer
			// counts as an instance that may free memory.
			w.budget.notify()
		}
		select {
		case <-wake:
		case <-deadline:
			return nil, w.refuse(f, fmt.Errorf("function %q: worker memory budget exhausted (%d of %d MiB reserved) for %s: %w",
				f.rec.Name, w.budget.used()>>20, w.budget.total>>20, time.Duration(f.rec.Config.Timeout), errdefs.ErrUnavailable))
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

func (w *Worker) refuse(f *function, err error) error {
	w.metrics.budgetRefusals.WithLabelValues(f.rec.Name).Inc()
	return err
}

// othersBusy reports whether some instance that holds memory is serving,
// starting or settling, and so may soon free it or become evictable.
// Slots of requests waiting for memory hold none and do not count, nor do
// self's pending slots (this request's, before it waits).
func (w *Worker) othersBusy(self *function, pending int) bool {
	w.mu.Lock()
	fns := make([]*function, 0, len(w.fns))
	for _, g := range w.fns {
		fns = append(fns, g)
	}
	w.mu.Unlock()
	for _, g := range fns {
		holders := g.pool.holders()
		if g == self {
			holders -= pending
		}
		if holders > 0 {
			return true
		}
	}
	return false
}

// evictIdle closes the least recently used idle instance of any function
// that has more than its min_instances, and reports whether it found one.
// The version of a function that self's deploy replaces keeps no floor:
// checkFits did not count it.
func (w *Worker) evictIdle(self *function) bool {
	w.mu.Lock()
	fns := make([]*function, 0, len(w.fns))
	for _, f := range w.fns {
		fns = append(fns, f)
	}
	w.mu.Unlock()
	floor := func(g *function) int {
		if g != self && g.rec.Name == self.rec.Name {
			return 0
		}
		return g.rec.Config.MinInstances
	}
	var victim *function
	var oldest time.Time
	for _, f := range fns {
		if used, ok := f.pool.oldestIdle(floor(f)); ok && (victim == nil || used.Before(oldest)) {
			victim, oldest = f, used
		}
	}
	if victim == nil {
		return false
	}
	// If another request took it meanwhile, the caller tries again.
	if victim.pool.evictOldest(floor(victim)) {
		w.metrics.budgetEvictions.WithLabelValues(victim.rec.Name).Inc()
	}
	return true
}

// checkFits refuses a deployment whose instances cannot fit the budget:
// one instance (min_instances of them if more) beside the instances every
// other function keeps warm.
func (w *Worker) checkFits(name string, cfg Config) error {
	need := uint64(cfg.MemoryMiB) << 20 * uint64(max(cfg.MinInstances, 1))
	var pinned uint64
	w.mu.Lock()
	for n, f := range w.fns {
		if n != name {
			pinned += uint64(f.rec.Config.MemoryMiB) << 20 * uint64(f.rec.Config.MinInstances)
		}
	}
	w.mu.Unlock()
	if need+pinned > w.budget.total {
		return fmt.Errorf("config: memory_mib %d x %d instances needs %d MiB, and the worker's memory budget of %d MiB has %d MiB left beside other functions' min_instances: %w",
			cfg.MemoryMiB, max(cfg.MinInstances, 1), need>>20, w.budget.total>>20, (w.budget.total-min(pinned, w.budget.total))>>20, errdefs.ErrInvalid)
	}
	return nil
}

// DefaultMemoryBudget is the budget a worker takes when none is configured:
// three quarters of the machine's memory, or of the cgroup's limit when
// that is lower, leaving the rest to the worker's own heap, the page cache
// its snapshots are read through, and the pager. It returns 0 if neither
// can be read.
func DefaultMemoryBudget() uint64 {
	total := memTotal()
	if lim := cgroupMemoryLimit(); lim > 0 && (total == 0 || lim < total) {
		total = lim
	}
	return total / 4 * 3
}

// memTotal is MemTotal from /proc/meminfo in bytes (0 if unreadable).
func memTotal() uint64 {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) >= 2 && f[0] == "MemTotal:" {
			kb, err := strconv.ParseUint(f[1], 10, 64)
			if err != nil || kb > 1<<50 {
				return 0
			}
			return kb << 10
		}
	}
	return 0
}

// cgroupMemoryLimit is the memory limit of the process's cgroup (v2
// memory.max, else v1 memory.limit_in_bytes), or 0 if there is none.
func cgroupMemoryLimit() uint64 {
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return 0
	}
	var files []string
	for _, line := range strings.Split(string(b), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		p := filepath.Clean("/" + parts[2])
		switch {
		case parts[0] == "0" && parts[1] == "":
			files = append(files, filepath.Join("/sys/fs/cgroup", p, "memory.max"), "/sys/fs/cgroup/memory.max")
		case strings.Contains(","+parts[1]+",", ",memory,"):
			files = append(files, filepath.Join("/sys/fs/cgroup/memory", p, "memory.limit_in_bytes"), "/sys/fs/cgroup/memory/memory.limit_in_bytes")
		}
	}
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			continue
		}
		v, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
		if err != nil || v >= 1<<60 { // "max", or v1's "unlimited" (about 2^63)
			continue
		}
		return v
	}
	return 0
}
