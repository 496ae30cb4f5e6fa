//go:build cgo

package capi

import (
	"testing"
	"unsafe"

	"github.com/bytecodealliance/wasmtime-go/v39"
	"golang.org/x/sys/unix"
)

// A memory created under WithMemory is the given mapping: wasmtime's data
// pointer is its address, grows go through the grow function (which may
// refuse), and release runs when the store goes.
func TestWithMemory(t *testing.T) {
	cfg := wasmtime.NewConfig()
	Configure(cfg)
	engine := wasmtime.NewEngineWithConfig(cfg)
	wasm, err := wasmtime.Wat2Wasm(`(module (memory (export "memory") 1)
		(func (export "grow") (param i32) (result i32) (memory.grow (local.get 0))))`)
	if err != nil {
		t.Fatal(err)
	}
	module, err := wasmtime.NewModule(engine, wasm)
	if err != nil {
		t.Fatal(err)
	}
	const limit = 4 << 16 // four wasm pages
	mem, err := unix.Mmap(-1, 0, limit, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(mem)
	var sizes []uint64
	grow := func(size uint64) bool {
		sizes = append(sizes, size)
		return size <= limit
	}
	released := false
	store := wasmtime.NewStore(engine)
	var inst *wasmtime.Instance
	if err := WithMemory(mem[:0], grow, func() { released = true }, func() error {
		var err error
		inst, err = wasmtime.NewInstance(store, module, nil)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	m := inst.GetExport(store, "memory").Memory()
	if got, want := uintptr(m.Data(store)), uintptr(unsafe.Pointer(&mem[0])); got != want {
		t.Fatalf("memory at %#x, mapping at %#x", got, want)
	}
	mem[100] = 42
	if m.UnsafeData(store)[100] != 42 {
		t.Fatal("wasmtime does not see the mapping's bytes")
	}
	growFn := inst.GetFunc(store, "grow")
	for _, c := range []struct {
		pages int32
		want  int32
	}{{3, 1}, {1, -1}} { // to the limit, then past it
		got, err := growFn.Call(store, c.pages)
		if err != nil || got.(int32) != c.want {
			t.Fatalf("memory.grow(%d) = %v, %v; want %d", c.pages, got, err, c.want)
		}
	}
	if want := []uint64{1 << 16, 4 << 16, 5 << 16}; len(sizes) != len(want) || sizes[0] != want[0] || sizes[1] != want[1] || sizes[2] != want[2] {
		t.Fatalf("grow asked for %v, want %v", sizes, want)
	}
	if got := m.DataSize(store); got != limit {
		t.Fatalf("memory is %d bytes after a refused grow, want %d", got, limit)
	}
	store.Close()
	if !released {
		t.Fatal("the memory was not released with its store")
	}
}

// An instantiation that creates no memory leaves nothing pending: a
// module memory created later, outside WithMemory, is refused rather than
// handed a stale region.
func TestWithMemoryNoMemory(t *testing.T) {
	cfg := wasmtime.NewConfig()
	Configure(cfg)
	engine := wasmtime.NewEngineWithConfig(cfg)
	compile := func(wat string) *wasmtime.Module {
		t.Helper()
		wasm, err := wasmtime.Wat2Wasm(wat)
		if err != nil {
			t.Fatal(err)
		}
		m, err := wasmtime.NewModule(engine, wasm)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	store := wasmtime.NewStore(engine)
	defer store.Close()
	released := false
	err := WithMemory(make([]byte, 0, 1<<16), func(uint64) bool { return true }, func() { released = true }, func() error {
		_, err := wasmtime.NewInstance(store, compile(`(module)`), nil)
		return err
	})
	if err == nil {
		t.Fatal("a module without memory was accepted")
	}
	if released {
		t.Fatal("release ran for a memory wasmtime never had")
	}
	if _, err := wasmtime.NewInstance(store, compile(`(module (memory 1))`), nil); err == nil {
		t.Fatal("a module memory was created with no region pending")
	}
}
