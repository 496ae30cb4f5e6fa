package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/thaw-run/thaw/internal/build"
	"github.com/thaw-run/thaw/internal/errdefs"
	"github.com/thaw-run/thaw/internal/restore"
	"github.com/thaw-run/thaw/internal/server"
	"github.com/thaw-run/thaw/internal/stats"
	"github.com/thaw-run/thaw/internal/worker"
)

// demoFunction is an example the demo builds, deploys and calls.
type demoFunction struct {
	Name string
	Dir  string // relative to the repository root
	Req  server.InvokeRequest
}

// demoFunctions are the examples the demo runs: a trivial handler, a JSON
// transform, and one whose initialisation is expensive, where restoring a
// snapshot pays off most.
var demoFunctions = []demoFunction{
	{Name: "hello", Dir: "examples/hello", Req: server.InvokeRequest{Path: "/?name=thaw"}},
	{Name: "jsontransform", Dir: "examples/jsontransform", Req: server.InvokeRequest{
		Method: "POST", Path: "/", Header: map[string][]string{"Content-Type": {"application/json"}},
		Body: []byte(`{"items":[{"name":"b","price":2.5,"qty":4},{"name":"a","price":1,"qty":3}]}`)}},
	{Name: "initheavy", Dir: "examples/initheavy", Req: server.InvokeRequest{Path: "/?q=alpha"}},
}

// demoColdBudget stops repeating cold starts once they have taken this
// long: a function with a long initialisation would otherwise dominate the
// demo's run time, and one cold start already makes the point.
const demoColdBudget = 3 * time.Second

// demoTimeout bounds each function's initialisation and invocations.
// initheavy's initialisation takes seconds on an idle machine and several
// times that on a busy one (parallel deploys, a CI run); the demo measures
// start latency, not timeouts, so it allows plenty.
const demoTimeout = 3 * time.Minute

// shareCompilationCache points the demo's data directory at a compilation
// cache kept across runs, so a second demo skips compiling the modules.
// Failing to set it up only costs time.
func shareCompilationCache(dataDir string) {
	base, err := os.UserCacheDir()
	if err != nil {
		return
	}
	cache := filepath.Join(base, "thaw", "demo-compilation-cache")
	if os.MkdirAll(cache, 0o755) != nil || os.MkdirAll(dataDir, 0o700) != nil {
		return
	}
	_ = os.Symlink(cache, filepath.Join(dataDir, "cache"))
}

// demoOptions are the flags of `thaw demo`.
type demoOptions struct {
	Trials int
	Mode   string
	Keep   bool
}

func newDemoCommand(g *globalOptions) *cobra.Command {
	opts := demoOptions{}
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Build the examples, serve them, and compare cold, restored and warm starts",
		Long: `Build examples/hello, examples/jsontransform and examples/initheavy with the
Go toolchain, start a server on a free loopback port with a temporary data
directory, deploy them, and invoke each one booted cold, restored from its
snapshot in the default restore mode, and warm. Prints median latencies as
seen by an HTTP client and the speedup of restore over cold.

Run it from the thaw repository (it needs the examples' sources).`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runDemo(cmd.Context(), g, opts)
		},
	}
	f := cmd.Flags()
	f.IntVar(&opts.Trials, "trials", 5, "invocations per function and start kind")
	f.StringVar(&opts.Mode, "mode", string(restore.Default), "restore mode to compare with cold and warm")
	f.BoolVar(&opts.Keep, "keep", false, "keep the temporary directory (modules and data)")
	return cmd
}

// findRepoRoot looks for thaw's go.mod above the working directory, then
// above the executable.
func findRepoRoot() (string, error) {
	var starts []string
	if wd, err := os.Getwd(); err == nil {
		starts = append(starts, wd)
	}
	if exe, err := os.Executable(); err == nil {
		starts = append(starts, filepath.Dir(exe))
	}
	for _, dir := range starts {
		for {
			if isThawModule(filepath.Join(dir, "go.mod")) {
				return dir, nil
			}
			parent := filepath.Dir(dir)
			if parent == dir {
				break
			}
			dir = parent
		}
	}
	return "", fmt.Errorf("cannot find the thaw repository (a go.mod of module github.com/thaw-run/thaw) above the working directory or the executable; run thaw demo from a clone of the repository: %w", errdefs.ErrNotFound)
}

func isThawModule(gomod string) bool {
	f, err := os.Open(gomod)
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if line := strings.TrimSpace(sc.Text()); strings.HasPrefix(line, "module ") {
			return strings.TrimSpace(strings.TrimPrefix(line, "module ")) == "github.com/thaw-run/thaw"
		}
	}
	return false
}

// demoRow is one function's results.
type demoRow struct {
	Name                string
	Cold, Restore, Warm time.Duration // medians of end-to-end latency
	RestoreStart        time.Duration // median start stage of restores
	ColdStart           time.Duration
	Faults              string
	Fallback            string
}

func runDemo(ctx context.Context, g *globalOptions, opts demoOptions) error {
	mode, err := restore.ParseMode(opts.Mode)
	if err != nil || mode == restore.Cold || mode == restore.Warm {
		return fmt.Errorf("--mode %q: want a restore mode (eager, mmap, lazy, reap, bulk): %w", opts.Mode, errdefs.ErrInvalid)
	}
	if opts.Trials < 1 {
		return fmt.Errorf("--trials must be at least 1: %w", errdefs.ErrInvalid)
	}
	out := g.stdout
	root, err := findRepoRoot()
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "thaw-demo-")
	if err != nil {
		return err
	}
	if opts.Keep {
		fmt.Fprintf(out, "keeping %s\n", tmp)
	} else {
		defer os.RemoveAll(tmp)
	}

	modules := map[string][]byte{}
	for _, fn := range demoFunctions {
		t0 := time.Now()
		fmt.Fprintf(out, "building %-28s", fn.Dir+" ...")
		path := filepath.Join(tmp, fn.Name+".wasm")
		if err := build.Module(ctx, filepath.Join(root, fn.Dir), path); err != nil {
			fmt.Fprintln(out)
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		modules[fn.Name] = b
		fmt.Fprintf(out, " %s in %.1fs\n", mib(int64(len(b))), time.Since(t0).Seconds())
	}

	dataDir := filepath.Join(tmp, "data")
	shareCompilationCache(dataDir)
	log := slog.New(slog.NewTextHandler(g.stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	rs, err := startServer(ctx, "", serveOptions{Addr: "127.0.0.1:0", DataDir: dataDir,
		MaxBody: server.DefaultMaxBody, MaxModule: server.DefaultMaxModule}, log)
	if err != nil {
		return err
	}
	defer rs.Close(5 * time.Second)
	fmt.Fprintf(out, "server on %s (data in %s)\n", rs.URL, filepath.Join(tmp, "data"))
	c := &server.Client{BaseURL: rs.URL}

	// Deploys compile each module twice (boot and restore module), the
	// slowest step on a fresh machine; run them side by side.
	t0 := time.Now()
	errs := make([]error, len(demoFunctions))
	var wg sync.WaitGroup
	var mu sync.Mutex
	for i, fn := range demoFunctions {
		wg.Go(func() {
			info, err := c.Deploy(ctx, fn.Name, modules[fn.Name], worker.Config{RestoreMode: mode, Timeout: worker.Duration(demoTimeout)})
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
		return err
	}
	fmt.Fprintf(out, "invoking each function cold, restored (%s) and warm ...\n", mode)
	var rows []demoRow
	for _, fn := range demoFunctions {
		row, err := demoMeasure(ctx, c, fn, mode, opts.Trials)
		if err != nil {
			return err
		}
		rows = append(rows, row)
	}
	printDemo(out, rows, mode, opts.Trials)
	return nil
}

// demoMeasure invokes fn cold, restored and warm, trials times each.
func demoMeasure(ctx context.Context, c *server.Client, fn demoFunction, mode restore.Mode, trials int) (demoRow, error) {
	row := demoRow{Name: fn.Name}
	call := func(m restore.Mode) (*server.InvokeResponse, time.Duration, error) {
		req := fn.Req
		req.Mode = m
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
	} else if fb := res.Header.Get(server.HeaderFallback); fb != "" {
		row.Fallback = fb
	}
	measure := func(m restore.Mode, total, start *time.Duration) error {
		var ds, ss []time.Duration
		var spent time.Duration
		for i := 0; i < trials && (m != restore.Cold || i == 0 || spent < demoColdBudget); i++ {
			res, d, err := call(m)
			spent += d
			if err != nil {
				return err
			}
			ds = append(ds, d)
			if st, ok := res.Metric("start"); ok {
				ss = append(ss, time.Duration(st.Dur*float64(time.Millisecond)))
			}
			if m == mode {
				if fb := res.Header.Get(server.HeaderFallback); fb != "" {
					row.Fallback = fb
				}
				if f, ok := res.Metric("faults"); ok {
					row.Faults = f.Desc
				}
			}
		}
		*total = stats.Percentile(ds, 50)
		if start != nil {
			*start = stats.Percentile(ss, 50)
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

func ms(d time.Duration) string { return fmt.Sprintf("%.2f", float64(d)/float64(time.Millisecond)) }

func printDemo(w io.Writer, rows []demoRow, mode restore.Mode, trials int) {
	fmt.Fprintf(w, "\nmedian of %d invocations over HTTP in ms (cold: fewer once they take %s); start = the instance start stage inside the worker\n\n", trials, demoColdBudget)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "function\tcold\tcold start\trestore:%s\trestore start\twarm\tfaults\tspeedup\t\n", mode)
	for _, r := range rows {
		speedup := "-"
		if r.Restore > 0 {
			speedup = fmt.Sprintf("%.1fx", float64(r.Cold)/float64(r.Restore))
		}
		faults := r.Faults
		if faults == "" {
			faults = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", r.Name, ms(r.Cold), ms(r.ColdStart), ms(r.Restore), ms(r.RestoreStart), ms(r.Warm), faults, speedup)
	}
	_ = tw.Flush()
	fmt.Fprintf(w, "\nspeedup = cold / restore:%s. faults = pages served lazily during a restored instance's first call.\n", mode)
	for _, r := range rows {
		if r.Fallback != "" {
			fmt.Fprintf(w, "warning: %s's restore fell back to a cold boot: %s\n", r.Name, r.Fallback)
		}
	}
}
