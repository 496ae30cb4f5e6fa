package engine

import (
	"fmt"
	"io"

	"github.com/thaw-run/thaw/internal/timeline"
)

// Bequeath leaves c under key with the region for its next owner from
// the pool, which takes it with Inherit(key). The owner calls it when it
// is done with the region, for something that only that next owner can
// use and that costs time to make: a restore leaves a pager session
// opened ahead for the same snapshot, so the next restore's start skips
// the hand-off to the pager processes (docs/restore.md, "Fixed cost of a
// restore"); an engine may leave the instance itself, for one whose state
// a restore resets entirely (rewrite.Info.Resettable). Each user has its
// own key.
//
// The region owns c from now on: it is closed if the region is not handed
// on (no pool, NoReuse, the pool is over its budget or closed), when the
// pool unmaps the region while it is idle, when the next owner frees the
// region without taking it, and when a later Bequeath under the same key
// replaces it. c.Close may block (a round trip to another process); it
// never runs under the pool's lock.
func (r *Region) Bequeath(key string, c io.Closer) {
	r.mu.Lock()
	old := r.bequests[key]
	delete(r.bequests, key)
	if r.pool != nil && !r.noReuse && r.mem != nil {
		if r.bequests == nil {
			r.bequests = map[string]io.Closer{}
		}
		r.bequests[key], c = c, nil
	}
	r.mu.Unlock()
	closeAll(old, c)
}

// Inherit takes what the region's previous owner left under key with
// Bequeath, or nil. The caller owns it, and closes it if it cannot use it.
func (r *Region) Inherit(key string) io.Closer {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := r.inheritance[key]
	delete(r.inheritance, key)
	return c
}

// Pooled reports whether the region goes back to a pool when freed (it
// may still be unmapped there, if the pool is over its budget): only then
// is a Prescrub or a Bequeath of use.
func (r *Region) Pooled() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.pool != nil && !r.noReuse && r.mem != nil
}

// dropInheritance takes what the previous owner left and this one did not
// take, for closeAll.
func (r *Region) dropInheritance() []io.Closer {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := values(r.inheritance)
	r.inheritance = nil
	return out
}

// dropBequests takes the region's bequests and the inheritance its owner
// did not take, for closeAll.
func (r *Region) dropBequests() []io.Closer {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := append(values(r.bequests), values(r.inheritance)...)
	r.bequests, r.inheritance = nil, nil
	return out
}

// values lists a bequest map's closers.
func values(m map[string]io.Closer) []io.Closer {
	out := make([]io.Closer, 0, len(m))
	for _, c := range m {
		out = append(out, c)
	}
	return out
}

// closeAll closes every non-nil closer.
func closeAll(cs ...io.Closer) {
	for _, c := range cs {
		if c != nil {
			_ = c.Close()
		}
	}
}

// WhileReady runs instantiate and, if it is set, ready, and returns
// instantiate's result and error and ready's error. instantiate must write
// and read no page of r (Module.RestoreWhen). Until ready has returned,
// Free of r waits for it: a region freed under it could be unmapped or
// lent to another instance while it writes. So ready itself must never
// free r. A panic in instantiate is returned as its error.
//
// The order matters on the start path. Normally instantiate runs on a new
// goroutine while ready (a bulk restore's read of the working set), the
// longer of the two, runs in the calling goroutine, first and without a
// hand-off; the caller then finds the instantiation done instead of
// waiting to be woken up when ready ends (docs/restore.md, "On a quiet
// machine"). With short set, instantiate is a step of tens of
// microseconds (an instance kept with the region is reset, not a module
// instantiated): it runs first, in the calling goroutine, and then ready.
// Starting a goroutine for it would cost a thread's wake-up of as much,
// and the disk does not need the caller to wait (restore's direct read of
// a small working set is asynchronous; docs/restore.md, "A read without a
// thread").
func WhileReady[T any](r *Region, ready func() error, instantiate func() (T, error), short bool) (T, error, error) {
	if ready == nil || short {
		v, err := catchPanic(instantiate)
		timeline.Mark(timeline.Instantiated)
		if ready == nil {
			return v, err, nil
		}
		return v, err, runReady(r, ready)
	}
	type result struct {
		v   T
		err error
	}
	done := make(chan result, 1)
	go func() {
		var res result
		res.v, res.err = catchPanic(instantiate)
		timeline.Mark(timeline.Instantiated)
		done <- res
	}()
	rerr := runReady(r, ready)
	res := <-done
	return res.v, res.err, rerr
}

// runReady runs ready as a write to r that r's Free waits for (Region.Fill).
func runReady(r *Region, ready func() error) error {
	filled := r.Fill()
	defer func() {
		filled()
		timeline.Mark(timeline.MemoryReady)
	}()
	return ready()
}

// catchPanic calls f and returns a panic of it as its error.
func catchPanic[T any](f func() (T, error)) (v T, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("instantiate: panic: %v", p)
		}
	}()
	return f()
}
