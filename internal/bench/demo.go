package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/thaw-run/thaw/internal/api"
	"github.com/thaw-run/thaw/internal/build"
	"github.com/thaw-run/thaw/internal/catalog"
	"github.com/thaw-run/thaw/internal/restore"
	"github.com/thaw-run/thaw/internal/stats"
)

// DemoFunctions are the catalog entries `thaw demo` runs: a trivial
// handler, a JSON transform, and one whose initialisation is expensive,
// where restoring a snapshot pays off most.
var DemoFunctions = []string{"hello", "jsontransform", "initheavy"}

// DemoColdBudget stops repeating cold starts once they have taken this
// long: a function with a long initialisation would otherwise dominate the
// demo's run time, and one cold start already makes the point.
const DemoColdBudget = 3 * time.Second

// demoTimeout bounds each function's initialisation and invocations.
// initheavy's initialisation takes seconds on an idle machine and several
// times that on a busy one (parallel deploys, a CI run); the demo measures
// start latency, not timeouts, so it allows plenty.
const demoTimeout = 3 * time.Minute

// DemoOptions configure RunDemo.
type DemoOptions struct {
	// Root is the repository root, Dir a scratch directory for the
	// modules and the server's data.
	Root, Dir string
	// Mode is the restore mode compared with cold and warm starts.
	Mode restore.Mode
	// Trials is the number of invocations per function and start kind.
	Trials int
	// Progress receives what the demo does as it goes; Log the server's
	// warnings.
	Progress io.Writer
	Log      *slog.Logger
}

// DemoRow is one function's results.
type DemoRow struct {
	Name                string
	Cold, Restore, Warm time.Duration // medians of end-to-end latency
	RestoreStart        time.Duration // median start stage of restores
	ColdStart           time.Duration
	// Faults is the pager's description of the first call's faults.
	Faults string
	// Fallback is why a restore fell back to a cold boot, if one did.
	Fallback string
}

// RunDemo builds DemoFunctions, serves them on a private loopback server
// (StartServer), deploys them, and invokes each over HTTP cold, restored
// in opts.Mode and warm, opts.Trials times each, with its catalog request.
func RunDemo(ctx context.Context, opts DemoOptions) ([]DemoRow, error) {
	out := opts.Progress
	var fns []catalog.Function
	modules := map[string][]byte{}
	for _, name := range DemoFunctions {
		fn, err := catalog.Lookup(name)
		if err != nil {
			return nil, err
		}
		fns = append(fns, fn)
		t0 := time.Now()
		fmt.Fprintf(out, "building %-28s", fn.Dir+" ...")
		path := filepath.Join(opts.Dir, fn.Name+".wasm")
		if err := build.Module(ctx, fn.Path(opts.Root), path); err != nil {
			fmt.Fprintln(out)
			return nil, err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, err
		}
		modules[fn.Name] = b
		fmt.Fprintf(out, " %s in %.1fs\n", mib(int64(len(b))), time.Since(t0).Seconds())
	}

	dataDir := filepath.Join(opts.Dir, "data")
	rs, err := StartServer(ctx, dataDir, "", opts.Log)
	if err != nil {
		return nil, err
	}
	defer rs.Close(5 * time.Second)
	fmt.Fprintf(out, "server on %s (data in %s)\n", rs.URL, dataDir)
	c := &api.Client{BaseURL: rs.URL}

	// Deploys compile each module twice (boot and restore module), the
	// slowest step on a fresh machine; run them side by side.
	t0 := time.Now()
	errs := make([]error, len(fns))
	var wg sync.WaitGroup
	var mu sync.Mutex
	for i, fn := range fns {
		wg.Go(func() {
			info, err := c.Deploy(ctx, fn.Name, modules[fn.Name], api.Config{RestoreMode: api.Mode(opts.Mode), Timeout: api.Duration(demoTimeout)})
			if err != nil {
				errs[i] = err
				return
			}
			snap := "no snapshot"
			if info.Snapshot != nil {
				snap = "snapshot " + mib(info.Snapshot.DataBytes)
			}
			mu.Lock()
			fmt.Fprintf(out, "deployed %-14s %s after %.1fs\n", fn.Name, snap, time.Since(t0).Seconds())
			mu.Unlock()
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	fmt.Fprintf(out, "invoking each function cold, restored (%s) and warm ...\n", opts.Mode)
	var rows []DemoRow
	for _, fn := range fns {
		row, err := demoMeasure(ctx, c, fn, opts.Mode, opts.Trials)
		if err != nil {
			return nil, err
		}
		rows = append(rows, row)
	}
	return rows, nil
}

// mib formats a byte count in MiB.
func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

// demoMeasure invokes fn cold, restored and warm, trials times each.
func demoMeasure(ctx context.Context, c *api.Client, fn catalog.Function, mode restore.Mode, trials int) (DemoRow, error) {
	row := DemoRow{Name: fn.Name}
	call := func(m restore.Mode) (*api.InvokeResponse, time.Duration, error) {
		req := api.InvokeRequest{Method: fn.Request.Method, Path: fn.Request.Target, Header: fn.Request.Header, Body: fn.Request.Body, Mode: api.Mode(m)}
		t0 := time.Now()
		res, err := c.Invoke(ctx, fn.Name, &req)
		d := time.Since(t0)
		if err != nil {
			return nil, 0, err
		}
		if res.Status >= 400 {
			return nil, 0, fmt.Errorf("demo: %s answered %d: %s", fn.Name, res.Status, strings.TrimSpace(string(res.Body)))
		}
		return res, d, nil
	}
	// The first restore in a working-set mode records the working set;
	// it is not what later restores cost, so it is left out.
	if res, _, err := call(mode); err != nil {
		return row, err
	} else if fb := res.Header.Get(api.HeaderFallback); fb != "" {
		row.Fallback = fb
	}
	measure := func(m restore.Mode, total, start *time.Duration) error {
		var ds, ss []int64
		var spent time.Duration
		for i := 0; i < trials && (m != restore.Cold || i == 0 || spent < DemoColdBudget); i++ {
			res, d, err := call(m)
			spent += d
			if err != nil {
				return err
			}
			ds = append(ds, int64(d))
			if st, ok := res.Metric("start"); ok {
				ss = append(ss, int64(st.Dur*float64(time.Millisecond)))
			}
			if m == mode {
				if fb := res.Header.Get(api.HeaderFallback); fb != "" {
					row.Fallback = fb
				}
				if f, ok := res.Metric("faults"); ok {
					row.Faults = f.Desc
				}
			}
		}
		*total = time.Duration(stats.Percentile(ds, 50))
		if start != nil {
			*start = time.Duration(stats.Percentile(ss, 50))
		}
		return nil
	}
	if err := measure(restore.Cold, &row.Cold, &row.ColdStart); err != nil {
		return row, err
	}
	if err := measure(mode, &row.Restore, &row.RestoreStart); err != nil {
		return row, err
	}
	if err := measure(restore.Warm, &row.Warm, nil); err != nil {
		return row, err
	}
	return row, nil
}
