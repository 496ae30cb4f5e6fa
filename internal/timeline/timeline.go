// Package timeline records when a restore reaches each stage of its start,
// for thaw bench restore: the stages' durations that Timing reports
// (map, prefetch, instantiate, exec) overlap and hide what lies between
// them, such as the wait before the working set's read is issued or the
// hand-offs between the goroutines that read and instantiate.
//
// The recorder is process-wide and off by default: Mark costs one atomic
// load until Enable. It is meant for a benchmark that runs one start at a
// time; with starts running concurrently their points would mix.
package timeline

import (
	"sync"
	"sync/atomic"
	"time"
)

// Point names a stage of a start. Points are listed in the order a bulk
// restore usually reaches them; the read and the instantiation run on
// goroutines of their own and overlap, so their points may come in
// either order.
type Point string

// The points a start marks.
const (
	// Start: the worker begins a restore (after an experiment's cache drop).
	Start Point = "start"
	// WorkingSet: ws.json is parsed and ws.img is open, or a working set
	// kept from the region's last restore is found current (its read may
	// have been issued before).
	WorkingSet Point = "working_set"
	// ReadIssued: the first read of the working set is issued.
	ReadIssued Point = "read_issued"
	// ReadDone: the first piece of a direct read of the working set has
	// arrived in its staging buffer (a buffered read does not mark it).
	ReadDone Point = "read_done"
	// ReadChecked: a bulk restore's working set is in place and checked.
	ReadChecked Point = "read_checked"
	// MemoryReady: the memory is ready (range registered, pager attached).
	MemoryReady Point = "memory_ready"
	// StateSet: memory grown, globals set: the end of the instantiation
	// step (before Instantiated), beside the working set's read.
	StateSet Point = "state_set"
	// Instantiated: the engine has instantiated the restore module (or
	// reset a kept instance) and set its state.
	Instantiated Point = "instantiated"
	// Restored: thaw_on_restore has returned.
	Restored Point = "restored"
	// Call: the worker calls the guest with the request.
	Call Point = "call"
	// Called: the guest has answered.
	Called Point = "called"
	// Response: the worker has returned the answer to its caller.
	Response Point = "response"
)

// Points lists every point in the order of the constants.
var Points = []Point{Start, WorkingSet, ReadIssued, ReadDone, ReadChecked, MemoryReady, StateSet, Instantiated, Restored, Call, Called, Response}

type mark struct {
	p Point
	t time.Time
}

var (
	on    atomic.Bool
	mu    sync.Mutex
	marks []mark
)

// Enable turns recording on or off, and drops what was recorded.
func Enable(enable bool) {
	mu.Lock()
	marks = marks[:0]
	mu.Unlock()
	on.Store(enable)
}

// Mark records that the current start reached p.
func Mark(p Point) {
	if !on.Load() {
		return
	}
	t := time.Now()
	mu.Lock()
	marks = append(marks, mark{p, t})
	mu.Unlock()
}

// Take returns, for each point marked since the last Start, the time from
// that Start to the point's first mark after it, and drops every mark.
// Without a Start it returns nil.
func Take() map[Point]time.Duration {
	mu.Lock()
	defer func() {
		marks = marks[:0]
		mu.Unlock()
	}()
	last := -1 // the last Start
	for i, m := range marks {
		if m.p == Start {
			last = i
		}
	}
	if last < 0 {
		return nil
	}
	t0 := marks[last].t
	out := map[Point]time.Duration{}
	for _, m := range marks[last:] {
		if _, ok := out[m.p]; !ok {
			out[m.p] = m.t.Sub(t0)
		}
	}
	return out
}
