package thaw

import (
	"runtime"
	"runtime/debug"
	"runtime/metrics"
)

// idleHooks run, in registration order, each time the host hands the
// instance idle time.
var idleHooks []func()

// OnIdle registers f to run when the instance is idle between requests:
// after a response has been sent and before the instance serves again or
// is snapshotted. Use it for deferred housekeeping (flushing buffers,
// compacting caches) that would otherwise lengthen a request. The host
// gives idle time only when it has it, so an instance may serve many
// requests without any; hooks must be short. A hook that panics ends the
// instance, never a request. Hooks run after the SDK's own idle work.
func OnIdle(f func()) { idleHooks = append(idleHooks, f) }

// collector moves the Go collector's work into idle time.
//
// A reactor module's goroutines run only while the host calls one of its
// exports, and a handler that never blocks never lets the collector's
// background worker run. So a GC cycle, once started during a request, is
// finished by the mutator's assists over the following requests, with the
// write barrier on: measured on the js warm-up workload under wazero, a
// cycle spans 8–11 requests, each about twice as slow (docs/functions.md).
// At idle the collector therefore finishes a cycle in progress, and starts
// (and finishes) one early when the next request would likely start it.
type collector struct {
	// allocs is the cumulative heap allocation at the end of the last
	// idle call (0 before the first).
	allocs uint64
}

// gc is the instance's collector.
var gc collector

// earlyAt is the fraction of the heap goal at which a cycle is started
// early. The pacer starts one at about 85% of the goal with GOGC=100 on a
// single thread (measured: 84–85%).
const earlyAt = 0.8

var gcSamples = []metrics.Sample{
	{Name: "/gc/heap/goal:bytes"},
	{Name: "/gc/heap/allocs:bytes"},
	{Name: "/memory/classes/heap/objects:bytes"},
}

// idle finishes a GC cycle in progress, collects early if the heap plus
// twice the last request's allocation would reach the trigger, and reports
// whether it collected early.
func (c *collector) idle() bool {
	// SetGCPercent(-1) waits for a mark phase in progress to end, and
	// returns at once when none is; the old setting is put back at once.
	debug.SetGCPercent(debug.SetGCPercent(-1))
	metrics.Read(gcSamples)
	goal, allocs, heap := gcSamples[0].Value.Uint64(), gcSamples[1].Value.Uint64(), gcSamples[2].Value.Uint64()
	var last uint64
	if c.allocs > 0 && allocs > c.allocs {
		last = allocs - c.allocs
	}
	early := float64(heap+2*last) >= earlyAt*float64(goal)
	if early {
		runtime.GC()
		metrics.Read(gcSamples)
		allocs = gcSamples[1].Value.Uint64()
	}
	c.allocs = allocs
	return early
}

// mark records the allocation so far as the baseline of the next idle
// call, so that an instance restored from a snapshot does not count what
// initialisation allocated as its first request's.
func (c *collector) mark() {
	metrics.Read(gcSamples)
	c.allocs = gcSamples[1].Value.Uint64()
}

// runIdle does the SDK's idle work, then runs the OnIdle hooks.
func runIdle() {
	gc.idle()
	for _, f := range idleHooks {
		f()
	}
}
