package suite

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/thaw-run/thaw/internal/report"
)

// Files a suite run adds to the run directory report.WriteSuite writes.
const (
	FileTrialsJSON  = report.FileRecordsJSON // invocations.jsonl
	FileTrialsCSV   = report.FileRecordsCSV  // invocations.csv
	FileDeployments = "deployments.json"
	FileRatios      = "ratios.json"
	FileComparison  = "paper-comparison.md"
)

// TrialColumns are the columns of invocations.csv. Stage columns are
// empty when the server did not report the stage.
var TrialColumns = []string{
	"function", "mode", "trial", "latency_ms", "status", "error", "fallback", "has_timing",
	"queue_ms", "start_ms", "exec_ms", "start_kind", "restore_mode",
	"instantiate_ms", "init_ms", "map_ms", "prefetch_ms", "faults", "ws_bytes",
}

func trialCells(t *Trial) []string {
	f := func(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }
	stage := func(s string) string {
		if v, ok := t.Stages[s]; ok {
			return f(v)
		}
		return ""
	}
	return []string{
		t.Function, t.Mode, strconv.Itoa(t.Trial), f(t.LatencyMs), strconv.Itoa(t.Status), t.Error, t.Fallback,
		strconv.FormatBool(t.HasTiming), f(t.QueueMs), f(t.StartMs), f(t.ExecMs), t.StartKind, t.RestoreMode,
		stage("instantiate"), stage("init"), stage("map"), stage("prefetch"),
		strconv.FormatInt(t.Faults, 10), strconv.FormatInt(t.WSBytes, 10),
	}
}

// WriteRun writes res to the run directory dir: the trials as JSON lines
// and CSV, deployments.json, ratios.json, paper-comparison.md (when some
// function is in REAP's table), and through report.WriteSuite meta.json,
// summary.json/summary.txt, the plots and report.html. It returns the
// summary rows.
func WriteRun(dir string, res *Result, meta report.Meta) ([]report.Row, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("suite: %w", err)
	}
	rows := Rows(res.Trials)
	if err := report.WriteJSONL(filepath.Join(dir, FileTrialsJSON), res.Trials); err != nil {
		return rows, err
	}
	cells := make([][]string, len(res.Trials))
	for i := range res.Trials {
		cells[i] = trialCells(&res.Trials[i])
	}
	if err := report.WriteCSV(filepath.Join(dir, FileTrialsCSV), TrialColumns, cells); err != nil {
		return rows, err
	}
	deps := res.Deployments
	if deps == nil {
		deps = []Deployment{}
	}
	if err := report.WriteJSON(filepath.Join(dir, FileDeployments), deps); err != nil {
		return rows, err
	}
	if err := report.WriteJSON(filepath.Join(dir, FileRatios), Ratios(rows)); err != nil {
		return rows, err
	}
	links := []string{FileTrialsCSV, FileTrialsJSON, FileDeployments, FileRatios}
	if cs := Compare(rows); len(cs) > 0 {
		var b bytes.Buffer
		b.WriteString("# thaw against REAP's published figures\n\n")
		b.WriteString("Latencies in ms (p50 for thaw). REAP's figures are read off the ASPLOS'21 paper's plots: ")
		b.WriteString("Firecracker microVMs running Python functions, not wasm instances of Go ports, so compare ratios, not milliseconds. ")
		b.WriteString("thaw's lazy mode plays REAP's vanilla snapshot.\n\n")
		if err := WriteComparison(&b, cs); err != nil {
			return rows, err
		}
		if err := os.WriteFile(filepath.Join(dir, FileComparison), b.Bytes(), 0o644); err != nil {
			return rows, fmt.Errorf("suite: %w", err)
		}
		links = append(links, FileComparison)
	}
	_, err := report.WriteSuite(dir, report.Suite{
		Meta: meta, Rows: rows, Samples: Samples(res.Trials), Stages: Stages, Notes: notes(res, rows), Links: links,
	})
	return rows, err
}

// notes are report.html's paragraphs: what ran, and what went wrong.
func notes(res *Result, rows []report.Row) []string {
	p := res.Plan
	modes := make([]string, len(p.Modes))
	for i, m := range p.Modes {
		modes[i] = string(m)
	}
	out := []string{fmt.Sprintf("%d functions × %d modes (%s) × %d trials, %d invocations in %.0f s, measured end to end over HTTP "+
		"against a thaw server on loopback. The snapshot's files were evicted from the page cache before every cold boot and restore. "+
		"Stages come from the server's Server-Timing header; \"other\" is HTTP and the server's work around the instance.",
		len(p.Functions), len(p.Modes), strings.Join(modes, ", "), p.Trials, len(res.Trials), res.Elapsed.Seconds())}
	for _, r := range rows {
		if r.Errors > 0 {
			out = append(out, fmt.Sprintf("Warning: %s in mode %s failed %d of %d trials (see %s).", r.Function, r.Mode, r.Errors, r.Errors+r.Trials, FileTrialsCSV))
		}
		if n := r.Extra["fallbacks"]; n > 0 {
			out = append(out, fmt.Sprintf("Warning: %.0f %s restores of %s fell back to a cold boot.", n, r.Mode, r.Function))
		}
	}
	return out
}
