package cli

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/thaw-run/thaw/internal/bench"
	"github.com/thaw-run/thaw/internal/build"
	"github.com/thaw-run/thaw/internal/catalog"
	"github.com/thaw-run/thaw/internal/errdefs"
	"github.com/thaw-run/thaw/internal/policy"
	"github.com/thaw-run/thaw/internal/restore"
	"github.com/thaw-run/thaw/internal/worker"
)

func newBenchCommand(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure thaw: restore modes against each other and against a cold boot",
	}
	cmd.AddCommand(newBenchRestoreCommand(g), newBenchPolicyCommand(g))
	cmd.AddCommand(newBenchSuiteCommand(g))
	cmd.AddCommand(newBenchStoreCommand(g))
	cmd.AddCommand(newBenchChaosCommand(g))
	cmd.AddCommand(newBenchEngineCommand(g))
	return cmd
}

// benchWorkspace is where a benchmark builds its modules and keeps its
// data: the repository root and a scratch directory.
type benchWorkspace struct {
	g       *globalOptions
	root    string
	dir     string
	cleanup func()
}

// newBenchWorkspace finds the repository and uses dataDir as the scratch
// directory, or a new temporary one that cleanup removes.
func newBenchWorkspace(g *globalOptions, dataDir, prefix string) (*benchWorkspace, error) {
	root, err := findRepoRoot()
	if err != nil {
		return nil, err
	}
	ws := &benchWorkspace{g: g, root: root, dir: dataDir, cleanup: func() {}}
	if ws.dir == "" {
		if ws.dir, err = os.MkdirTemp("", prefix); err != nil {
			return nil, err
		}
		ws.cleanup = func() { os.RemoveAll(ws.dir) }
	}
	return ws, nil
}

// build compiles the function in pkg (relative to the repository root) and
// returns its module.
func (ws *benchWorkspace) build(ctx context.Context, name, pkg string) ([]byte, error) {
	out := filepath.Join(ws.dir, name+".wasm")
	fmt.Fprintf(ws.g.stderr, "building %s\n", pkg)
	if err := build.Module(ctx, filepath.Join(ws.root, pkg), out); err != nil {
		return nil, err
	}
	return os.ReadFile(out)
}

// parseModes validates mode names.
func parseModes(names []string) ([]restore.Mode, error) {
	var modes []restore.Mode
	for _, n := range names {
		mode, err := restore.ParseMode(n)
		if err != nil {
			return nil, err
		}
		modes = append(modes, mode)
	}
	return modes, nil
}

// benchRestoreOptions are the flags of `thaw bench restore`.
type benchRestoreOptions struct {
	Functions     []string
	Modes         []string
	Trials        int
	JSON          bool
	DataDir       string
	RegionPoolMiB int
	Engine        string
}

// benchRestoreFunctions are the catalog entries `thaw bench restore`
// measures by default: every example, since docs/restore.md holds each
// one's restore against its floor, and initheavy-gather, a working set
// of REAP's size.
func benchRestoreFunctions() []string {
	var names []string
	for _, f := range catalog.ByKind(catalog.Example) {
		names = append(names, f.Name)
	}
	return append(names, "initheavy-gather")
}

// lookupBenchFunction is the catalog entry name, or an error wrapping
// errdefs.ErrInvalid naming the defaults.
func lookupBenchFunction(name string) (catalog.Function, error) {
	f, err := catalog.Lookup(name)
	if err != nil {
		return f, fmt.Errorf("unknown function %q (known: %s, or any catalog function): %w", name, strings.Join(benchRestoreFunctions(), ", "), errdefs.ErrInvalid)
	}
	return f, nil
}

func newBenchRestoreCommand(g *globalOptions) *cobra.Command {
	opts := benchRestoreOptions{}
	cmd := &cobra.Command{
		Use:   "restore",
		Short: "Time to first response per function and restore mode, page cache dropped before each trial",
		Long: `Deploy each example function on a private in-process worker, record its working
set, then start a fresh instance per trial in every mode with the snapshot's
files evicted from the page cache (posix_fadvise DONTNEED) and time the request
to its first response. Also measures the physical floor: reading the working
set sequentially from the cold file plus one warm invocation (and, when eager
is measured, the read plus eager's first call, a fresh instance's), and for every
restore a timeline: the median time from its start to each stage (working set
open, read issued, done and checked, memory ready, instantiated, state set,
thaw_on_restore done, call, response). Prints a table, or with --json one JSON
object with a "results" array.`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runBenchRestore(cmd, g, opts)
		},
	}
	f := cmd.Flags()
	f.StringSliceVar(&opts.Functions, "functions", benchRestoreFunctions(), "example functions to measure")
	f.StringSliceVar(&opts.Modes, "modes", []string{"cold", "eager", "mmap", "lazy", "reap", "bulk", "warm"}, "modes to measure")
	f.IntVar(&opts.Trials, "trials", 15, "trials per function and mode")
	f.BoolVar(&opts.JSON, "json", false, "print one JSON object instead of a table")
	f.StringVar(&opts.DataDir, "data", "", "scratch data directory on the disk to measure (default: a temporary directory)")
	f.IntVar(&opts.RegionPoolMiB, "region-pool-mib", worker.DefaultRegionPoolMiB, "memory of finished instances the worker keeps for eager and bulk restores to reuse (0 or less: none)")
	engineFlag(f, &opts.Engine)
	return cmd
}

func runBenchRestore(cmd *cobra.Command, g *globalOptions, opts benchRestoreOptions) error {
	ctx := cmd.Context()
	modes, err := parseModes(opts.Modes)
	if err != nil {
		return err
	}
	if opts.Trials < 1 {
		return fmt.Errorf("--trials must be at least 1: %w", errdefs.ErrInvalid)
	}
	var entries []catalog.Function
	for _, name := range opts.Functions {
		f, err := lookupBenchFunction(name)
		if err != nil {
			return err
		}
		entries = append(entries, f)
	}
	ws, err := newBenchWorkspace(g, opts.DataDir, "thaw-bench-")
	if err != nil {
		return err
	}
	defer ws.cleanup()
	var fns []bench.Function
	for _, c := range entries {
		wasm, err := ws.build(ctx, c.Name, c.Dir)
		if err != nil {
			return err
		}
		// No MemoryMiB: the restore benchmark has always run at the
		// worker's default cap, and its results stay comparable.
		fns = append(fns, bench.Function{Name: c.Name, Wasm: wasm, Request: bench.CatalogRequest(c.Request)})
	}
	rep, err := bench.RunRestore(ctx, bench.RestoreOptions{Functions: fns, Modes: modes, Trials: opts.Trials,
		DataDir: filepath.Join(ws.dir, "data"), Progress: g.stderr, RegionPoolMiB: regionPool(opts.RegionPoolMiB), Engine: opts.Engine})
	if err != nil {
		return err
	}
	if opts.JSON {
		return rep.WriteJSON(g.stdout)
	}
	fmt.Fprintf(g.stdout, "thaw bench restore: %d trials, page cache dropped before each restore (%s)\n\n", opts.Trials, strings.Join(opts.Modes, ", "))
	rep.WriteTable(g.stdout)
	return nil
}

// benchPolicyOptions are the flags of `thaw bench policy`.
type benchPolicyOptions struct {
	Functions []string
	Policies  []string
	Evict     []int
	Requests  int
	Mode      string
	JSON      bool
	DataDir   string
	Out       string
}

func newBenchPolicyCommand(g *globalOptions) *cobra.Command {
	opts := benchPolicyOptions{}
	cmd := &cobra.Command{
		Use:   "policy",
		Short: "Compare snapshot policies (cold, fixed:N, pronghorn) with workers evicted every E requests",
		Long: `Pronghorn's evaluation: for each warm-up workload, policy and eviction rate, a
private in-process worker serves the requests one at a time and is evicted
every E requests; the next request starts an instance as the policy chooses
(cold boot, or a restore from one of the function's snapshots). Reports
median and p99 latency per function and policy, and pronghorn's improvement
over fixed:1. --json prints one JSON object with a "results" array.`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runBenchPolicy(cmd, g, opts)
		},
	}
	f := cmd.Flags()
	f.StringSliceVar(&opts.Functions, "functions", []string{"js", "lazymodel", "templates", "flat", "jstemplates"}, "functions from the catalog")
	f.StringSliceVar(&opts.Policies, "policies", []string{"cold", "fixed:1", "pronghorn"}, "policies to compare (cold = no snapshots)")
	f.IntSliceVar(&opts.Evict, "evict", []int{1, 4, 20}, "evict the worker every E requests")
	f.IntVar(&opts.Requests, "requests", 500, "requests per function, policy and eviction rate")
	f.StringVar(&opts.Mode, "mode", string(restore.Bulk), "restore mode of snapshot starts (eager, mmap, lazy, reap, bulk)")
	f.BoolVar(&opts.JSON, "json", false, "print one JSON object instead of a table")
	f.StringVar(&opts.DataDir, "data", "", "scratch data directory (default: a temporary directory)")
	f.StringVar(&opts.Out, "out", "", "also write results.json and plots (latency by request number, snapshot chosen over time) to this directory")
	return cmd
}

func runBenchPolicy(cmd *cobra.Command, g *globalOptions, opts benchPolicyOptions) error {
	ctx := cmd.Context()
	if opts.Requests < 1 {
		return fmt.Errorf("--requests must be at least 1: %w", errdefs.ErrInvalid)
	}
	for _, e := range opts.Evict {
		if e < 1 {
			return fmt.Errorf("--evict values must be at least 1: %w", errdefs.ErrInvalid)
		}
	}
	mode, err := restore.ParseMode(opts.Mode)
	if err != nil || mode == restore.Cold {
		return fmt.Errorf("--mode %q: a restore mode other than cold: %w", opts.Mode, errdefs.ErrInvalid)
	}
	for _, p := range opts.Policies {
		if p == "cold" {
			continue
		}
		if _, err := policy.Parse(p, 1); err != nil {
			return fmt.Errorf("policy %q: %v: %w", p, err, errdefs.ErrInvalid)
		}
	}
	var entries []catalog.Function
	for _, name := range opts.Functions {
		fn, err := catalog.Lookup(name)
		if err != nil {
			return err
		}
		entries = append(entries, fn)
	}
	ws, err := newBenchWorkspace(g, opts.DataDir, "thaw-bench-policy-")
	if err != nil {
		return err
	}
	defer ws.cleanup()
	var fns []bench.Function
	for _, c := range entries {
		wasm, err := ws.build(ctx, c.Name, c.Dir)
		if err != nil {
			return err
		}
		fns = append(fns, bench.Function{Name: c.Name, Wasm: wasm, MemoryMiB: c.MemoryMiB, Request: bench.CatalogRequest(c.Request)})
	}
	rep, err := bench.RunPolicy(ctx, bench.PolicyOptions{Functions: fns, Policies: opts.Policies, EvictEvery: opts.Evict,
		Requests: opts.Requests, Mode: mode, DataDir: filepath.Join(ws.dir, "data"), Progress: g.stderr})
	if err != nil {
		return err
	}
	if opts.Out != "" {
		if err := writePolicyRun(opts.Out, rep); err != nil {
			return err
		}
		fmt.Fprintf(g.stderr, "wrote %s\n", opts.Out)
	}
	if opts.JSON {
		return rep.WriteJSON(g.stdout)
	}
	rep.WriteTable(g.stdout)
	return nil
}

// writePolicyRun writes the report's JSON and plots into dir.
func writePolicyRun(dir string, rep *bench.PolicyReport) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.Create(filepath.Join(dir, "results.json"))
	if err != nil {
		return err
	}
	if err := rep.WriteJSON(f); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	_, err = rep.WritePlots(dir, 10)
	return err
}

// regionPool maps the --region-pool-mib flag (0 or less: none) to
// worker.Options.RegionPoolMiB (0: the default, negative: none).
func regionPool(mib int) int {
	if mib <= 0 {
		return -1
	}
	return mib
}
