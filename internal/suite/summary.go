package suite

import (
	"slices"

	"github.com/thaw-run/thaw/internal/report"
	"github.com/thaw-run/thaw/internal/stats"
)

// Stages are the stage names of the stacked bars, in the order they
// happen. A restore reports map, instantiate, prefetch and exec; a cold
// boot instantiate, init and exec; a warm call only exec. "other" is the
// rest of the end-to-end latency: HTTP, queueing and the server's own
// work around the instance.
var Stages = []string{"map", "instantiate", "init", "prefetch", "exec", "other"}

// TrialStages splits one trial's latency into Stages (ms). Only the stages
// its start kind has are present. A restore's instantiate stage is not
// reported by the server: it is the start stage minus map and prefetch,
// the time spent creating the wasm instance around the prepared memory.
func TrialStages(t *Trial) map[string]float64 {
	if !t.HasTiming {
		return nil
	}
	s := map[string]float64{"exec": t.ExecMs, "other": max(0, t.LatencyMs-t.StartMs-t.ExecMs)}
	switch t.StartKind {
	case "cold":
		inst, ok := t.Stages["instantiate"]
		if !ok {
			inst = t.StartMs
		}
		s["instantiate"] = inst
		s["init"] = t.Stages["init"]
	case "restore":
		m, pf := t.Stages["map"], t.Stages["prefetch"]
		s["map"], s["prefetch"] = m, pf
		s["instantiate"] = max(0, t.StartMs-m-pf)
	}
	return s
}

// Rows summarises trials per function and mode, functions in the order
// they first appear, modes in ModeOrder. Trials counts successful trials, over
// which the latency percentiles and the stage, fault and working-set
// medians are taken; Errors counts the others. Extra holds "fallbacks"
// (restores that booted cold instead) when there were any and "vs_warm",
// the ratio of the row's p50 to the warm p50 of the same function, when
// warm calls were measured.
func Rows(trials []Trial) []report.Row {
	type key struct{ fn, mode string }
	var keys []key
	by := map[key][]*Trial{}
	for i := range trials {
		t := &trials[i]
		k := key{t.Function, t.Mode}
		if _, ok := by[k]; !ok {
			keys = append(keys, k)
		}
		by[k] = append(by[k], t)
	}
	// Group rows by function, in first-seen order, and order modes from
	// cold boot to warm call whatever order the rounds shuffled them into.
	var fns, modes []string
	for _, k := range keys {
		if !slices.Contains(fns, k.fn) {
			fns = append(fns, k.fn)
		}
		if !slices.Contains(modes, k.mode) {
			modes = append(modes, k.mode)
		}
	}
	slices.SortStableFunc(modes, func(a, b string) int { return modeRank(a) - modeRank(b) })
	var rows []report.Row
	for _, fn := range fns {
		for _, mode := range modes {
			ts, ok := by[key{fn, mode}]
			if !ok {
				continue
			}
			rows = append(rows, row(fn, mode, ts))
		}
		var warm float64
		for _, r := range rows {
			if r.Function == fn && r.Mode == "warm" {
				warm = r.P50Ms
			}
		}
		if warm > 0 {
			for i := range rows {
				if rows[i].Function == fn && rows[i].P50Ms > 0 {
					if rows[i].Extra == nil {
						rows[i].Extra = map[string]float64{}
					}
					rows[i].Extra["vs_warm"] = rows[i].P50Ms / warm
				}
			}
		}
	}
	return rows
}

func row(fn, mode string, ts []*Trial) report.Row {
	r := report.Row{Function: fn, Mode: mode}
	var lat, faults, ws []float64
	stages := map[string][]float64{}
	fallbacks := 0
	for _, t := range ts {
		if !t.OK() {
			r.Errors++
			continue
		}
		r.Trials++
		lat = append(lat, t.LatencyMs)
		if t.Fallback != "" {
			fallbacks++
		}
		for k, v := range TrialStages(t) {
			stages[k] = append(stages[k], v)
		}
		if t.StartKind == "restore" {
			faults = append(faults, float64(t.Faults))
			ws = append(ws, float64(t.WSBytes))
		}
	}
	r.P50Ms, r.P90Ms, r.P99Ms = stats.Percentile(lat, 50), stats.Percentile(lat, 90), stats.Percentile(lat, 99)
	if len(lat) > 0 {
		sum := 0.0
		for _, v := range lat {
			sum += v
		}
		r.MeanMs = sum / float64(len(lat))
	}
	if len(stages) > 0 {
		r.Stages = map[string]float64{}
		for k, vs := range stages {
			r.Stages[k] = stats.Percentile(vs, 50)
		}
	}
	r.Faults, r.WSBytes = stats.Percentile(faults, 50), stats.Percentile(ws, 50)
	if fallbacks > 0 {
		r.Extra = map[string]float64{"fallbacks": float64(fallbacks)}
	}
	return r
}

// Samples returns the successful trials' latencies per mode, for the CDF.
func Samples(trials []Trial) map[string][]float64 {
	out := map[string][]float64{}
	for i := range trials {
		if t := &trials[i]; t.OK() {
			out[t.Mode] = append(out[t.Mode], t.LatencyMs)
		}
	}
	return out
}

// RatioPairs are the mode pairs Ratios reports: each is the first mode's
// p50 divided by the second's. lazy is thaw's "vanilla snapshot" (every
// page faulted in on demand from the snapshot file), so reap/lazy and
// bulk/lazy are the figures to set beside REAP's REAP/vanilla.
var RatioPairs = [][2]string{
	{"reap", "lazy"}, {"bulk", "lazy"}, {"cold", "bulk"}, {"cold", "reap"}, {"cold", "lazy"},
	{"mmap", "bulk"}, {"lazy", "warm"}, {"reap", "warm"}, {"bulk", "warm"}, {"cold", "warm"},
}

// Ratios returns, per function, the RatioPairs whose two modes were both
// measured, keyed "a/b".
func Ratios(rows []report.Row) map[string]map[string]float64 {
	p50 := map[string]map[string]float64{}
	for _, r := range rows {
		if r.Trials == 0 {
			continue
		}
		if p50[r.Function] == nil {
			p50[r.Function] = map[string]float64{}
		}
		p50[r.Function][r.Mode] = r.P50Ms
	}
	out := map[string]map[string]float64{}
	for fn, m := range p50 {
		for _, pair := range RatioPairs {
			a, okA := m[pair[0]]
			b, okB := m[pair[1]]
			if okA && okB && b > 0 {
				if out[fn] == nil {
					out[fn] = map[string]float64{}
				}
				out[fn][pair[0]+"/"+pair[1]] = a / b
			}
		}
	}
	return out
}

// ModeOrder is the order of modes in tables and plots: a cold boot, the
// restore modes from the simplest to the most prefetching, a warm call.
var ModeOrder = []string{"cold", "eager", "mmap", "lazy", "reap", "bulk", "warm"}

// modeRank places unknown modes after the known ones.
func modeRank(m string) int {
	if i := slices.Index(ModeOrder, m); i >= 0 {
		return i
	}
	return len(ModeOrder)
}
