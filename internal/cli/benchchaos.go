package cli

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/thaw-run/thaw/internal/chaos"
	"github.com/thaw-run/thaw/internal/errdefs"
	"github.com/thaw-run/thaw/internal/report"
)

// benchChaosOptions are the flags of `thaw bench chaos`.
type benchChaosOptions struct {
	Duration  time.Duration
	Rate      float64
	SlowConns int
	Seed      uint64
	Out       string
	JSON      bool
}

func newBenchChaosCommand(g *globalOptions) *cobra.Command {
	opts := benchChaosOptions{}
	cmd := &cobra.Command{
		Use:   "chaos",
		Short: "Mixed invocations on a real worker while faults are injected (docs/security.md)",
		Long: `Start a private MinIO (scripts/minio.sh) and a real "thaw serve" backed by it,
deploy hello (lazy; a second copy restored from the store), jsontransform (bulk,
from the store), initheavy (reap) and faulty (looping until its 2 s timeout),
and send an open-loop mix of invocations for --duration while, one after the
other: the object store stops (and the disk cache is emptied), the pager child
is killed while it is down, the store restarts, the pager child is killed
again, a cached chunk is corrupted, a snapshot image is truncated, and
--slow-conns slow connections are held open.

Reports requests sent and their outcomes by category, requests never
answered, worker restarts, peak RSS and descriptors, and the time to serve
normally after each fault. With --out, writes the JSON report with the
commit, command and machine to that file.`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if opts.Duration < 10*time.Second || opts.Rate <= 0 || opts.SlowConns < 0 {
				return fmt.Errorf("--duration must be at least 10s, --rate positive, --slow-conns not negative: %w", errdefs.ErrInvalid)
			}
			ws, err := newBenchWorkspace(g, "", "thaw-chaos-")
			if err != nil {
				return err
			}
			defer ws.cleanup()
			bin, err := os.Executable()
			if err != nil {
				return err
			}
			rep, err := chaos.Run(cmd.Context(), chaos.Options{Binary: bin, Root: ws.root, Dir: ws.dir,
				Duration: opts.Duration, Rate: opts.Rate, SlowConns: opts.SlowConns, Seed: opts.Seed, Log: g.stderr})
			if err != nil {
				return err
			}
			if opts.Out != "" {
				doc := struct {
					Meta    report.Meta   `json:"meta"`
					Command []string      `json:"command"`
					Report  *chaos.Report `json:"report"`
				}{report.CollectMeta("thaw bench chaos", opts, opts.Seed), os.Args, rep}
				b, err := json.MarshalIndent(doc, "", " ")
				if err != nil {
					return err
				}
				if err := os.MkdirAll(filepath.Dir(opts.Out), 0o755); err != nil {
					return err
				}
				if err := os.WriteFile(opts.Out, b, 0o644); err != nil {
					return err
				}
			}
			if opts.JSON {
				enc := json.NewEncoder(g.stdout)
				enc.SetIndent("", " ")
				return enc.Encode(rep)
			}
			rep.WriteTable(g.stdout)
			return nil
		},
	}
	f := cmd.Flags()
	f.DurationVar(&opts.Duration, "duration", 5*time.Minute, "length of the load; faults are placed at fixed fractions of it")
	f.Float64Var(&opts.Rate, "rate", 10, "invocations started per second")
	f.IntVar(&opts.SlowConns, "slow-conns", 1000, "slow connections held open during the slow-client window")
	f.Uint64Var(&opts.Seed, "seed", 1, "seed of the request mix")
	f.StringVar(&opts.Out, "out", "", "write the JSON report with commit, command and machine to this file")
	f.BoolVar(&opts.JSON, "json", false, "print the report as JSON instead of a table")
	return cmd
}
