package suite

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"image/png"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/thaw-run/thaw/internal/api"
	"github.com/thaw-run/thaw/internal/errdefs"
	"github.com/thaw-run/thaw/internal/report"
	"github.com/thaw-run/thaw/internal/restore"
	"github.com/thaw-run/thaw/internal/server"
	"github.com/thaw-run/thaw/internal/worker"
)

func TestValidate(t *testing.T) {
	root := t.TempDir()
	for _, d := range []string{"examples/suite/helloworld", "examples/suite/pyaes"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name      string
		cfg       Config
		wantErr   bool
		wantFns   []string
		wantModes []restore.Mode
	}{
		{"defaults", Config{Trials: 5}, false, []string{"helloworld", "pyaes"}, DefaultModes},
		{"explicit", Config{Functions: []string{"pyaes", "chameleon"}, Modes: []string{"warm", "cold"}, Trials: 1}, false,
			[]string{"pyaes", "chameleon"}, []restore.Mode{restore.Warm, restore.Cold}},
		{"zero trials", Config{Trials: 0}, true, nil, nil},
		{"negative trials", Config{Trials: -3}, true, nil, nil},
		{"unknown function", Config{Functions: []string{"helloworld", "nope"}, Trials: 1}, true, nil, nil},
		{"unknown mode", Config{Modes: []string{"cold", "teleport"}, Trials: 1}, true, nil, nil},
		{"duplicate function", Config{Functions: []string{"pyaes", "pyaes"}, Trials: 1}, true, nil, nil},
		{"duplicate mode", Config{Modes: []string{"bulk", "bulk"}, Trials: 1}, true, nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := tc.cfg.Validate(root)
			if tc.wantErr {
				if !errors.Is(err, errdefs.ErrInvalid) {
					t.Fatalf("err = %v, want ErrInvalid", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, f := range p.Functions {
				names = append(names, f.Name)
			}
			if !slices.Equal(names, tc.wantFns) {
				t.Errorf("functions %v, want %v", names, tc.wantFns)
			}
			if !slices.Equal(p.Modes, tc.wantModes) {
				t.Errorf("modes %v, want %v", p.Modes, tc.wantModes)
			}
		})
	}
	t.Run("empty checkout", func(t *testing.T) {
		if _, err := (Config{Trials: 1}).Validate(t.TempDir()); !errors.Is(err, errdefs.ErrInvalid) {
			t.Fatalf("err = %v, want ErrInvalid", err)
		}
	})
}

func TestCatalogDirsExist(t *testing.T) {
	// The catalog must name real examples: a typo would only show at run time.
	for _, f := range Catalog {
		t.Run(f.Name, func(t *testing.T) {
			// A Go function's main.go, or a JavaScript function's handler.js.
			if _, err := os.Stat(filepath.Join("..", "..", f.Dir, "main.go")); err != nil {
				if _, err := os.Stat(filepath.Join("..", "..", f.Dir, "handler.js")); err != nil {
					t.Skipf("example not in this checkout: %v", err)
				}
			}
			if filepath.Base(f.Dir) != f.Name {
				t.Errorf("name %s does not match directory %s", f.Name, f.Dir)
			}
		})
	}
}

// fakeTarget answers like a thaw server: Server-Timing written by the
// server's own formatter, restores falling back to cold for fallbackFn.
type fakeTarget struct {
	mu       sync.Mutex
	deployed []string
	calls    []api.InvokeRequest
	fail     string // function whose cold boots answer 500
	fallback string // function whose restores boot cold
}

func (f *fakeTarget) Deploy(_ context.Context, name string, wasm []byte, cfg api.Config) (*api.FunctionInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.deployed = append(f.deployed, name)
	return &api.FunctionInfo{Name: name, Config: cfg, Snapshot: &api.SnapshotInfo{MemoryBytes: 8 << 20}}, nil
}

func (f *fakeTarget) Invoke(_ context.Context, name string, ir *api.InvokeRequest) (*api.InvokeResponse, error) {
	f.mu.Lock()
	n := len(f.calls)
	f.calls = append(f.calls, *ir)
	f.mu.Unlock()
	ms := func(v float64) time.Duration { return time.Duration(v * float64(time.Millisecond)) }
	tm := worker.Timing{Queue: ms(0.01), Exec: ms(1)}
	h := http.Header{}
	mode := restore.Mode(ir.Mode)
	switch {
	case mode == restore.Warm:
		tm.StartKind = "warm"
	case mode == restore.Cold || (name == f.fallback && mode != restore.Reap):
		tm.StartKind, tm.Mode, tm.Start, tm.Instantiate, tm.Init = "cold", restore.Cold, ms(30), ms(10), ms(20)
		if mode != restore.Cold {
			h.Set(api.HeaderFallback, "no pager")
		}
	default:
		tm.StartKind, tm.Mode, tm.Start = "restore", mode, ms(5)
		tm.Restore = &restore.Stats{Mode: mode, Map: ms(1), Prefetch: ms(2), Faults: int64(10 + n%3), WSBytes: 1 << 20}
	}
	h.Set(api.HeaderServerTiming, server.ServerTiming(tm))
	status := http.StatusOK
	if name == f.fail && mode == restore.Cold {
		status = http.StatusInternalServerError
	}
	return &api.InvokeResponse{Status: status, Header: h, Body: []byte("{}")}, nil
}

func testPlan(trials int, modes ...restore.Mode) Plan {
	a, _ := Lookup("helloworld")
	b, _ := Lookup("pyaes")
	return Plan{Functions: []Function{a, b}, Modes: modes, Trials: trials, Seed: 7}
}

func TestRun(t *testing.T) {
	ft := &fakeTarget{}
	p := testPlan(3, restore.Cold, restore.Lazy, restore.Bulk, restore.Warm)
	mods := map[string][]byte{"helloworld": []byte("a"), "pyaes": []byte("b")}
	var progress []int
	res, err := Run(context.Background(), ft, p, mods, RunOptions{Progress: func(done, total int) {
		if total != 24 {
			t.Errorf("progress total %d, want 24", total)
		}
		progress = append(progress, done)
	}})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ft.deployed, []string{"helloworld", "pyaes"}) {
		t.Errorf("deployed %v", ft.deployed)
	}
	if got := len(res.Trials); got != 24 || len(progress) != 24 || progress[23] != 24 {
		t.Fatalf("%d trials, %d progress calls", got, len(progress))
	}
	// Each function starts with a reap call (recording the working set)
	// and a warm call, then 12 measured calls.
	for i, fn := range []int{0, 14} {
		if ft.calls[fn].Mode != api.ModeReap || ft.calls[fn+1].Mode != api.ModeWarm {
			t.Errorf("function %d: preparation calls %s, %s", i, ft.calls[fn].Mode, ft.calls[fn+1].Mode)
		}
	}
	for _, c := range ft.calls {
		if c.DropCache != (c.Mode != api.ModeWarm) {
			t.Errorf("mode %s: drop cache %v", c.Mode, c.DropCache)
		}
	}
	// Every round holds every mode once; the rounds are shuffled.
	orders := map[string]bool{}
	for r := 0; r < len(res.Trials); r += 4 {
		var round []string
		for _, tr := range res.Trials[r : r+4] {
			round = append(round, tr.Mode)
			if tr.Trial != (r/4)%3 {
				t.Errorf("trial %d in round %d", tr.Trial, r/4)
			}
		}
		orders[strings.Join(round, ",")] = true
		slices.Sort(round)
		if !slices.Equal(round, []string{"bulk", "cold", "lazy", "warm"}) {
			t.Errorf("round %d: modes %v", r/4, round)
		}
	}
	if len(orders) < 2 {
		t.Errorf("all rounds ran modes in the same order: %v", orders)
	}
	if len(res.Deployments) != 2 || res.Deployments[0].WSBytes != 1<<20 || res.Deployments[0].SnapshotBytes != 8<<20 {
		t.Errorf("deployments %+v", res.Deployments)
	}
	for _, tr := range res.Trials {
		if !tr.OK() || !tr.HasTiming || tr.StartKind == "" {
			t.Errorf("trial %+v", tr)
		}
	}
}

func TestRunMissingModule(t *testing.T) {
	_, err := Run(context.Background(), &fakeTarget{}, testPlan(1, restore.Cold), map[string][]byte{"helloworld": nil}, RunOptions{})
	if err == nil || !strings.Contains(err.Error(), "pyaes") {
		t.Fatalf("err = %v, want one naming pyaes", err)
	}
}

func TestTrialStages(t *testing.T) {
	for _, tc := range []struct {
		name  string
		tr    Trial
		want  map[string]float64
		total bool // stages sum to the latency
	}{
		{"no timing", Trial{LatencyMs: 3}, nil, false},
		{"warm", Trial{LatencyMs: 2, HasTiming: true, Timing: timing("warm", 0, 1.5, nil)}, map[string]float64{"exec": 1.5, "other": 0.5}, true},
		{"cold", Trial{LatencyMs: 40, HasTiming: true, Timing: timing("cold", 30, 5, map[string]float64{"instantiate": 12, "init": 18})},
			map[string]float64{"instantiate": 12, "init": 18, "exec": 5, "other": 5}, true},
		{"cold without stages", Trial{LatencyMs: 40, HasTiming: true, Timing: timing("cold", 30, 5, nil)},
			map[string]float64{"instantiate": 30, "init": 0, "exec": 5, "other": 5}, true},
		{"restore", Trial{LatencyMs: 10, HasTiming: true, Timing: timing("restore", 6, 2, map[string]float64{"map": 1, "prefetch": 3})},
			map[string]float64{"map": 1, "prefetch": 3, "instantiate": 2, "exec": 2, "other": 2}, true},
		{"clock skew", Trial{LatencyMs: 5, HasTiming: true, Timing: timing("restore", 6, 2, map[string]float64{"map": 4, "prefetch": 3})},
			map[string]float64{"map": 4, "prefetch": 3, "instantiate": 0, "exec": 2, "other": 0}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := TrialStages(&tc.tr)
			if len(got) != len(tc.want) {
				t.Fatalf("stages %v, want %v", got, tc.want)
			}
			sum := 0.0
			for k, v := range tc.want {
				if math.Abs(got[k]-v) > 1e-9 {
					t.Errorf("%s = %v, want %v", k, got[k], v)
				}
				sum += got[k]
			}
			if tc.total && math.Abs(sum-tc.tr.LatencyMs) > 1e-9 {
				t.Errorf("stages sum to %v, latency %v", sum, tc.tr.LatencyMs)
			}
		})
	}
}

func timing(kind string, start, exec float64, stages map[string]float64) (tm api.Timing) {
	tm.StartKind, tm.StartMs, tm.ExecMs, tm.Stages = kind, start, exec, stages
	return tm
}

func TestRows(t *testing.T) {
	ft := &fakeTarget{fail: "pyaes", fallback: "helloworld"}
	res, err := Run(context.Background(), ft, testPlan(4, restore.Warm, restore.Bulk, restore.Cold),
		map[string][]byte{"helloworld": nil, "pyaes": nil}, RunOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// The fake answers at once, so the wall latencies Run measured are
	// noise; take each trial's latency from the timing the fake reported,
	// so the ratios below test the arithmetic, not the scheduler.
	for i := range res.Trials {
		tr := &res.Trials[i]
		tr.LatencyMs = tr.QueueMs + tr.StartMs + tr.ExecMs
	}
	rows := Rows(res.Trials)
	var got []string
	for _, r := range rows {
		got = append(got, r.Function+"/"+r.Mode)
	}
	want := []string{"helloworld/cold", "helloworld/bulk", "helloworld/warm", "pyaes/cold", "pyaes/bulk", "pyaes/warm"}
	if !slices.Equal(got, want) {
		t.Fatalf("rows %v, want %v", got, want)
	}
	at := map[string]report.Row{}
	for _, r := range rows {
		at[r.Function+"/"+r.Mode] = r
	}
	if r := at["pyaes/cold"]; r.Trials != 0 || r.Errors != 4 || r.P50Ms != 0 {
		t.Errorf("failed row %+v", r)
	}
	if r := at["pyaes/warm"]; r.Trials != 4 || r.Errors != 0 || r.Extra["vs_warm"] != 1 {
		t.Errorf("warm row %+v", r)
	}
	if r := at["helloworld/bulk"]; r.Extra["fallbacks"] != 4 || r.Stages["init"] == 0 || r.Faults != 0 {
		t.Errorf("fallback row %+v", r)
	}
	if r := at["pyaes/bulk"]; r.Faults < 10 || r.Faults > 12 || r.WSBytes != 1<<20 || r.Stages["prefetch"] == 0 || r.P99Ms < r.P50Ms {
		t.Errorf("bulk row %+v", r)
	}
	if v := at["helloworld/cold"].Extra["vs_warm"]; v <= 1 {
		t.Errorf("cold vs warm = %v, want > 1", v)
	}
	ratios := Ratios(rows)
	if _, ok := ratios["pyaes"]["cold/bulk"]; ok {
		t.Error("ratio with a mode that had no successful trial")
	}
	if v := ratios["helloworld"]["bulk/warm"]; v <= 1 {
		t.Errorf("helloworld bulk/warm = %v", v)
	}
}

func TestCompare(t *testing.T) {
	rows := []report.Row{
		{Function: "helloworld", Mode: "lazy", Trials: 3, P50Ms: 8},
		{Function: "helloworld", Mode: "reap", Trials: 3, P50Ms: 4},
		{Function: "helloworld", Mode: "bulk", Trials: 3, P50Ms: 2},
		{Function: "helloworld", Mode: "cold", Trials: 3, P50Ms: 20},
		{Function: "pyaes", Mode: "lazy", Trials: 3, P50Ms: 10},
		{Function: "pyaes", Mode: "reap", Trials: 0, P50Ms: 0}, // all failed
		{Function: "video_frames", Mode: "lazy", Trials: 3, P50Ms: 10},
	}
	cs := Compare(rows)
	if len(cs) != 2 || cs[0].Paper.Function != "helloworld" || cs[1].Paper.Function != "pyaes" {
		t.Fatalf("comparisons %+v", cs)
	}
	if cs[0].ReapOverLazy != 0.5 || cs[0].BulkOverLazy != 0.25 || cs[0].ColdOverBulk != 10 {
		t.Errorf("helloworld ratios %+v", cs[0])
	}
	if math.Abs(cs[0].PaperReapOverVanilla-60.0/232) > 1e-12 || !math.IsNaN(cs[1].ReapOverLazy) {
		t.Errorf("ratios %+v", cs)
	}
	var b bytes.Buffer
	if err := WriteComparison(&b, cs); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if len(lines) != 5 || !strings.HasPrefix(lines[4], "| geometric mean |") || !strings.Contains(lines[2], "| 0.50 | 0.25 | 10.0 |") {
		t.Errorf("table:\n%s", b.String())
	}
}

func TestGeoMean(t *testing.T) {
	for _, tc := range []struct {
		xs   []float64
		want float64
	}{
		{[]float64{2, 8}, 4},
		{[]float64{3}, 3},
		{[]float64{2, math.NaN(), 8, 0, -1}, 4},
		{nil, math.NaN()},
	} {
		t.Run(fmt.Sprint(tc.xs), func(t *testing.T) {
			got := GeoMean(tc.xs)
			if math.IsNaN(tc.want) != math.IsNaN(got) || (!math.IsNaN(got) && math.Abs(got-tc.want) > 1e-12) {
				t.Errorf("GeoMean = %v, want %v", got, tc.want)
			}
		})
	}
}

// checkRunDir checks the structure of a suite run directory: every file,
// the summary.json schema, decodable plots referenced from report.html, and
// one record per trial in both record files.
func checkRunDir(t *testing.T, dir string, wantRecords int) {
	t.Helper()
	for _, f := range []string{report.FileMeta, report.FileSummary, report.FileTable, report.FileHTML, FileTrialsJSON, FileTrialsCSV, FileDeployments, FileRatios} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("missing %s", f)
		}
	}
	b, err := os.ReadFile(filepath.Join(dir, report.FileSummary))
	if err != nil {
		t.Fatal(err)
	}
	var sum struct {
		Version int              `json:"version"`
		Rows    []map[string]any `json:"rows"`
	}
	if err := json.Unmarshal(b, &sum); err != nil || sum.Version != report.SummaryVersion || len(sum.Rows) == 0 {
		t.Fatalf("summary.json: %v, %+v", err, sum)
	}
	for _, r := range sum.Rows {
		for _, k := range []string{"function", "mode", "p50_ms", "p99_ms", "trials"} {
			if _, ok := r[k]; !ok {
				t.Errorf("summary row %v lacks %s", r, k)
			}
		}
	}
	html, err := os.ReadFile(filepath.Join(dir, report.FileHTML))
	if err != nil {
		t.Fatal(err)
	}
	for _, fig := range []string{"latency", "stages", "cdf"} {
		if !strings.Contains(string(html), fig+".png") || !strings.Contains(string(html), fig+".svg") {
			t.Errorf("report.html does not reference %s", fig)
		}
		f, err := os.Open(filepath.Join(dir, fig+".png"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := png.Decode(f); err != nil {
			t.Errorf("%s.png: %v", fig, err)
		}
		f.Close()
		svg, err := os.ReadFile(filepath.Join(dir, fig+".svg"))
		if err != nil || !bytes.Contains(svg, []byte("<svg")) {
			t.Errorf("%s.svg: %v", fig, err)
		}
	}
	jl, err := os.ReadFile(filepath.Join(dir, FileTrialsJSON))
	if err != nil {
		t.Fatal(err)
	}
	if n := bytes.Count(jl, []byte("\n")); n != wantRecords {
		t.Errorf("%s has %d lines, want %d", FileTrialsJSON, n, wantRecords)
	}
	f, err := os.Open(filepath.Join(dir, FileTrialsCSV))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != wantRecords+1 || !slices.Equal(recs[0], TrialColumns) {
		t.Errorf("%s: %d rows (header %v), want %d", FileTrialsCSV, len(recs), recs[0], wantRecords+1)
	}
}

func TestWriteRun(t *testing.T) {
	ft := &fakeTarget{}
	res, err := Run(context.Background(), ft, testPlan(2, restore.Cold, restore.Lazy, restore.Reap, restore.Warm),
		map[string][]byte{"helloworld": nil, "pyaes": nil}, RunOptions{})
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "run")
	rows, err := WriteRun(dir, res, report.CollectMeta("test", nil, 7))
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 8 {
		t.Fatalf("%d rows", len(rows))
	}
	checkRunDir(t, dir, 16)
	for _, f := range []string{FileComparison, "faults.png", "working-set.svg"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("missing %s", f)
		}
	}
	md, _ := os.ReadFile(filepath.Join(dir, FileComparison))
	if !strings.Contains(string(md), "| pyaes | 3.00 | 309 | 55.0 |") {
		t.Errorf("comparison lacks pyaes's paper row:\n%s", md)
	}
}
