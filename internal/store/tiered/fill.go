package tiered

import (
	"context"
	"sync"
)

// DefaultMaxPendingFill bounds the bytes waiting to be written into
// asynchronous cache tiers when Config.MaxPendingFill is zero.
const DefaultMaxPendingFill = 64 << 20

// filler writes copies into asynchronous cache tiers (Tier.Async) off the
// read path: a reader that fetched an object from a lower tier hands the
// copy over and returns, and one goroutine writes it into those tiers.
// It is bounded in bytes: a fill that would exceed the bound is dropped
// (counted), which only costs a later cache miss.
//
// Only copies that passed the reader's check are handed over, so an
// asynchronous fill never caches anything a synchronous one would not.
type filler struct {
	b     *Backend
	limit int64

	mu       sync.Mutex
	cond     *sync.Cond // broadcast when work arrives, a fill ends, or on close
	queue    []string   // names in arrival order; a name without a job was cancelled
	jobs     map[string]fillJob
	inflight map[string]bool
	bytes    int64
	closed   bool
	done     chan struct{}

	dropped, written int64
}

type fillJob struct {
	data  []byte
	tiers []int
}

func newFiller(b *Backend, limit int64) *filler {
	f := &filler{b: b, limit: limit, jobs: map[string]fillJob{}, inflight: map[string]bool{}, done: make(chan struct{})}
	f.cond = sync.NewCond(&f.mu)
	go f.run()
	return f
}

// add queues data for the cache tiers at indexes tiers, unless the same
// name is already on its way, the bound is reached, or the filler is closed.
// data must not be modified afterwards.
func (f *filler) add(name string, data []byte, tiers []int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, queued := f.jobs[name]; queued || f.inflight[name] || f.closed {
		return
	}
	if f.bytes+int64(len(data)) > f.limit {
		f.dropped++
		return
	}
	f.jobs[name] = fillJob{data: data, tiers: tiers}
	f.queue = append(f.queue, name)
	f.bytes += int64(len(data))
	f.cond.Broadcast()
}

// cancel forgets a queued fill of name and waits for one being written, so
// that a Delete of name is not undone by a fill that started before it.
func (f *filler) cancel(name string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if j, ok := f.jobs[name]; ok {
		delete(f.jobs, name)
		f.bytes -= int64(len(j.data))
	}
	for f.inflight[name] {
		f.cond.Wait()
	}
}

// wait blocks until every fill queued so far has been written or dropped.
func (f *filler) wait() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for len(f.jobs) > 0 || len(f.inflight) > 0 {
		f.cond.Wait()
	}
}

// close writes what is queued and stops the goroutine.
func (f *filler) close() {
	f.mu.Lock()
	f.closed = true
	f.cond.Broadcast()
	f.mu.Unlock()
	<-f.done
}

func (f *filler) run() {
	defer close(f.done)
	f.mu.Lock()
	defer f.mu.Unlock()
	for {
		for len(f.queue) == 0 && !f.closed {
			f.cond.Wait()
		}
		if len(f.queue) == 0 {
			return // closed and drained
		}
		name := f.queue[0]
		f.queue = f.queue[1:]
		j, ok := f.jobs[name]
		if !ok {
			continue // cancelled
		}
		delete(f.jobs, name)
		f.bytes -= int64(len(j.data))
		f.inflight[name] = true
		f.mu.Unlock()
		for _, i := range j.tiers {
			t := f.b.cfg.Caches[i]
			if err := t.Backend.Put(context.Background(), name, j.data); err != nil {
				f.b.cfg.Logger.Debug("store cache fill failed", "tier", t.Name, "name", name, "err", err)
			}
		}
		f.mu.Lock()
		delete(f.inflight, name)
		f.written++
		f.cond.Broadcast()
	}
}

// FillStats counts the asynchronous cache fills of a Backend.
type FillStats struct {
	// Written fills reached their tiers (a tier's own failure, such as a
	// full disk, is logged at debug level and still counted here).
	Written int64
	// Dropped fills found MaxPendingFill bytes already waiting.
	Dropped int64
	// Pending fills are queued or being written.
	Pending int
}

// FillStats returns the counts of asynchronous cache fills.
func (b *Backend) FillStats() FillStats {
	f := b.filler
	f.mu.Lock()
	defer f.mu.Unlock()
	return FillStats{Written: f.written, Dropped: f.dropped, Pending: len(f.jobs) + len(f.inflight)}
}

// WaitFills blocks until every asynchronous cache fill queued so far has
// been written (tests, benchmarks, and before handing the cache directory
// to another process).
func (b *Backend) WaitFills() { b.filler.wait() }
