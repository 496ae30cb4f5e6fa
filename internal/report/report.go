// Package report writes an experiment's run directory: per-invocation
// records (JSON lines and CSV), summary.json and a readable table,
// meta.json describing the machine and configuration, plots as PNG and SVG,
// and report.html tying them together.
//
// The data model is deliberately flat so that both the load generator
// (internal/load) and the restore benchmarks produce it: one Row per
// function and mode with latency percentiles and optional stage, fault and
// working-set figures. WriteLoadRun and WriteSuite compose the pieces for
// the two kinds of run; the pieces are exported for other layouts.
package report

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"text/tabwriter"
)

// Row summarises the trials of one function in one mode.
type Row struct {
	Function string  `json:"function"`
	Mode     string  `json:"mode"`
	Trials   int     `json:"trials"`
	P50Ms    float64 `json:"p50_ms"`
	P90Ms    float64 `json:"p90_ms,omitempty"`
	P99Ms    float64 `json:"p99_ms"`
	MeanMs   float64 `json:"mean_ms,omitempty"`
	Errors   int     `json:"errors,omitempty"`
	// Stages are typical (median or mean, as the producer says) stage
	// durations in ms: queue/start/exec for invocations,
	// instantiate/map/prefetch/exec for restores.
	Stages map[string]float64 `json:"stages_ms,omitempty"`
	// Faults are page faults served lazily per trial; WSBytes the working
	// set's size. Zero when not measured.
	Faults  float64 `json:"faults,omitempty"`
	WSBytes float64 `json:"ws_bytes,omitempty"`
	// Extra holds any other per-row figure (cold_start_rate, ratio_to_warm, ...).
	Extra map[string]float64 `json:"extra,omitempty"`
}

// SummaryVersion is the version of summary.json's schema.
const SummaryVersion = 1

// Summary is the content of summary.json.
type Summary struct {
	Version int   `json:"version"`
	Rows    []Row `json:"rows"`
}

// WriteJSON writes v to path as indented JSON.
func WriteJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("report: encoding %s: %w", filepath.Base(path), err)
	}
	return writeFile(path, append(b, '\n'))
}

// WriteSummary writes rows to dir/summary.json and, as a table, to
// dir/summary.txt.
func WriteSummary(dir string, rows []Row) error {
	if rows == nil {
		rows = []Row{}
	}
	if err := WriteJSON(filepath.Join(dir, "summary.json"), Summary{Version: SummaryVersion, Rows: rows}); err != nil {
		return err
	}
	f, err := os.Create(filepath.Join(dir, "summary.txt"))
	if err != nil {
		return fmt.Errorf("report: %w", err)
	}
	if err := WriteTable(f, rows); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	return nil
}

// TableColumns returns the table's header and cells, shared by the text
// table and the HTML report. Stage, extra and fault columns appear only
// when some row has them.
func TableColumns(rows []Row) (head []string, cells [][]string) {
	var stages, extras []string
	var faults, ws bool
	for _, r := range rows {
		for k := range r.Stages {
			if !slices.Contains(stages, k) {
				stages = append(stages, k)
			}
		}
		for k := range r.Extra {
			if !slices.Contains(extras, k) {
				extras = append(extras, k)
			}
		}
		faults = faults || r.Faults != 0
		ws = ws || r.WSBytes != 0
	}
	slices.SortFunc(stages, compareStages)
	slices.Sort(extras)
	head = []string{"function", "mode", "trials", "p50 ms", "p90 ms", "p99 ms", "errors"}
	for _, s := range stages {
		head = append(head, s+" ms")
	}
	if faults {
		head = append(head, "faults")
	}
	if ws {
		head = append(head, "ws MiB")
	}
	head = append(head, extras...)
	for _, r := range rows {
		c := []string{r.Function, r.Mode, strconv.Itoa(r.Trials), fmtMs(r.P50Ms), fmtMs(r.P90Ms), fmtMs(r.P99Ms), strconv.Itoa(r.Errors)}
		for _, s := range stages {
			c = append(c, fmtMs(r.Stages[s]))
		}
		if faults {
			c = append(c, strconv.FormatFloat(r.Faults, 'f', 0, 64))
		}
		if ws {
			c = append(c, strconv.FormatFloat(r.WSBytes/(1<<20), 'f', 2, 64))
		}
		for _, e := range extras {
			c = append(c, strconv.FormatFloat(r.Extra[e], 'g', 4, 64))
		}
		cells = append(cells, c)
	}
	return head, cells
}

// stageOrder puts the stages thaw reports in the order they happen.
var stageOrder = []string{"queue", "start", "instantiate", "init", "map", "prefetch", "exec"}

func compareStages(a, b string) int {
	ia, ib := slices.Index(stageOrder, a), slices.Index(stageOrder, b)
	if ia < 0 {
		ia = len(stageOrder)
	}
	if ib < 0 {
		ib = len(stageOrder)
	}
	if ia != ib {
		return ia - ib
	}
	if a < b {
		return -1
	}
	if a > b {
		return 1
	}
	return 0
}

// fmtMs prints milliseconds with three significant digits, enough to read
// both 0.0123 ms warm calls and 1234 ms cold boots.
func fmtMs(v float64) string {
	switch {
	case v == 0:
		return "0"
	case v >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case v >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	case v >= 1:
		return strconv.FormatFloat(v, 'f', 2, 64)
	}
	return strconv.FormatFloat(v, 'g', 3, 64)
}

// WriteTable writes rows as an aligned text table.
func WriteTable(w io.Writer, rows []Row) error {
	head, cells := TableColumns(rows)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	line := func(c []string) {
		for i, s := range c {
			if i > 0 {
				io.WriteString(tw, "\t")
			}
			io.WriteString(tw, s)
		}
		io.WriteString(tw, "\n")
	}
	line(head)
	for _, c := range cells {
		line(c)
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("report: writing table: %w", err)
	}
	return nil
}

// WriteJSONL writes one JSON object per line.
func WriteJSONL[T any](path string, recs []T) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("report: %w", err)
	}
	enc := json.NewEncoder(f)
	for i := range recs {
		if err := enc.Encode(&recs[i]); err != nil {
			f.Close()
			return fmt.Errorf("report: writing %s: %w", filepath.Base(path), err)
		}
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	return nil
}

// WriteCSV writes a header and rows as CSV.
func WriteCSV(path string, header []string, rows [][]string) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("report: %w", err)
	}
	w := csv.NewWriter(f)
	w.Write(header)
	w.WriteAll(rows) // flushes
	if err := w.Error(); err != nil {
		f.Close()
		return fmt.Errorf("report: writing %s: %w", filepath.Base(path), err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	return nil
}

func writeFile(path string, b []byte) error {
	if err := os.WriteFile(path, b, 0o644); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	return nil
}
