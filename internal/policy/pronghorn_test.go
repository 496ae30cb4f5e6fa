package policy

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/thaw-run/thaw/internal/errdefs"
)

func newTestPronghorn(t testing.TB, spec string, seed uint64) *pronghorn {
	t.Helper()
	return mustParse(t, spec, seed).(*pronghorn)
}

type obs struct {
	req int
	lat time.Duration
}

func TestPronghornEMA(t *testing.T) {
	ms := time.Millisecond
	for _, tc := range []struct {
		name string
		spec string
		obs  []obs
		want []float64 // the table after the observations
	}{
		{"first sets", "pronghorn", []obs{{1, 10 * ms}}, []float64{10}},
		{"second averages", "pronghorn", []obs{{1, 10 * ms}, {1, 20 * ms}}, []float64{15}},
		{"third averages", "pronghorn", []obs{{1, 10 * ms}, {1, 20 * ms}, {1, 40 * ms}}, []float64{27.5}},
		{"eps 1 replaces", "pronghorn:eps=1", []obs{{1, 10 * ms}, {1, 20 * ms}}, []float64{20}},
		{"eps 0.25", "pronghorn:eps=0.25", []obs{{1, 10 * ms}, {1, 50 * ms}}, []float64{20}},
		{"per request", "pronghorn", []obs{{3, 7 * ms}, {1, 5 * ms}}, []float64{5, 0, 7}},
		{"zero is observed", "pronghorn", []obs{{1, 0}}, []float64{0.001}},
		{"rounded to µs", "pronghorn", []obs{{1, 1234567 * time.Nanosecond}}, []float64{1.235}},
		{"ignores out of range", "pronghorn", []obs{{0, ms}, {-1, ms}, {MaxTracked + 1, ms}, {2, -ms}}, nil},
		{"tracks up to the bound", "pronghorn", []obs{{MaxTracked, ms}}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newTestPronghorn(t, tc.spec, 1)
			for _, o := range tc.obs {
				p.Observe(o.req, o.lat)
			}
			if tc.name == "tracks up to the bound" {
				if len(p.ema) != MaxTracked || p.ema[MaxTracked-1] != 1 {
					t.Fatalf("len(ema) = %d, last = %v", len(p.ema), p.ema[len(p.ema)-1])
				}
				return
			}
			if !slices.Equal(p.ema, tc.want) {
				t.Errorf("ema = %v, want %v", p.ema, tc.want)
			}
		})
	}
}

func TestPronghornScore(t *testing.T) {
	ms := time.Millisecond
	p := newTestPronghorn(t, "pronghorn:window=2,bonus=0.3,smooth=0", 1)
	if got := p.score(1); got != unexploredScore {
		t.Errorf("score of an empty table = %v, want %v", got, unexploredScore)
	}
	p.Observe(2, 9*ms) // 1e5
	if got := p.score(1); got != 1e5 {
		t.Errorf("unexplored request without an observed predecessor = %v, want the best observed 1e5", got)
	}
	p.Observe(1, 9*ms)  // 1e5
	p.Observe(2, 99*ms) // 1e4 after the moving average: (9+99)/2 = 54 ms, so set it again
	p.Observe(2, 144*ms)
	p.Observe(4, 999*ms)
	for _, tc := range []struct {
		name string
		got  float64
		want float64
	}{
		{"observed", p.score(1), 1e5},
		{"observed slow", p.score(2), 1e4},
		{"unexplored scores as its predecessor plus the bonus", p.score(3), 1.3e4},
		{"unexplored past the table", p.score(9), 1.3e3},
		{"below 1 scores as 1", p.score(0), 1e5},
		{"past the bound scores as the bound", p.score(MaxTracked + 7), p.score(MaxTracked)},
		{"window after init", p.windowScore(0), (1e5 + 1e4) / 2},
		{"window after 1", p.windowScore(1), (1e4 + 1.3e4) / 2},
		{"window after 2", p.windowScore(2), (1.3e4 + 1e3) / 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if math.Abs(tc.got-tc.want) > 1e-9*tc.want {
				t.Errorf("got %v, want %v", tc.got, tc.want)
			}
		})
	}
}

// Smoothing scores an observed request by the mean of its observed
// predecessors when that is slower: a lucky low observation cannot outscore
// the trend, a real spike (a first request that compiles) stays, and the
// frontier is estimated from the same mean.
func TestPronghornSmooth(t *testing.T) {
	ms := time.Millisecond
	p := newTestPronghorn(t, "pronghorn:window=1,smooth=2,bonus=1", 1)
	for r, l := range []time.Duration{900, 30, 30, 6, 30} { // requests 1..5
		p.Observe(r+1, l*ms)
	}
	for _, tc := range []struct {
		name string
		got  float64
		want float64
	}{
		{"a spike keeps its own latency", p.score(1), 1e6 / 901},
		{"a slow request after the spike takes the mean", p.score(2), 1e6 / 466},
		{"a lucky low takes its neighbourhood's mean", p.score(4), 1e6 / 23},
		{"the frontier is its predecessors' mean, times 1+bonus", p.score(6), 1e6 / 23 * 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if math.Abs(tc.got-tc.want) > 1e-9*tc.want {
				t.Errorf("got %v, want %v", tc.got, tc.want)
			}
		})
	}
}

// On a warm-up curve the snapshot at the frontier (its next request never
// served) must beat every explored one, else a lineage stalls among
// near-ties; after a slow-down it must not, else lineages run off.
func TestPronghornFrontier(t *testing.T) {
	for _, tc := range []struct {
		name    string
		latency func(r int) time.Duration
		want    int // 0: init or cold (both serve request 1 next), 1: after 9, 2: after 10
	}{
		{"warm-up", func(r int) time.Duration { return time.Duration(100-5*r) * time.Millisecond }, 2},
		{"slow-down", func(r int) time.Duration { return time.Duration(10+5*r) * time.Millisecond }, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newTestPronghorn(t, "pronghorn:window=1", 1)
			for r := 1; r <= 10; r++ {
				p.Observe(r, tc.latency(r))
			}
			counts := make([]int, 3)
			for range 1000 {
				counts[max(p.Choose(pool(0, 9, 10)), 0)]++
			}
			if best := slices.Index(counts, slices.Max(counts)); best != tc.want || counts[tc.want] < 900 {
				t.Errorf("choices %v (init or cold, after 9, after 10), want nearly all %d", counts, tc.want)
			}
		})
	}
}

// TestPronghornChooseDistribution checks the softmax: with window 1 the
// snapshot after request 10 scores 1e5, the init snapshot and a cold boot
// 1e4 each. The generator is seeded, so the counts are reproducible; the
// tolerances only absorb the choice of seed.
func TestPronghornChooseDistribution(t *testing.T) {
	for _, tc := range []struct {
		temp     string
		min, max float64 // bounds on the fraction choosing the fast snapshot
	}{
		{"1", 0.80, 0.87},    // proportional: 10/12
		{"0.1", 0.999, 1},    // nearly greedy
		{"1000", 0.30, 0.37}, // nearly uniform over three options
	} {
		t.Run("temp="+tc.temp, func(t *testing.T) {
			p := newTestPronghorn(t, "pronghorn:window=1,temp="+tc.temp, 42)
			p.Observe(1, 99*time.Millisecond)
			p.Observe(11, 9*time.Millisecond)
			pl := pool(0, 10)
			counts := map[int]int{}
			const n = 10000
			for range n {
				counts[p.Choose(pl)]++
			}
			if f := float64(counts[1]) / n; f < tc.min || f > tc.max {
				t.Errorf("fast snapshot chosen %.3f of the time, want in [%v, %v] (counts %v)", f, tc.min, tc.max, counts)
			}
			if len(counts) > 3 {
				t.Errorf("choices outside the pool: %v", counts)
			}
		})
	}
}

func TestPronghornChooseColdOnEmptyPool(t *testing.T) {
	p := newTestPronghorn(t, "pronghorn", 1)
	for range 10 {
		if got := p.Choose(nil); got != Cold {
			t.Fatalf("Choose(nil) = %d, want Cold", got)
		}
	}
}

func TestPronghornCheckpointAt(t *testing.T) {
	ms := time.Millisecond
	for _, tc := range []struct {
		name   string
		spec   string
		obs    []obs
		start  int
		want   int     // the request number expected most often
		minFrc float64 // and how often at least
	}{
		{"window 1 is the start", "pronghorn:window=1", nil, 5, 5, 1},
		{"start below 1", "pronghorn:window=1", nil, -3, 1, 1},
		// n=5 scores mean(s6,s7)=1e3, n=6 scores mean(s7,s8)=~5e4.
		{"weighted by score", "pronghorn:window=2,smooth=0", []obs{{6, 999 * ms}, {7, 999 * ms}, {8, 9 * ms}}, 5, 6, 0.95},
		// All explored and equal: uniform over the window.
		{"flat is uniform", "pronghorn:window=4", []obs{{1, ms}, {2, ms}, {3, ms}, {4, ms}, {5, ms}, {6, ms}, {7, ms}, {8, ms}}, 1, 1, 0.2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newTestPronghorn(t, tc.spec, 3)
			for _, o := range tc.obs {
				p.Observe(o.req, o.lat)
			}
			lo := max(tc.start, 1)
			counts := map[int]int{}
			const n = 2000
			for range n {
				at := p.CheckpointAt(tc.start)
				if at < lo || at >= lo+p.prm.Window {
					t.Fatalf("CheckpointAt(%d) = %d, outside [%d, %d)", tc.start, at, lo, lo+p.prm.Window)
				}
				counts[at]++
			}
			if f := float64(counts[tc.want]) / n; f < tc.minFrc {
				t.Errorf("request %d chosen %.3f of the time, want >= %v (counts %v)", tc.want, f, tc.minFrc, counts)
			}
		})
	}
}

func TestPronghornPrune(t *testing.T) {
	ms := time.Millisecond
	// Latency of request r is r ms, so later snapshots score lower, except
	// the unexplored requests past 30 which score as the best.
	observe := func(p *pronghorn) {
		for r := 1; r <= 30; r++ {
			p.Observe(r, time.Duration(r)*ms)
		}
	}
	for _, tc := range []struct {
		name     string
		spec     string
		n        int // pool of requests 0..n-1
		capacity int
		wantLen  int
		wantTop  []int // indices that must be kept
	}{
		{"under capacity keeps all", "pronghorn:window=1", 12, 12, 12, nil},
		{"paper rule", "pronghorn:window=1", 13, 12, 6, []int{0, 1, 2, 3, 4}},                      // 5 top + round(0.1*8)
		{"unexplored scores from its predecessor", "pronghorn:window=1", 40, 12, 12, []int{0, 11}}, // 16 top capped at 12
		{"capacity below the rule", "pronghorn:window=1", 13, 3, 3, []int{0, 1, 2}},
		{"pool param below capacity", "pronghorn:window=1,pool=4", 6, 12, 2, []int{0, 1}},
		{"rest 0 keeps only the top", "pronghorn:window=1,rest=0", 20, 12, 8, []int{0, 7}},
		{"top 1 keeps up to capacity", "pronghorn:window=1,top=1", 20, 12, 12, []int{0, 11}},
		{"zero capacity", "pronghorn", 3, 0, 0, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newTestPronghorn(t, tc.spec, 5)
			observe(p)
			reqs := make([]int, tc.n)
			for i := range reqs {
				reqs[i] = i
			}
			keep := p.Prune(pool(reqs...), tc.capacity)
			if len(keep) != tc.wantLen {
				t.Fatalf("Prune kept %d (%v), want %d", len(keep), keep, tc.wantLen)
			}
			if !slices.IsSorted(keep) || len(slices.Compact(slices.Clone(keep))) != len(keep) {
				t.Errorf("Prune = %v, want sorted unique indices", keep)
			}
			for _, i := range tc.wantTop {
				if !slices.Contains(keep, i) {
					t.Errorf("Prune = %v dropped %d", keep, i)
				}
			}
		})
	}
}

func TestPronghornStateRoundTrip(t *testing.T) {
	a := newTestPronghorn(t, "pronghorn:window=3", 11)
	for r := 1; r <= 40; r++ {
		a.Observe(r, time.Duration(100-r)*time.Millisecond+123*time.Microsecond)
	}
	pl := pool(0, 5, 9, 17)
	for range 5 {
		a.Choose(pl)
	}
	state, err := a.MarshalState()
	if err != nil {
		t.Fatal(err)
	}
	b := newTestPronghorn(t, "pronghorn:window=3", 999)
	if err := b.UnmarshalState(state); err != nil {
		t.Fatal(err)
	}
	again, _ := b.MarshalState()
	if !bytes.Equal(state, again) {
		t.Fatalf("state changed in a round trip:\n%s\n%s", state, again)
	}
	// The restored policy continues the same sequence of choices.
	for i := range 50 {
		ca, cb := a.Choose(pl), b.Choose(pl)
		xa, xb := a.CheckpointAt(i+1), b.CheckpointAt(i+1)
		if ca != cb || xa != xb {
			t.Fatalf("step %d: original chose %d/%d, restored %d/%d", i, ca, xa, cb, xb)
		}
	}
}

func TestPronghornStateBounded(t *testing.T) {
	p := newTestPronghorn(t, "pronghorn", 1)
	for r := 1; r <= 3*MaxTracked; r++ {
		p.Observe(r, time.Duration(r)*time.Millisecond+time.Duration(r%7)*time.Microsecond)
	}
	b, err := p.MarshalState()
	if err != nil {
		t.Fatal(err)
	}
	if len(p.ema) != MaxTracked || len(b) > 16<<10 {
		t.Errorf("tracked %d requests in %d bytes of state", len(p.ema), len(b))
	}
	t.Logf("state of %d requests: %d bytes", len(p.ema), len(b))
}

func TestPronghornStateCorrupt(t *testing.T) {
	good := newTestPronghorn(t, "pronghorn", 1)
	good.Observe(1, time.Millisecond)
	valid, _ := good.MarshalState()
	tooLong := `"ema_ms":[` + strings.Repeat("1,", MaxTracked) + `1]`
	long := strings.Replace(string(valid), `"ema_ms":[1]`, tooLong, 1)
	for _, tc := range []struct {
		name  string
		state string
	}{
		{"empty", ""},
		{"garbage", "{"},
		{"version", strings.Replace(string(valid), `"v":1`, `"v":2`, 1)},
		{"negative latency", strings.Replace(string(valid), `"ema_ms":[1]`, `"ema_ms":[-1]`, 1)},
		{"too many requests", long},
		{"bad rng", strings.Replace(string(valid), `"rng":"`, `"rng":"AA`, 1)},
		{"no rng", `{"v":1,"ema_ms":[]}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newTestPronghorn(t, "pronghorn", 2)
			p.Observe(3, 5*time.Millisecond)
			before, _ := p.MarshalState()
			if err := p.UnmarshalState([]byte(tc.state)); !errors.Is(err, errdefs.ErrCorrupt) {
				t.Fatalf("UnmarshalState(%s) = %v, want ErrCorrupt", tc.state, err)
			}
			if after, _ := p.MarshalState(); !bytes.Equal(before, after) {
				t.Errorf("a rejected state changed the policy: %s -> %s", before, after)
			}
		})
	}
	// The fixture for "too many requests" is otherwise valid.
	p := newTestPronghorn(t, "pronghorn", 2)
	if err := p.UnmarshalState([]byte(strings.Replace(long, "[1,", "[", 1))); err != nil {
		t.Errorf("state of exactly MaxTracked requests: %v", err)
	}
}

func ExampleParse() {
	p, err := Parse("pronghorn:window=4,temp=0.5", 1)
	if err != nil {
		panic(err)
	}
	fmt.Println(p.Name(), p.(PoolSizer).PoolSize())
	// Output: pronghorn:window=4,temp=0.5 12
}
