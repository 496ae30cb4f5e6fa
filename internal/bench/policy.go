package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/thaw-run/thaw/internal/api"
	"github.com/thaw-run/thaw/internal/report"
	"github.com/thaw-run/thaw/internal/restore"
	"github.com/thaw-run/thaw/internal/stats"
	"github.com/thaw-run/thaw/internal/worker"
)

// PolicyOptions configure RunPolicy: Pronghorn's method.
type PolicyOptions struct {
	Functions []Function
	// Policies are snapshot-policy specs; "cold" means no snapshots at all.
	Policies []string
	// EvictEvery lists after how many requests the worker is evicted.
	EvictEvery []int
	// Requests per function, policy and eviction rate (Pronghorn: 500).
	Requests int
	// Mode is the restore mode of snapshot starts (default bulk).
	Mode     restore.Mode
	DataDir  string
	Progress io.Writer
}

// PolicyResult is one function, policy and eviction rate.
type PolicyResult struct {
	Function   string  `json:"function"`
	Policy     string  `json:"policy"`
	EvictEvery int     `json:"evict_every"`
	Requests   int     `json:"requests"`
	P50ms      float64 `json:"p50_ms"`
	P99ms      float64 `json:"p99_ms"`
	MeanMs     float64 `json:"mean_ms"`
	// LastHalfP50ms is the median over the second half of the requests,
	// after a learning policy has had time to converge.
	LastHalfP50ms float64 `json:"last_half_p50_ms"`
	Checkpoints   int     `json:"checkpoints"`
	// Latencies and Snapshots are per request, in order: end-to-end latency
	// inside the worker (start + exec) and the request number after which
	// the serving instance's snapshot was taken (-1: booted cold).
	Latencies []float64 `json:"latencies_ms,omitempty"`
	Snapshots []int     `json:"snapshot_requests,omitempty"`
	// Starts breaks each request's latency down, so that a policy's cost
	// can be told apart from its restores' (e.g. a snapshot's first
	// restore against its repeats).
	Starts []RequestStart `json:"starts,omitempty"`
}

// RequestStart is one request's start: its stages and, for a restore, its
// stats (pager faults of the first call included).
type RequestStart struct {
	Kind          string  `json:"kind"`
	StartMs       float64 `json:"start_ms"`
	ExecMs        float64 `json:"exec_ms"`
	InstantiateMs float64 `json:"instantiate_ms,omitempty"`
	// First is set on the first restore of its snapshot in this run.
	First   bool           `json:"first,omitempty"`
	Restore *restore.Stats `json:"restore,omitempty"`
}

// PolicyReport is the output of RunPolicy.
type PolicyReport struct {
	Machine Machine        `json:"machine"`
	Results []PolicyResult `json:"results"`
	// Improvement is pronghorn's median latency reduction against fixed:1
	// per function and eviction rate (0.3 = 30% lower).
	Improvement map[string]map[int]float64 `json:"improvement_vs_fixed1"`
}

// RunPolicy measures each policy as Pronghorn's evaluation does: a worker
// serves requests one at a time and is evicted every E requests, after
// which the next request starts an instance as the policy chooses. The
// policies of one function and eviction rate run side by side, each on its
// own deployment of the function, and take turns request by request, so
// that a slow spell of the machine (minutes, on a shared 2-core VM) falls
// on all of them alike and their ratios hold.
func RunPolicy(ctx context.Context, opts PolicyOptions) (*PolicyReport, error) {
	if opts.Requests < 1 {
		return nil, fmt.Errorf("requests must be at least 1")
	}
	if opts.Mode == "" {
		opts.Mode = restore.Bulk
	}
	w, err := worker.Open(ctx, worker.Options{DataDir: opts.DataDir})
	if err != nil {
		return nil, err
	}
	defer w.Close(ctx)
	rep := &PolicyReport{Machine: ThisMachine(), Improvement: map[string]map[int]float64{}}
	for _, fn := range opts.Functions {
		for _, evict := range opts.EvictEvery {
			results, err := runPolicies(ctx, w, fn, evict, opts)
			if err != nil {
				return nil, err
			}
			byPolicy := map[string]float64{}
			for _, r := range results {
				rep.Results = append(rep.Results, r)
				byPolicy[r.Policy] = r.P50ms
				if opts.Progress != nil {
					fmt.Fprintf(opts.Progress, "%-10s %-12s evict %-3d p50 %8.2f ms  p99 %8.2f ms  checkpoints %d\n",
						fn.Name, r.Policy, evict, r.P50ms, r.P99ms, r.Checkpoints)
				}
			}
			if f1, ok := byPolicy["fixed:1"]; ok && f1 > 0 {
				if p, ok := byPolicy["pronghorn"]; ok {
					if rep.Improvement[fn.Name] == nil {
						rep.Improvement[fn.Name] = map[int]float64{}
					}
					rep.Improvement[fn.Name][evict] = 1 - p/f1
				}
			}
		}
	}
	return rep, nil
}

// policyConfig is the function configuration that runs policy pol with
// workers evicted every evict requests.
func policyConfig(fn Function, pol string, evict int, mode restore.Mode) worker.Config {
	cfg := worker.Config{MemoryMiB: fn.MemoryMiB, MaxInstances: 1, KeepAlive: api.Duration(time.Hour), RestoreMode: api.Mode(mode), Policy: pol}
	switch pol {
	case "cold":
		cfg.RestoreMode, cfg.Policy = api.ModeCold, "init"
	}
	if pol == "pronghorn" || strings.HasPrefix(pol, "pronghorn:") && !strings.Contains(pol, "window=") {
		// Pronghorn's window is the number of requests a worker serves
		// before eviction, which the platform knows.
		sep := ":"
		if strings.Contains(pol, ":") {
			sep = ","
		}
		cfg.Policy = fmt.Sprintf("%s%swindow=%d", pol, sep, evict)
	}
	return cfg
}

// runPolicies deploys fn once per policy and serves opts.Requests requests
// to each deployment in turn. After every request it waits for the
// deployment's checkpoint, if one was taken, so that no snapshot is being
// written while the next request, of any policy, is timed: a platform
// dumps on other cores, which a 2-core machine does not have to spare.
func runPolicies(ctx context.Context, w *worker.Worker, fn Function, evict int, opts PolicyOptions) ([]PolicyResult, error) {
	type run struct {
		name     string
		res      PolicyResult
		restored map[string]bool
	}
	runs := make([]*run, len(opts.Policies))
	for k, pol := range opts.Policies {
		r := &run{name: fmt.Sprintf("%s-p%d", fn.Name, k), restored: map[string]bool{},
			res: PolicyResult{Function: fn.Name, Policy: pol, EvictEvery: evict, Requests: opts.Requests}}
		if _, err := w.Deploy(ctx, r.name, fn.Wasm, policyConfig(fn, pol, evict, opts.Mode)); err != nil {
			return nil, fmt.Errorf("deploy %s (%s): %w", fn.Name, pol, err)
		}
		defer w.Delete(ctx, r.name)
		// The deploy's instance would serve the first requests warm; start
		// from an evicted worker as Pronghorn does.
		if err := w.Evict(ctx, r.name); err != nil {
			return nil, err
		}
		runs[k] = r
	}
	for i := 0; i < opts.Requests; i++ {
		for _, r := range runs {
			res, err := w.Invoke(ctx, r.name, cloneReq(&fn.Request), worker.InvokeOptions{})
			if err != nil {
				return nil, fmt.Errorf("%s (%s, evict %d) request %d: %w", fn.Name, r.res.Policy, evict, i, err)
			}
			r.res.add(res, r.restored)
			w.WaitCheckpoints(r.name)
			if (i+1)%evict == 0 {
				if err := w.Evict(ctx, r.name); err != nil {
					return nil, err
				}
			}
		}
	}
	out := make([]PolicyResult, len(runs))
	for k, r := range runs {
		if info, err := w.Get(r.name); err == nil {
			r.res.Checkpoints = info.PoolSnapshots
		}
		r.res.summarise()
		out[k] = r.res
	}
	return out, nil
}

// add records one request's result; restored holds the snapshots restored
// so far.
func (r *PolicyResult) add(res *worker.Result, restored map[string]bool) {
	r.Latencies = append(r.Latencies, ms(res.Timing.Start+res.Timing.Exec))
	r.Snapshots = append(r.Snapshots, res.Timing.SnapshotRequest)
	st := RequestStart{Kind: res.Timing.StartKind, StartMs: ms(res.Timing.Start), ExecMs: ms(res.Timing.Exec)}
	if res.Timing.StartKind == "restore" {
		st.Restore, st.InstantiateMs = res.Timing.Restore, ms(res.Timing.Instantiate)
		st.First = !restored[res.Timing.SnapshotID]
		restored[res.Timing.SnapshotID] = true
	}
	r.Starts = append(r.Starts, st)
}

// summarise computes the percentiles and mean of the latencies.
func (r *PolicyResult) summarise() {
	r.P50ms, r.P99ms = stats.Percentile(r.Latencies, 50), stats.Percentile(r.Latencies, 99)
	r.LastHalfP50ms = stats.Percentile(r.Latencies[len(r.Latencies)/2:], 50)
	var sum float64
	for _, l := range r.Latencies {
		sum += l
	}
	r.MeanMs = sum / float64(len(r.Latencies))
}

// WriteTable prints the report for people.
func (r *PolicyReport) WriteTable(out io.Writer) {
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "function\tpolicy\tevict every\trequests\tp50 ms\tp99 ms\tmean ms\tlast-half p50\tpool\t")
	for _, x := range r.Results {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%.2f\t%.2f\t%.2f\t%.2f\t%d\t\n", x.Function, x.Policy, x.EvictEvery, x.Requests,
			x.P50ms, x.P99ms, x.MeanMs, x.LastHalfP50ms, x.Checkpoints)
	}
	tw.Flush()
	for fn, byEvict := range r.Improvement {
		for e, v := range byEvict {
			fmt.Fprintf(out, "%s, evict every %d: pronghorn median %.1f%% lower than fixed:1\n", fn, e, 100*v)
		}
	}
}

// WriteJSON prints the report as one JSON object.
func (r *PolicyReport) WriteJSON(out io.Writer) error {
	enc := json.NewEncoder(out)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WritePlots writes, per function and eviction rate, the latency of every
// request in order (a rolling median over window requests, one line per
// policy) and the request number of the snapshot each request's instance
// restored (-1: cold boot), as PNG and SVG files in dir.
func (r *PolicyReport) WritePlots(dir string, window int) ([]string, error) {
	type key struct {
		fn    string
		evict int
	}
	var order []key
	groups := map[key][]PolicyResult{}
	for _, x := range r.Results {
		k := key{x.Function, x.EvictEvery}
		if _, ok := groups[k]; !ok {
			order = append(order, k)
		}
		groups[k] = append(groups[k], x)
	}
	var files []string
	for _, k := range order {
		var lat, snaps []report.Series
		for _, x := range groups[k] {
			s := report.Series{Name: x.Policy}
			c := report.Series{Name: x.Policy}
			for i := range x.Latencies {
				lo := max(0, i-window+1)
				s.X = append(s.X, float64(i+1))
				s.Y = append(s.Y, stats.Percentile(x.Latencies[lo:i+1], 50))
				c.X = append(c.X, float64(i+1))
				c.Y = append(c.Y, float64(x.Snapshots[i]))
			}
			lat = append(lat, s)
			snaps = append(snaps, c)
		}
		base := fmt.Sprintf("%s-evict%d", k.fn, k.evict)
		title := fmt.Sprintf("%s, evicted every %d", k.fn, k.evict)
		if _, err := report.PlotLines(dir, base+"-latency", title+": latency (rolling median)", "request", "latency (ms)", lat, false, true); err != nil {
			return files, err
		}
		if _, err := report.PlotLines(dir, base+"-snapshot", title+": snapshot restored", "request", "snapshot taken after request (-1: cold)", snaps, false, false); err != nil {
			return files, err
		}
		files = append(files, base+"-latency.png", base+"-snapshot.png")
	}
	return files, nil
}
