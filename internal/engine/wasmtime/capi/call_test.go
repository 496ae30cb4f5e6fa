//go:build cgo

package capi

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/bytecodealliance/wasmtime-go/v39"
)

// callModule exports one function per outcome Call must report.
const callModule = `(module
	(import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
	(memory (export "memory") 1)
	(func (export "add1") (param i32) (result i32) (i32.add (local.get 0) (i32.const 1)))
	(func (export "pack") (param i32 i32) (result i64)
		(i64.or (i64.shl (i64.extend_i32_u (local.get 0)) (i64.const 32)) (i64.extend_i32_u (local.get 1))))
	(func (export "boom") unreachable)
	(func (export "exit") (param i32) (call $exit (local.get 0)))
	(func (export "spin") (loop (br 0))))`

// callSetup instantiates callModule in a store of an engine with epoch
// interruption, whose epoch a goroutine advances every millisecond until
// the test ends, and returns the instance's interrupt and exports.
func callSetup(t *testing.T) (*Interrupt, func(string) *wasmtime.Func) {
	t.Helper()
	cfg := wasmtime.NewConfig()
	cfg.SetEpochInterruption(true)
	engine := wasmtime.NewEngineWithConfig(cfg)
	wasm, err := wasmtime.Wat2Wasm(callModule)
	if err != nil {
		t.Fatal(err)
	}
	module, err := wasmtime.NewModule(engine, wasm)
	if err != nil {
		t.Fatal(err)
	}
	linker := wasmtime.NewLinker(engine)
	if err := linker.DefineWasi(); err != nil {
		t.Fatal(err)
	}
	store := wasmtime.NewStore(engine)
	store.SetWasi(wasmtime.NewWasiConfig())
	intr := NewInterrupt(store)
	inst, err := linker.Instantiate(store, module)
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	ticked := make(chan struct{})
	go func() {
		defer close(ticked)
		for {
			select {
			case <-stop:
				return
			case <-time.After(time.Millisecond):
				engine.IncrementEpoch()
			}
		}
	}()
	t.Cleanup(func() {
		close(stop)
		<-ticked
		store.Close()
		intr.Free()
	})
	return intr, func(name string) *wasmtime.Func {
		f := inst.GetFunc(store, name)
		if f == nil {
			t.Fatalf("no export %q", name)
		}
		return f
	}
}

// Call passes arguments and returns results bit for bit, reports a trap's
// text, a guest's exit as *ExitError, and stops a loop at its ticks or at
// a cancellation of its number, but not at one of another call's.
func TestCall(t *testing.T) {
	intr, fn := callSetup(t)
	add1, pack := NewFunc(fn("add1"), 1), NewFunc(fn("pack"), 2)
	if got, err := intr.Call(add1, intr.Next(), 100, 41); err != nil || int32(got) != 42 {
		t.Fatalf("add1(41) = %d, %v; want 42", int32(got), err)
	}
	if got, err := intr.Call(add1, intr.Next(), 100, -1); err != nil || int32(got) != 0 {
		t.Fatalf("add1(-1) = %d, %v; want 0", int32(got), err)
	}
	if got, err := intr.Call(pack, intr.Next(), 100, 7, -2); err != nil || uint64(got) != 7<<32|0xfffffffe {
		t.Fatalf("pack(7, -2) = %#x, %v", uint64(got), err)
	}
	if _, err := intr.Call(add1, intr.Next(), 100); err == nil {
		t.Fatal("a call with too few arguments ran")
	}

	_, err := intr.Call(NewFunc(fn("boom"), 0), intr.Next(), 100)
	if err == nil || !strings.Contains(err.Error(), "unreachable") {
		t.Fatalf("boom: %v, want a trap naming unreachable", err)
	}
	if intr.Tripped() {
		t.Fatal("a trap counted as an interruption")
	}
	var exit *ExitError
	if _, err := intr.Call(NewFunc(fn("exit"), 1), intr.Next(), 100, 3); !errors.As(err, &exit) || exit.Status != 3 {
		t.Fatalf("exit(3): %v, want *ExitError with status 3", err)
	}

	spin := NewFunc(fn("spin"), 0)
	if _, err := intr.Call(spin, intr.Next(), 2); err == nil || !intr.Tripped() {
		t.Fatalf("spin with 2 ticks: %v, tripped %v; want interrupted", err, intr.Tripped())
	}

	// A cancellation of an earlier number leaves the next call running:
	// it stops at its own cancellation.
	intr.Cancel(intr.Next())
	call := intr.Next()
	cancelled := time.AfterFunc(50*time.Millisecond, func() { intr.Cancel(call) })
	defer cancelled.Stop()
	if _, err := intr.Call(spin, call, 1<<40); err == nil || !intr.Tripped() {
		t.Fatalf("cancelled spin: %v, tripped %v; want interrupted", err, intr.Tripped())
	}
	if got, err := intr.Call(add1, intr.Next(), 100, 1); err != nil || int32(got) != 2 || intr.Tripped() {
		t.Fatalf("add1 after an interruption = %d, %v (tripped %v)", int32(got), err, intr.Tripped())
	}
}
