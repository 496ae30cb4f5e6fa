//go:build cgo

package capi

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"unsafe"

	"github.com/bytecodealliance/wasmtime-go/v39"
	"golang.org/x/sys/unix"
)

// Test layout: the smallest static memory wasmtime elides bounds checks for
// (reservation + guard covering 4 GiB).
const (
	testReservation = 1 << 32
	testGuard       = 64 << 10
)

// reserve maps a PROT_NONE reservation of testReservation + testGuard
// bytes and returns it with a grow function that makes [0, size) of it
// read-write up to limit, recording the sizes asked for.
func reserve(t *testing.T, limit uint64) (resv []byte, grow func(uint64) bool, sizes *[]uint64) {
	t.Helper()
	all, err := unix.Mmap(-1, 0, testReservation+testGuard, unix.PROT_NONE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_NORESERVE)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = unix.Munmap(all) })
	sizes = new([]uint64)
	grow = func(size uint64) bool {
		*sizes = append(*sizes, size)
		return size <= limit && unix.Mprotect(all[:size], unix.PROT_READ|unix.PROT_WRITE) == nil
	}
	return all[:testReservation:testReservation], grow, sizes
}

// A memory created under WithMemory is the given reservation: wasmtime's
// data pointer is its address, grows go through the grow function (which
// may refuse), release runs when the store goes, and an access past the
// memory's length, which compiled code does not check (it loads from a
// page made accessible behind wasmtime's back), hits the reservation's
// inaccessible pages and traps, the process surviving.
func TestWithMemory(t *testing.T) {
	cfg := wasmtime.NewConfig()
	Configure(cfg, testReservation, testGuard)
	engine := wasmtime.NewEngineWithConfig(cfg)
	wasm, err := wasmtime.Wat2Wasm(`(module (memory (export "memory") 1)
		(func (export "grow") (param i32) (result i32) (memory.grow (local.get 0)))
		(func (export "load") (param i32) (result i32) (i32.load8_u (local.get 0))))`)
	if err != nil {
		t.Fatal(err)
	}
	module, err := wasmtime.NewModule(engine, wasm)
	if err != nil {
		t.Fatal(err)
	}
	const limit = 4 << 16 // four wasm pages
	mem, grow, sizes := reserve(t, limit)
	released := false
	store := wasmtime.NewStore(engine)
	var inst *wasmtime.Instance
	if err := WithMemory(mem, testGuard, grow, func() { released = true }, func() error {
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
	load := inst.GetFunc(store, "load")
	loads := func(size int32) {
		t.Helper()
		if got, err := load.Call(store, int32(100)); err != nil || got.(int32) != 42 {
			t.Fatalf("load(100) = %v, %v; want 42", got, err)
		}
		if _, err := load.Call(store, size-1); err != nil {
			t.Fatalf("load of the last byte: %v", err)
		}
		for _, addr := range []int32{size, size + 1<<16 - 1, -1} {
			var trap *wasmtime.Trap
			if _, err := load.Call(store, addr); !errors.As(err, &trap) {
				t.Fatalf("load(%#x) past the memory's %#x bytes = %v, want a trap", uint32(addr), size, err)
			}
		}
	}
	loads(1 << 16)
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
	if want := []uint64{1 << 16, 4 << 16, 5 << 16}; !slices.Equal(*sizes, want) {
		t.Fatalf("grow asked for %v, want %v", *sizes, want)
	}
	if got := m.DataSize(store); got != limit {
		t.Fatalf("memory is %d bytes after a refused grow, want %d", got, limit)
	}
	loads(limit)
	// The trap comes from the fault, not from a check in compiled code:
	// with the page past the length made accessible, the load succeeds.
	if err := unix.Mprotect(mem[limit:limit+1<<16], unix.PROT_READ); err != nil {
		t.Fatal(err)
	}
	if got, err := load.Call(store, int32(limit)); err != nil || got.(int32) != 0 {
		t.Fatalf("load past the length over an accessible page = %v, %v; want 0 (bounds checks elided)", got, err)
	}
	store.Close()
	if !released {
		t.Fatal("the memory was not released with its store")
	}
}

// A reservation or guard smaller than the configuration's is refused: the
// compiled code would rely on pages past it faulting.
func TestWithMemoryTooSmall(t *testing.T) {
	cfg := wasmtime.NewConfig()
	Configure(cfg, testReservation, testGuard)
	engine := wasmtime.NewEngineWithConfig(cfg)
	wasm, err := wasmtime.Wat2Wasm(`(module (memory 1))`)
	if err != nil {
		t.Fatal(err)
	}
	module, err := wasmtime.NewModule(engine, wasm)
	if err != nil {
		t.Fatal(err)
	}
	mem, grow, _ := reserve(t, 1<<16)
	for _, c := range []struct {
		resv  []byte
		guard uint64
	}{{mem[:1<<20], testGuard}, {mem, testGuard / 2}} {
		store := wasmtime.NewStore(engine)
		err := WithMemory(c.resv, c.guard, grow, nil, func() error {
			_, err := wasmtime.NewInstance(store, module, nil)
			return err
		})
		store.Close()
		if err == nil || !strings.Contains(err.Error(), "larger than the region") {
			t.Fatalf("reservation %d, guard %d: %v, want a refusal", len(c.resv), c.guard, err)
		}
	}
}

// An instantiation that creates no memory leaves nothing pending: a
// module memory created later, outside WithMemory, is refused rather than
// handed a stale region.
func TestWithMemoryNoMemory(t *testing.T) {
	cfg := wasmtime.NewConfig()
	Configure(cfg, testReservation, testGuard)
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
	err := WithMemory(make([]byte, 1<<16), testGuard, func(uint64) bool { return true }, func() { released = true }, func() error {
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
