//go:build cgo

package wasmtime

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/bytecodealliance/wasmtime-go/v39"

	"github.com/thaw-run/thaw/internal/abi"
	"github.com/thaw-run/thaw/internal/engine"
	"github.com/thaw-run/thaw/internal/engine/enginetest"
	"github.com/thaw-run/thaw/internal/errdefs"
	"github.com/thaw-run/thaw/internal/testwasm"
)

var (
	_ engine.Engine   = (*Engine)(nil)
	_ engine.Module   = (*Module)(nil)
	_ engine.Instance = (*Instance)(nil)
)

var cfg = enginetest.Cfg

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

func TestConformance(t *testing.T) {
	enginetest.Run(t, func(t *testing.T) engine.Engine { return newEngine(t) })
}

func get(path, query string) *abi.Request { return enginetest.Get(path, query) }

func compile(t testing.TB, e *Engine, pkg string) *Module {
	t.Helper()
	m, err := e.Compile(context.Background(), testwasm.Build(t, pkg))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close(context.Background()) })
	return m.(*Module)
}

func boot(t testing.TB, m *Module, c engine.InstanceConfig) *Instance {
	t.Helper()
	inst, _, err := m.Boot(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { inst.Close(context.Background()) })
	return inst.(*Instance)
}

// The guest's memory is the region: wasmtime reads and writes the bytes
// thaw mapped (the host memory creator is in effect), and its length is
// the region's.
func TestMemoryIsTheRegion(t *testing.T) {
	inst := boot(t, compile(t, newEngine(t), "examples/hello"), cfg)
	if got, want := uintptr(inst.mem.Data(inst.store)), inst.Region().Addr(); got != want {
		t.Fatalf("wasmtime's memory is at %#x, the region at %#x", got, want)
	}
	if got, want := inst.mem.DataSize(inst.store), uintptr(inst.Region().Size()); got != want || got == 0 {
		t.Fatalf("wasmtime's memory is %d bytes, the region's %d", got, want)
	}
	resp, err := inst.Invoke(context.Background(), get("/x", "name=thaw"))
	if err != nil || string(resp.Body) != "hello, thaw (GET /x)\n" {
		t.Fatalf("hello answered %+v, %v", resp, err)
	}
}

// A guest that exits (WASI proc_exit, wasmtime's own) is a guest fault
// that says so, and the instance is dead.
func TestExit(t *testing.T) {
	inst := boot(t, compile(t, newEngine(t), "examples/faulty"), engine.InstanceConfig{MemoryLimit: 64 << 20, Timeout: 2 * time.Second})
	_, err := inst.Invoke(context.Background(), get("/exit", ""))
	if !errors.Is(err, errdefs.ErrGuest) || !strings.Contains(err.Error(), "exited with status 3") {
		t.Fatalf("%v, want a guest fault with the exit status", err)
	}
	if !inst.Dead() {
		t.Fatal("the instance serves on")
	}
}

// An instance still open when its engine closes is still stopped at its
// deadline.
func TestDeadlineAfterEngineClose(t *testing.T) {
	e, err := New(context.Background(), engine.Config{CacheDir: cacheDir})
	if err != nil {
		t.Fatal(err)
	}
	inst := boot(t, compile(t, e, "examples/faulty"), engine.InstanceConfig{MemoryLimit: 64 << 20, Timeout: time.Second})
	if err := e.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { _, err := inst.Invoke(context.Background(), get("/loop", "")); done <- err }()
	select {
	case err := <-done:
		if !errors.Is(err, errdefs.ErrTimeout) {
			t.Fatalf("%v, want ErrTimeout", err)
		}
	case <-time.After(30 * time.Second): // slack for a slow machine, not a bound
		t.Fatal("a loop ran on 30 s past a 1 s deadline after the engine closed")
	}
}

// The WASI host functions check a guest's pointers and counts against its
// memory in 64 bits: a count whose byte size wraps 32 bits is a fault, not
// an empty buffer that the loop over the count then overruns.
func TestHostCallsRejectHugeCounts(t *testing.T) {
	g := boot(t, compile(t, newEngine(t), "examples/hello"), cfg).g
	i32 := func(v uint32) wasmtime.Val { return wasmtime.ValI32(int32(v)) }
	for _, c := range []struct {
		name string
		fn   func(*guest, []wasmtime.Val) int32
		args []wasmtime.Val
	}{
		{"fd_write", fdWrite, []wasmtime.Val{i32(2), i32(0), i32(1 << 29), i32(0)}},         // 8 bytes an iovec: 4 GiB
		{"poll_oneoff", pollOneoff, []wasmtime.Val{i32(0), i32(0), i32(0x5555556), i32(0)}}, // 48 bytes a subscription: 4 GiB + 32
		{"random_get", randomGet, []wasmtime.Val{i32(0xffffff00), i32(0x200)}},
	} {
		if errno := c.fn(g, c.args); errno != errnoFault {
			t.Errorf("%s: errno %d, want %d (fault)", c.name, errno, errnoFault)
		}
	}
}
