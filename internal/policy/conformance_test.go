package policy

import (
	"bytes"
	"math/rand/v2"
	"testing"
	"time"
)

// TestConformance runs the contract every policy must honour over random
// pools and observations.
func TestConformance(t *testing.T) {
	for _, spec := range []string{"init", "fixed:1", "fixed:7", "pronghorn", "pronghorn:window=1,pool=4", "pronghorn:window=4,temp=0.1"} {
		t.Run(spec, func(t *testing.T) {
			p := mustParse(t, spec, 9)
			rng := rand.New(rand.NewPCG(1, 2))
			for step := range 300 {
				req := rng.IntN(60) + 1
				p.Observe(req, time.Duration(rng.IntN(100_000))*time.Microsecond)
				n := rng.IntN(20)
				pl := make([]Candidate, n)
				for i := range pl {
					pl[i] = Candidate{ID: "s", Request: rng.IntN(60)}
				}
				if c := p.Choose(pl); c != Cold && (c < 0 || c >= n) {
					t.Fatalf("step %d: Choose over %d = %d", step, n, c)
				}
				start := rng.IntN(60) + 1
				if at := p.CheckpointAt(start); at != 0 && at < start {
					t.Fatalf("step %d: CheckpointAt(%d) = %d, before the start", step, start, at)
				}
				capacity := rng.IntN(14)
				keep := p.Prune(pl, capacity)
				// A PoolSizer may prune to its own, smaller size.
				if s, ok := p.(PoolSizer); ok {
					capacity = min(capacity, s.PoolSize())
				}
				if n <= capacity && len(keep) != n {
					t.Fatalf("step %d: Prune of %d under capacity %d kept %v", step, n, capacity, keep)
				}
				if len(keep) > max(capacity, 0) && n > capacity {
					t.Fatalf("step %d: Prune(%d, %d) kept %d", step, n, capacity, len(keep))
				}
				if n > capacity && capacity > 0 && len(keep) == 0 {
					t.Fatalf("step %d: Prune(%d, %d) kept nothing", step, n, capacity)
				}
				for i, k := range keep {
					if k < 0 || k >= n || i > 0 && keep[i-1] >= k {
						t.Fatalf("step %d: Prune = %v, want sorted unique indices below %d", step, keep, n)
					}
				}
			}
			state, err := p.MarshalState()
			if err != nil {
				t.Fatal(err)
			}
			q := mustParse(t, spec, 10)
			if err := q.UnmarshalState(state); err != nil {
				t.Fatal(err)
			}
			again, _ := q.MarshalState()
			if !bytes.Equal(state, again) {
				t.Errorf("state round trip: %s != %s", state, again)
			}
			pl := pool(0, 1, 2, 5, 8, 13)
			for range 20 {
				if a, b := p.Choose(pl), q.Choose(pl); a != b {
					t.Fatalf("restored policy chose %d, original %d", b, a)
				}
			}
		})
	}
}
