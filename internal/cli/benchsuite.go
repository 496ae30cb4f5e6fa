package cli

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"time"

	"github.com/spf13/cobra"

	"github.com/thaw-run/thaw/internal/api"
	"github.com/thaw-run/thaw/internal/bench"
	"github.com/thaw-run/thaw/internal/report"
	"github.com/thaw-run/thaw/internal/suite"
)

// benchSuiteOptions are the flags of `thaw bench suite`.
type benchSuiteOptions struct {
	Functions []string
	Modes     []string
	Trials    int
	Out       string
	JSON      bool
	DataDir   string
	Seed      uint64
	Engine    string
}

func newBenchSuiteCommand(g *globalOptions) *cobra.Command {
	opts := benchSuiteOptions{}
	cmd := &cobra.Command{
		Use:   "suite",
		Short: "Run the benchmark suite under every restore mode and write a run directory with plots and a report",
		Long: `Build the suite functions (examples/suite), start a private thaw server on a
loopback port, deploy them, record each one's working set, then invoke each
function --trials times in every mode over HTTP, asking the server to drop the
snapshot from the page cache before every cold boot and restore.

Writes a run directory (--out): invocations.jsonl/.csv (one row per trial),
summary.json/summary.txt (p50/p99 per function and mode), ratios.json,
paper-comparison.md (against REAP's published table), plots as PNG and SVG,
report.html and meta.json. With --json, prints summary.json to stdout.`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runBenchSuite(cmd, g, opts)
		},
	}
	f := cmd.Flags()
	f.StringSliceVar(&opts.Functions, "functions", nil, "suite functions to run (default: every one in the checkout)")
	f.StringSliceVar(&opts.Modes, "modes", []string{"cold", "mmap", "lazy", "reap", "bulk", "warm"}, "modes to measure")
	f.IntVar(&opts.Trials, "trials", 5, "trials per function and mode")
	f.StringVar(&opts.Out, "out", "", "run directory to write (default runs/<timestamp>)")
	f.BoolVar(&opts.JSON, "json", false, "print summary.json to stdout instead of a table")
	f.StringVar(&opts.DataDir, "data", "", "scratch directory for modules and the server's data, on the disk to measure (default: a temporary directory)")
	f.Uint64Var(&opts.Seed, "seed", 1, "seed of the order of modes within each round of trials")
	engineFlag(f, &opts.Engine)
	return cmd
}

func runBenchSuite(cmd *cobra.Command, g *globalOptions, opts benchSuiteOptions) error {
	ctx := cmd.Context()
	root, err := findRepoRoot()
	if err != nil {
		return err
	}
	cfg := suite.Config{Functions: opts.Functions, Modes: opts.Modes, Trials: opts.Trials, Seed: opts.Seed}
	plan, err := cfg.Validate(root)
	if err != nil {
		return err
	}
	out := opts.Out
	if out == "" {
		out = filepath.Join("runs", time.Now().Format("20060102-150405"))
	}
	scratch := opts.DataDir
	if scratch == "" {
		if scratch, err = os.MkdirTemp("", "thaw-suite-"); err != nil {
			return err
		}
		defer os.RemoveAll(scratch)
	}
	if err := os.MkdirAll(scratch, 0o755); err != nil {
		return err
	}
	modules, err := suite.Build(ctx, root, scratch, plan.Functions, g.stderr)
	if err != nil {
		return err
	}

	log := slog.New(slog.NewTextHandler(g.stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	rs, err := bench.StartServer(ctx, filepath.Join(scratch, "data"), opts.Engine, log)
	if err != nil {
		return err
	}
	defer rs.Close(5 * time.Second)

	meta := report.CollectMeta("thaw bench suite", suiteMetaConfig{Config: cfg, Server: rs.URL, Versions: moduleVersions(), Engine: engineOrDefault(opts.Engine)}, opts.Seed)
	var bar *report.Progress
	if f, ok := g.stderr.(*os.File); ok && report.IsTerminal(f) {
		bar = report.NewProgressTo(f, "bench suite", len(plan.Functions)*len(plan.Modes)*plan.Trials)
	} else {
		bar = report.NewProgressTo(nil, "", 0)
	}
	res, err := suite.Run(ctx, &api.Client{BaseURL: rs.URL}, plan, modules, suite.RunOptions{Progress: bar.Set, Log: g.stderr})
	bar.Done()
	if err != nil {
		return err
	}
	rows, err := suite.WriteRun(out, res, meta)
	if err != nil {
		return err
	}
	if opts.JSON {
		enc := json.NewEncoder(g.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(report.Summary{Version: report.SummaryVersion, Rows: rows})
	}
	fmt.Fprintf(g.stdout, "thaw bench suite: %d trials per function and mode, page cache dropped before each cold start (%.0fs)\n\n", plan.Trials, res.Elapsed.Seconds())
	if err := report.WriteTable(g.stdout, rows); err != nil {
		return err
	}
	fmt.Fprintf(g.stdout, "\nrun directory: %s (open %s)\n", out, filepath.Join(out, report.FileHTML))
	return nil
}

// suiteMetaConfig is the configuration meta.json records for a suite run.
type suiteMetaConfig struct {
	suite.Config
	Server   string            `json:"server"`
	Versions map[string]string `json:"versions"`
	// Engine is the engine the guests ran on.
	Engine string `json:"engine"`
}

// moduleVersions returns the versions of the modules that shape the
// results (the wasm runtime above all), from the binary's build info.
func moduleVersions() map[string]string {
	out := map[string]string{}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return out
	}
	out[bi.Main.Path] = bi.Main.Version
	for _, d := range bi.Deps {
		switch d.Path {
		case "github.com/tetratelabs/wazero", "github.com/bytecodealliance/wasmtime-go/v39", "github.com/tetratelabs/wabin", "golang.org/x/sys":
			out[d.Path] = d.Version
		}
	}
	return out
}
