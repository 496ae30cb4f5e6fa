package suite

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"time"

	"github.com/thaw-run/thaw/internal/api"
	"github.com/thaw-run/thaw/internal/restore"
)

// Target is what a run measures: something that deploys and invokes
// functions. *api.Client is the real one; tests use fakes.
type Target interface {
	Deploy(ctx context.Context, name string, wasm []byte, cfg api.Config) (*api.FunctionInfo, error)
	Invoke(ctx context.Context, name string, ir *api.InvokeRequest) (*api.InvokeResponse, error)
}

var _ Target = (*api.Client)(nil)

// Trial is one measured invocation: a record of invocations.jsonl and a
// row of invocations.csv.
type Trial struct {
	Function string `json:"function"`
	// Mode is the mode the trial asked for; Timing.StartKind and
	// Timing.RestoreMode say what the server did (they differ when a
	// restore fell back to a cold boot, see Fallback).
	Mode  string `json:"mode"`
	Trial int    `json:"trial"`
	// LatencyMs is from sending the request to reading the whole answer.
	LatencyMs float64 `json:"latency_ms"`
	// Status is the HTTP status; 0 when no answer came (see Error).
	Status   int    `json:"status"`
	Error    string `json:"error,omitempty"`
	Fallback string `json:"fallback,omitempty"`
	// HasTiming says whether the answer carried Server-Timing.
	HasTiming bool `json:"has_timing"`
	api.Timing
}

// OK reports whether the trial got a 2xx answer.
func (t *Trial) OK() bool { return t.Status >= 200 && t.Status < 300 }

// Deployment records what deploying a function produced.
type Deployment struct {
	Function      string  `json:"function"`
	ModuleBytes   int     `json:"module_bytes"`
	DeploySeconds float64 `json:"deploy_s"`
	// SnapshotBytes is the snapshot's memory image; WSBytes the largest
	// working set a measured restore reported (0 when no working-set mode
	// ran).
	SnapshotBytes int64 `json:"snapshot_bytes"`
	WSBytes       int64 `json:"ws_bytes"`
}

// Result is a run's measurements.
type Result struct {
	Plan        Plan         `json:"-"`
	Trials      []Trial      `json:"trials"`
	Deployments []Deployment `json:"deployments"`
	Elapsed     time.Duration
}

// RunOptions tune Run.
type RunOptions struct {
	// Progress, if set, is called after every trial with the number done
	// and the total.
	Progress func(done, total int)
	// Log, if set, receives a line per deployment.
	Log io.Writer
}

// deployConfig keeps instances for the whole run (a warm trial needs an
// idle one) and bounds them to two, so that a run over many functions
// holds at most two instances of each in memory.
func deployConfig(f Function) api.Config {
	return api.Config{MemoryMiB: f.MemoryMiB, MaxInstances: 2, KeepAlive: api.Duration(time.Hour), RestoreMode: api.ModeBulk}
}

// Run deploys every function of p on t (modules maps names to wasm) and
// invokes each trials times in every mode. Before the measured trials it
// makes one reap-mode call, which records the working set as REAP's first
// invocation after a snapshot does, and one warm call, so that the first
// warm trial finds an instance. Modes are measured in rounds: each round
// runs every mode once, in an order shuffled by p.Seed, so that a slow
// drift of the machine spreads over all modes instead of biasing the last.
// Every restore and cold boot asks the server to drop the snapshot from the
// page cache first.
//
// Failed invocations are recorded in their trial, not returned; Run fails
// on a failed deployment or preparation call, or when ctx ends.
func Run(ctx context.Context, t Target, p Plan, modules map[string][]byte, opts RunOptions) (*Result, error) {
	start := time.Now()
	res := &Result{Plan: p}
	total := len(p.Functions) * len(p.Modes) * p.Trials
	rng := rand.New(rand.NewPCG(p.Seed, 0x7375697465))
	for _, f := range p.Functions {
		wasm, ok := modules[f.Name]
		if !ok {
			return res, fmt.Errorf("suite: no module for %s", f.Name)
		}
		t0 := time.Now()
		info, err := t.Deploy(ctx, f.Name, wasm, deployConfig(f))
		if err != nil {
			return res, fmt.Errorf("suite: deploy %s: %w", f.Name, err)
		}
		dep := Deployment{Function: f.Name, ModuleBytes: len(wasm), DeploySeconds: time.Since(t0).Seconds()}
		if info.Snapshot != nil {
			dep.SnapshotBytes = info.Snapshot.MemoryBytes
		}
		if opts.Log != nil {
			fmt.Fprintf(opts.Log, "deployed %s (%.1f MiB module, %.1f MiB snapshot) in %.1fs\n", f.Name,
				float64(dep.ModuleBytes)/(1<<20), float64(dep.SnapshotBytes)/(1<<20), dep.DeploySeconds)
		}
		for _, prep := range []restore.Mode{restore.Reap, restore.Warm} {
			if tr := invoke(ctx, t, f, prep, -1); !tr.OK() {
				return res, fmt.Errorf("suite: %s: preparing with a %s call: status %d: %s", f.Name, prep, tr.Status, tr.Error)
			}
		}
		order := make([]restore.Mode, len(p.Modes))
		for i := range p.Trials {
			copy(order, p.Modes)
			rng.Shuffle(len(order), func(a, b int) { order[a], order[b] = order[b], order[a] })
			for _, m := range order {
				if err := ctx.Err(); err != nil {
					return res, fmt.Errorf("suite: %w", err)
				}
				tr := invoke(ctx, t, f, m, i)
				dep.WSBytes = max(dep.WSBytes, tr.WSBytes)
				res.Trials = append(res.Trials, tr)
				if opts.Progress != nil {
					opts.Progress(len(res.Trials), total)
				}
			}
		}
		res.Deployments = append(res.Deployments, dep)
	}
	res.Elapsed = time.Since(start)
	return res, nil
}

// invoke sends f's request in mode and records what happened.
func invoke(ctx context.Context, t Target, f Function, mode restore.Mode, trial int) Trial {
	tr := Trial{Function: f.Name, Mode: string(mode), Trial: trial}
	ir := &api.InvokeRequest{Method: f.Method, Path: f.Path, Body: f.Body, Mode: api.Mode(mode), DropCache: mode != restore.Warm}
	t0 := time.Now()
	resp, err := t.Invoke(ctx, f.Name, ir)
	tr.LatencyMs = float64(time.Since(t0)) / float64(time.Millisecond)
	if err != nil {
		tr.Error = err.Error()
		var ae *api.Error
		if errors.As(err, &ae) {
			tr.Status = ae.Status
		}
		if resp == nil {
			return tr
		}
	}
	tr.Status = resp.Status
	if !tr.OK() && tr.Error == "" {
		tr.Error = http.StatusText(resp.Status)
	}
	tr.Fallback = resp.Header.Get(api.HeaderFallback)
	if h := resp.Header.Get(api.HeaderServerTiming); h != "" {
		if tm, err := api.ParseTiming(h); err == nil {
			tr.Timing, tr.HasTiming = tm, true
		} else if tr.Error == "" {
			tr.Error = err.Error()
		}
	}
	return tr
}
