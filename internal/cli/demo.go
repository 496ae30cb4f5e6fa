package cli

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/thaw-run/thaw/internal/bench"
	"github.com/thaw-run/thaw/internal/catalog"
	"github.com/thaw-run/thaw/internal/errdefs"
	"github.com/thaw-run/thaw/internal/restore"
)

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
		if root, err := catalog.Root(dir); err == nil {
			return root, nil
		}
	}
	return "", fmt.Errorf("cannot find the thaw repository (a go.mod of module github.com/thaw-run/thaw) above the working directory or the executable; run thaw demo from a clone of the repository: %w", errdefs.ErrNotFound)
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
	log := slog.New(slog.NewTextHandler(g.stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	rows, err := bench.RunDemo(ctx, bench.DemoOptions{Root: root, Dir: tmp, Mode: mode, Trials: opts.Trials, Progress: out, Log: log})
	if err != nil {
		return err
	}
	printDemo(out, rows, mode, opts.Trials)
	return nil
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f", float64(d)/float64(time.Millisecond)) }

func printDemo(w io.Writer, rows []bench.DemoRow, mode restore.Mode, trials int) {
	fmt.Fprintf(w, "\nmedian of %d invocations over HTTP in ms (cold: fewer once they take %s); start = the instance start stage inside the worker\n\n", trials, bench.DemoColdBudget)
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
