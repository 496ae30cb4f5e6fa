package worker

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// Work left for after the response.
//
// Once a call has returned, its instance settles on a goroutine of its own
// (function.settle), and a restore may ask for a spare region
// (restore.Restorer.Spare) on another. Starting a goroutine while the
// other CPU idles wakes that CPU, and on this project's VMs the waking
// cost the request 21-26 µs (docs/restore.md, "After the response"), as
// much as a third of a warm call of a small function. A caller that can
// send the response first passes a context from WithAfterResponse to
// Invoke and calls Run once the response is out; the goroutines start
// then. Other callers pay for them inside Invoke, as before.
//
// Until Run, the instance is neither idle nor closed, and a request may
// be waiting for it; so a response that cannot be sent (a client that
// reads nothing) must not hold it for long. The worker starts any work
// left for more than afterBound itself (Worker.reaper).

// afterBound is how long work left for after a response may wait for Run.
const afterBound = 100 * time.Millisecond

// AfterResponse holds the work invocations left for after their response
// (WithAfterResponse).
type AfterResponse struct {
	mu   sync.Mutex
	fns  []func()
	done bool
	// since is when work was first left; late, the set that lets the
	// worker run it past afterBound.
	since time.Time
	late  *lateWork
}

type afterKey struct{}

// WithAfterResponse returns a context under which Invoke leaves the start
// of its background work to a.Run. The caller calls a.Run once the
// response is sent (a deferred call as well is safest); work not run
// within afterBound is started by the worker.
func WithAfterResponse(ctx context.Context) (context.Context, *AfterResponse) {
	a := &AfterResponse{}
	return context.WithValue(ctx, afterKey{}, a), a
}

// Run starts the work left so far, once; work left after Run starts at
// once.
func (a *AfterResponse) Run() {
	a.mu.Lock()
	fns, late := a.fns, a.late
	a.fns, a.late, a.done = nil, nil, true
	a.mu.Unlock()
	if late != nil {
		late.remove(a)
	}
	for _, fn := range fns {
		fn()
	}
}

// lateWork is a worker's AfterResponses holding work, for the reaper to
// run those past afterBound.
type lateWork struct {
	mu   sync.Mutex
	pend map[*AfterResponse]struct{}
	// bound, if set, replaces afterBound (tests).
	bound atomic.Int64
}

func (l *lateWork) add(a *AfterResponse) {
	l.mu.Lock()
	if l.pend == nil {
		l.pend = map[*AfterResponse]struct{}{}
	}
	l.pend[a] = struct{}{}
	l.mu.Unlock()
}

func (l *lateWork) remove(a *AfterResponse) {
	l.mu.Lock()
	delete(l.pend, a)
	l.mu.Unlock()
}

// runOverdue runs the work left before now-afterBound.
func (l *lateWork) runOverdue(now time.Time) {
	l.mu.Lock()
	if len(l.pend) == 0 {
		l.mu.Unlock()
		return
	}
	pend := make([]*AfterResponse, 0, len(l.pend))
	for a := range l.pend {
		pend = append(pend, a)
	}
	l.mu.Unlock()
	bound := afterBound
	if b := l.bound.Load(); b > 0 {
		bound = time.Duration(b)
	}
	for _, a := range pend {
		a.mu.Lock()
		due := now.Sub(a.since) >= bound
		a.mu.Unlock()
		if due {
			a.Run()
		}
	}
}

// afterResponse runs fn when ctx's AfterResponse runs (at the latest
// afterBound from now), or now if ctx has none or it has run.
func (w *Worker) afterResponse(ctx context.Context, fn func()) {
	a, _ := ctx.Value(afterKey{}).(*AfterResponse)
	if a != nil {
		a.mu.Lock()
		if !a.done {
			if a.late == nil {
				// Under a.mu, so that Run, which removes it, cannot
				// come between (lock order: a.mu, then the set's).
				a.since, a.late = time.Now(), &w.late
				w.late.add(a)
			}
			a.fns = append(a.fns, fn)
			a.mu.Unlock()
			return
		}
		a.mu.Unlock()
	}
	fn()
}
