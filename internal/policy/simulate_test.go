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

// simRow is one row of the simulation table of docs/policy.md: one policy
// on one curve at one eviction rate, the requests of several seeds pooled
// (all of them, and each run's last 100).
type simRow struct {
	curve     string
	first     time.Duration
	evict     int
	spec      string
	all, last SimResult
}

// simKinds name the policies of each table block, in the table's order.
const (
	simInit = iota
	simFixed
	simPronghorn   // pronghorn with this session's defaults
	simPronghornT1 // the first version's temp=1 and no bonus
	simKinds
)

// simulationTable computes the table of docs/policy.md: 300 instances per
// run, 5 seeds pooled, pronghorn's window set to the eviction rate.
func simulationTable(t testing.TB) []simRow {
	const n, seeds = 300, 5
	var rows []simRow
	for _, curve := range []struct {
		name  string
		f     func(int) time.Duration
		first time.Duration
	}{
		{"warm-up 100→10 ms", warmupCurve, 0},
		{"warm-up 100→10 ms, first restore +4 ms", warmupCurve, 4 * time.Millisecond},
		{"flat 20 ms ±10%", noisyFlat, 0},
		{"flat 20 ms ±10%, first restore +4 ms", noisyFlat, 4 * time.Millisecond},
		{"slow-down 10→100 ms", slowDownCurve, 0},
	} {
		for _, evict := range []int{1, 4, 20} {
			for _, spec := range []string{"init", "fixed:1", fmt.Sprintf("pronghorn:window=%d", evict), fmt.Sprintf("pronghorn:window=%d,temp=1,bonus=0", evict)} {
				// Pool the requests of several seeds so one lucky seed does
				// not make the table.
				row := simRow{curve: curve.name, first: curve.first, evict: evict, spec: spec}
				for seed := range uint64(seeds) {
					r := Simulate(mustParse(t, spec, seed+1), curve.f, evict, n, curve.first)
					row.all.Latencies = append(row.all.Latencies, r.Latencies...)
					row.last.Latencies = append(row.last.Latencies, r.Latencies[n-100:]...)
				}
				rows = append(rows, row)
			}
		}
	}
	return rows
}

// slowDownCurve rises from 10 ms to 100 ms over 50 requests: learning
// cannot help and exploring costs.
var slowDownCurve = Warmup(10*time.Millisecond, 100*time.Millisecond, 50)

// TestSimulationTable checks the statements docs/policy.md makes about its
// simulation table ("Reading it"), on the table itself. With
// THAW_POLICY_TABLE set it also prints the table in the document's format:
//
//	THAW_POLICY_TABLE=1 go test -run TestSimulationTable -v ./internal/policy
func TestSimulationTable(t *testing.T) {
	rows := simulationTable(t)
	if os.Getenv("THAW_POLICY_TABLE") != "" {
		var b strings.Builder
		b.WriteString("| curve | evict every | policy | median (all) | p99 (all) | median (last 100) | p99 (last 100) |\n|---|---|---|---|---|---|---|\n")
		f := func(d time.Duration) string { return fmt.Sprintf("%.1f", float64(d)/1e6) }
		for _, r := range rows {
			fmt.Fprintf(&b, "| %s | %d | `%s` | %s | %s | %s | %s |\n", r.curve, r.evict, r.spec,
				f(r.all.Percentile(50, 0)), f(r.all.Percentile(99, 0)), f(r.last.Percentile(50, 0)), f(r.last.Percentile(99, 0)))
		}
		t.Log("\n" + b.String())
	}
	if len(rows)%simKinds != 0 {
		t.Fatalf("%d rows, not blocks of %d policies", len(rows), simKinds)
	}
	const warm = 10 * time.Millisecond // the warm-up curve's end
	for i := 0; i < len(rows); i += simKinds {
		block := rows[i : i+simKinds]
		r0 := block[0]
		name := fmt.Sprintf("%s/evict=%d", r0.curve, r0.evict)
		med := func(k int, last bool) time.Duration {
			if last {
				return block[k].last.Percentile(50, 0)
			}
			return block[k].all.Percentile(50, 0)
		}
		p99 := func(k int) time.Duration { return block[k].last.Percentile(99, 0) }
		switch {
		case strings.HasPrefix(r0.curve, "warm-up"):
			// Pronghorn converges to the warm end at every eviction rate,
			// paying at most the first-restore cost on its climb, and
			// beats both baselines and the first version's parameters.
			if m := med(simPronghorn, true); m > warm+r0.first {
				t.Errorf("%s: pronghorn's median of the last 100 is %v, want <= %v", name, m, warm+r0.first)
			}
			if m := med(simPronghorn, false); m > warm+r0.first {
				t.Errorf("%s: pronghorn's median over the run is %v, want <= %v", name, m, warm+r0.first)
			}
			for _, k := range []int{simInit, simFixed, simPronghornT1} {
				if med(simPronghorn, false) > med(k, false) {
					t.Errorf("%s: pronghorn's median %v above %s's %v", name, med(simPronghorn, false), block[k].spec, med(k, false))
				}
			}
		case strings.HasPrefix(r0.curve, "flat"):
			// On a flat curve pronghorn is at most 5% worse in median than
			// fixed:1, plus its first restores' cost: all of it at eviction
			// every request, the share of one request in evict after.
			bound := med(simFixed, true)*105/100 + r0.first/time.Duration(r0.evict)
			if m := med(simPronghorn, true); m > bound {
				t.Errorf("%s: pronghorn's median of the last 100 is %v, fixed:1's %v; want <= %v", name, m, med(simFixed, true), bound)
			}
		case strings.HasPrefix(r0.curve, "slow-down"):
			// Learning cannot help: once it has measured the curve, the
			// default pronghorn loses nothing against fixed:1 in median or
			// p99, while the first version's parameters still lose at
			// evictions 4 and 20.
			if med(simPronghorn, true) > med(simFixed, true) || p99(simPronghorn) > p99(simFixed) {
				t.Errorf("%s: pronghorn's median/p99 of the last 100 %v/%v, fixed:1's %v/%v; want no worse",
					name, med(simPronghorn, true), p99(simPronghorn), med(simFixed, true), p99(simFixed))
			}
			if r0.evict > 1 && med(simPronghornT1, true) <= med(simPronghorn, true) {
				t.Errorf("%s: temp=1,bonus=0's median of the last 100 %v no worse than the defaults' %v: the table no longer shows why they changed",
					name, med(simPronghornT1, true), med(simPronghorn, true))
			}
		default:
			t.Fatalf("no statement checks curve %q", r0.curve)
		}
	}
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
