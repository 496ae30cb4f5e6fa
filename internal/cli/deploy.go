package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

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
	var (
		cfg     api.Config
		verbose bool
	)
	cmd := &cobra.Command{
		Use:   "deploy NAME FILE.wasm|handler.js",
		Short: "Deploy or replace a function",
		Long: `Upload a module built with "thaw build" as function NAME. The server boots it
once, takes its memory snapshot and keeps the booted instance warm. A
JavaScript file (handler.js) is built first, as thaw build would.

On a terminal, stderr shows each stage of the deploy (upload, compile, boot,
snapshot, commit) and how long it took, as it happens; elsewhere --verbose
prints the same lines. stdout's one line is the same either way.`,
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
			// Its progress stream names each stage as it begins.
			st := newDeployStages(g.stderr, args[0], len(wasm), verbose)
			info, err := g.client().DeployProgress(cmd.Context(), args[0], wasm, cfg, st.event)
			st.done()
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
	cmd.Flags().BoolVarP(&verbose, "verbose", "v", false, "print each stage of the deploy and its duration to stderr (always shown on a terminal)")
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

// deployStages shows a deploy's progress stream on stderr: on a terminal a
// status line for the stage under way (report.Activity) and a line for
// each stage once it ends, with its duration; elsewhere the same lines
// only when verbose.
type deployStages struct {
	w     io.Writer // nil: print nothing
	tty   bool
	name  string
	stage string
	begun time.Time
	act   *report.Activity
}

func newDeployStages(stderr io.Writer, name string, size int, verbose bool) *deployStages {
	f, ok := stderr.(*os.File)
	d := &deployStages{tty: ok && report.IsTerminal(f), name: name, stage: fmt.Sprintf("upload (%s)", mib(int64(size))), begun: time.Now()}
	if d.tty || verbose {
		d.w = stderr
	}
	d.act = report.NewActivity(stderr, d.status())
	return d
}

func (d *deployStages) status() string { return fmt.Sprintf("deploy %s: %s", d.name, d.stage) }

// event ends the stage under way and begins ev's; done and error end the
// last stage only.
func (d *deployStages) event(ev api.DeployEvent) {
	d.act.Done()
	if d.w != nil {
		fmt.Fprintf(d.w, "%-40s %6.1fs\n", d.status(), time.Since(d.begun).Seconds())
	}
	d.stage, d.begun = string(ev.Stage), time.Now()
	if ev.Stage == api.StageReceived {
		d.stage = "wait"
	}
	if ev.Stage == api.StageDone || ev.Stage == api.StageError {
		d.act = report.NewActivityTo(nil, "", 0)
		return
	}
	d.act = report.NewActivity(d.w, d.status())
}

// done ends the display (after an error that ended the stream early too).
func (d *deployStages) done() { d.act.Done() }
