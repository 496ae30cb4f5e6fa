package catalog

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tetratelabs/wabin/binary"
	"github.com/tetratelabs/wabin/wasm"

	"github.com/thaw-run/thaw/internal/abi"
	"github.com/thaw-run/thaw/internal/build"
	"github.com/thaw-run/thaw/internal/engine"
	_ "github.com/thaw-run/thaw/internal/engine/wazero"
)

// The modules are built once per test run into a temporary directory that
// TestMain removes, and shared by the tests that need them.
var (
	buildOnce sync.Once
	buildDir  string
	builtPath map[string]string
	buildErr  map[string]error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// modules builds every catalogued function to wasm, two at a time (the
// CI machines have two cores), and returns the module paths by name.
func modules(t *testing.T) (map[string]string, map[string]error) {
	t.Helper()
	if testing.Short() {
		t.Skip("builds every function to wasm; skipped with -short")
	}
	if _, err := build.GoTool(); err != nil {
		t.Skip(err)
	}
	buildOnce.Do(func() {
		builtPath, buildErr = map[string]string{}, map[string]error{}
		root, err := Root(".")
		if err != nil {
			t.Fatal(err)
		}
		if buildDir, err = os.MkdirTemp("", "thaw-catalog-"); err != nil {
			t.Fatal(err)
		}
		var mu sync.Mutex
		var wg sync.WaitGroup
		sem := make(chan struct{}, 2)
		for _, f := range All() {
			wg.Add(1)
			go func() {
				defer wg.Done()
				sem <- struct{}{}
				defer func() { <-sem }()
				out := filepath.Join(buildDir, f.Name+".wasm")
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
				defer cancel()
				err := build.Module(ctx, f.Path(root), out)
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					buildErr[f.Name] = err
				} else {
					builtPath[f.Name] = out
				}
			}()
		}
		wg.Wait()
	})
	return builtPath, buildErr
}

// TestWasmBuild checks that every function builds for GOOS=wasip1 as a
// reactor: the module must export _initialize and the thaw ABI.
func TestWasmBuild(t *testing.T) {
	paths, errs := modules(t)
	for _, f := range All() {
		t.Run(f.Name, func(t *testing.T) {
			if err := errs[f.Name]; err != nil {
				t.Fatal(err)
			}
			b, err := os.ReadFile(paths[f.Name])
			if err != nil {
				t.Fatal(err)
			}
			m, err := binary.DecodeModule(b, wasm.CoreFeaturesV2)
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			exports := map[string]bool{}
			for _, e := range m.ExportSection {
				if e.Type == wasm.ExternTypeFunc {
					exports[e.Name] = true
				}
			}
			for _, name := range []string{"_initialize", abi.ExportAlloc, abi.ExportHandle} {
				if !exports[name] {
					t.Errorf("module does not export %s", name)
				}
			}
			if exports["_start"] {
				t.Error("module exports _start: built as a command, not a reactor")
			}
			t.Logf("%s: %.1f MiB", f.Name, float64(len(b))/(1<<20))
		})
	}
}

// invoke sends req to inst and returns the response and its latency.
func invoke(ctx context.Context, inst engine.Instance, req Request) (*abi.Response, time.Duration, error) {
	u, err := url.Parse(req.Target)
	if err != nil {
		return nil, 0, err
	}
	t0 := time.Now()
	resp, err := inst.Invoke(ctx, &abi.Request{Method: req.Method, Path: u.EscapedPath(), RawQuery: u.RawQuery,
		Header: http.Header{"Host": {"localhost"}}, Body: req.Body})
	return resp, time.Since(t0), err
}

// TestWasmInvoke boots every function under wazero, sends its default
// request twice and checks both answers are 200 and (except where the
// catalog says otherwise) equal. It logs each function's init time and
// linear memory size after init and after the requests: the figures in
// docs/functions.md.
func TestWasmInvoke(t *testing.T) {
	paths, errs := modules(t)
	ctx := context.Background()
	e, err := engine.Open(ctx, "", engine.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close(ctx)
	var table strings.Builder
	table.WriteString("\n| function | module MiB | init ms | memory after init MiB | after request MiB | request 1 ms | request 2 ms |\n|---|---|---|---|---|---|---|\n")
	for _, f := range All() {
		t.Run(f.Name, func(t *testing.T) {
			if err := errs[f.Name]; err != nil {
				t.Fatal(err)
			}
			b, err := os.ReadFile(paths[f.Name])
			if err != nil {
				t.Fatal(err)
			}
			m, err := e.Compile(ctx, b)
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close(ctx)
			inst, st, err := m.Boot(ctx, engine.InstanceConfig{MemoryLimit: uint64(f.MemoryMiB) << 20, Timeout: 2 * time.Minute})
			if err != nil {
				t.Fatal(err)
			}
			defer inst.Close(ctx)
			initMem := inst.Region().Size()
			r1, d1, err := invoke(ctx, inst, f.Request)
			if err != nil {
				t.Fatal(err)
			}
			r2, d2, err := invoke(ctx, inst, f.Request)
			if err != nil {
				t.Fatal(err)
			}
			if r1.Status != http.StatusOK || r2.Status != http.StatusOK {
				t.Fatalf("status %d, %d: %s", r1.Status, r2.Status, r1.Body)
			}
			if f.Name != "templates" && f.Name != "jstemplates" && f.Name != "lazymodel" && !bytes.Equal(r1.Body, r2.Body) { // they depend on the request count
				t.Errorf("the default request answered differently:\n%s\n%s", r1.Body, r2.Body)
			}
			mib := func(n uint64) string { return fmt.Sprintf("%.1f", float64(n)/(1<<20)) }
			ms := func(d time.Duration) string { return fmt.Sprintf("%.2f", float64(d.Microseconds())/1000) }
			table.WriteString(fmt.Sprintf("| %s | %s | %s | %s | %s | %s | %s |\n", f.Name, mib(uint64(len(b))),
				ms(st.Init), mib(initMem), mib(inst.Region().Size()), ms(d1), ms(d2)))
		})
	}
	t.Log(table.String())
}

// TestWasmWarmupCurves measures each warm-up function's latency over its
// first 300 requests under wazero, with the idle call the worker makes
// between requests (thaw_idle), or without it when THAW_WASM_CURVES_IDLE=0.
// It takes minutes, so it runs only when THAW_WASM_CURVES=1; the output is
// the table in docs/functions.md.
func TestWasmWarmupCurves(t *testing.T) {
	if os.Getenv("THAW_WASM_CURVES") != "1" {
		t.Skip("set THAW_WASM_CURVES=1 to measure warm-up curves under wazero")
	}
	paths, errs := modules(t)
	ctx := context.Background()
	e, err := engine.Open(ctx, "", engine.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close(ctx)
	windows := [][2]int{{1, 1}, {2, 2}, {3, 5}, {6, 10}, {11, 20}, {21, 50}, {51, 100}, {101, 200}, {201, 300}}
	var table strings.Builder
	table.WriteString("\n| function (mean ms, wasm) |")
	for _, w := range windows {
		table.WriteString(fmt.Sprintf(" #%d-%d |", w[0], w[1]))
	}
	table.WriteString("\n|---|" + strings.Repeat("---|", len(windows)) + "\n")
	for _, f := range ByKind(Warmup) {
		t.Run(f.Name, func(t *testing.T) {
			if err := errs[f.Name]; err != nil {
				t.Fatal(err)
			}
			b, _ := os.ReadFile(paths[f.Name])
			m, err := e.Compile(ctx, b)
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close(ctx)
			inst, _, err := m.Boot(ctx, engine.InstanceConfig{MemoryLimit: uint64(f.MemoryMiB) << 20, Timeout: 2 * time.Minute})
			if err != nil {
				t.Fatal(err)
			}
			defer inst.Close(ctx)
			lat := make([]time.Duration, 300)
			for i := range lat {
				resp, d, err := invoke(ctx, inst, f.Request)
				if err != nil || resp.Status != http.StatusOK {
					t.Fatalf("request %d: %v %v", i+1, err, resp)
				}
				lat[i] = d
				if os.Getenv("THAW_WASM_CURVES_IDLE") != "0" {
					if _, err := inst.Idle(ctx); err != nil {
						t.Fatalf("idle after request %d: %v", i+1, err)
					}
				}
			}
			table.WriteString("| " + f.Name + " |")
			for _, w := range windows {
				var sum time.Duration
				for _, d := range lat[w[0]-1 : w[1]] {
					sum += d
				}
				table.WriteString(fmt.Sprintf(" %.2f |", float64(sum.Microseconds())/1000/float64(w[1]-w[0]+1)))
			}
			table.WriteString(fmt.Sprintf(" (memory %.1f MiB)\n", float64(inst.Region().Size())/(1<<20)))
		})
	}
	t.Log(table.String())
}
