package report

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"encoding/xml"
	"errors"
	"image/png"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/thaw-run/thaw/internal/api"
	"github.com/thaw-run/thaw/internal/load"
)

func suiteRows() []Row {
	var rows []Row
	for i, fn := range []string{"hello", "json", "image"} {
		for j, mode := range []string{"cold", "mmap", "reap"} {
			base := float64(i+1) * []float64{100, 10, 2}[j]
			rows = append(rows, Row{
				Function: fn, Mode: mode, Trials: 20, P50Ms: base, P90Ms: base * 1.5, P99Ms: base * 2,
				Stages: map[string]float64{"instantiate": base * 0.2, "map": base * 0.1, "prefetch": base * 0.3, "exec": base * 0.4},
				Faults: float64(100 * (2 - j)), WSBytes: float64((i + 1) << 20),
				Extra: map[string]float64{"ratio_to_cold": 100 / base},
			})
		}
	}
	return rows
}

// checkFigures decodes every figure's PNG and parses its SVG.
func checkFigures(t *testing.T, dir string, figs []Figure, want ...string) {
	t.Helper()
	names := map[string]bool{}
	for _, f := range figs {
		names[f.Name] = true
		t.Run(f.Name, func(t *testing.T) {
			fh, err := os.Open(filepath.Join(dir, f.Name+".png"))
			if err != nil {
				t.Fatal(err)
			}
			defer fh.Close()
			img, err := png.Decode(fh)
			if err != nil {
				t.Fatalf("png: %v", err)
			}
			if b := img.Bounds(); b.Dx() < 400 || b.Dy() < 200 {
				t.Fatalf("png is %v", b)
			}
			svg, err := os.ReadFile(filepath.Join(dir, f.Name+".svg"))
			if err != nil {
				t.Fatal(err)
			}
			dec := xml.NewDecoder(bytes.NewReader(svg))
			root := ""
			for {
				tok, err := dec.Token()
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					t.Fatalf("svg: %v", err)
				}
				if se, ok := tok.(xml.StartElement); ok && root == "" {
					root = se.Name.Local
				}
			}
			if root != "svg" {
				t.Fatalf("svg root element %q", root)
			}
		})
	}
	for _, w := range want {
		if !names[w] {
			t.Errorf("figure %s missing", w)
		}
	}
}

func checkHTML(t *testing.T, dir string, pg Page) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, FileHTML))
	if err != nil {
		t.Fatal(err)
	}
	html := string(b)
	for _, f := range pg.Figures {
		if !strings.Contains(html, `<img src="`+f.Name+`.png"`) {
			t.Errorf("report.html lacks image %s", f.Name)
		}
	}
	if got := strings.Count(html, "<tr><td"); got != len(pg.Rows) {
		t.Errorf("report.html has %d table rows, want %d", got, len(pg.Rows))
	}
	for _, s := range []string{"<th>p50 ms</th>", pg.Meta.Title, pg.Meta.GoVersion} {
		if !strings.Contains(html, s) {
			t.Errorf("report.html lacks %q", s)
		}
	}
}

func checkSummary(t *testing.T, dir string, n int) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, FileSummary))
	if err != nil {
		t.Fatal(err)
	}
	var s struct {
		Version int              `json:"version"`
		Rows    []map[string]any `json:"rows"`
	}
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatal(err)
	}
	if s.Version != SummaryVersion || len(s.Rows) != n {
		t.Fatalf("summary version %d with %d rows, want %d", s.Version, len(s.Rows), n)
	}
	for _, r := range s.Rows {
		for k, kind := range map[string]string{"function": "string", "mode": "string", "trials": "number", "p50_ms": "number", "p99_ms": "number"} {
			v, ok := r[k]
			_, isStr := v.(string)
			_, isNum := v.(float64)
			if !ok || (kind == "string" && !isStr) || (kind == "number" && !isNum) {
				t.Fatalf("row %v: field %s missing or not a %s", r, k, kind)
			}
		}
	}
	txt, err := os.ReadFile(filepath.Join(dir, FileTable))
	if err != nil {
		t.Fatal(err)
	}
	if lines := strings.Count(string(txt), "\n"); lines != n+1 {
		t.Fatalf("summary.txt has %d lines, want %d", lines, n+1)
	}
}

// runDir returns a fresh directory for a run, under $THAW_REPORT_DIR when
// set so that a person can look at the plots.
func runDir(t *testing.T, name string) string {
	if d := os.Getenv("THAW_REPORT_DIR"); d != "" {
		return filepath.Join(d, name)
	}
	return filepath.Join(t.TempDir(), name)
}

func TestWriteSuite(t *testing.T) {
	dir := runDir(t, "suite")
	rows := suiteRows()
	meta := CollectMeta("restore modes", map[string]any{"trials": 20}, 7)
	pg, err := WriteSuite(dir, Suite{
		Meta: meta, Rows: rows,
		Samples: map[string][]float64{"cold": {90, 100, 120, 200}, "reap": {1.5, 2, 2.2, 4}},
	})
	if err != nil {
		t.Fatal(err)
	}
	checkFigures(t, dir, pg.Figures, "latency", "stages", "cdf", "faults", "working-set")
	checkHTML(t, dir, pg)
	checkSummary(t, dir, len(rows))
	var m Meta
	b, _ := os.ReadFile(filepath.Join(dir, FileMeta))
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	if m.Machine.Cores <= 0 || m.GoVersion == "" || m.Seed != 7 || m.Title != "restore modes" {
		t.Fatalf("meta = %+v", m)
	}
}

func loadResult() *load.Result {
	res := &load.Result{Memory: []load.MemorySample{{AtMs: 0, Bytes: 50 << 20, Metric: "process_resident_memory_bytes"}, {AtMs: 1000, Bytes: 80 << 20, Metric: "process_resident_memory_bytes"}, {AtMs: 2000, Bytes: 70 << 20, Metric: "process_resident_memory_bytes"}}}
	for i := range 300 {
		r := load.Record{Seq: i, Function: []string{"hello", "sleepy"}[i%2], ScheduledMs: float64(i * 10), SentMs: float64(i*10) + 0.1, Status: 200, Bytes: 5, HasTiming: true}
		r.ExecMs = 1
		switch {
		case i%50 == 0:
			r.StartKind, r.StartMs = "cold", 120
		case i%25 == 0:
			r.StartKind, r.RestoreMode, r.StartMs = "restore", "reap", 6
			r.Stages = map[string]float64{"map": 0.5, "prefetch": 2}
			r.Faults, r.WSBytes = 12, 1<<20
		default:
			r.StartKind = "warm"
		}
		r.LatencyMs = r.StartMs + r.ExecMs + 0.2
		if i%37 == 0 {
			r.Status, r.HasTiming, r.Timing = 503, false, api.Timing{}
		}
		if i%41 == 0 {
			r = load.Record{Seq: i, Function: r.Function, ScheduledMs: r.ScheduledMs, SentMs: r.SentMs, Dropped: true}
		}
		res.Records = append(res.Records, r)
	}
	res.Elapsed = 3e9
	return res
}

func TestWriteLoadRun(t *testing.T) {
	dir := runDir(t, "load")
	res := loadResult()
	pg, err := WriteLoadRun(dir, res, CollectMeta("load", nil, 1), LoadRunOptions{Mode: "reap"})
	if err != nil {
		t.Fatal(err)
	}
	checkFigures(t, dir, pg.Figures, "latency", "stages", "cdf", "latency-over-time", "cold-rate-over-time", "memory")
	checkHTML(t, dir, pg)
	checkSummary(t, dir, 3) // hello, sleepy, all

	fh, err := os.Open(filepath.Join(dir, FileRecordsCSV))
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	recs, err := csv.NewReader(fh).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != len(res.Records)+1 || strings.Join(recs[0], ",") != strings.Join(RecordColumns, ",") {
		t.Fatalf("csv: %d lines, header %v", len(recs), recs[0])
	}
	col := map[string]int{}
	for i, c := range recs[0] {
		col[c] = i
	}
	if got := recs[26][col["map_ms"]]; got != "0.5" { // record 25 is a restore
		t.Fatalf("record 25 map_ms = %q", got)
	}

	jf, err := os.Open(filepath.Join(dir, FileRecordsJSON))
	if err != nil {
		t.Fatal(err)
	}
	defer jf.Close()
	sc := bufio.NewScanner(jf)
	n := 0
	for sc.Scan() {
		var r load.Record
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("line %d: %v", n+1, err)
		}
		if r.Seq != n {
			t.Fatalf("line %d has seq %d", n+1, r.Seq)
		}
		n++
	}
	if n != len(res.Records) {
		t.Fatalf("%d JSON lines, want %d", n, len(res.Records))
	}
	var sum load.Summary
	b, _ := os.ReadFile(filepath.Join(dir, FileLoadSummary))
	if err := json.Unmarshal(b, &sum); err != nil || sum.Overall.Dropped == 0 || sum.Overall.Errors == 0 {
		t.Fatalf("load summary %+v, %v", sum.Overall, err)
	}
}

func TestTableColumns(t *testing.T) {
	tests := []struct {
		name string
		rows []Row
		want string
	}{
		{"plain", []Row{{Function: "f", Mode: "m", Trials: 3, P50Ms: 1.5, P99Ms: 250}},
			"function,mode,trials,p50 ms,p90 ms,p99 ms,errors"},
		{"stages in order, extras sorted", []Row{{Function: "f", Stages: map[string]float64{"exec": 1, "map": 2, "instantiate": 3}, Extra: map[string]float64{"z": 1, "a": 2}, Faults: 3}},
			"function,mode,trials,p50 ms,p90 ms,p99 ms,errors,instantiate ms,map ms,exec ms,faults,a,z"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			head, cells := TableColumns(tt.rows)
			if got := strings.Join(head, ","); got != tt.want {
				t.Fatalf("head = %s, want %s", got, tt.want)
			}
			if len(cells) != len(tt.rows) || len(cells[0]) != len(head) {
				t.Fatalf("cells = %v", cells)
			}
		})
	}
	var b bytes.Buffer
	if err := WriteTable(&b, tests[0].rows); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if len(lines) != 2 || !strings.Contains(lines[1], "250") || strings.Index(lines[0], "p50 ms") != strings.Index(lines[1], "1.50") {
		t.Fatalf("table not aligned:\n%s", b.String())
	}
}

func TestProgress(t *testing.T) {
	var b bytes.Buffer
	p := NewProgressTo(&b, "load", 10)
	p.Set(10, 10)
	p.Done()
	if s := b.String(); !strings.Contains(s, "load [==============================] 10/10 100%") || !strings.HasSuffix(s, "\n") {
		t.Fatalf("progress wrote %q", s)
	}
	silent := NewProgressTo(nil, "x", 5)
	silent.Add(3)
	silent.Done() // must not panic
	if silent.done != 3 {
		t.Fatalf("done = %d", silent.done)
	}
}

// fullSuiteRows is a suite's size: the 15 suite functions in the 7 modes,
// with the suite's stages.
func fullSuiteRows() []Row {
	var rows []Row
	fns := []string{"chameleon", "cnn_serving", "compression", "dynamic_html", "graph_bfs", "graph_mst", "graph_pagerank",
		"helloworld", "image_rotate", "json_serdes", "lr_serving", "matmul", "pyaes", "rnn_serving", "video_frames"}
	for i, fn := range fns {
		for j, mode := range []string{"cold", "eager", "mmap", "lazy", "reap", "bulk", "warm"} {
			base := float64(i%5+1) * []float64{300, 40, 20, 30, 12, 10, 2}[j]
			rows = append(rows, Row{
				Function: fn, Mode: mode, Trials: 10, P50Ms: base, P99Ms: base * 1.8,
				Stages: map[string]float64{"map": base * 0.05, "instantiate": base * 0.2, "init": base * 0.1, "prefetch": base * 0.25, "exec": base * 0.3, "other": base * 0.1},
				Faults: float64(50 * (7 - j)), WSBytes: float64((i%4 + 1) << 20),
			})
		}
	}
	return rows
}

// A suite's full size: 105 rows. Set THAW_REPORT_DIR to look at the plots.
func TestWriteSuiteFullSize(t *testing.T) {
	dir := runDir(t, "suite-full")
	pg, err := WriteSuite(dir, Suite{Meta: CollectMeta("full suite", nil, 1), Rows: fullSuiteRows(),
		Samples: map[string][]float64{"cold": {90, 100, 120, 200}, "eager": {20, 30, 31}, "mmap": {10, 11, 19}, "lazy": {9, 12, 30}, "reap": {1.5, 2, 2.2, 4}, "bulk": {3, 4}, "warm": {0.5, 0.7}},
		Stages:  []string{"map", "instantiate", "init", "prefetch", "exec", "other"},
	})
	if err != nil {
		t.Fatal(err)
	}
	checkFigures(t, dir, pg.Figures, "latency", "stages", "cdf", "faults", "working-set")
	// The stage plot labels every bar on one unrotated line, so it grows
	// with its rows: 15 points (20 pixels) each.
	fh, err := os.Open(filepath.Join(dir, "stages.png"))
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	img, err := png.Decode(fh)
	if err != nil {
		t.Fatal(err)
	}
	if h := img.Bounds().Dy(); h < 105*20 {
		t.Errorf("stages.png is %d pixels tall, want at least 20 per row (%d)", h, 105*20)
	}
	svg, _ := os.ReadFile(filepath.Join(dir, "stages.svg"))
	for _, label := range []string{">chameleon / cold<", ">video_frames / warm<"} {
		if !bytes.Contains(svg, []byte(label)) {
			t.Errorf("stages.svg lacks the bar label %s", label)
		}
	}
	if bytes.Contains(svg, []byte("rotate(")) {
		t.Error("stages.svg rotates text")
	}
}

func TestActivity(t *testing.T) {
	var b syncBuffer
	a := NewActivityTo(&b, "deploy x: compile, boot, snapshot", 10*time.Millisecond)
	time.Sleep(60 * time.Millisecond)
	a.Stage("next stage")
	a.Done()
	s := b.String()
	if n := strings.Count(s, "\r\033[Kdeploy x: compile, boot, snapshot 0s"); n < 2 {
		t.Errorf("the line was drawn %d times in 60 ms at 10 ms intervals: %q", n, s)
	}
	if !strings.Contains(s, "\r\033[Knext stage 0s") || !strings.HasSuffix(s, "next stage 0s\r\033[K") {
		t.Errorf("the stage change and the final erase are missing: %q", s)
	}
	if l := len(b.String()); l != len(s) {
		t.Errorf("Activity wrote after Done")
	}
	silent := NewActivity(&b, "not a terminal")
	silent.Stage("still silent")
	silent.Done()
	if b.String() != s {
		t.Errorf("NewActivity on a buffer wrote %q", strings.TrimPrefix(b.String(), s))
	}
}

// syncBuffer is a bytes.Buffer safe for the Activity's goroutine and the
// test's reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
