package bench

import (
	"errors"
	"fmt"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/thaw-run/thaw/internal/abi"
	"github.com/thaw-run/thaw/internal/bench/bare"
	"github.com/thaw-run/thaw/internal/engine"
	"github.com/thaw-run/thaw/internal/errdefs"
	"github.com/thaw-run/thaw/internal/testwasm"
)

// TestRotation checks the interleaving: every trial measures every engine
// once; trial 0 keeps the given order; over len(names) consecutive trials,
// starting anywhere, each engine takes every position exactly once.
func TestRotation(t *testing.T) {
	if got := Rotation(nil, 3); len(got) != 0 {
		t.Errorf("Rotation(nil) = %v", got)
	}
	for n := 1; n <= 4; n++ {
		names := []string{"wasmtime", "wazero", "native", "bare"}[:n]
		if got := Rotation(names, 0); !slices.Equal(got, names) {
			t.Errorf("n=%d: trial 0 = %v, want %v", n, got, names)
		}
		for start := range 2 * n {
			pos := map[string]map[int]bool{}
			for trial := start; trial < start+n; trial++ {
				order := Rotation(names, trial)
				if s := slices.Sorted(slices.Values(order)); !slices.Equal(s, slices.Sorted(slices.Values(names))) {
					t.Fatalf("n=%d trial %d: %v is not a permutation of %v", n, trial, order, names)
				}
				for i, e := range order {
					if pos[e] == nil {
						pos[e] = map[int]bool{}
					}
					pos[e][i] = true
				}
			}
			for _, e := range names {
				if len(pos[e]) != n {
					t.Errorf("n=%d from trial %d: %s took positions %v, want all %d", n, start, e, slices.Sorted(maps.Keys(pos[e])), n)
				}
			}
		}
	}
	// Rotation must not alias its input.
	names := []string{"a", "b", "c"}
	r := Rotation(names, 1)
	r[0] = "x"
	if names[1] != "b" {
		t.Errorf("Rotation aliases its input: %v", names)
	}
}

// TestCheckEngines accepts registered engines and the native floor, the
// bare wasmtime embedding exactly when the build has it, and rejects
// unknown, duplicate and no engines as invalid input.
func TestCheckEngines(t *testing.T) {
	if err := CheckEngines([]string{"wazero", Native}); err != nil {
		t.Errorf("wazero, native: %v", err)
	}
	if err := CheckEngines([]string{"wazero", Bare}); bare.Available && err != nil {
		t.Errorf("wazero, bare with cgo: %v", err)
	} else if !bare.Available && !errors.Is(err, errdefs.ErrInvalid) {
		t.Errorf("wazero, bare without cgo: %v, want ErrInvalid", err)
	}
	if d := DefaultEngines(); slices.Contains(d, Bare) != bare.Available || d[len(d)-1] != Native {
		t.Errorf("DefaultEngines() = %v: want bare iff the build has it (%v), native last", d, bare.Available)
	}
	for _, names := range [][]string{nil, {"teleport"}, {"wazero", "wazero"}, {Native, Native}} {
		if err := CheckEngines(names); !errors.Is(err, errdefs.ErrInvalid) {
			t.Errorf("%v: %v, want ErrInvalid", names, err)
		}
	}
}

// TestEngineRatios divides medians: the native floor under every engine,
// and nothing for a skipped row.
func TestEngineRatios(t *testing.T) {
	got := engineRatios([]EngineResult{
		{Function: "f", Engine: "wazero", WarmP50us: 300, ColdP50ms: 20},
		{Function: "f", Engine: Native, WarmP50us: 20, ColdP50ms: 10},
	})
	want := map[string]float64{"wazero/native warm": 15, "wazero/native cold": 2}
	if !maps.Equal(got, want) {
		t.Errorf("ratios %v, want %v", got, want)
	}
	if got := engineRatios([]EngineResult{{Engine: "wazero", WarmP50us: 1, ColdP50ms: 1}, {Engine: Native, Skipped: "JavaScript"}}); len(got) != 0 {
		t.Errorf("ratios against a skipped floor: %v", got)
	}
}

// TestEngineRatiosBare divides each of thaw's engines by the bare wasmtime
// embedding as by the native floor, and never the references by each
// other or by an engine.
func TestEngineRatiosBare(t *testing.T) {
	got := engineRatios([]EngineResult{
		{Function: "f", Engine: "wazero", WarmP50us: 600, ColdP50ms: 40},
		{Function: "f", Engine: "wasmtime", WarmP50us: 120, ColdP50ms: 10},
		{Function: "f", Engine: Bare, WarmP50us: 100, ColdP50ms: 8},
		{Function: "f", Engine: Native, WarmP50us: 20, ColdP50ms: 5},
	})
	want := map[string]float64{
		"wazero/bare warm": 6, "wazero/bare cold": 5,
		"wasmtime/bare warm": 1.2, "wasmtime/bare cold": 1.25,
		"wazero/native warm": 30, "wazero/native cold": 8,
		"wasmtime/native warm": 6, "wasmtime/native cold": 2,
	}
	// Between thaw's engines the less preferred is divided by the more
	// (an engine not in this build counts as least preferred).
	if i := slices.Index(engine.Names(), "wasmtime"); i >= 0 && i < slices.Index(engine.Names(), "wazero") {
		want["wazero/wasmtime warm"], want["wazero/wasmtime cold"] = 5, 4
	} else {
		want["wasmtime/wazero warm"], want["wasmtime/wazero cold"] = 0.2, 0.25
	}
	if !maps.Equal(got, want) {
		t.Errorf("ratios %v, want %v", got, want)
	}
}

// TestNativeSkip gives JavaScript functions no native floor, Go functions
// one.
func TestNativeSkip(t *testing.T) {
	root := testwasm.Root()
	if NativeSkip(filepath.Join(root, "examples/js/hello")) == "" {
		t.Error("examples/js/hello has a native floor")
	}
	if s := NativeSkip(filepath.Join(root, "examples/hello")); s != "" {
		t.Errorf("examples/hello: %s", s)
	}
}

// TestBuildNativeRefusesLateFile refuses a package with a file whose init
// would run after the harness's.
func TestBuildNativeRefusesLateFile(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"main.go", "zzzzz.go"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("package main\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	err := BuildNative(t.Context(), dir, t.TempDir(), filepath.Join(t.TempDir(), "fn"))
	if !errors.Is(err, errdefs.ErrInvalid) {
		t.Fatalf("BuildNative: %v, want ErrInvalid", err)
	}
}

// buildNative builds the repository's package pkg natively.
func buildNative(t *testing.T, pkg string) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds a function natively")
	}
	bin := filepath.Join(t.TempDir(), "fn")
	if err := BuildNative(t.Context(), filepath.Join(testwasm.Root(), pkg), t.TempDir(), bin); err != nil {
		t.Fatal(err)
	}
	return bin
}

// TestNativeHarness builds hello natively and serves requests through the
// harness: the answers are hello's, the process serves several in turn,
// and it exits cleanly when its requests end.
func TestNativeHarness(t *testing.T) {
	p, err := startNative(buildNative(t, "examples/hello"), 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer p.close()
	for i, name := range []string{"thaw", "again"} {
		req := &abi.Request{Method: http.MethodGet, Path: "/x", RawQuery: "name=" + name, Header: http.Header{}}
		resp, serve, codec, err := p.invoke(req)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		if want := fmt.Sprintf("hello, %s (GET /x)\n", name); resp.Status != 200 || string(resp.Body) != want {
			t.Errorf("request %d: %d %q, want 200 %q", i, resp.Status, resp.Body, want)
		}
		if serve <= 0 || codec <= 0 {
			t.Errorf("request %d: serve %v, codec %v", i, serve, codec)
		}
	}
	cmd := p.cmd
	p.close()
	if st := cmd.ProcessState; st == nil || !st.Exited() || st.ExitCode() != 0 {
		t.Errorf("harness after its requests ended: %v", st)
	}
	if _, _, _, err := p.invoke(&abi.Request{Method: http.MethodGet, Path: "/"}); err == nil {
		t.Error("invoke after close succeeded")
	}
}

// TestNativeHarnessTimeout stops a native handler that never answers
// (faulty's /loop) at the harness's timeout: the call fails as a timeout
// and the process is killed, so a benchmark never blocks on it.
func TestNativeHarnessTimeout(t *testing.T) {
	p, err := startNative(buildNative(t, "examples/faulty"), 300*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	defer p.close()
	t0 := time.Now()
	_, _, _, err = p.invoke(&abi.Request{Method: http.MethodGet, Path: "/loop", Header: http.Header{}})
	if !errors.Is(err, errdefs.ErrTimeout) {
		t.Fatalf("/loop: %v, want ErrTimeout", err)
	}
	if d := time.Since(t0); d > 5*time.Second {
		t.Errorf("/loop took %v to fail", d)
	}
	if st := p.cmd.ProcessState; st == nil || st.Success() {
		t.Errorf("harness not killed: %v", st)
	}
}
