package bench

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/thaw-run/thaw/internal/abi"
	"github.com/thaw-run/thaw/internal/engine"
	"github.com/thaw-run/thaw/internal/restore"
	"github.com/thaw-run/thaw/internal/testwasm"
	"github.com/thaw-run/thaw/internal/timeline"
)

// TestRunRestoreDeployTiming runs the smallest restore benchmark, hello in
// one mode for one trial, on every engine of this build and checks that
// the report names the engine it ran on, measures the floor and times the
// deploy: every stage (compile, boot, snapshot, commit) took time, and
// together no longer than the whole deploy.
func TestRunRestoreDeployTiming(t *testing.T) {
	if testing.Short() {
		t.Skip("deploys hello on a worker")
	}
	wasm := testwasm.Build(t, "examples/hello")
	for _, name := range engine.Names() {
		t.Run(name, func(t *testing.T) {
			fn := Function{Name: "hello", Wasm: wasm, Request: abi.Request{Method: http.MethodGet, Path: "/", RawQuery: "name=thaw", Header: http.Header{}}}
			dir := t.TempDir()
			rep, err := RunRestore(context.Background(), RestoreOptions{Functions: []Function{fn}, Modes: []restore.Mode{restore.Bulk},
				Trials: 1, DataDir: dir, Engine: name})
			if err != nil {
				t.Fatal(err)
			}
			if rep.Engine != name {
				t.Errorf("report's engine %q, want %q", rep.Engine, name)
			}
			if len(rep.Results) != 1 || rep.Results[0].P50ms <= 0 {
				t.Errorf("results %+v, want one bulk row with a time", rep.Results)
			}
			// The floor: the cold working set read both ways (direct I/O
			// if the directory's file system takes it), the faster
			// counted, plus a warm call.
			if len(rep.Physical) != 1 {
				t.Fatalf("physical %+v, want one row", rep.Physical)
			}
			p := rep.Physical[0]
			read := p.BufferedP50ms
			if takesDirect(t, dir) {
				read = min(read, p.DirectP50ms)
				if p.DirectP50ms <= 0 {
					t.Errorf("physical %+v: no direct read", p)
				}
			}
			if p.WSBytes <= 0 || p.WSBytes != rep.Results[0].WSBytes || p.BufferedP50ms <= 0 || p.WarmP50ms <= 0 ||
				p.ReadP50ms != read || p.TotalP50ms != p.ReadP50ms+p.WarmP50ms {
				t.Errorf("physical %+v: want both reads of the %d-byte working set, the faster counted, plus the warm call", p, rep.Results[0].WSBytes)
			}
			checkTimeline(t, rep.Results[0].Timeline)
			if r := rep.Ratios["hello"]["bulk/physical+warm"]; r <= 0 {
				t.Errorf("bulk/physical+warm = %v", r)
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

// checkTimeline checks a bulk restore's timeline: every point a bulk
// restore passes is there, and the points that follow one another on one
// goroutine come in order.
func checkTimeline(t *testing.T, tl []TimelinePoint) {
	t.Helper()
	at := map[timeline.Point]float64{}
	for _, p := range tl {
		at[timeline.Point(p.Point)] = p.P50us
	}
	for _, p := range []timeline.Point{timeline.WorkingSet, timeline.ReadIssued, timeline.ReadChecked, timeline.MemoryReady,
		timeline.Instantiated, timeline.StateSet, timeline.Restored, timeline.Call, timeline.Called, timeline.Response} {
		if _, ok := at[p]; !ok {
			t.Errorf("timeline %+v lacks %s", tl, p)
		}
	}
	for _, seq := range [][]timeline.Point{
		// The working set is checked current and its read issued in
		// either order (a kept one is read before the check), both
		// before its pages are in place.
		{timeline.WorkingSet, timeline.ReadChecked},
		{timeline.ReadIssued, timeline.ReadChecked, timeline.MemoryReady, timeline.Restored},
		// The instance's state is set within its instantiation, beside
		// the read; the restore hook waits for both.
		{timeline.StateSet, timeline.Instantiated, timeline.Restored, timeline.Call, timeline.Called, timeline.Response},
	} {
		for i := 1; i < len(seq); i++ {
			if at[seq[i]] < at[seq[i-1]] {
				t.Errorf("timeline %+v: %s before %s", tl, seq[i], seq[i-1])
			}
		}
	}
}

// takesDirect reports whether the file system of dir opens files with
// O_DIRECT.
func takesDirect(t *testing.T, dir string) bool {
	t.Helper()
	path := filepath.Join(dir, "direct-probe")
	if err := os.WriteFile(path, make([]byte, 4096), 0o600); err != nil {
		t.Fatal(err)
	}
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_DIRECT, 0)
	if err != nil {
		return false
	}
	unix.Close(fd)
	return true
}
