package cli

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/thaw-run/thaw/internal/api"
	"github.com/thaw-run/thaw/internal/build"
	"github.com/thaw-run/thaw/internal/errdefs"
	"github.com/thaw-run/thaw/internal/report"
	"github.com/thaw-run/thaw/internal/worker"
)

// configFlag is one of api.Fields as a `thaw deploy` flag: it parses
// into the deploy's configuration with the field's own Set, so flags,
// query parameters and JSON accept the same values; unset flags leave the
// server's defaults.
type configFlag struct {
	cfg   *api.Config
	field api.Field
	value string
}

func (f *configFlag) String() string { return f.value }
func (f *configFlag) Type() string {
	if f.field.Bool {
		return "bool"
	}
	return "value"
}
func (f *configFlag) Set(v string) error {
	if err := f.field.Set(f.cfg, v); err != nil {
		return err
	}
	f.value = v
	return nil
}

func newDeployCommand(g *globalOptions) *cobra.Command {
	var cfg api.Config
	cmd := &cobra.Command{
		Use:   "deploy NAME FILE.wasm|handler.js",
		Short: "Deploy or replace a function",
		Long: `Upload a module built with "thaw build" as function NAME. The server boots it
once, takes its memory snapshot and keeps the booted instance warm. A
JavaScript file (handler.js) is built first, as thaw build would.`,
		Args: exactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			// Checked here, as the server checks it, so a bad value
			// exits 2 before the module is read or sent.
			if err := worker.Config(cfg).WithDefaults().Validate(); err != nil {
				return err
			}
			wasm, err := readModule(cmd.Context(), g, args[1])
			if err != nil {
				return err
			}
			// The server answers once it has compiled, booted and
			// snapshotted the function: seconds, tens for a heavy init.
			act := report.NewActivity(g.stderr, fmt.Sprintf("deploying %s (%s): upload, compile, boot, snapshot", args[0], mib(int64(len(wasm)))))
			info, err := g.client().Deploy(cmd.Context(), args[0], wasm, cfg)
			act.Done()
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
	for _, field := range api.Fields {
		fl := cmd.Flags().VarPF(&configFlag{cfg: &cfg, field: field}, field.Flag, "", field.Usage)
		if field.Bool {
			fl.NoOptDefVal = "true"
		}
	}
	return cmd
}

// readModule reads the module at path, or builds it first when path is a
// JavaScript file.
func readModule(ctx context.Context, g *globalOptions, path string) ([]byte, error) {
	if strings.HasSuffix(path, ".js") {
		tmp, err := os.MkdirTemp("", "thaw-deploy-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(tmp)
		out := filepath.Join(tmp, "fn.wasm")
		act := report.NewActivity(g.stderr, fmt.Sprintf("building %s: go build for wasip1", path))
		err = build.Module(ctx, path, out)
		act.Done()
		if err != nil {
			return nil, err
		}
		path = out
	}
	wasm, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read module: %v: %w", err, errdefs.ErrNotFound)
	}
	return wasm, nil
}

// mib formats a byte count in MiB.
func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }
