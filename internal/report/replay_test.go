package report

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/thaw-run/thaw/internal/load"
	"github.com/thaw-run/thaw/internal/trace"
)

// TestTraceReplay runs the documented pipeline end to end on loopback:
// synthetic trace -> sample -> open-loop load -> run directory.
func TestTraceReplay(t *testing.T) {
	var mu sync.Mutex
	seen := map[string]bool{}
	mux := http.NewServeMux()
	mux.HandleFunc("/fn/{name}/", func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("name")
		mu.Lock()
		kind := "warm"
		if !seen[name] {
			seen[name], kind = true, "restore:reap"
		}
		mu.Unlock()
		w.Header().Set("Server-Timing", fmt.Sprintf(`queue;dur=0.01, start;dur=0.5;desc=%q, exec;dur=0.2`, kind))
	})
	mux.HandleFunc("/metrics", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "process_resident_memory_bytes 1e8")
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()

	tr, err := trace.Load(trace.DirFiles("../trace/testdata/synthetic"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := tr.Sample(trace.SampleOptions{
		Functions: 4, Selection: trace.Stratified, Seed: 1, Minutes: 10, Minute: 20 * time.Millisecond,
		MaxRate: 1000, Targets: []string{"hello", "json"}, Mapping: trace.ByDuration,
	})
	if err != nil {
		t.Fatal(err)
	}
	res, err := load.Run(context.Background(), load.Options{
		BaseURL: srv.URL, Schedule: load.FromTrace(s), MetricsURL: srv.URL + "/metrics",
		Progress: NewProgressTo(nil, "replay", s.Total()).Set,
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Records) != s.Total() || res.Dropped != 0 {
		t.Fatalf("%d records, %d dropped; want %d, 0", len(res.Records), res.Dropped, s.Total())
	}
	meta := CollectMeta("Azure trace replay (synthetic)", s.Options, 1)
	meta.Attribution = trace.Attribution
	dir := runDir(t, "replay")
	pg, err := WriteLoadRun(dir, res, meta, LoadRunOptions{Mode: "reap", Window: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	checkFigures(t, dir, pg.Figures, "latency", "memory")
	html, err := os.ReadFile(filepath.Join(dir, FileHTML))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(html), "Serverless in the Wild") {
		t.Fatal("report.html lacks the trace attribution")
	}
}
