package cli

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"image/png"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/thaw-run/thaw/internal/report"
	"github.com/thaw-run/thaw/internal/suite"
)

// TestBenchSuiteBadConfig checks that bad configurations fail with a usage
// error before anything is built, started or written.
func TestBenchSuiteBadConfig(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"zero trials", []string{"--trials", "0"}, "trials"},
		{"unknown function", []string{"--functions", "helloworld,nope"}, `"nope"`},
		{"unknown mode", []string{"--modes", "cold,teleport"}, `"teleport"`},
		{"extra argument", []string{"helloworld"}, "argument"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "run")
			code, _, stderr := run(t, append([]string{"bench", "suite", "--out", out}, tc.args...)...)
			if code != ExitUsage || !strings.Contains(stderr, tc.want) {
				t.Fatalf("exit %d, stderr %q; want %d mentioning %s", code, stderr, ExitUsage, tc.want)
			}
			if strings.Contains(stderr, "built") {
				t.Errorf("built something before failing: %s", stderr)
			}
			if _, err := os.Stat(out); !os.IsNotExist(err) {
				t.Errorf("run directory created: %v", err)
			}
		})
	}
}

// TestBenchSuite runs the smallest real suite: one function, three modes,
// two trials, against a real in-process server, and checks the run
// directory's structure.
func TestBenchSuite(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and deploys a function")
	}
	out := filepath.Join(t.TempDir(), "run")
	code, stdout, stderr := run(t, "bench", "suite", "--functions", "helloworld", "--modes", "cold,bulk,warm",
		"--trials", "2", "--out", out, "--json")
	if code != ExitOK {
		t.Fatalf("exit %d\nstderr: %s", code, stderr)
	}
	var sum report.Summary
	if err := json.Unmarshal([]byte(stdout), &sum); err != nil {
		t.Fatalf("--json output: %v\n%s", err, stdout)
	}
	b, err := os.ReadFile(filepath.Join(out, report.FileSummary))
	if err != nil {
		t.Fatal(err)
	}
	var fileSum struct {
		Version int              `json:"version"`
		Rows    []map[string]any `json:"rows"`
	}
	if err := json.Unmarshal(b, &fileSum); err != nil || fileSum.Version != report.SummaryVersion {
		t.Fatalf("summary.json: %v (version %d)", err, fileSum.Version)
	}
	if len(fileSum.Rows) != 3 || len(sum.Rows) != 3 {
		t.Fatalf("%d rows in summary.json, %d on stdout; want 3", len(fileSum.Rows), len(sum.Rows))
	}
	for i, r := range fileSum.Rows {
		for _, k := range []string{"function", "mode", "p50_ms", "p99_ms", "trials"} {
			if _, ok := r[k]; !ok {
				t.Errorf("row %d lacks %q: %v", i, k, r)
			}
		}
		if r["function"] != "helloworld" || r["mode"] != []string{"cold", "bulk", "warm"}[i] || r["trials"] != 2.0 {
			t.Errorf("row %d: %v", i, r)
		}
		if p50, p99 := r["p50_ms"].(float64), r["p99_ms"].(float64); p50 <= 0 || p99 < p50 {
			t.Errorf("row %d: p50 %v, p99 %v", i, p50, p99)
		}
	}
	html, err := os.ReadFile(filepath.Join(out, report.FileHTML))
	if err != nil {
		t.Fatal(err)
	}
	for _, fig := range []string{"latency", "stages", "cdf"} {
		t.Run(fig, func(t *testing.T) {
			if !bytes.Contains(html, []byte(`src="`+fig+`.png"`)) || !bytes.Contains(html, []byte(fig+".svg")) {
				t.Errorf("report.html does not reference %s", fig)
			}
			f, err := os.Open(filepath.Join(out, fig+".png"))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if _, err := png.Decode(f); err != nil {
				t.Errorf("%s.png: %v", fig, err)
			}
			svg, err := os.ReadFile(filepath.Join(out, fig+".svg"))
			if err != nil || !bytes.Contains(svg, []byte("<svg")) {
				t.Errorf("%s.svg: %v", fig, err)
			}
		})
	}
	jl, err := os.ReadFile(filepath.Join(out, suite.FileTrialsJSON))
	if err != nil {
		t.Fatal(err)
	}
	if n := bytes.Count(jl, []byte("\n")); n != 6 {
		t.Errorf("%s: %d records, want trials x modes = 6", suite.FileTrialsJSON, n)
	}
	f, err := os.Open(filepath.Join(out, suite.FileTrialsCSV))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 7 || !slices.Equal(recs[0], suite.TrialColumns) {
		t.Errorf("%s: %d rows, want header + 6", suite.FileTrialsCSV, len(recs))
	}
	for _, name := range []string{report.FileMeta, report.FileTable, suite.FileDeployments, suite.FileRatios, suite.FileComparison} {
		if _, err := os.Stat(filepath.Join(out, name)); err != nil {
			t.Errorf("missing %s", name)
		}
	}
}

// TestBenchPolicy runs Pronghorn's method at its smallest: one function,
// two policies, a worker evicted every 2 requests, 6 requests. It checks
// the JSON's fields and, for fixed:1, the per-request starts: request 1
// restores the initialisation snapshot, every later instance the snapshot
// after request 1, the first of them as that snapshot's first restore and
// the others as repeats; the requests in between are warm.
func TestBenchPolicy(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs a function")
	}
	out := filepath.Join(t.TempDir(), "run")
	code, stdout, stderr := run(t, "bench", "policy", "--functions", "flat", "--policies", "fixed:1,pronghorn",
		"--evict", "2", "--requests", "6", "--out", out, "--json")
	if code != ExitOK {
		t.Fatalf("exit %d\nstderr: %s", code, stderr)
	}
	type start struct {
		Kind    string          `json:"kind"`
		First   bool            `json:"first"`
		Restore json.RawMessage `json:"restore"`
	}
	var rep struct {
		Results []struct {
			Function   string    `json:"function"`
			Policy     string    `json:"policy"`
			EvictEvery int       `json:"evict_every"`
			P50ms      float64   `json:"p50_ms"`
			P99ms      float64   `json:"p99_ms"`
			Latencies  []float64 `json:"latencies_ms"`
			Snapshots  []int     `json:"snapshot_requests"`
			Starts     []start   `json:"starts"`
		} `json:"results"`
	}
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
		t.Fatalf("--json output: %v\n%s", err, stdout)
	}
	if len(rep.Results) != 2 {
		t.Fatalf("%d results, want fixed:1 and pronghorn", len(rep.Results))
	}
	for _, r := range rep.Results {
		if r.Function != "flat" || r.EvictEvery != 2 || r.P50ms <= 0 || r.P99ms < r.P50ms || len(r.Latencies) != 6 || len(r.Starts) != 6 {
			t.Errorf("%s: function %q, evict %d, p50 %v, p99 %v, %d latencies, %d starts", r.Policy, r.Function, r.EvictEvery, r.P50ms, r.P99ms, len(r.Latencies), len(r.Starts))
		}
	}
	fixed := rep.Results[0]
	if fixed.Policy != "fixed:1" || !slices.Equal(fixed.Snapshots, []int{0, 0, 1, 1, 1, 1}) {
		t.Fatalf("%s restored snapshots %v, want fixed:1 with [0 0 1 1 1 1]", fixed.Policy, fixed.Snapshots)
	}
	for i, want := range []start{{Kind: "restore", First: true}, {Kind: "warm"}, {Kind: "restore", First: true}, {Kind: "warm"}, {Kind: "restore"}, {Kind: "warm"}} {
		got := fixed.Starts[i]
		if got.Kind != want.Kind || got.First != want.First || (got.Kind == "restore") != (len(got.Restore) > 0) {
			t.Errorf("request %d: kind %s, first %v, restore stats %s; want kind %s, first %v", i+1, got.Kind, got.First, got.Restore, want.Kind, want.First)
		}
	}
	for _, name := range []string{"results.json", "flat-evict2-latency.png", "flat-evict2-snapshot.png"} {
		if _, err := os.Stat(filepath.Join(out, name)); err != nil {
			t.Errorf("run directory: %v", err)
		}
	}
}
