package bench

import (
	"context"
	"net/http"
	"testing"

	"github.com/thaw-run/thaw/internal/abi"
	"github.com/thaw-run/thaw/internal/engine"
	"github.com/thaw-run/thaw/internal/restore"
	"github.com/thaw-run/thaw/internal/testwasm"
)

// TestRunRestoreDeployTiming runs the smallest restore benchmark, hello in
// one mode for one trial, on every engine of this build and checks that
// the report names the engine it ran on and times the deploy: every stage
// (compile, boot, snapshot, commit) took time, and together no longer than
// the whole deploy.
func TestRunRestoreDeployTiming(t *testing.T) {
	if testing.Short() {
		t.Skip("deploys hello on a worker")
	}
	wasm := testwasm.Build(t, "examples/hello")
	for _, name := range engine.Names() {
		t.Run(name, func(t *testing.T) {
			fn := Function{Name: "hello", Wasm: wasm, Request: abi.Request{Method: http.MethodGet, Path: "/", RawQuery: "name=thaw", Header: http.Header{}}}
			rep, err := RunRestore(context.Background(), RestoreOptions{Functions: []Function{fn}, Modes: []restore.Mode{restore.Bulk},
				Trials: 1, DataDir: t.TempDir(), Engine: name})
			if err != nil {
				t.Fatal(err)
			}
			if rep.Engine != name {
				t.Errorf("report's engine %q, want %q", rep.Engine, name)
			}
			if len(rep.Results) != 1 || rep.Results[0].P50ms <= 0 {
				t.Errorf("results %+v, want one bulk row with a time", rep.Results)
			}
			if len(rep.Deploys) != 1 {
				t.Fatalf("deploys %+v, want one", rep.Deploys)
			}
			d := rep.Deploys[0]
			stages := []float64{d.CompileMs, d.BootMs, d.SnapshotMs, d.CommitMs}
			sum := 0.0
			for _, s := range stages {
				if s <= 0 {
					t.Errorf("deploy %+v: a stage without time", d)
				}
				sum += s
			}
			if d.Function != "hello" || sum > d.TotalMs {
				t.Errorf("deploy %+v: stages sum to %.3f ms, more than the whole", d, sum)
			}
		})
	}
}
