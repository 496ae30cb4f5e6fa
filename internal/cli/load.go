package cli

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/thaw-run/thaw/internal/load"
	"github.com/thaw-run/thaw/internal/report"
	"github.com/thaw-run/thaw/internal/trace"
)

// loadOptions are the flags of `thaw load`: the run's configuration,
// which internal/load validates, and where to write it.
type loadOptions struct {
	load.Config
	Out  string `json:"-"`
	JSON bool   `json:"-"`
}

func newLoadCommand(g *globalOptions) *cobra.Command {
	opts := loadOptions{}
	cmd := &cobra.Command{
		Use:   "load",
		Short: "Send open-loop load to a running server and write a run directory",
		Long: `Send requests to the functions of a running thaw server (--server) at
scheduled times whatever the server does (open loop): --rate requests per
second for --duration, spaced --arrivals constant, poisson or bursts (--rate
for --burst-on, then --off-rate for --burst-off, repeating), each to one of
--functions.

With --trace DIR, replay an Azure Functions 2019 trace directory
(invocations.csv, optional durations.csv and memory.csv) instead: sample
--trace-functions functions (stratified by popularity, or --selection rank),
map them onto --functions (round-robin, or --mapping duration with the
functions listed cheapest first), replay one trace minute in
--minute-seconds, with the busiest minute capped at --max-rate requests per
second, for --duration.

With --servers URL,URL,... the requests are spread over several entry
points (the workers of a cluster) as a layer-4 balancer would, in turn or
at random (--spread); a request whose connection is refused goes to the
next one. The summary then also has a row per worker (the one each
response names as its server) with its cold-start rate, latency and the
bytes its snapshot store fetched from the object store (its /metrics).

Writes a run directory (--out): every invocation, summary.json, memory over
time from the server's /metrics, plots and report.html. Prints the summary
table, or with --json the full load summary.`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts.Server = g.Server
			return runLoad(cmd, g, opts)
		},
	}
	f := cmd.Flags()
	f.Float64Var(&opts.Rate, "rate", 10, "requests per second (constant, poisson, and bursts while on)")
	f.DurationVar(&opts.Duration, "duration", 30*time.Second, "how long to send load")
	f.StringVar(&opts.Arrivals, "arrivals", "poisson", "arrival process: constant, poisson or bursts")
	f.DurationVar(&opts.BurstOn, "burst-on", 5*time.Second, "bursts: how long each burst lasts")
	f.DurationVar(&opts.BurstOff, "burst-off", 5*time.Second, "bursts: the quiet time between bursts")
	f.Float64Var(&opts.OffRate, "off-rate", 0, "bursts: requests per second between bursts")
	f.StringSliceVar(&opts.Functions, "functions", nil, "functions to invoke (with --trace: the functions trace functions map onto)")
	f.StringVar(&opts.Path, "path", "/", "path (and query) sent to every function")
	f.StringVar(&opts.Trace, "trace", "", "replay the Azure Functions 2019 trace in this directory")
	f.IntVar(&opts.TraceFns, "trace-functions", 8, "trace: how many trace functions to sample (0: all)")
	f.Float64Var(&opts.MinuteSecs, "minute-seconds", 60, "trace: seconds one trace minute lasts in the replay")
	f.Float64Var(&opts.MaxRate, "max-rate", 0, "trace: cap on the busiest minute's request rate, per second (0: none)")
	f.StringVar(&opts.Spacing, "spacing", "exponential", "trace: arrivals within a minute: exponential, uniform or equidistant")
	f.StringVar(&opts.Selection, "selection", "stratified", "trace: which functions to sample: stratified or rank")
	f.StringVar(&opts.Mapping, "mapping", "round-robin", "trace: how trace functions map onto --functions: round-robin or duration")
	f.IntVar(&opts.FirstMinute, "first-minute", 0, "trace: index of the first trace minute to replay")
	f.Uint64Var(&opts.Seed, "seed", 1, "seed of the arrival times and the trace sample")
	f.IntVar(&opts.MaxInFlight, "max-in-flight", 64, "bound on requests in flight; arrivals past it are dropped and counted")
	f.DurationVar(&opts.Timeout, "timeout", 30*time.Second, "timeout of each request")
	f.StringSliceVar(&opts.Servers, "servers", nil, "several entry points (a cluster's workers) to spread requests over, instead of --server")
	f.StringVar(&opts.Spread, "spread", load.SpreadRoundRobin, "--servers: how each request picks its entry point: round-robin or random")
	f.StringVar(&opts.Out, "out", "", "run directory to write (default runs/load-<timestamp>)")
	f.BoolVar(&opts.JSON, "json", false, "print the load summary as JSON instead of a table")
	return cmd
}

func runLoad(cmd *cobra.Command, g *globalOptions, opts loadOptions) error {
	ctx := cmd.Context()
	plan, err := opts.Plan()
	if err != nil {
		return err
	}
	out := opts.Out
	if out == "" {
		out = filepath.Join("runs", "load-"+time.Now().Format("20060102-150405"))
	}
	entries := opts.Entries()
	base := entries[0]
	lo := load.Options{
		BaseURLs: entries, Spread: opts.Spread, Seed: opts.Seed, Endpoints: true,
		Schedule: plan.Schedule, Path: opts.Path, MaxInFlight: opts.MaxInFlight,
		MaxDuration: opts.Duration, Timeout: opts.Timeout, MetricsURL: base + "/metrics",
	}
	if g.Token != "" {
		lo.Header = http.Header{"Authorization": {"Bearer " + g.Token}}
	}
	var bar *report.Progress
	if f, ok := g.stderr.(*os.File); ok && report.IsTerminal(f) {
		bar = report.NewProgressTo(f, "load", len(plan.Schedule))
	} else {
		bar = report.NewProgressTo(nil, "", 0)
	}
	lo.Progress = bar.Set
	fmt.Fprintf(g.stderr, "sending %d requests over %s to %s\n", len(plan.Schedule), opts.Duration, strings.Join(entries, ", "))
	res, err := load.Run(ctx, lo)
	bar.Done()
	if err != nil {
		return err
	}

	meta := report.CollectMeta("thaw load ("+plan.Label+")", opts, opts.Seed)
	var notes []string
	if plan.Sample != nil {
		meta.Attribution = trace.Attribution
		notes = append(notes, fmt.Sprintf("Replay of %d trace functions from %s (%d trace minutes from index %d, one minute = %s, counts scaled by %.3g), mapped onto %s.",
			len(plan.Sample.Assignments), opts.Trace, plan.Sample.Minutes(), opts.FirstMinute, plan.Sample.Options.Minute,
			plan.Sample.Scale, strings.Join(opts.Functions, ", ")))
	}
	if ctx.Err() != nil {
		notes = append(notes, "The run was interrupted; the records stop where it was.")
	}
	if _, err := report.WriteLoadRun(out, res, meta, report.LoadRunOptions{Mode: plan.Label, Notes: notes}); err != nil {
		return err
	}
	sum := load.Summarize(res)
	if opts.JSON {
		enc := json.NewEncoder(g.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(sum)
	}
	if err := report.WriteTable(g.stdout, report.LoadRows(sum, plan.Label)); err != nil {
		return err
	}
	if rows := report.WorkerRows(sum, plan.Label); len(rows) > 0 {
		fmt.Fprintln(g.stdout, "\nby worker (the one that served):")
		if err := report.WriteTable(g.stdout, rows); err != nil {
			return err
		}
	}
	fmt.Fprintf(g.stdout, "\n%d requests in %.1fs: %d ok, %d errors, %d dropped; %.1f/s; cold-start rate %.1f%%; p50 %.2f ms, p99 %.2f ms",
		sum.Overall.Requests, sum.ElapsedS, sum.Overall.OK, sum.Overall.Errors, sum.Overall.Dropped, sum.ThroughputRPS,
		100*sum.Overall.ColdStartRate, sum.Overall.P50Ms, sum.Overall.P99Ms)
	if sum.PeakMemoryBytes > 0 {
		fmt.Fprintf(g.stdout, "; peak server memory %.0f MiB", sum.PeakMemoryBytes/(1<<20))
		if len(entries) > 1 {
			fmt.Fprintf(g.stdout, " (%s)", base)
		}
	}
	fmt.Fprintf(g.stdout, "\nrun directory: %s (open %s)\n", out, filepath.Join(out, report.FileHTML))
	if ctx.Err() != nil {
		return fmt.Errorf("load interrupted: %w", ctx.Err())
	}
	return nil
}
