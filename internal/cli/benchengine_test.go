package cli

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/thaw-run/thaw/internal/bench"
	"github.com/thaw-run/thaw/internal/engine"
)

// TestBenchEngineBadConfig checks that bad flags fail with a usage error
// before anything is built.
func TestBenchEngineBadConfig(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"zero trials", []string{"--trials", "0"}, "trials"},
		{"unknown function", []string{"--functions", "hello,nope"}, `"nope"`},
		{"unknown engine", []string{"--engines", "wazero,teleport"}, `"teleport"`},
		{"engine twice", []string{"--engines", "native,native"}, "twice"},
		{"extra argument", []string{"hello"}, "argument"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, stderr := run(t, append([]string{"bench", "engine"}, tc.args...)...)
			if code != ExitUsage || !strings.Contains(stderr, tc.want) {
				t.Fatalf("exit %d, stderr %q; want %d mentioning %s", code, stderr, ExitUsage, tc.want)
			}
			if strings.Contains(stderr, "building") {
				t.Errorf("built something before failing: %s", stderr)
			}
		})
	}
}

// TestBenchEngine runs the smallest real measurement, hello with two
// trials on every engine of this build, the bare wasmtime embedding (with
// cgo) and natively, and checks the JSON's shape: one row per engine, each
// with positive figures over two trials, every engine's ratios against the
// references, and the run's meta.
func TestBenchEngine(t *testing.T) {
	if testing.Short() {
		t.Skip("builds hello to wasm and natively and runs it")
	}
	code, stdout, stderr := run(t, "bench", "engine", "--functions", "hello", "--trials", "2", "--json")
	if code != ExitOK {
		t.Fatalf("exit %d\nstderr: %s", code, stderr)
	}
	var rep struct {
		Meta struct {
			GitCommit string `json:"git_commit"`
			Machine   struct {
				Cores int `json:"cores"`
			} `json:"machine"`
			Config struct {
				Command string `json:"command"`
			} `json:"config"`
		} `json:"meta"`
		Results []map[string]any              `json:"results"`
		Ratios  map[string]map[string]float64 `json:"ratios"`
	}
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
		t.Fatalf("--json output: %v\n%s", err, stdout)
	}
	engines := bench.DefaultEngines()
	if len(rep.Results) != len(engines) {
		t.Fatalf("%d results, want one per engine of %v", len(rep.Results), engines)
	}
	for i, r := range rep.Results {
		if r["function"] != "hello" || r["engine"] != engines[i] || r["trials"] != 2.0 {
			t.Errorf("row %d: %v; want hello on %s over 2 trials", i, r, engines[i])
		}
		for _, k := range []string{"warm_p50_us", "warm_p99_us", "cold_p50_ms", "cold_p99_ms", "boot_p50_ms", "first_p50_ms"} {
			if v, ok := r[k].(float64); !ok || v <= 0 {
				t.Errorf("%s: %s = %v, want a positive number", engines[i], k, r[k])
			}
		}
		if r["warm_p99_us"].(float64) < r["warm_p50_us"].(float64) || r["cold_p99_ms"].(float64) < r["cold_p50_ms"].(float64) {
			t.Errorf("%s: p99 below p50: %v", engines[i], r)
		}
	}
	for _, e := range engine.Names() {
		for _, ref := range engines[len(engine.Names()):] {
			for _, k := range []string{e + "/" + ref + " warm", e + "/" + ref + " cold"} {
				if rep.Ratios["hello"][k] <= 0 {
					t.Errorf("ratio %q missing: %v", k, rep.Ratios["hello"])
				}
			}
		}
	}
	if rep.Meta.GitCommit == "" || rep.Meta.Machine.Cores < 1 || !strings.HasPrefix(rep.Meta.Config.Command, "thaw bench engine") ||
		!strings.Contains(rep.Meta.Config.Command, "--trials=2") {
		t.Errorf("meta: %+v", rep.Meta)
	}
}
