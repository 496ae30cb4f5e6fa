package thaw

import (
	"fmt"
	"runtime"
	"runtime/metrics"
	"testing"
)

// keep holds the test's allocations live, so the heap grows toward its goal.
var keep [][]byte

func numGC() uint32 {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.NumGC
}

func TestCollectorEarlyNearGoal(t *testing.T) {
	defer func() { keep = nil }()
	c := collector{}
	runtime.GC()
	c.mark()
	if c.idle() {
		t.Fatal("collected early right after a collection")
	}
	// A "request" that allocates a third of the way to the early
	// threshold: the heap plus twice that reaches it, the heap alone stays
	// well below the pacer's trigger.
	metrics.Read(gcSamples)
	goal, heap := gcSamples[0].Value.Uint64(), gcSamples[2].Value.Uint64()
	want := (uint64(earlyAt*float64(goal)) - heap) / 3
	before := numGC()
	for n := uint64(0); n < want+(16<<10); n += 16 << 10 {
		keep = append(keep, make([]byte, 16<<10))
	}
	if numGC() != before {
		t.Fatalf("the runtime collected during a %d-byte allocation (goal %d, heap %d)", want, goal, heap)
	}
	if !c.idle() {
		t.Fatal("did not collect with the heap near its goal")
	}
	if numGC() == before {
		t.Fatal("idle reported an early collection that did not happen")
	}
}

func TestCollectorIdleWhenFar(t *testing.T) {
	c := collector{}
	runtime.GC()
	c.mark()
	keep = append(keep, make([]byte, 16<<10))
	defer func() { keep = nil }()
	before := numGC()
	if c.idle() || numGC() != before {
		t.Fatal("collected early with the heap far from its goal")
	}
}

func TestIdleHooksRunAfterCollector(t *testing.T) {
	saved := idleHooks
	defer func() { idleHooks = saved }()
	idleHooks = nil
	var got []int
	for i := range 3 {
		OnIdle(func() { got = append(got, i) })
	}
	runIdle()
	runIdle()
	if fmt.Sprint(got) != "[0 1 2 0 1 2]" {
		t.Fatalf("hooks ran as %v", got)
	}
}
