package cli

import (
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/thaw-run/thaw/internal/errdefs"
	"github.com/thaw-run/thaw/internal/restore"
	"github.com/thaw-run/thaw/internal/worker"
)

// deployOptions are the flags of `thaw deploy`; zero values take the
// server's defaults.
type deployOptions struct {
	MemoryMiB int
	Timeout   time.Duration
	Min, Max  int
	MaxQueue  int
	KeepAlive time.Duration
	Public    bool
	Mode      string
	Policy    string
	PoolSize  int
	InitTO    time.Duration
}

func (o deployOptions) config() (worker.Config, error) {
	cfg := worker.Config{MemoryMiB: o.MemoryMiB, Timeout: worker.Duration(o.Timeout), MinInstances: o.Min, MaxInstances: o.Max,
		MaxQueue: o.MaxQueue, KeepAlive: worker.Duration(o.KeepAlive), Public: o.Public,
		Policy: o.Policy, PoolSize: o.PoolSize, InitTimeout: worker.Duration(o.InitTO)}
	if o.Mode != "" {
		m, err := restore.ParseMode(o.Mode)
		if err != nil {
			return cfg, fmt.Errorf("--mode: %w", err)
		}
		cfg.RestoreMode = m
	}
	return cfg, nil
}

func newDeployCommand(g *globalOptions) *cobra.Command {
	var opts deployOptions
	cmd := &cobra.Command{
		Use:   "deploy NAME FILE.wasm",
		Short: "Deploy or replace a function",
		Long: `Upload a module built with "thaw build" as function NAME. The server boots it
once, takes its memory snapshot and keeps the booted instance warm.`,
		Args: exactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := opts.config()
			if err != nil {
				return err
			}
			wasm, err := os.ReadFile(args[1])
			if err != nil {
				return fmt.Errorf("read module: %v: %w", err, errdefs.ErrNotFound)
			}
			info, err := g.client().Deploy(cmd.Context(), args[0], wasm, cfg)
			if err != nil {
				return err
			}
			snap := "none"
			if info.Snapshot != nil {
				snap = mib(info.Snapshot.DataBytes)
			}
			fmt.Fprintf(g.stdout, "deployed %s: module %s, snapshot %s, restore mode %s\n",
				info.Name, mib(int64(info.ModuleSize)), snap, info.Config.RestoreMode)
			return nil
		},
	}
	f := cmd.Flags()
	f.IntVar(&opts.MemoryMiB, "memory-mib", 0, fmt.Sprintf("memory cap per instance in MiB (default %d)", worker.DefaultMemoryMiB))
	f.DurationVar(&opts.Timeout, "timeout", 0, fmt.Sprintf("time limit per invocation (default %s)", worker.DefaultTimeout))
	f.IntVar(&opts.Min, "min", 0, "instances kept warm when idle (default 0: scale to zero)")
	f.IntVar(&opts.Max, "max", 0, fmt.Sprintf("most instances at once (default %d)", worker.DefaultMaxInstances))
	f.IntVar(&opts.MaxQueue, "max-queue", 0, fmt.Sprintf("most requests waiting for an instance before 429 (default %d)", worker.DefaultMaxQueue))
	f.DurationVar(&opts.KeepAlive, "keep-alive", 0, fmt.Sprintf("how long an idle instance is kept (default %s)", worker.DefaultKeepAlive))
	f.BoolVar(&opts.Public, "public", false, "allow invocation without the access token")
	f.StringVar(&opts.Policy, "policy", "", `snapshot policy: "init", "fixed:N" or "pronghorn[:window=W,...]" (default init)`)
	f.IntVar(&opts.PoolSize, "pool-size", 0, fmt.Sprintf("snapshots kept per function (default %d)", worker.DefaultPoolSize))
	f.DurationVar(&opts.InitTO, "init-timeout", 0, fmt.Sprintf("time limit for a cold boot's initialisation (default %s)", worker.DefaultInitTimeout))
	f.StringVar(&opts.Mode, "mode", "", "restore mode: cold, eager, mmap, lazy, reap, bulk (default "+string(restore.Default)+")")
	return cmd
}

// mib formats a byte count in MiB.
func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }
