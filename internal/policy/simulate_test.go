package policy

import (
	"fmt"
	"hash/fnv"
	"os"
	"strings"
	"testing"
	"time"
)

// warmupCurve is the synthetic JIT warm-up of the task: 100 ms at request
// 1 falling to 10 ms at request 50.
var warmupCurve = Warmup(100*time.Millisecond, 10*time.Millisecond, 50)

// noisyFlat is a flat 20 ms curve with a deterministic ±10% jitter per
// request number, so a policy can chase noise.
func noisyFlat(req int) time.Duration {
	h := fnv.New32a()
	fmt.Fprint(h, req)
	jitter := float64(h.Sum32()%2001)/10000 - 0.1
	return time.Duration(float64(20*time.Millisecond) * (1 + jitter))
}

func meanStart(r SimResult, from, to int) float64 {
	var s float64
	for _, v := range r.Starts[from:to] {
		s += float64(v)
	}
	return s / float64(to-from)
}

func TestSimulateConvergesOnWarmup(t *testing.T) {
	const n = 300
	for _, seed := range []uint64{1, 2, 3, 4, 5} {
		for _, first := range []time.Duration{0, 2 * time.Millisecond} {
			t.Run(fmt.Sprintf("first=%v/seed=%d", first, seed), func(t *testing.T) {
				base := Simulate(mustParse(t, "fixed:1", seed), warmupCurve, 1, n, first)
				r := Simulate(mustParse(t, "pronghorn:window=1", seed), warmupCurve, 1, n, first)
				early, late := meanStart(r, 0, 100), meanStart(r, n-100, n)
				if late < early+20 {
					t.Errorf("restored request numbers did not rise: mean start %.1f early, %.1f late", early, late)
				}
				pm, bm := r.Percentile(50, n-100), base.Percentile(50, n-100)
				if pm > bm*7/10 {
					t.Errorf("median of the last 100: pronghorn %v, fixed:1 %v; want >= 30%% lower", pm, bm)
				}
				if r.MaxPool > DefaultParams().Pool {
					t.Errorf("pool reached %d after pruning, capacity %d", r.MaxPool, DefaultParams().Pool)
				}
			})
		}
	}
}

func TestSimulateFlatNoWorse(t *testing.T) {
	const n = 300
	for _, curve := range []struct {
		name string
		f    func(int) time.Duration
	}{
		{"flat", Flat(20 * time.Millisecond)},
		{"noisy", noisyFlat},
	} {
		for _, evict := range []int{1, 4, 20} {
			// A snapshot's first restore costs 0 or 20% of a request
			// more than its repeats. Pronghorn's optimism keeps trying
			// new snapshots, so on a flat curve it may pay that cost, but
			// never more: its median stays within 5% of fixed:1's plus
			// the first restore's cost.
			for _, first := range []time.Duration{0, 4 * time.Millisecond} {
				for _, seed := range []uint64{1, 2, 3} {
					t.Run(fmt.Sprintf("%s/evict=%d/first=%v/seed=%d", curve.name, evict, first, seed), func(t *testing.T) {
						base := Simulate(mustParse(t, "fixed:1", seed), curve.f, evict, n, first)
						r := Simulate(mustParse(t, fmt.Sprintf("pronghorn:window=%d", evict), seed), curve.f, evict, n, first)
						pm, bm := r.Percentile(50, n-100), base.Percentile(50, n-100)
						if pm > bm*105/100+first {
							t.Errorf("median of the last 100: pronghorn %v, fixed:1 %v; want at most 5%% + %v worse", pm, bm, first)
						}
					})
				}
			}
		}
	}
}

// TestSimulateBaselines pins the baselines' behaviour in the simulator.
func TestSimulateBaselines(t *testing.T) {
	for _, tc := range []struct {
		spec      string
		evict     int
		wantStart int
	}{
		{"init", 1, 1},
		{"init", 4, 1},
		{"fixed:1", 1, 2},
		{"fixed:1", 4, 2},
		{"fixed:5", 20, 6},
	} {
		t.Run(fmt.Sprintf("%s/evict=%d", tc.spec, tc.evict), func(t *testing.T) {
			r := Simulate(mustParse(t, tc.spec, 1), warmupCurve, tc.evict, 20, 0)
			for i, s := range r.Starts[1:] {
				if s != tc.wantStart {
					t.Fatalf("instance %d started at %d, want %d", i+1, s, tc.wantStart)
				}
			}
			if want := warmupCurve(tc.wantStart); r.Latencies[19][0] != want {
				t.Errorf("first latency %v, want %v", r.Latencies[19][0], want)
			}
		})
	}
}

func TestPercentile(t *testing.T) {
	ms := time.Millisecond
	r := SimResult{Latencies: [][]time.Duration{{5 * ms}, {1 * ms, 4 * ms}, {3 * ms, 2 * ms}}}
	for _, tc := range []struct {
		p    float64
		from int
		want time.Duration
	}{
		{50, 0, 3 * ms},
		{100, 0, 5 * ms},
		{1, 0, 1 * ms},
		{50, 1, 2 * ms},
		{99, 2, 3 * ms},
		{50, 3, 0},
		{50, -1, 3 * ms},
	} {
		t.Run(fmt.Sprint(tc.p, "/", tc.from), func(t *testing.T) {
			if got := r.Percentile(tc.p, tc.from); got != tc.want {
				t.Errorf("Percentile(%v, %d) = %v, want %v", tc.p, tc.from, got, tc.want)
			}
		})
	}
}

// TestSimulationTable prints the table of docs/policy.md when
// THAW_POLICY_TABLE is set:
//
//	THAW_POLICY_TABLE=1 go test -run TestSimulationTable -v ./internal/policy
func TestSimulationTable(t *testing.T) {
	if os.Getenv("THAW_POLICY_TABLE") == "" {
		t.Skip("set THAW_POLICY_TABLE=1 to print the simulation table")
	}
	const n, seeds = 300, 5
	var b strings.Builder
	b.WriteString("| curve | evict every | policy | median (all) | p99 (all) | median (last 100) | p99 (last 100) |\n|---|---|---|---|---|---|---|\n")
	for _, curve := range []struct {
		name  string
		f     func(int) time.Duration
		first time.Duration
	}{
		{"warm-up 100→10 ms", warmupCurve, 0},
		{"warm-up 100→10 ms, first restore +4 ms", warmupCurve, 4 * time.Millisecond},
		{"flat 20 ms ±10%", noisyFlat, 0},
		{"flat 20 ms ±10%, first restore +4 ms", noisyFlat, 4 * time.Millisecond},
		{"slow-down 10→100 ms", Warmup(10*time.Millisecond, 100*time.Millisecond, 50), 0},
	} {
		for _, evict := range []int{1, 4, 20} {
			for _, spec := range []string{"init", "fixed:1", fmt.Sprintf("pronghorn:window=%d", evict), fmt.Sprintf("pronghorn:window=%d,temp=1,bonus=0", evict)} {
				// Pool the requests of several seeds so one lucky seed does
				// not make the table.
				var all SimResult
				var last SimResult
				for seed := range uint64(seeds) {
					r := Simulate(mustParse(t, spec, seed+1), curve.f, evict, n, curve.first)
					all.Latencies = append(all.Latencies, r.Latencies...)
					last.Latencies = append(last.Latencies, r.Latencies[n-100:]...)
				}
				f := func(d time.Duration) string { return fmt.Sprintf("%.1f", float64(d)/1e6) }
				fmt.Fprintf(&b, "| %s | %d | `%s` | %s | %s | %s | %s |\n", curve.name, evict, spec,
					f(all.Percentile(50, 0)), f(all.Percentile(99, 0)), f(last.Percentile(50, 0)), f(last.Percentile(99, 0)))
			}
		}
	}
	t.Log("\n" + b.String())
}

func BenchmarkSimulate(b *testing.B) {
	for _, evict := range []int{1, 20} {
		b.Run(fmt.Sprint("evict=", evict), func(b *testing.B) {
			for i := 0; b.Loop(); i++ {
				Simulate(mustParse(b, fmt.Sprintf("pronghorn:window=%d", evict), uint64(i)), warmupCurve, evict, 300, 0)
			}
		})
	}
}

func BenchmarkChoose(b *testing.B) {
	p := mustParse(b, "pronghorn", 1)
	for r := 1; r <= 200; r++ {
		p.Observe(r, warmupCurve(r))
	}
	pl := pool(0, 3, 9, 20, 33, 41, 50, 64, 80, 99, 120, 150)
	for b.Loop() {
		p.Choose(pl)
	}
}
