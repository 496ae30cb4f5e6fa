package cli

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/thaw-run/thaw/internal/bench"
	"github.com/thaw-run/thaw/internal/catalog"
	"github.com/thaw-run/thaw/internal/errdefs"
	"github.com/thaw-run/thaw/internal/report"
)

// benchEngineOptions are the flags of `thaw bench engine`.
type benchEngineOptions struct {
	Functions []string
	Engines   []string
	Trials    int
	JSON      bool
	DataDir   string
}

// benchEngineFunctions are the catalog entries `thaw bench engine`
// measures by default: the five guests of the measurement that opened
// issue 16, a tight numeric loop, and two JavaScript functions.
var benchEngineFunctions = []string{"hello", "jsontransform", "pyaes", "json_serdes", "initheavy", "matmul", "js_hello", "js_json"}

func newBenchEngineCommand(g *globalOptions) *cobra.Command {
	opts := benchEngineOptions{}
	cmd := &cobra.Command{
		Use:   "engine",
		Short: "Warm calls and cold boots of each function on every WebAssembly engine and natively",
		Long: `Build each function to wasm and, for Go functions, natively for this machine
(its handler served by the SDK's own request decoding and response encoding
in a helper process: the floor). Then, per trial, time one warm call on an
instance booted before the trials, and one cold start (the module compiled:
boot, i.e. instantiate and _initialize, or natively process start and init,
then the first request) on every engine. Engines are interleaved trial by
trial, the order rotated every trial, so ratios hold within one run.
JavaScript functions have no native row. Prints a table, or with --json one
JSON object with "meta", "results" and "ratios".`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runBenchEngine(cmd, g, opts)
		},
	}
	f := cmd.Flags()
	f.StringSliceVar(&opts.Functions, "functions", benchEngineFunctions, "catalog functions to measure")
	f.StringSliceVar(&opts.Engines, "engines", bench.DefaultEngines(), "engines to measure ("+bench.Bare+": a bare wasmtime embedding, "+bench.Native+": the Go handler compiled for this machine)")
	f.IntVar(&opts.Trials, "trials", 15, "warm calls and cold starts per function and engine")
	f.BoolVar(&opts.JSON, "json", false, "print one JSON object instead of a table")
	f.StringVar(&opts.DataDir, "data", "", "scratch directory for the modules and native builds (default: a temporary directory)")
	return cmd
}

// benchEngineConfig is the configuration meta.json records.
type benchEngineConfig struct {
	Command   string            `json:"command"`
	Functions []string          `json:"functions"`
	Engines   []string          `json:"engines"`
	Trials    int               `json:"trials"`
	Versions  map[string]string `json:"versions"`
}

func runBenchEngine(cmd *cobra.Command, g *globalOptions, opts benchEngineOptions) error {
	ctx := cmd.Context()
	if opts.Trials < 1 {
		return fmt.Errorf("--trials must be at least 1: %w", errdefs.ErrInvalid)
	}
	if err := bench.CheckEngines(opts.Engines); err != nil {
		return err
	}
	var entries []catalog.Function
	for _, name := range opts.Functions {
		f, err := catalog.Lookup(name)
		if err != nil {
			return fmt.Errorf("unknown function %q (the defaults are %s; any catalog function will do): %w", name, strings.Join(benchEngineFunctions, ", "), errdefs.ErrInvalid)
		}
		entries = append(entries, f)
	}
	ws, err := newBenchWorkspace(g, opts.DataDir, "thaw-bench-engine-")
	if err != nil {
		return err
	}
	defer ws.cleanup()
	wantNative := false
	for _, e := range opts.Engines {
		wantNative = wantNative || e == bench.Native
	}
	var fns []bench.EngineFunction
	for _, c := range entries {
		wasm, err := ws.build(ctx, c.Name, c.Dir)
		if err != nil {
			return err
		}
		fn := bench.EngineFunction{Name: c.Name, Wasm: wasm, Request: bench.CatalogRequest(c.Request), MemoryMiB: c.MemoryMiB}
		if fn.NativeSkip = bench.NativeSkip(c.Path(ws.root)); fn.NativeSkip == "" && wantNative {
			fn.Native = filepath.Join(ws.dir, c.Name+".native")
			fmt.Fprintf(ws.g.stderr, "building %s natively\n", c.Dir)
			if err := bench.BuildNative(ctx, c.Path(ws.root), filepath.Join(ws.dir, c.Name+".harness"), fn.Native); err != nil {
				return err
			}
		}
		fns = append(fns, fn)
	}
	meta := report.CollectMeta("thaw bench engine", benchEngineConfig{Command: commandLine(cmd), Functions: opts.Functions,
		Engines: opts.Engines, Trials: opts.Trials, Versions: moduleVersions()}, 0)
	rep, err := bench.RunEngine(ctx, bench.EngineOptions{Functions: fns, Engines: opts.Engines, Trials: opts.Trials, Progress: g.stderr, Meta: meta})
	if err != nil {
		return err
	}
	if opts.JSON {
		return rep.WriteJSON(g.stdout)
	}
	fmt.Fprintf(g.stdout, "thaw bench engine: %d warm calls and %d cold starts per function and engine, engines interleaved (%s)\n\n",
		opts.Trials, opts.Trials, strings.Join(opts.Engines, ", "))
	rep.WriteTable(g.stdout)
	return nil
}

// commandLine is the command as it was run: its path and the flags set.
func commandLine(cmd *cobra.Command) string {
	parts := []string{cmd.CommandPath()}
	cmd.Flags().Visit(func(f *pflag.Flag) {
		v := f.Value.String()
		if sv, ok := f.Value.(pflag.SliceValue); ok {
			v = strings.Join(sv.GetSlice(), ",")
		}
		parts = append(parts, "--"+f.Name+"="+v)
	})
	return strings.Join(parts, " ")
}
