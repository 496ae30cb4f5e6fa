package worker

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/thaw-run/thaw/internal/errdefs"
)

// pooled is what a pool asks of its instances.
type pooled interface {
	// Dead reports whether the instance can serve no more requests (it
	// trapped, timed out or was closed).
	Dead() bool
	// Close frees the instance.
	Close(ctx context.Context)
}

// pool is one function's instances: the idle ones, most recently used
// last, and a slot for every instance that is busy, starting or settling,
// at most max in all; requests that find neither an idle instance nor a
// free slot wait in a queue of at most maxQueue.
//
// The lifecycle of a slot: acquire hands out an idle instance or reserves
// a slot for a new one (or queues the caller until one frees up); the
// holder gives it back with put (the instance goes idle, or is closed if
// dead) or free (nothing was started in it). An instance held between a
// request and its return, for its idle call and checkpoint, is settling
// (beginSettle, then put or free with settled set): a request that finds
// no idle instance waits for it rather than start another. Idle instances
// leave through acquire, reap, evictOldest and shutdown; the pool closes
// the ones it drops.
//
// A pool has its own lock and takes no other: callers may hold any lock
// but the pool's while they call it.
type pool[T pooled] struct {
	// name is the function's, for errors.
	name          string
	max, maxQueue int
	// idleGauge follows len(idle) (thaw_instances{state="idle"}).
	idleGauge prometheus.Gauge

	mu    sync.Mutex
	idle  []idleInstance[T] // most recently used last
	total int               // idle + busy + starting + settling
	// waiting counts requests queued for an instance.
	waiting int
	// memWaiting counts requests holding a slot while they wait for the
	// worker's memory budget (reserveMemory); they share maxQueue.
	memWaiting int
	// settling counts instances between a request and their return to
	// the pool.
	settling int
	wake     chan struct{} // closed and replaced when a slot or instance frees up
	closed   bool
}

// idleInstance is an idle instance and when it last served.
type idleInstance[T pooled] struct {
	inst     T
	lastUsed time.Time
}

// newPool returns an empty pool of at most max instances and maxQueue
// waiting requests for function name; idleGauge counts its idle
// instances.
func newPool[T pooled](name string, max, maxQueue int, idleGauge prometheus.Gauge) *pool[T] {
	return &pool[T]{name: name, max: max, maxQueue: maxQueue, idleGauge: idleGauge, wake: make(chan struct{})}
}

// acquire returns an idle instance (ok set), or reserves a slot for a new
// one (ok clear), waiting in the bounded queue when the pool is full. A
// fresh request insists on a new instance, retiring an idle one to make
// room if it must. Waiting ends with ctx.
func (p *pool[T]) acquire(ctx context.Context, fresh bool) (inst T, ok bool, err error) {
	for {
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			return inst, false, fmt.Errorf("function %q was replaced or deleted: %w", p.name, errdefs.ErrUnavailable)
		}
		if n := len(p.idle); n > 0 && !fresh {
			inst = p.idle[n-1].inst
			p.idle = p.idle[:n-1]
			p.mu.Unlock()
			p.idleGauge.Dec()
			return inst, true, nil
		}
		// An instance settling after its last request (idle call,
		// checkpoint copy) is about to be free: wait for it rather than
		// start another, unless as many requests already wait as there
		// are settling instances, or the queue is full.
		if p.total < p.max && (fresh || p.waiting >= p.settling || p.waiting >= p.maxQueue) {
			p.total++
			p.mu.Unlock()
			return inst, false, nil
		}
		if fresh && len(p.idle) > 0 {
			// Make room for the fresh instance by retiring an idle one.
			victim := p.idle[0].inst
			p.idle = p.idle[1:]
			p.mu.Unlock()
			p.idleGauge.Dec()
			victim.Close(ctx)
			return inst, false, nil
		}
		if p.waiting+p.memWaiting >= p.maxQueue {
			n := p.waiting + p.memWaiting
			p.mu.Unlock()
			return inst, false, fmt.Errorf("function %q: %d requests already queued: %w", p.name, n, errdefs.ErrOverloaded)
		}
		p.waiting++
		wake := p.wake
		p.mu.Unlock()
		select {
		case <-wake:
			p.mu.Lock()
			p.waiting--
			p.mu.Unlock()
		case <-ctx.Done():
			p.mu.Lock()
			p.waiting--
			p.mu.Unlock()
			return inst, false, ctx.Err()
		}
	}
}

// admits reports whether a request would find room now (an idle
// instance, a free slot or a place in the queue), and how many wait.
func (p *pool[T]) admits() (ok bool, waiting int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.idle) > 0 || p.total < p.max || p.waiting < p.maxQueue, p.waiting
}

// put returns inst, which holds a slot, to the pool and wakes the queue.
// A dead instance, or any once the pool is shut down, is closed and its
// slot freed instead. settled says the slot was settling (beginSettle).
// put reports whether inst went idle.
func (p *pool[T]) put(inst T, settled bool) (kept bool) {
	p.mu.Lock()
	kept = !inst.Dead() && !p.closed
	if kept {
		p.idle = append(p.idle, idleInstance[T]{inst: inst, lastUsed: time.Now()})
	}
	p.releaseLocked(!kept, settled)
	p.mu.Unlock()
	if kept {
		p.idleGauge.Inc()
	} else {
		inst.Close(context.Background())
	}
	return kept
}

// free gives back a slot in which no instance runs (its start failed, or
// its instance was closed) and wakes the queue.
func (p *pool[T]) free(settled bool) {
	p.mu.Lock()
	p.releaseLocked(true, settled)
	p.mu.Unlock()
}

// releaseLocked ends a slot's hold: it frees the slot if freed is set,
// ends its settling if settled is, and wakes the queue. p.mu is held.
func (p *pool[T]) releaseLocked(freed, settled bool) {
	if settled {
		p.settling--
	}
	if freed {
		p.total--
	}
	close(p.wake)
	p.wake = make(chan struct{})
}

// adopt puts an instance started outside acquire (the deploy's boot
// instance) in the pool, taking a slot for it; as put, it reports whether
// the instance went idle.
func (p *pool[T]) adopt(inst T) bool {
	p.mu.Lock()
	p.total++
	p.mu.Unlock()
	return p.put(inst, false)
}

// beginSettle marks a held slot as settling until its put or free.
func (p *pool[T]) beginSettle() {
	p.mu.Lock()
	p.settling++
	p.mu.Unlock()
}

// awaitSettled waits until no instance is settling, so that every instance
// not serving a request is idle.
func (p *pool[T]) awaitSettled() {
	p.mu.Lock()
	for p.settling > 0 {
		wake := p.wake
		p.mu.Unlock()
		<-wake
		p.mu.Lock()
	}
	p.mu.Unlock()
}

// queued reports whether a request is waiting for an instance.
func (p *pool[T]) queued() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.waiting > 0
}

// joinMemoryQueue counts a slot holder as waiting for memory, in the
// queue requests share, unless the queue is full; it returns how many
// were queued before it. leaveMemoryQueue ends the wait.
func (p *pool[T]) joinMemoryQueue() (queued int, ok bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	queued = p.waiting + p.memWaiting
	if queued >= p.maxQueue {
		return queued, false
	}
	p.memWaiting++
	return queued, true
}

// leaveMemoryQueue ends a joinMemoryQueue.
func (p *pool[T]) leaveMemoryQueue() {
	p.mu.Lock()
	p.memWaiting--
	p.mu.Unlock()
}

// holders counts the slots whose instances hold memory: busy, starting
// and settling ones, not those waiting for memory.
func (p *pool[T]) holders() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.total - len(p.idle) - p.memWaiting
}

// oldestIdle returns when the least recently used idle instance last
// served, if there is one the pool may give up while keeping floor
// instances.
func (p *pool[T]) oldestIdle(floor int) (lastUsed time.Time, ok bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.idle) == 0 || p.total <= floor {
		return time.Time{}, false
	}
	return p.idle[0].lastUsed, true
}

// evictOldest closes the least recently used idle instance, unless that
// would leave fewer than floor instances; it reports whether it did.
func (p *pool[T]) evictOldest(floor int) bool {
	p.mu.Lock()
	if len(p.idle) == 0 || p.total <= floor {
		p.mu.Unlock()
		return false
	}
	inst := p.idle[0].inst
	p.idle = p.idle[1:]
	p.total--
	p.mu.Unlock()
	p.idleGauge.Dec()
	inst.Close(context.Background())
	return true
}

// reap closes the instances idle for longer than keepAlive at now, oldest
// first, keeping floor instances.
func (p *pool[T]) reap(ctx context.Context, now time.Time, keepAlive time.Duration, floor int) {
	var victims []T
	p.mu.Lock()
	for len(p.idle) > 0 && p.total > floor && now.Sub(p.idle[0].lastUsed) > keepAlive {
		victims = append(victims, p.idle[0].inst)
		p.idle = p.idle[1:]
		p.total--
	}
	p.mu.Unlock()
	for _, v := range victims {
		p.idleGauge.Dec()
		v.Close(ctx)
	}
}

// shutdown closes the idle instances and the pool: acquire fails from now
// on, and busy instances are closed when they are put back.
func (p *pool[T]) shutdown(ctx context.Context) {
	p.mu.Lock()
	p.closed = true
	idle := p.idle
	p.idle = nil
	p.total -= len(idle)
	close(p.wake)
	p.wake = make(chan struct{})
	p.mu.Unlock()
	for _, e := range idle {
		p.idleGauge.Dec()
		e.inst.Close(ctx)
	}
}

// queuedCount is how many requests wait for an instance or for memory.
func (p *pool[T]) queuedCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.waiting + p.memWaiting
}

// counts returns the idle instances and all slots taken.
func (p *pool[T]) counts() (idle, total int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.idle), p.total
}

// reserve takes a free slot for an instance started outside a request
// (Worker.Prewarm), without waiting: false when the pool is closed, full,
// or already has an idle instance.
func (p *pool[T]) reserve() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || len(p.idle) > 0 || p.total >= p.max {
		return false
	}
	p.total++
	return true
}
