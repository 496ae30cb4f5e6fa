package report

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/thaw-run/thaw/internal/load"
)

// Files of a run directory.
const (
	FileMeta        = "meta.json"
	FileSummary     = "summary.json"
	FileTable       = "summary.txt"
	FileHTML        = "report.html"
	FileRecordsJSON = "invocations.jsonl"
	FileRecordsCSV  = "invocations.csv"
	FileLoadSummary = "load-summary.json"
	FileWindows     = "windows.json"
	FileMemory      = "memory.json"
)

// RecordColumns are the columns of invocations.csv, one per field of
// load.Record; the stage columns are empty when the server did not report
// that stage.
var RecordColumns = []string{
	"seq", "function", "scheduled_ms", "sent_ms", "latency_ms", "status", "dropped", "error", "bytes",
	"has_timing", "queue_ms", "start_ms", "exec_ms", "start_kind", "restore_mode",
	"instantiate_ms", "init_ms", "map_ms", "prefetch_ms", "faults", "ws_bytes",
}

func recordCells(r *load.Record) []string {
	f := func(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }
	stage := func(s string) string {
		if v, ok := r.Stages[s]; ok {
			return f(v)
		}
		return ""
	}
	return []string{
		strconv.Itoa(r.Seq), r.Function, f(r.ScheduledMs), f(r.SentMs), f(r.LatencyMs), strconv.Itoa(r.Status),
		strconv.FormatBool(r.Dropped), r.Error, strconv.FormatInt(r.Bytes, 10),
		strconv.FormatBool(r.HasTiming), f(r.QueueMs), f(r.StartMs), f(r.ExecMs), r.StartKind, r.RestoreMode,
		stage("instantiate"), stage("init"), stage("map"), stage("prefetch"),
		strconv.FormatInt(r.Faults, 10), strconv.FormatInt(r.WSBytes, 10),
	}
}

// WriteRecords writes load records as invocations.jsonl and invocations.csv.
func WriteRecords(dir string, recs []load.Record) error {
	if err := WriteJSONL(filepath.Join(dir, FileRecordsJSON), recs); err != nil {
		return err
	}
	cells := make([][]string, len(recs))
	for i := range recs {
		cells[i] = recordCells(&recs[i])
	}
	return WriteCSV(filepath.Join(dir, FileRecordsCSV), RecordColumns, cells)
}

// LoadRows turns a load summary into report rows, one per function plus
// "all", all labelled mode (the server's restore mode, say).
func LoadRows(sum load.Summary, mode string) []Row {
	row := func(s load.Stats) Row {
		return Row{
			Function: s.Function, Mode: mode, Trials: s.OK,
			P50Ms: s.P50Ms, P90Ms: s.P90Ms, P99Ms: s.P99Ms, MeanMs: s.MeanMs, Errors: s.Errors,
			Stages: map[string]float64{"queue": s.MeanQueueMs, "start": s.MeanStartMs, "exec": s.MeanExecMs},
			Extra: map[string]float64{
				"cold_start_rate": s.ColdStartRate, "dropped": float64(s.Dropped), "requests": float64(s.Requests),
			},
		}
	}
	var rows []Row
	for _, s := range sum.Functions {
		rows = append(rows, row(s))
	}
	return append(rows, row(sum.Overall))
}

// WorkerRows are a load run's rows per worker of a cluster (by the node
// that served each request; "-" for requests no worker answered), with
// the bytes each worker's snapshot store fetched from the object store
// during the run (store_remote_bytes, when its /metrics said), and the
// total.
func WorkerRows(sum load.Summary, mode string) []Row {
	var rows []Row
	for _, w := range sum.Workers {
		name := w.Worker
		if name == "" {
			name = "-"
		}
		r := Row{
			Function: name, Mode: mode, Trials: w.OK, P50Ms: w.P50Ms, P90Ms: w.P90Ms, P99Ms: w.P99Ms, MeanMs: w.MeanMs, Errors: w.Errors,
			Extra: map[string]float64{"cold_start_rate": w.ColdStartRate, "requests": float64(w.Requests)},
		}
		if w.StoreBytes != nil {
			r.Extra["store_remote_bytes"] = w.StoreBytes["remote"]
		}
		rows = append(rows, r)
	}
	if len(rows) == 0 {
		return nil
	}
	o := sum.Overall
	return append(rows, Row{
		Function: "all workers", Mode: mode, Trials: o.OK, P50Ms: o.P50Ms, P90Ms: o.P90Ms, P99Ms: o.P99Ms, MeanMs: o.MeanMs, Errors: o.Errors,
		Extra: map[string]float64{"cold_start_rate": o.ColdStartRate, "requests": float64(o.Requests), "store_remote_bytes": sum.StoreRemoteBytes},
	})
}

// LoadRunOptions tune WriteLoadRun.
type LoadRunOptions struct {
	// Mode labels the run's rows (e.g. the server's restore mode); default "load".
	Mode string
	// Window is the width of the over-time plots' windows; default 1s.
	Window time.Duration
	// Notes are shown at the top of report.html.
	Notes []string
}

// WriteLoadRun writes a load run's directory: meta.json, the invocation
// records, summary.json/summary.txt, load-summary.json (every load
// statistic), windows.json, memory.json, the plots and report.html. The
// directory is created if needed.
func WriteLoadRun(dir string, res *load.Result, meta Meta, opts LoadRunOptions) (Page, error) {
	if opts.Mode == "" {
		opts.Mode = "load"
	}
	if opts.Window <= 0 {
		opts.Window = time.Second
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return Page{}, fmt.Errorf("report: %w", err)
	}
	sum := load.Summarize(res)
	wins := load.Windows(res, opts.Window)
	rows := LoadRows(sum, opts.Mode)
	pg := Page{Meta: meta, Rows: rows, Notes: opts.Notes}
	pg.Notes = append(pg.Notes, fmt.Sprintf("%d requests in %.1f s: %d answered 2xx, %d errors, %d dropped at the in-flight bound; "+
		"throughput %.1f/s; cold-start rate %.1f%%; generator lag p99 %s ms.",
		sum.Overall.Requests, sum.ElapsedS, sum.Overall.OK, sum.Overall.Errors, sum.Overall.Dropped,
		sum.ThroughputRPS, 100*sum.Overall.ColdStartRate, fmtMs(sum.Overall.LagP99Ms)))

	for _, w := range WorkerRows(sum, opts.Mode) {
		pg.Notes = append(pg.Notes, fmt.Sprintf("Worker %s: %.0f requests, cold-start rate %.1f%%, p50 %s ms, p99 %s ms, %.0f object-store bytes fetched.",
			w.Function, w.Extra["requests"], 100*w.Extra["cold_start_rate"], fmtMs(w.P50Ms), fmtMs(w.P99Ms), w.Extra["store_remote_bytes"]))
	}

	steps := []func() error{
		func() error { return WriteJSON(filepath.Join(dir, FileMeta), meta) },
		func() error { return WriteRecords(dir, res.Records) },
		func() error { return WriteSummary(dir, rows) },
		func() error { return WriteJSON(filepath.Join(dir, FileLoadSummary), sum) },
		func() error { return WriteJSON(filepath.Join(dir, FileWindows), nonNil(wins)) },
		func() error { return WriteJSON(filepath.Join(dir, FileMemory), nonNil(res.Memory)) },
	}
	fig := func(f Figure, err error) error {
		if err == nil {
			pg.Figures = append(pg.Figures, f)
		}
		return err
	}
	steps = append(steps,
		func() error { return fig(PlotLatency(dir, "latency", rows)) },
		func() error { return fig(PlotStages(dir, "stages", rows, []string{"queue", "start", "exec"})) },
		func() error { return fig(PlotCDF(dir, "cdf", latencyByStart(res))) },
		func() error {
			x, p50, p99 := make([]float64, len(wins)), make([]float64, len(wins)), make([]float64, len(wins))
			for i, w := range wins {
				x[i], p50[i], p99[i] = w.StartS, w.P50Ms, w.P99Ms
			}
			f, err := PlotLines(dir, "latency-over-time", "Latency over time", "time (s)", "latency (ms, log scale)",
				[]Series{{"p50", x, p50}, {"p99", x, p99}}, false, true)
			f.Caption = fmt.Sprintf("Percentiles of successful invocations per %s window, by scheduled time.", opts.Window)
			return fig(f, err)
		},
		func() error {
			x, rate := make([]float64, len(wins)), make([]float64, len(wins))
			for i, w := range wins {
				x[i], rate[i] = w.StartS, w.ColdStartRate
			}
			f, err := PlotLines(dir, "cold-rate-over-time", "Cold-start rate over time", "time (s)", "fraction cold or restored",
				[]Series{{"cold-start rate", x, rate}}, false, false)
			f.Caption = "Fraction of successful invocations per window that started a new instance (cold boot or restore)."
			return fig(f, err)
		},
	)
	if len(res.Memory) > 0 {
		steps = append(steps, func() error { return fig(PlotMemory(dir, "memory", res.Memory)) })
	}
	steps = append(steps, func() error {
		return WriteHTML(dir, pg, FileTable, FileLoadSummary, FileRecordsCSV, FileRecordsJSON, FileWindows, FileMemory, FileMeta)
	})
	for _, step := range steps {
		if err := step(); err != nil {
			return pg, err
		}
	}
	return pg, nil
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// latencyByStart groups successful invocations' latencies by how their
// instance started ("warm", "cold", "restore:reap", or "unknown").
func latencyByStart(res *load.Result) map[string][]float64 {
	out := map[string][]float64{}
	for i := range res.Records {
		r := &res.Records[i]
		if !r.OK() {
			continue
		}
		k := r.StartKind
		switch {
		case k == "":
			k = "unknown"
		case r.RestoreMode != "":
			k += ":" + r.RestoreMode
		}
		out[k] = append(out[k], r.LatencyMs)
	}
	return out
}

// PlotMemory writes the server's memory over time in MiB.
func PlotMemory(dir, name string, samples []load.MemorySample) (Figure, error) {
	x, y := make([]float64, len(samples)), make([]float64, len(samples))
	metric := ""
	for i, s := range samples {
		x[i], y[i], metric = s.AtMs/1000, s.Bytes/(1<<20), s.Metric
	}
	f, err := PlotLines(dir, name, "Server memory over time", "time (s)", "MiB", []Series{{metric, x, y}}, false, false)
	f.Caption = "Sampled from the server's /metrics (" + metric + ")."
	return f, err
}

// Suite is a benchmark suite's results: functions against restore modes.
type Suite struct {
	Meta Meta
	Rows []Row
	// Samples holds latencies (ms) per CDF line, typically per mode.
	Samples map[string][]float64
	// Stages orders the stacked stage bars (nil: every stage, in the
	// order they happen).
	Stages []string
	Notes  []string
	// Links name further files the caller wrote into the directory (trial
	// records), linked from report.html.
	Links []string
}

// WriteSuite writes a suite's run directory: meta.json,
// summary.json/summary.txt, the latency and stage plots, the CDF when
// Samples is set, fault and working-set bars when rows have them, and
// report.html.
func WriteSuite(dir string, s Suite) (Page, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return Page{}, fmt.Errorf("report: %w", err)
	}
	pg := Page{Meta: s.Meta, Rows: s.Rows, Notes: s.Notes}
	var hasStages, hasFaults, hasWS bool
	for _, r := range s.Rows {
		hasStages = hasStages || len(r.Stages) > 0
		hasFaults = hasFaults || r.Faults > 0
		hasWS = hasWS || r.WSBytes > 0
	}
	fig := func(f Figure, err error) error {
		if err == nil {
			pg.Figures = append(pg.Figures, f)
		}
		return err
	}
	steps := []func() error{
		func() error { return WriteJSON(filepath.Join(dir, FileMeta), s.Meta) },
		func() error { return WriteSummary(dir, s.Rows) },
		func() error { return fig(PlotLatency(dir, "latency", s.Rows)) },
	}
	if hasStages {
		steps = append(steps, func() error { return fig(PlotStages(dir, "stages", s.Rows, s.Stages)) })
	}
	if len(s.Samples) > 0 {
		steps = append(steps, func() error { return fig(PlotCDF(dir, "cdf", s.Samples)) })
	}
	if hasFaults {
		steps = append(steps, func() error {
			return fig(PlotBars(dir, "faults", "Page faults per invocation", "faults", s.Rows, func(r Row) float64 { return r.Faults }))
		})
	}
	if hasWS {
		steps = append(steps, func() error {
			return fig(PlotBars(dir, "working-set", "Working-set size", "MiB", s.Rows, func(r Row) float64 { return r.WSBytes / (1 << 20) }))
		})
	}
	steps = append(steps, func() error { return WriteHTML(dir, pg, append([]string{FileTable, FileMeta}, s.Links...)...) })
	for _, step := range steps {
		if err := step(); err != nil {
			return pg, err
		}
	}
	return pg, nil
}
