package placement

import (
	"fmt"
	"testing"
)

// benchView is n workers with 100 functions each, none of them warm for
// "f" (so locality runs every rule down to the homes).
func benchView(n int) View {
	v := View{}
	for i := range n {
		x := Worker{ID: fmt.Sprintf("worker-%d", i), FreeSlots: 4, Alive: true, Functions: map[string]FunctionState{}}
		for j := range 100 {
			x.Functions[fmt.Sprintf("fn-%d", j)] = FunctionState{IdleWarm: j % 2, Busy: j % 3}
		}
		v.Workers = append(v.Workers, x)
	}
	return v
}

// BenchmarkPlace is what a decision costs the worker that receives a
// request: a cold-path decision over 3 and 50 workers, per policy.
func BenchmarkPlace(b *testing.B) {
	for _, n := range []int{3, 50} {
		v := benchView(n)
		for _, pol := range []Policy{Locality, Hash, Random} {
			p := New(pol, Options{}, 1)
			b.Run(fmt.Sprintf("%s/workers=%d", pol, n), func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					p.Place(v, Request{Function: "f", Receiver: "worker-0"})
				}
			})
		}
	}
}
