package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/thaw-run/thaw/internal/api"
	"github.com/thaw-run/thaw/internal/bench"
	"github.com/thaw-run/thaw/internal/build"
	"github.com/thaw-run/thaw/internal/load"
	"github.com/thaw-run/thaw/internal/report"
)

// TestLoadBadConfig checks that bad configurations fail with a usage error
// before any request is sent or anything written.
func TestLoadBadConfig(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no functions", []string{}, "--functions"},
		{"bad arrivals", []string{"--functions", "a", "--arrivals", "sometimes"}, "--arrivals"},
		{"zero rate", []string{"--functions", "a", "--rate", "0"}, "rate"},
		{"zero duration", []string{"--functions", "a", "--duration", "0s"}, "--duration"},
		{"bad bursts", []string{"--functions", "a", "--arrivals", "bursts", "--burst-on", "0s"}, "--burst-on"},
		{"bad server", []string{"--functions", "a", "--server", "ftp://x"}, "--server"},
		{"bad spacing", []string{"--functions", "a", "--trace", "../trace/testdata/synthetic", "--spacing", "random"}, "spacing"},
		{"bad selection", []string{"--functions", "a", "--trace", "../trace/testdata/synthetic", "--selection", "best"}, "--selection"},
		{"bad minute", []string{"--functions", "a", "--trace", "../trace/testdata/synthetic", "--minute-seconds", "-1"}, "--minute-seconds"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "run")
			// Port 1 on loopback: any request sent would fail, not hang.
			args := append([]string{"load", "--server", "http://127.0.0.1:1", "--out", out}, tc.args...)
			code, _, stderr := run(t, args...)
			if code != ExitUsage || !strings.Contains(stderr, tc.want) {
				t.Fatalf("exit %d, stderr %q; want %d mentioning %s", code, stderr, ExitUsage, tc.want)
			}
			if _, err := os.Stat(out); !os.IsNotExist(err) {
				t.Errorf("run directory created: %v", err)
			}
		})
	}
	t.Run("missing trace", func(t *testing.T) {
		code, _, stderr := run(t, "load", "--server", "http://127.0.0.1:1", "--functions", "a", "--trace", filepath.Join(t.TempDir(), "none"))
		if code == ExitOK || !strings.Contains(stderr, "--trace") {
			t.Fatalf("exit %d, stderr %q", code, stderr)
		}
	})
}

// TestLoad drives a real in-process server with two small functions, at a
// constant rate and replaying the synthetic trace, and checks the run
// directories.
func TestLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and deploys functions")
	}
	ctx := context.Background()
	root, err := findRepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	// Deploys compile each module twice; the cache `thaw demo` keeps makes
	// a second run skip that.
	rs, err := bench.StartServer(ctx, filepath.Join(tmp, "data"), "", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close(5 * time.Second)
	c := &api.Client{BaseURL: rs.URL}
	fns := []string{"helloworld", "pyaes"}
	for _, fn := range fns {
		wasm := filepath.Join(tmp, fn+".wasm")
		if err := build.Module(ctx, filepath.Join(root, "examples/suite", fn), wasm); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(wasm)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Deploy(ctx, fn, b, api.Config{}); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name  string
		args  []string
		label string
		attr  bool
	}{
		{"constant", []string{"--rate", "5", "--duration", "2s", "--arrivals", "constant"}, "constant", false},
		{"trace", []string{"--trace", "../trace/testdata/synthetic", "--trace-functions", "4", "--minute-seconds", "0.2",
			"--max-rate", "20", "--duration", "2s"}, "trace", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "run")
			args := append([]string{"load", "--server", rs.URL, "--functions", strings.Join(fns, ","), "--out", out, "--json"}, tc.args...)
			code, stdout, stderr := run(t, args...)
			if code != ExitOK {
				t.Fatalf("exit %d\nstderr: %s", code, stderr)
			}
			var sum load.Summary
			if err := json.Unmarshal([]byte(stdout), &sum); err != nil {
				t.Fatalf("--json: %v\n%s", err, stdout)
			}
			if sum.Overall.Requests == 0 || sum.Overall.OK != sum.Overall.Requests {
				t.Fatalf("%d requests, %d ok: %+v", sum.Overall.Requests, sum.Overall.OK, sum.Overall)
			}
			if tc.name == "constant" && sum.Overall.Requests != 10 {
				t.Errorf("%d requests, want 5/s for 2s = 10", sum.Overall.Requests)
			}
			if sum.Overall.Starts != sum.Overall.OK || sum.PeakMemoryBytes <= 0 {
				t.Errorf("start kinds %d of %d, peak memory %v", sum.Overall.Starts, sum.Overall.OK, sum.PeakMemoryBytes)
			}
			// The worker's own gauge, not the process RSS fallback.
			mj, err := os.ReadFile(filepath.Join(out, report.FileMemory))
			if err != nil {
				t.Fatal(err)
			}
			var mem []load.MemorySample
			if err := json.Unmarshal(mj, &mem); err != nil || len(mem) == 0 {
				t.Fatalf("memory samples %v: %s", err, mj)
			}
			for _, m := range mem {
				if m.Metric != "thaw_memory_reserved_bytes" {
					t.Fatalf("memory sample %+v, want thaw_memory_reserved_bytes", m)
				}
			}
			jl, err := os.ReadFile(filepath.Join(out, report.FileRecordsJSON))
			if err != nil {
				t.Fatal(err)
			}
			if n := bytes.Count(jl, []byte("\n")); n != sum.Overall.Requests {
				t.Errorf("%d records, %d requests", n, sum.Overall.Requests)
			}
			html, err := os.ReadFile(filepath.Join(out, report.FileHTML))
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range []string{"latency.png", "memory.png", "cold-rate-over-time.png"} {
				if !bytes.Contains(html, []byte(s)) {
					t.Errorf("report.html lacks %s", s)
				}
			}
			if got := bytes.Contains(html, []byte("Serverless in the Wild")); got != tc.attr {
				t.Errorf("trace attribution shown: %v, want %v", got, tc.attr)
			}
			var meta report.Meta
			b, _ := os.ReadFile(filepath.Join(out, report.FileMeta))
			if err := json.Unmarshal(b, &meta); err != nil || !strings.Contains(meta.Title, tc.label) {
				t.Errorf("meta.json: %v, title %q", err, meta.Title)
			}
		})
	}
}
