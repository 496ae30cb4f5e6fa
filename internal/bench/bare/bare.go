//go:build cgo

// Package bare is a bare wasmtime embedding of a thaw function: wasmtime-go
// as its documentation shows it, with wasmtime's own WASI, default memory
// (copy-on-write initialisation, a static reservation) and epoch
// interruption compiled in (the same per-loop check thaw's wasmtime engine
// pays, with a deadline no call reaches). `thaw bench engine` measures it
// as the "bare" row: what thaw's wasmtime engine (its own memory regions,
// Go WASI, clock, sleeper, fault classification) costs over wasmtime itself.
//
// It is a benchmark's reference, not an engine: it restores nothing, caps
// no memory, stops no runaway guest, and is not registered with
// internal/engine. cgo (through wasmtime-go) is why it is a package of its
// own; without cgo it reports that it is unavailable.
package bare

import (
	"fmt"
	"time"

	"github.com/bytecodealliance/wasmtime-go/v39"

	"github.com/thaw-run/thaw/internal/abi"
	"github.com/thaw-run/thaw/internal/errdefs"
)

// Available reports whether this build has the bare embedding.
const Available = true

// Engine is a wasmtime engine with WASI linked.
type Engine struct {
	engine *wasmtime.Engine
	linker *wasmtime.Linker
}

// New starts an engine.
func New() (*Engine, error) {
	cfg := wasmtime.NewConfig()
	cfg.SetEpochInterruption(true)
	e := wasmtime.NewEngineWithConfig(cfg)
	l := wasmtime.NewLinker(e)
	if err := l.DefineWasi(); err != nil {
		return nil, fmt.Errorf("define WASI: %w", err)
	}
	return &Engine{engine: e, linker: l}, nil
}

// Close releases the engine.
func (e *Engine) Close() {
	e.linker.Close()
	e.engine.Close()
}

// Module is a compiled function module.
type Module struct {
	e *Engine
	m *wasmtime.Module
}

// Compile compiles wasm as it is (no thaw instrumentation).
func (e *Engine) Compile(wasm []byte) (*Module, error) {
	m, err := wasmtime.NewModule(e.engine, wasm)
	if err != nil {
		return nil, fmt.Errorf("compile module: %v: %w", err, errdefs.ErrInvalid)
	}
	return &Module{e: e, m: m}, nil
}

// Close releases the compiled code.
func (m *Module) Close() { m.m.Close() }

// Instance is one instantiated and initialised module.
type Instance struct {
	store         *wasmtime.Store
	alloc, handle *wasmtime.Func
	mem           *wasmtime.Memory
}

// Boot instantiates the module in a new store with an empty WASI context
// and runs _initialize; it returns the two stages' times.
func (m *Module) Boot() (inst *Instance, instantiate, init time.Duration, err error) {
	t0 := time.Now()
	store := wasmtime.NewStore(m.e.engine)
	store.SetWasi(wasmtime.NewWasiConfig())
	store.SetEpochDeadline(1 << 62)
	in, err := m.e.linker.Instantiate(store, m.m)
	if err != nil {
		store.Close()
		return nil, 0, 0, fmt.Errorf("instantiate: %v: %w", err, errdefs.ErrGuest)
	}
	i := &Instance{store: store, alloc: in.GetFunc(store, abi.ExportAlloc), handle: in.GetFunc(store, abi.ExportHandle)}
	if ext := in.GetExport(store, "memory"); ext != nil {
		i.mem = ext.Memory()
	}
	initFn := in.GetFunc(store, "_initialize")
	if i.alloc == nil || i.handle == nil || i.mem == nil || initFn == nil {
		store.Close()
		return nil, 0, 0, fmt.Errorf("module lacks the thaw ABI exports: %w", errdefs.ErrInvalid)
	}
	t1 := time.Now()
	if _, err := initFn.Call(store); err != nil {
		store.Close()
		return nil, 0, 0, fmt.Errorf("initialise: %v: %w", err, errdefs.ErrGuest)
	}
	return i, t1.Sub(t0), time.Since(t1), nil
}

// Invoke serves one request: encode, thaw_alloc, copy in, thaw_handle,
// decode, as thaw's engines do.
func (i *Instance) Invoke(req *abi.Request) (*abi.Response, error) {
	in := req.AppendTo(nil)
	r, err := i.alloc.Call(i.store, int32(len(in)))
	if err != nil {
		return nil, fmt.Errorf("%s: %v: %w", abi.ExportAlloc, err, errdefs.ErrGuest)
	}
	ptr := uint32(r.(int32))
	mem := i.mem.UnsafeData(i.store)
	if uint64(ptr)+uint64(len(in)) > uint64(len(mem)) {
		return nil, fmt.Errorf("guest request buffer [%d,+%d) is outside its memory: %w", ptr, len(in), errdefs.ErrGuest)
	}
	copy(mem[ptr:], in)
	r, err = i.handle.Call(i.store, int32(ptr), int32(len(in)))
	if err != nil {
		return nil, fmt.Errorf("%s: %v: %w", abi.ExportHandle, err, errdefs.ErrGuest)
	}
	v := uint64(r.(int64))
	rptr, rlen := uint32(v>>32), uint32(v)
	mem = i.mem.UnsafeData(i.store)
	if uint64(rptr)+uint64(rlen) > uint64(len(mem)) {
		return nil, fmt.Errorf("guest response [%d,+%d) is outside its memory: %w", rptr, rlen, errdefs.ErrGuest)
	}
	return abi.DecodeResponse(mem[rptr : rptr+rlen])
}

// Close releases the instance.
func (i *Instance) Close() { i.store.Close() }
