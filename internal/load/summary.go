package load

import (
	"maps"
	"slices"
	"strconv"
	"time"

	"github.com/thaw-run/thaw/internal/stats"
)

// Stats summarise the invocations of one function, or of all of them.
// Latency percentiles are over successful (2xx) invocations only: a 429
// answered in microseconds is not a fast invocation.
type Stats struct {
	// Function is the function's name, or "all".
	Function string `json:"function"`
	// Requests counts scheduled arrivals, sent or dropped.
	Requests int `json:"requests"`
	OK       int `json:"ok"`
	// Errors counts sent requests without a 2xx response.
	Errors int `json:"errors"`
	// ErrorsByKind splits Errors by HTTP status ("429", "503") or
	// "transport" when no response came.
	ErrorsByKind map[string]int `json:"errors_by_kind,omitempty"`
	Dropped      int            `json:"dropped"`
	P50Ms        float64        `json:"p50_ms"`
	P90Ms        float64        `json:"p90_ms"`
	P99Ms        float64        `json:"p99_ms"`
	MeanMs       float64        `json:"mean_ms"`
	MaxMs        float64        `json:"max_ms"`
	// Starts counts successful invocations whose start kind is known;
	// Cold, Restore and Warm split them.
	Starts  int `json:"starts"`
	Cold    int `json:"cold"`
	Restore int `json:"restore"`
	Warm    int `json:"warm"`
	// ColdStartRate is (Cold+Restore)/Starts: the fraction of invocations
	// that paid for a new instance.
	ColdStartRate float64 `json:"cold_start_rate"`
	// Mean stage durations over invocations with Server-Timing.
	MeanQueueMs float64 `json:"mean_queue_ms"`
	MeanStartMs float64 `json:"mean_start_ms"`
	MeanExecMs  float64 `json:"mean_exec_ms"`
	// LagP99Ms is the 99th percentile of how late the generator sent
	// requests; if it is large, the generator, not the server, was the
	// bottleneck and the latencies are suspect.
	LagP99Ms float64 `json:"lag_p99_ms"`
}

// WorkerStats summarise the invocations one worker of a cluster served
// (by the node the response named), with what its snapshot store read.
type WorkerStats struct {
	// Worker is the node id; "" gathers the requests no worker answered
	// (transport errors) or that did not say which served them.
	Worker string `json:"worker"`
	Stats
	// Entry is the entry point this worker answers at, if it was one.
	Entry string `json:"entry,omitempty"`
	// StoreBytes is what its snapshot store read during the run, by tier
	// ("remote": the object store), when its /metrics said.
	StoreBytes map[string]float64 `json:"store_bytes,omitempty"`
}

// Summary summarises a Result.
type Summary struct {
	Overall   Stats   `json:"overall"`
	Functions []Stats `json:"functions"`
	// Workers split the run by the worker that served each request: only
	// when the responses named one, or the entry points were observed
	// (Options.Endpoints).
	Workers []WorkerStats `json:"workers,omitempty"`
	// StoreRemoteBytes sums the object-store ("remote" tier) bytes the
	// observed workers read.
	StoreRemoteBytes float64 `json:"store_remote_bytes,omitempty"`
	ElapsedS         float64 `json:"elapsed_s"`
	// ThroughputRPS is successful invocations per second of the run.
	ThroughputRPS float64 `json:"throughput_rps"`
	// PeakMemoryBytes is the largest memory sample (0 without samples).
	PeakMemoryBytes float64 `json:"peak_memory_bytes"`
}

// Summarize computes per-function and overall statistics of res.
func Summarize(res *Result) Summary {
	byFn := map[string][]*Record{}
	all := make([]*Record, 0, len(res.Records))
	for i := range res.Records {
		r := &res.Records[i]
		byFn[r.Function] = append(byFn[r.Function], r)
		all = append(all, r)
	}
	s := Summary{Overall: statsOf("all", all), ElapsedS: res.Elapsed.Seconds()}
	for _, name := range slices.Sorted(maps.Keys(byFn)) {
		s.Functions = append(s.Functions, statsOf(name, byFn[name]))
	}
	s.Workers, s.StoreRemoteBytes = workers(res)
	if res.Elapsed > 0 {
		s.ThroughputRPS = float64(s.Overall.OK) / res.Elapsed.Seconds()
	}
	for _, m := range res.Memory {
		s.PeakMemoryBytes = max(s.PeakMemoryBytes, m.Bytes)
	}
	return s
}

func statsOf(name string, recs []*Record) Stats {
	st := Stats{Function: name, Requests: len(recs)}
	var lat, lag []float64
	var q, sta, ex float64
	timed := 0
	for _, r := range recs {
		switch {
		case r.Dropped:
			st.Dropped++
			continue
		case r.OK():
			st.OK++
			lat = append(lat, r.LatencyMs)
			switch r.StartKind {
			case "cold":
				st.Cold++
			case "restore":
				st.Restore++
			case "warm":
				st.Warm++
			}
		default:
			st.Errors++
			kind := "transport"
			if r.Status != 0 {
				kind = strconv.Itoa(r.Status)
			}
			if st.ErrorsByKind == nil {
				st.ErrorsByKind = map[string]int{}
			}
			st.ErrorsByKind[kind]++
		}
		lag = append(lag, r.SentMs-r.ScheduledMs)
		if r.HasTiming {
			timed++
			q, sta, ex = q+r.QueueMs, sta+r.StartMs, ex+r.ExecMs
		}
	}
	st.Starts = st.Cold + st.Restore + st.Warm
	if st.Starts > 0 {
		st.ColdStartRate = float64(st.Cold+st.Restore) / float64(st.Starts)
	}
	if timed > 0 {
		st.MeanQueueMs, st.MeanStartMs, st.MeanExecMs = q/float64(timed), sta/float64(timed), ex/float64(timed)
	}
	slices.Sort(lat)
	slices.Sort(lag)
	st.P50Ms, st.P90Ms, st.P99Ms = stats.PercentileSorted(lat, 50), stats.PercentileSorted(lat, 90), stats.PercentileSorted(lat, 99)
	st.LagP99Ms = stats.PercentileSorted(lag, 99)
	if len(lat) > 0 {
		sum := 0.0
		for _, v := range lat {
			sum += v
		}
		st.MeanMs, st.MaxMs = sum/float64(len(lat)), lat[len(lat)-1]
	}
	return st
}

// Window summarises the invocations scheduled within one time window, for
// latency and cold-start rate over time.
type Window struct {
	// StartS is the window's start, in seconds from the run's start.
	StartS        float64 `json:"start_s"`
	Requests      int     `json:"requests"`
	OK            int     `json:"ok"`
	Errors        int     `json:"errors"`
	Dropped       int     `json:"dropped"`
	P50Ms         float64 `json:"p50_ms"`
	P99Ms         float64 `json:"p99_ms"`
	ColdStartRate float64 `json:"cold_start_rate"`
}

// Windows cuts res into consecutive windows of width by scheduled time.
func Windows(res *Result, width time.Duration) []Window {
	if width <= 0 || len(res.Records) == 0 {
		return nil
	}
	w := ms(width)
	last := 0
	for _, r := range res.Records {
		last = max(last, int(r.ScheduledMs/w))
	}
	groups := make([][]*Record, last+1)
	for i := range res.Records {
		r := &res.Records[i]
		k := int(r.ScheduledMs / w)
		groups[k] = append(groups[k], r)
	}
	out := make([]Window, len(groups))
	for i, g := range groups {
		st := statsOf("", g)
		out[i] = Window{
			StartS: float64(i) * width.Seconds(), Requests: st.Requests, OK: st.OK, Errors: st.Errors,
			Dropped: st.Dropped, P50Ms: st.P50Ms, P99Ms: st.P99Ms, ColdStartRate: st.ColdStartRate,
		}
	}
	return out
}

// workers groups res's records by the node that served them and joins
// the observed endpoints to them.
func workers(res *Result) ([]WorkerStats, float64) {
	byNode := map[string][]*Record{}
	named := false
	for i := range res.Records {
		r := &res.Records[i]
		byNode[r.Node] = append(byNode[r.Node], r)
		named = named || r.Node != ""
	}
	ends := map[string]Endpoint{}
	for _, e := range res.Endpoints {
		if e.Node != "" {
			ends[e.Node] = e
			if _, ok := byNode[e.Node]; !ok {
				byNode[e.Node] = nil
			}
			named = true
		}
	}
	if !named {
		return nil, 0
	}
	var out []WorkerStats
	var remote float64
	for _, node := range slices.Sorted(maps.Keys(byNode)) {
		st := statsOf("all", byNode[node])
		ws := WorkerStats{Worker: node, Stats: st}
		if e, ok := ends[node]; ok {
			ws.Entry, ws.StoreBytes = e.URL, e.StoreBytes
			remote += e.StoreBytes["remote"]
		}
		out = append(out, ws)
	}
	return out, remote
}
