//go:build cgo

package wasmtime

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/thaw-run/thaw/internal/abi"
	"github.com/thaw-run/thaw/internal/engine"
	"github.com/thaw-run/thaw/internal/errdefs"
	"github.com/thaw-run/thaw/internal/testwasm"
)

var cfg = engine.InstanceConfig{MemoryLimit: 256 << 20, Timeout: 10 * time.Second}

// cacheDir is the compilation cache the tests share (TestMain), so that
// each module compiles once per test process.
var cacheDir string

func newEngine(t testing.TB) *Engine {
	t.Helper()
	e, err := New(context.Background(), engine.Config{CacheDir: cacheDir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close(context.Background()) })
	return e
}

func get(path, query string) *abi.Request {
	return &abi.Request{Method: http.MethodGet, Path: path, RawQuery: query, Header: http.Header{}}
}

func compile(t testing.TB, e *Engine, pkg string) *Module {
	t.Helper()
	m, err := e.Compile(context.Background(), testwasm.Build(t, pkg))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close(context.Background()) })
	return m
}

func boot(t testing.TB, m *Module, c engine.InstanceConfig) *Instance {
	t.Helper()
	inst, _, err := m.Boot(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { inst.Close(context.Background()) })
	return inst
}

func body(t testing.TB, inst *Instance, path, query string) string {
	t.Helper()
	resp, err := inst.Invoke(context.Background(), get(path, query))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return string(resp.Body)
}

// The guest's memory is the region: wasmtime reads and writes the bytes
// thaw mapped (the host memory creator is in effect).
func TestMemoryIsTheRegion(t *testing.T) {
	inst := boot(t, compile(t, newEngine(t), "examples/hello"), cfg)
	if got, want := uintptr(inst.mem.Data(inst.store)), inst.Region().Addr(); got != want {
		t.Fatalf("wasmtime's memory is at %#x, the region at %#x", got, want)
	}
	if got, want := inst.mem.DataSize(inst.store), uintptr(inst.Region().Size()); got != want || got == 0 {
		t.Fatalf("wasmtime's memory is %d bytes, the region's %d", got, want)
	}
	if got := body(t, inst, "/x", "name=thaw"); got != "hello, thaw (GET /x)\n" {
		t.Fatalf("hello answered %q", got)
	}
}

// A restored instance answers as the booted one, over many requests.
func TestCaptureRestore(t *testing.T) {
	ctx := context.Background()
	m := compile(t, newEngine(t), "examples/hello")
	inst := boot(t, m, cfg)
	st, mem := inst.Capture()
	region, err := engine.NewRegion(cfg.MemoryLimit)
	if err != nil {
		t.Fatal(err)
	}
	copy(region.Bytes(), mem)
	r, err := m.Restore(ctx, cfg, st, region)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close(ctx)
	for i := range 200 {
		if got, want := body(t, r, "/", "name=r"), body(t, inst, "/", "name=r"); got != want {
			t.Fatalf("request %d: restored %q, booted %q", i, got, want)
		}
	}
}

func TestFaults(t *testing.T) {
	short := engine.InstanceConfig{MemoryLimit: 128 << 20, Timeout: time.Second}
	m := compile(t, newEngine(t), "examples/faulty")
	for _, tc := range []struct {
		path string
		want error
		msg  string
	}{
		{"/loop", errdefs.ErrTimeout, "timeout"},
		{"/sleep", errdefs.ErrTimeout, "timeout"},
		{"/panic", errdefs.ErrGuest, "deliberate panic"},
		{"/trap", errdefs.ErrGuest, ""},
		{"/oom", errdefs.ErrGuest, "memory cap of 128 MiB"},
		{"/exit", errdefs.ErrGuest, ""},
	} {
		t.Run(tc.path, func(t *testing.T) {
			inst := boot(t, m, short)
			_, err := inst.Invoke(context.Background(), get(tc.path, ""))
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("%v, want %v with %q", err, tc.want, tc.msg)
			}
			if !inst.Dead() {
				t.Fatal("the instance serves on")
			}
			t.Log(err)
		})
	}
}
