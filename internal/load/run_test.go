package load

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/thaw-run/thaw/internal/errdefs"
)

// fakeServer answers /fn/{name}/ like thaw: the first invocation of each
// function starts cold or restored, the rest warm; function "broken"
// answers 503.
type fakeServer struct {
	mu    sync.Mutex
	seen  map[string]int
	paths []string
}

func (f *fakeServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	name, ok := strings.CutPrefix(r.URL.Path, "/fn/")
	if !ok {
		http.NotFound(w, r)
		return
	}
	name, _, _ = strings.Cut(name, "/")
	f.mu.Lock()
	f.seen[name]++
	n := f.seen[name]
	f.paths = append(f.paths, r.URL.Path)
	f.mu.Unlock()
	if name == "broken" {
		http.Error(w, "no", http.StatusServiceUnavailable)
		return
	}
	desc := "warm"
	if n == 1 {
		desc = map[string]string{"a": "cold", "b": "restore:reap"}[name]
	}
	w.Header().Set("Server-Timing", fmt.Sprintf(`queue;dur=0.5, start;dur=2;desc=%q, exec;dur=1`, desc))
	fmt.Fprint(w, "hello")
}

func TestRun(t *testing.T) {
	fake := &fakeServer{seen: map[string]int{}}
	srv := httptest.NewServer(fake)
	defer srv.Close()

	var sched []Arrival
	for i := range 30 {
		sched = append(sched, Arrival{At: time.Duration(i) * time.Millisecond, Function: []string{"a", "b", "broken"}[i%3]})
	}
	var progress atomic.Int64
	res, err := Run(context.Background(), Options{
		BaseURL: srv.URL, Schedule: sched, Path: "/x",
		Progress: func(done, total int) { progress.Store(int64(done*1000 + total)) },
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Records) != 30 || res.Dropped != 0 || len(fake.paths) != 30 {
		t.Fatalf("records %d dropped %d served %d, want 30, 0, 30", len(res.Records), res.Dropped, len(fake.paths))
	}
	if got := progress.Load(); got != 30*1000+30 {
		t.Fatalf("last progress = %d/%d", got/1000, got%1000)
	}
	for _, p := range fake.paths {
		if p != "/fn/a/x" && p != "/fn/b/x" && p != "/fn/broken/x" {
			t.Fatalf("server saw path %q", p)
		}
	}
	for i, r := range res.Records {
		if r.Seq != i || r.Function != sched[i].Function || r.ScheduledMs != float64(i) || r.SentMs < r.ScheduledMs {
			t.Fatalf("record %d = %+v", i, r)
		}
		if r.Function != "broken" && (!r.OK() || !r.HasTiming || r.Bytes != 5 || r.ExecMs != 1 || r.QueueMs != 0.5 || r.Error != "") {
			t.Fatalf("record %d = %+v", i, r)
		}
		// A failure keeps its body's message.
		if r.Function == "broken" && (r.Status != http.StatusServiceUnavailable || r.Error != "no") {
			t.Fatalf("record %d = %+v; want 503 with the message %q", i, r, "no")
		}
	}

	sum := Summarize(res)
	tests := []struct {
		fn                      string
		ok, errs, cold, restore int
		rate                    float64
	}{
		{"a", 10, 0, 1, 0, 0.1},
		{"b", 10, 0, 0, 1, 0.1},
		{"broken", 0, 10, 0, 0, 0},
		{"all", 20, 10, 1, 1, 0.1},
	}
	for _, tt := range tests {
		t.Run(tt.fn, func(t *testing.T) {
			st := sum.Overall
			for _, s := range sum.Functions {
				if s.Function == tt.fn {
					st = s
				}
			}
			if st.Function != tt.fn {
				t.Fatalf("no stats for %s", tt.fn)
			}
			if st.OK != tt.ok || st.Errors != tt.errs || st.Cold != tt.cold || st.Restore != tt.restore || st.ColdStartRate != tt.rate {
				t.Fatalf("stats = %+v", st)
			}
			if tt.errs > 0 && st.ErrorsByKind["503"] != tt.errs {
				t.Fatalf("errors by kind = %v", st.ErrorsByKind)
			}
			if tt.ok > 0 && (st.P50Ms <= 0 || st.P50Ms > st.P99Ms || st.MeanExecMs != 1) {
				t.Fatalf("latency stats = %+v", st)
			}
		})
	}
	wins := Windows(res, 10*time.Millisecond)
	if len(wins) != 3 || wins[0].Requests != 10 || wins[2].Requests != 10 {
		t.Fatalf("windows = %+v", wins)
	}
}

// TestRunDrops blocks the server until every arrival beyond the in-flight
// bound has been settled as dropped, so the outcome does not depend on
// timing.
func TestRunDrops(t *testing.T) {
	release := make(chan struct{})
	var served atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-release
		served.Add(1)
	}))
	defer srv.Close()
	defer func() {
		select {
		case <-release:
		default:
			close(release)
		}
	}()

	const n, bound = 12, 3
	sched := make([]Arrival, n)
	for i := range sched {
		sched[i] = Arrival{At: time.Duration(i) * 100 * time.Microsecond, Function: "slow"}
	}
	var once sync.Once
	res, err := Run(context.Background(), Options{
		BaseURL: srv.URL, Schedule: sched, MaxInFlight: bound,
		Progress: func(done, total int) {
			if done == n-bound {
				once.Do(func() { close(release) })
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Dropped != n-bound || served.Load() != bound {
		t.Fatalf("dropped %d served %d, want %d and %d", res.Dropped, served.Load(), n-bound, bound)
	}
	for i, r := range res.Records {
		if r.Dropped != (i >= bound) {
			t.Fatalf("record %d dropped = %v", i, r.Dropped)
		}
	}
	if st := Summarize(res).Overall; st.Dropped != n-bound || st.OK != bound {
		t.Fatalf("summary = %+v", st)
	}
}

func TestRunLimitsAndRedirects(t *testing.T) {
	var elsewhere atomic.Int64
	other := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { elsewhere.Add(1) }))
	defer other.Close()
	srv := httptest.NewServer(http.RedirectHandler(other.URL, http.StatusFound))
	defer srv.Close()

	sched, _ := Constant(1000, time.Second, []string{"f"}) // 1000 arrivals, 1 ms apart
	res, err := Run(context.Background(), Options{BaseURL: srv.URL, Schedule: sched, MaxRequests: 5})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Records) != 5 {
		t.Fatalf("%d records, want MaxRequests = 5", len(res.Records))
	}
	for _, r := range res.Records {
		if r.Status != http.StatusFound {
			t.Fatalf("status %d, want the redirect itself", r.Status)
		}
	}
	if elsewhere.Load() != 0 {
		t.Fatal("generator followed a redirect to another host")
	}
	res, err = Run(context.Background(), Options{BaseURL: srv.URL, Schedule: sched, MaxDuration: 3 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Records) != 3 {
		t.Fatalf("%d records, want the 3 arrivals before MaxDuration", len(res.Records))
	}
}

func TestRunCancel(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer srv.Close()
	sched := []Arrival{{At: 0, Function: "f"}, {At: time.Hour, Function: "f"}}
	ctx, cancel := context.WithCancel(context.Background())
	res, err := Run(ctx, Options{BaseURL: srv.URL, Schedule: sched, Progress: func(int, int) { cancel() }})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Records) != 1 || !res.Records[0].OK() {
		t.Fatalf("records = %+v, want the first only", res.Records)
	}
}

func TestRunInvalid(t *testing.T) {
	tests := []Options{
		{BaseURL: "ftp://x"},
		{BaseURL: "http://"},
		{BaseURL: "http://127.0.0.1:1", Schedule: []Arrival{{At: 2}, {At: 1}}},
		{BaseURL: "http://127.0.0.1:1", MaxInFlight: -1},
	}
	for i, o := range tests {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			if _, err := Run(context.Background(), o); !errors.Is(err, errdefs.ErrInvalid) {
				t.Fatalf("err = %v, want ErrInvalid", err)
			}
		})
	}
}

const metricsText = `# HELP process_resident_memory_bytes Resident memory size in bytes.
# TYPE process_resident_memory_bytes gauge
process_resident_memory_bytes 1.2345e+07
# HELP thaw_memory_reserved_bytes Memory charged to the budget.
# TYPE thaw_memory_reserved_bytes gauge
thaw_memory_reserved_bytes{function="a",state="idle"} 1000
thaw_memory_reserved_bytes{function="b,c}",state="busy"} 2500 1700000000000
thaw_memory_reserved_bytes_total 99
# TYPE thaw_invocation_seconds histogram
thaw_invocation_seconds_bucket{le="+Inf"} 3
thaw_invocation_seconds_sum 0.5
thaw_invocation_seconds_count 3
`

func TestParseMetrics(t *testing.T) {
	got, err := ParseMetrics(strings.NewReader(metricsText), "thaw_memory_reserved_bytes", "process_resident_memory_bytes", "thaw_invocation_seconds", "absent")
	if err != nil {
		t.Fatal(err)
	}
	if got["thaw_memory_reserved_bytes"] != 3500 || got["process_resident_memory_bytes"] != 12345000 || len(got) != 2 {
		t.Fatalf("got %v", got)
	}
	if _, err := ParseMetrics(strings.NewReader(metricsText+"garbage line here\n"), "thaw_memory_reserved_bytes"); err == nil {
		t.Fatal("a malformed exposition parsed")
	}
}

func TestRunMemory(t *testing.T) {
	tests := []struct {
		name    string
		body    string
		status  int
		want    float64
		metric  string
		samples bool
	}{
		{"thaw gauge preferred", metricsText, 200, 3500, "thaw_memory_reserved_bytes", true},
		{"rss fallback", "process_resident_memory_bytes 42\n", 200, 42, "process_resident_memory_bytes", true},
		{"no memory metric", "go_goroutines 7\n", 200, 0, "", false},
		{"no endpoint", "", 404, 0, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mux := http.NewServeMux()
			mux.HandleFunc("/metrics", func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(tt.status)
				fmt.Fprint(w, tt.body)
			})
			mux.HandleFunc("/fn/", func(http.ResponseWriter, *http.Request) {})
			srv := httptest.NewServer(mux)
			defer srv.Close()
			res, err := Run(context.Background(), Options{
				BaseURL: srv.URL, Schedule: []Arrival{{Function: "f"}}, MetricsURL: srv.URL + "/metrics",
			})
			if err != nil {
				t.Fatal(err)
			}
			if !tt.samples {
				if len(res.Memory) != 0 || res.ScrapeErrors == 0 {
					t.Fatalf("memory %v, scrape errors %d", res.Memory, res.ScrapeErrors)
				}
				return
			}
			if len(res.Memory) == 0 {
				t.Fatal("no memory samples")
			}
			for _, m := range res.Memory {
				if m.Bytes != tt.want || m.Metric != tt.metric {
					t.Fatalf("sample %+v", m)
				}
			}
			if Summarize(res).PeakMemoryBytes != tt.want {
				t.Fatal("peak memory not summarised")
			}
		})
	}
}
