package placement

import (
	"errors"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/thaw-run/thaw/internal/errdefs"
)

// w is a live, non-draining worker with free slots and the given state of
// function "f".
func w(id string, free int, f FunctionState) Worker {
	return Worker{ID: id, Address: id + ":8080", FreeSlots: free, Alive: true, Functions: map[string]FunctionState{"f": f}}
}

func dead(x Worker) Worker     { x.Alive = false; return x }
func draining(x Worker) Worker { x.Draining = true; return x }

// busy adds n running requests of another function to x (its load).
func busy(x Worker, n int) Worker {
	x.Functions["other"] = FunctionState{Busy: n}
	return x
}

var (
	warm     = FunctionState{IdleWarm: 1}
	onDisk   = FunctionState{SnapshotLocal: true}
	inCache  = FunctionState{SnapshotCached: true}
	cachedWS = FunctionState{SnapshotCached: true, WorkingSetCached: true}
	none     = FunctionState{}
)

// higherScore returns whichever of a and b ranks first for function "f".
func higherScore(a, b string) string {
	if Score("f", a) > Score("f", b) {
		return a
	}
	return b
}

func TestLocality(t *testing.T) {
	// Four idle workers with nothing of "f": the homes decide.
	idle := View{Workers: []Worker{w("a", 4, none), w("b", 4, none), w("c", 4, none), w("d", 4, none)}}
	hs := Homes(idle, "f", 2)
	var nonHome []string
	for _, x := range []string{"a", "b", "c", "d"} {
		if !slices.Contains(hs, x) {
			nonHome = append(nonHome, x)
		}
	}
	// homesFull: both homes have no free slot, one other worker has.
	homesFull := View{}
	for _, x := range idle.Workers {
		x.FreeSlots = 0
		if x.ID == nonHome[1] {
			x.FreeSlots = 1
		}
		homesFull.Workers = append(homesFull.Workers, x)
	}
	byID := func(v View, id string) Worker {
		for _, x := range v.Workers {
			if x.ID == id {
				return x
			}
		}
		t.Fatalf("no worker %s", id)
		return Worker{}
	}
	// homeLoaded: the first home is busier than the second.
	homeLoaded := View{Workers: []Worker{busy(byID(idle, hs[0]), 3), byID(idle, hs[1]), byID(idle, nonHome[0]), byID(idle, nonHome[1])}}

	for _, c := range []struct {
		name string
		v    View
		r    Request
		want Decision
	}{
		{"local warm beats a less loaded warm peer, even with no free slot",
			View{Workers: []Worker{busy(w("me", 0, warm), 5), w("p", 9, warm)}},
			Request{Function: "f", Receiver: "me"}, Decision{Worker: "me", Reason: LocalWarm}},
		{"a draining receiver forwards to a warm peer",
			View{Workers: []Worker{draining(w("me", 4, warm)), w("p", 1, warm)}},
			Request{Function: "f", Receiver: "me"}, Decision{Worker: "p", Reason: PeerWarm}},
		{"a dead receiver's warmth does not count",
			View{Workers: []Worker{dead(w("me", 4, warm)), w("p", 1, none)}},
			Request{Function: "f", Receiver: "me"}, Decision{Worker: "p", Reason: Home}},
		{"the least loaded warm peer",
			View{Workers: []Worker{w("me", 4, onDisk), busy(w("p1", 4, warm), 2), busy(w("p2", 4, warm), 1)}},
			Request{Function: "f", Receiver: "me"}, Decision{Worker: "p2", Reason: PeerWarm}},
		{"equally loaded warm peers: more free slots",
			View{Workers: []Worker{w("me", 4, none), w("p1", 2, warm), w("p2", 3, warm)}},
			Request{Function: "f", Receiver: "me"}, Decision{Worker: "p2", Reason: PeerWarm}},
		{"equal warm peers: the higher rendezvous score",
			View{Workers: []Worker{w("me", 4, none), w("p1", 2, warm), w("p2", 2, warm)}},
			Request{Function: "f", Receiver: "me"}, Decision{Worker: higherScore("p1", "p2"), Reason: PeerWarm}},
		{"a warm peer without a free slot still serves (its idle instance is its slot)",
			View{Workers: []Worker{w("me", 4, onDisk), w("p", 0, warm)}},
			Request{Function: "f", Receiver: "me"}, Decision{Worker: "p", Reason: PeerWarm}},
		{"a draining warm peer is skipped",
			View{Workers: []Worker{w("me", 4, none), draining(w("p", 4, warm)), w("q", 1, inCache)}},
			Request{Function: "f", Receiver: "me"}, Decision{Worker: "q", Reason: PeerCached}},
		{"a gateway (no receiver) sends to the warm worker",
			View{Workers: []Worker{w("a", 4, none), w("b", 1, warm)}},
			Request{Function: "f"}, Decision{Worker: "b", Reason: PeerWarm}},
		{"cached: the receiver first (no hop)",
			View{Workers: []Worker{w("me", 1, inCache), w("p", 9, FunctionState{SnapshotLocal: true, WorkingSetCached: true})}},
			Request{Function: "f", Receiver: "me"}, Decision{Worker: "me", Reason: PeerCached}},
		{"cached: a snapshot on local disk beats chunks in the cache",
			View{Workers: []Worker{w("me", 4, none), w("p1", 9, cachedWS), busy(w("p2", 1, onDisk), 3)}},
			Request{Function: "f", Receiver: "me"}, Decision{Worker: "p2", Reason: PeerCached}},
		{"cached: a cached working set beats none",
			View{Workers: []Worker{w("me", 4, none), w("p1", 9, inCache), busy(w("p2", 1, cachedWS), 3)}},
			Request{Function: "f", Receiver: "me"}, Decision{Worker: "p2", Reason: PeerCached}},
		{"cached: then the least loaded",
			View{Workers: []Worker{w("me", 4, none), busy(w("p1", 9, inCache), 2), busy(w("p2", 1, inCache), 1)}},
			Request{Function: "f", Receiver: "me"}, Decision{Worker: "p2", Reason: PeerCached}},
		{"cached without a free slot: on to the homes",
			View{Workers: []Worker{w("p", 0, onDisk), w("q", 1, none)}},
			Request{Function: "f", Receiver: "p"}, Decision{Worker: "q", Reason: Home}},
		{"homes: the less loaded of the two", homeLoaded,
			Request{Function: "f", Receiver: nonHome[0]}, Decision{Worker: hs[1], Reason: Home}},
		{"homes full: any worker with a slot", homesFull,
			Request{Function: "f", Receiver: hs[0]}, Decision{Worker: nonHome[1], Reason: Any}},
		{"all full: hold for the rest of the bound, pre-warming a home",
			View{Workers: []Worker{busy(w("a", 0, none), 2), w("b", 0, none)}},
			Request{Function: "f", Receiver: "a", Waited: time.Second},
			Decision{Worker: "b", Reason: Hold, HoldFor: DefaultHoldBound - time.Second}},
		{"all full and the bound spent: reject",
			View{Workers: []Worker{w("a", 0, none)}},
			Request{Function: "f", Receiver: "a", Waited: DefaultHoldBound}, Decision{Reason: Reject}},
		{"all full and the hold queue full: reject",
			View{Workers: []Worker{w("a", 0, none)}},
			Request{Function: "f", Receiver: "a", Held: DefaultMaxHeld}, Decision{Reason: Reject}},
		{"no eligible worker: hold with nobody to pre-warm",
			View{Workers: []Worker{dead(w("a", 4, warm)), draining(w("b", 4, warm))}},
			Request{Function: "f", Receiver: "a"}, Decision{Reason: Hold, HoldFor: DefaultHoldBound}},
		{"empty view: hold", View{}, Request{Function: "f"}, Decision{Reason: Hold, HoldFor: DefaultHoldBound}},
		{"negative free slots count as none",
			View{Workers: []Worker{w("a", -3, onDisk), w("b", 1, none)}},
			Request{Function: "f", Receiver: "a"}, Decision{Worker: "b", Reason: Home}},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := PlaceLocality(c.v, c.r, Options{}); got != c.want {
				t.Fatalf("got %+v (%s), want %+v (%s)", got, got.Reason, c.want, c.want.Reason)
			}
		})
	}
}

func TestOptions(t *testing.T) {
	v := View{Workers: []Worker{w("a", 0, none), w("b", 0, none), w("c", 1, none)}}
	r := Request{Function: "f", Receiver: "a"}
	// With k = 3 every worker is a home: c, the only one with a slot, is
	// one; with k = 1 it is one only if it scores highest.
	if d := PlaceLocality(v, r, Options{Homes: 3}); d != (Decision{Worker: "c", Reason: Home}) {
		t.Fatalf("k=3: %+v", d)
	}
	want := Any
	if Homes(v, "f", 1)[0] == "c" {
		want = Home
	}
	if d := PlaceLocality(v, r, Options{Homes: 1}); d.Worker != "c" || d.Reason != want {
		t.Fatalf("k=1: %+v, want c %s", d, want)
	}
	full := View{Workers: []Worker{w("a", 0, none)}}
	o := Options{HoldBound: time.Second, MaxHeld: 2}
	for _, c := range []struct {
		r    Request
		want Decision
	}{
		{Request{Function: "f", Waited: 300 * time.Millisecond, Held: 1}, Decision{Worker: "a", Reason: Hold, HoldFor: 700 * time.Millisecond}},
		{Request{Function: "f", Waited: time.Second}, Decision{Reason: Reject}},
		{Request{Function: "f", Held: 2}, Decision{Reason: Reject}},
		{Request{Function: "f", Waited: -time.Hour}, Decision{Worker: "a", Reason: Hold, HoldFor: time.Second}},
	} {
		if got := PlaceLocality(full, c.r, o); got != c.want {
			t.Errorf("%+v: got %+v, want %+v", c.r, got, c.want)
		}
	}
}

func TestHash(t *testing.T) {
	v := View{Workers: []Worker{w("a", 4, warm), w("b", 4, none), w("c", 0, none), w("d", 4, onDisk)}}
	for _, recv := range []string{"a", "b", "c", "d", ""} {
		d := PlaceHash(v, Request{Function: "f", Receiver: recv}, Options{})
		if want := Homes(v, "f", 1)[0]; d != (Decision{Worker: want, Reason: Home}) {
			t.Fatalf("receiver %q: %+v, want home %s", recv, d, want)
		}
	}
	// The home dies: the next one takes over.
	home := Homes(v, "f", 2)
	for i, x := range v.Workers {
		if x.ID == home[0] {
			v.Workers[i] = dead(x)
		}
	}
	if d := PlaceHash(v, Request{Function: "f"}, Options{}); d.Worker != home[1] {
		t.Fatalf("home %s dead: %+v, want %s", home[0], d, home[1])
	}
	if d := PlaceHash(View{}, Request{Function: "f", Waited: time.Hour}, Options{}); d != (Decision{Reason: Reject}) {
		t.Fatalf("empty, bound spent: %+v", d)
	}
}

// TestRandomUniform draws 60000 placements with a fixed seed over six
// workers with slots (and three without: full, draining, dead) and checks
// the counts with a chi-square test at p = 0.001 (5 degrees of freedom:
// 20.52). The seed makes it deterministic.
func TestRandomUniform(t *testing.T) {
	v := View{Workers: []Worker{
		w("a", 1, none), w("b", 2, warm), w("c", 3, none), w("d", 1, onDisk), w("e", 9, none), w("f", 1, none),
		w("full", 0, warm), draining(w("drain", 4, none)), dead(w("dead", 4, none)),
	}}
	p := New(Random, Options{}, 1)
	const n = 60000
	counts := map[string]int{}
	for range n {
		d := p.Place(v, Request{Function: "f", Receiver: "a"})
		if d.Reason != Any {
			t.Fatalf("reason %s", d.Reason)
		}
		counts[d.Worker]++
	}
	if len(counts) != 6 {
		t.Fatalf("picked %v, want exactly the six workers with slots", counts)
	}
	chi2 := 0.0
	for _, c := range counts {
		e := float64(n) / 6
		chi2 += (float64(c) - e) * (float64(c) - e) / e
	}
	if chi2 > 20.52 {
		t.Fatalf("chi-square %.1f > 20.52: %v", chi2, counts)
	}
	// Same seed, same choices, whatever the order of the workers.
	a, b := New(Random, Options{}, 7), New(Random, Options{}, 7)
	rev := View{Workers: slices.Clone(v.Workers)}
	slices.Reverse(rev.Workers)
	for range 100 {
		if da, db := a.Place(v, Request{Function: "f"}), b.Place(rev, Request{Function: "f"}); da != db {
			t.Fatalf("seeded placers differ: %+v vs %+v", da, db)
		}
	}
	// No slot anywhere: hold.
	full := View{Workers: []Worker{w("a", 0, warm)}}
	if d := p.Place(full, Request{Function: "f"}); d.Reason != Hold || d.Worker != "a" {
		t.Fatalf("full: %+v", d)
	}
}

func TestParsePolicy(t *testing.T) {
	for _, p := range []Policy{Locality, Hash, Random} {
		got, err := ParsePolicy(p.String())
		if err != nil || got != p {
			t.Fatalf("%s: %v %v", p, got, err)
		}
		if New(p, Options{}, 0).Policy() != p {
			t.Fatalf("%s: Placer.Policy", p)
		}
	}
	for _, s := range []string{"", "Locality", "rand", "hash "} {
		if _, err := ParsePolicy(s); !errors.Is(err, errdefs.ErrInvalid) {
			t.Fatalf("%q: %v, want ErrInvalid", s, err)
		}
	}
	if Policy(9).String() != "policy(9)" || Reason(0).String() != "reason(0)" || Reject.String() != "reject" {
		t.Fatal("String of an unknown value")
	}
}

// TestPlacerConcurrent places from several goroutines at once (run with
// -race: Random's generator is shared).
func TestPlacerConcurrent(t *testing.T) {
	v := View{Workers: []Worker{w("a", 1, none), w("b", 1, warm)}}
	for _, pol := range []Policy{Locality, Hash, Random} {
		p := New(pol, Options{}, 3)
		done := make(chan Decision)
		for range 8 {
			go func() {
				var d Decision
				for range 200 {
					d = p.Place(v, Request{Function: "f", Receiver: "a"})
				}
				done <- d
			}()
		}
		for range 8 {
			if d := <-done; d.Worker != "a" && d.Worker != "b" {
				t.Fatalf("%s: %+v", pol, d)
			}
		}
	}
}

// ids returns n worker ids w0..w(n-1).
func ids(n int) []string {
	s := make([]string, n)
	for i := range s {
		s[i] = "w" + string(rune('0'+i/10)) + string(rune('0'+i%10))
	}
	return s
}

func viewOf(ids []string) View {
	v := View{}
	for _, id := range ids {
		v.Workers = append(v.Workers, Worker{ID: id, FreeSlots: 1, Alive: true})
	}
	return v
}

// TestHomesStable: a worker joining takes over only the functions it now
// ranks first for (about 1/(n+1) of them) and nothing else moves; a worker
// leaving moves only the functions it was home for. Homes also spread
// evenly: each of n workers is first home for about 1/n of the functions.
func TestHomesStable(t *testing.T) {
	const n, fns = 10, 5000
	ws := ids(n + 1)
	before, after := viewOf(ws[:n]), viewOf(ws)
	moved, movedSet := 0, 0
	first := map[string]int{}
	for i := range fns {
		f := "fn-" + string(rune('a'+i%26)) + "-" + time.Duration(i).String()
		hb, ha := Homes(before, f, 2), Homes(after, f, 2)
		first[hb[0]]++
		if hb[0] != ha[0] {
			moved++
			if ha[0] != ws[n] {
				t.Fatalf("%s: home moved %s -> %s, not to the new worker", f, hb[0], ha[0])
			}
		}
		if !slices.Equal(hb, ha) {
			movedSet++
			if !slices.Contains(ha, ws[n]) {
				t.Fatalf("%s: homes %v -> %v changed without the new worker", f, hb, ha)
			}
		}
		// Removing a worker that was not f's first home keeps it.
		gone := ws[(i%n+1)%n]
		if gone != hb[0] {
			var rest []string
			for _, id := range ws[:n] {
				if id != gone {
					rest = append(rest, id)
				}
			}
			if h := Homes(viewOf(rest), f, 1)[0]; h != hb[0] {
				t.Fatalf("%s: removing %s moved its home %s -> %s", f, gone, hb[0], h)
			}
		}
	}
	if limit := 1.3 * fns / float64(n+1); float64(moved) > limit {
		t.Fatalf("joining moved %d of %d first homes, want <= %.0f (~1/(n+1))", moved, fns, limit)
	}
	if limit := 1.3 * 2 * fns / float64(n+1); float64(movedSet) > limit {
		t.Fatalf("joining changed %d of %d home pairs, want <= %.0f (~k/(n+1))", movedSet, fns, limit)
	}
	chi2 := 0.0
	for _, id := range ws[:n] {
		e := float64(fns) / n
		chi2 += (float64(first[id]) - e) * (float64(first[id]) - e) / e
	}
	if chi2 > 27.88 { // 9 degrees of freedom, p = 0.001
		t.Fatalf("first homes uneven: chi-square %.1f, %v", chi2, first)
	}
}

// TestDeterministic: the same input gives the same decision, whatever the
// order of the workers (rand is never consulted outside Random).
func TestDeterministic(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		v, r := randomView(rng)
		checkDecision(t, v, r)
	}
}
