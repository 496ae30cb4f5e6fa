package placement

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// genView builds a view of up to 8 workers and a request from next, which
// returns a number in [0, n): any mix of dead, draining, full, warm and
// cached workers and functions "f", "g", "h".
func genView(next func(n int) int) (View, Request) {
	fns := []string{"f", "g", "h"}
	v := View{}
	nw := next(9)
	for i := range nw {
		x := Worker{ID: ids(8)[i], FreeSlots: next(4) - 1, Alive: next(5) != 0, Draining: next(5) == 0, Functions: map[string]FunctionState{}}
		for _, f := range fns {
			if next(3) == 0 {
				continue
			}
			x.Functions[f] = FunctionState{IdleWarm: next(3) - next(2), Busy: next(4), Queued: next(3),
				SnapshotLocal: next(3) == 0, SnapshotCached: next(2) == 0, WorkingSetCached: next(2) == 0}
		}
		v.Workers = append(v.Workers, x)
	}
	r := Request{Function: fns[next(3)], Waited: time.Duration(next(8)) * time.Second, Held: next(3) * 600}
	if nw > 0 && next(4) != 0 {
		r.Receiver = v.Workers[next(nw)].ID
	}
	return v, r
}

func randomView(rng *rand.Rand) (View, Request) { return genView(rng.IntN) }

// checkDecision checks every policy's decision on v and r against the
// properties placement promises.
func checkDecision(t *testing.T, v View, r Request) {
	t.Helper()
	eligible := map[string]Worker{}
	for _, x := range v.Workers {
		if x.Alive && !x.Draining {
			eligible[x.ID] = x
		}
	}
	rev := View{Workers: slices.Clone(v.Workers)}
	slices.Reverse(rev.Workers)
	for _, pol := range []Policy{Locality, Hash, Random} {
		d := New(pol, Options{}, 5).Place(v, r)
		if d2 := New(pol, Options{}, 5).Place(rev, r); d2 != d {
			t.Fatalf("%s: %+v on %+v, but %+v with the workers reversed", pol, d, r, d2)
		}
		if d.Reason < LocalWarm || d.Reason > Reject {
			t.Fatalf("%s: reason %d", pol, d.Reason)
		}
		if d.Reason == Reject {
			if d.Worker != "" || d.HoldFor != 0 {
				t.Fatalf("%s: reject names %+v", pol, d)
			}
			if r.Waited < DefaultHoldBound && r.Held < DefaultMaxHeld {
				t.Fatalf("%s: rejected %+v within the bound", pol, r)
			}
			continue
		}
		if d.Reason == Hold {
			if d.HoldFor != DefaultHoldBound-r.Waited || d.HoldFor <= 0 {
				t.Fatalf("%s: hold %+v for %+v", pol, d, r)
			}
		} else if d.HoldFor != 0 {
			t.Fatalf("%s: %+v has a hold time", pol, d)
		}
		x, ok := eligible[d.Worker]
		if d.Worker != "" && !ok {
			t.Fatalf("%s: picked %q, which is dead, draining or absent: %+v", pol, d.Worker, v)
		}
		if d.Worker == "" && d.Reason != Hold {
			t.Fatalf("%s: %+v names no worker", pol, d)
		}
		fs := x.Functions[r.Function]
		switch d.Reason {
		case LocalWarm:
			if d.Worker != r.Receiver || fs.IdleWarm <= 0 {
				t.Fatalf("%s: local-warm %+v", pol, d)
			}
		case PeerWarm:
			if fs.IdleWarm <= 0 {
				t.Fatalf("%s: peer-warm on %+v", pol, x)
			}
		case PeerCached:
			if x.FreeSlots <= 0 || !(fs.SnapshotLocal || fs.SnapshotCached) {
				t.Fatalf("%s: peer-cached on %+v", pol, x)
			}
		case Home:
			k := DefaultHomes
			if pol == Hash {
				k = 1
			}
			if !slices.Contains(Homes(v, r.Function, k), d.Worker) {
				t.Fatalf("%s: %s is not among the homes %v", pol, d.Worker, Homes(v, r.Function, k))
			}
			if pol == Locality && x.FreeSlots <= 0 {
				t.Fatalf("%s: home without a slot", pol)
			}
		case Any:
			if x.FreeSlots <= 0 {
				t.Fatalf("%s: any without a slot: %+v", pol, x)
			}
		}
		if pol != Locality {
			continue
		}
		// Locality's order: an eligible receiver with an idle instance
		// always wins; past each rule, nothing that rule wanted exists.
		recv, recvOK := eligible[r.Receiver]
		localWarm := recvOK && r.Receiver != "" && recv.Functions[r.Function].IdleWarm > 0
		if localWarm != (d.Reason == LocalWarm) {
			t.Fatalf("receiver %s warm=%v but %+v", r.Receiver, localWarm, d)
		}
		for _, y := range eligible {
			ys := y.Functions[r.Function]
			if d.Reason > PeerWarm && ys.IdleWarm > 0 {
				t.Fatalf("%+v while %s has an idle instance", d, y.ID)
			}
			if d.Reason > PeerCached && y.FreeSlots > 0 && (ys.SnapshotLocal || ys.SnapshotCached) {
				t.Fatalf("%+v while %s has it cached and a slot", d, y.ID)
			}
			if d.Reason > Any && y.FreeSlots > 0 {
				t.Fatalf("%+v while %s has a slot", d, y.ID)
			}
		}
	}
}

// FuzzPlace checks the properties on views built from the fuzzer's bytes.
func FuzzPlace(f *testing.F) {
	f.Add([]byte{3, 1, 1, 1, 1, 2, 2, 1, 0, 0, 1, 1, 1})
	f.Add([]byte{8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Add([]byte{2, 3, 4, 4, 2, 2, 2, 1, 1, 1, 1, 1, 3, 4, 4, 2, 2, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		next := func(n int) int {
			if len(b) == 0 {
				return 0
			}
			x := int(b[0]) % n
			b = b[1:]
			return x
		}
		v, r := genView(next)
		checkDecision(t, v, r)
	})
}
