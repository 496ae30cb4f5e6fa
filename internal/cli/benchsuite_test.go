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
