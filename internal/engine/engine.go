// Package engine runs thaw functions as WebAssembly instances on wazero in
// compiler mode.
//
// A function's module is compiled once per machine (wazero's on-disk
// compilation cache). Each instance's linear memory lives in a Region that
// thaw allocates itself, so an instance can be booted (instantiate and run
// the reactor's _initialize) or restored from captured State into a Region
// that a restore mode has already filled, mapped or registered for lazy
// paging. An instance serves one request at a time.
package engine

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"

	"github.com/thaw-run/thaw/internal/abi"
	"github.com/thaw-run/thaw/internal/errdefs"
	"github.com/thaw-run/thaw/internal/rewrite"
)

// Config configures an Engine.
type Config struct {
	// CacheDir holds compiled machine code across processes; empty keeps it
	// in memory only.
	CacheDir string
}

// Engine owns the wazero runtime shared by every function on a worker.
type Engine struct {
	rt    wazero.Runtime
	cache wazero.CompilationCache
	seq   atomic.Uint64
}

// New starts an engine.
func New(ctx context.Context, cfg Config) (*Engine, error) {
	rc := wazero.NewRuntimeConfigCompiler().WithCloseOnContextDone(true)
	var cache wazero.CompilationCache
	if cfg.CacheDir != "" {
		if err := os.MkdirAll(cfg.CacheDir, 0o700); err != nil {
			return nil, fmt.Errorf("compilation cache: %w", err)
		}
		c, err := wazero.NewCompilationCacheWithDir(cfg.CacheDir)
		if err != nil {
			return nil, fmt.Errorf("compilation cache %s: %w", cfg.CacheDir, err)
		}
		cache = c
		rc = rc.WithCompilationCache(c)
	}
	rt := wazero.NewRuntimeWithConfig(ctx, rc)
	if _, err := wasi_snapshot_preview1.Instantiate(ctx, rt); err != nil {
		_ = rt.Close(ctx)
		return nil, fmt.Errorf("instantiate WASI: %w", err)
	}
	return &Engine{rt: rt, cache: cache}, nil
}

// Close releases the runtime and every instance still open.
func (e *Engine) Close(ctx context.Context) error {
	err := e.rt.Close(ctx)
	if e.cache != nil {
		err = errors.Join(err, e.cache.Close(ctx))
	}
	return err
}

// Module is a compiled function: its boot module (globals exported so they
// can be captured) and its restore module.
type Module struct {
	e        *Engine
	bootWasm []byte
	boot     wazero.CompiledModule
	info     *rewrite.Info

	mu      sync.Mutex
	restore wazero.CompiledModule // compiled on first use
	closed  bool
}

// Compile validates a function module and compiles it. A module that is not
// valid wasm, or lacks the thaw ABI exports, fails with errdefs.ErrInvalid.
func (e *Engine) Compile(ctx context.Context, wasm []byte) (*Module, error) {
	boot, info, err := rewrite.Instrument(wasm)
	if err != nil {
		return nil, err
	}
	for _, name := range []string{"_initialize", abi.ExportAlloc, abi.ExportHandle} {
		if !hasExport(info.Exports, name) {
			return nil, fmt.Errorf("module does not export %q (not a thaw reactor; build it with `thaw build`): %w", name, errdefs.ErrInvalid)
		}
	}
	cm, err := e.rt.CompileModule(ctx, boot)
	if err != nil {
		return nil, fmt.Errorf("compile module: %v: %w", err, errdefs.ErrInvalid)
	}
	return &Module{e: e, bootWasm: boot, boot: cm, info: info}, nil
}

func hasExport(exports []string, name string) bool {
	for _, x := range exports {
		if x == name {
			return true
		}
	}
	return false
}

// Close releases the compiled code.
func (m *Module) Close(ctx context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	err := m.boot.Close(ctx)
	if m.restore != nil {
		err = errors.Join(err, m.restore.Close(ctx))
	}
	m.restore, m.closed = nil, true
	return err
}

// InstanceConfig are the limits of one instance.
type InstanceConfig struct {
	// MemoryLimit caps the linear memory in bytes.
	MemoryLimit uint64
	// Timeout bounds each invocation.
	Timeout time.Duration
	// InitTimeout bounds _initialize at boot (default: Timeout).
	InitTimeout time.Duration
}

// BootStats are the stages of a cold boot.
type BootStats struct {
	Instantiate time.Duration
	Init        time.Duration
}

// Boot instantiates the module in a fresh region and runs its initialisation.
func (m *Module) Boot(ctx context.Context, cfg InstanceConfig) (*Instance, BootStats, error) {
	var st BootStats
	region, err := NewRegion(cfg.MemoryLimit)
	if err != nil {
		return nil, st, err
	}
	t0 := time.Now()
	inst, err := m.instantiate(ctx, m.boot, region, cfg, &clock{start: time.Now()})
	if err != nil {
		region.Free()
		return nil, st, err
	}
	st.Instantiate = time.Since(t0)
	t1 := time.Now()
	if err := inst.callWithin(ctx, "_initialize", cfg.InitTimeout); err != nil {
		inst.Close(ctx)
		return nil, st, fmt.Errorf("initialise: %w", err)
	}
	st.Init = time.Since(t1)
	return inst, st, nil
}

// Restore instantiates the module's restore module over region, whose first
// st.Pages wasm pages a restore mode has already made hold the snapshot's
// memory (filled, mapped, or registered for lazy paging), then sets every
// global from st and runs the guest's restore hooks. Restore takes ownership
// of region: it is freed with the instance, or on error.
func (m *Module) Restore(ctx context.Context, cfg InstanceConfig, st *State, region *Region) (*Instance, error) {
	rm, err := m.restoreModule(ctx, st.Pages)
	if err != nil {
		region.Free()
		return nil, err
	}
	if len(st.Globals) != len(m.info.Globals) {
		region.Free()
		return nil, fmt.Errorf("snapshot has %d globals, module %d: %w", len(st.Globals), len(m.info.Globals), errdefs.ErrCorrupt)
	}
	inst, err := m.instantiate(ctx, rm, region, cfg, &clock{base: st.Nanotime, start: time.Now()})
	if err != nil {
		region.Free()
		return nil, err
	}
	// The restore module declares the boot module's minimum; growing to
	// the snapshot's size only re-slices the region, whose first st.Pages
	// pages the restore mode has already made hold the snapshot.
	mem := inst.mod.Memory()
	if cur := mem.Size() / WasmPageSize; cur < st.Pages {
		if _, ok := mem.Grow(st.Pages - cur); !ok {
			inst.Close(ctx)
			return nil, fmt.Errorf("grow memory to the snapshot's %d pages: %w", st.Pages, errdefs.ErrInvalid)
		}
	}
	for i, g := range m.info.Globals {
		if !g.Mutable {
			continue
		}
		mg, ok := inst.mod.ExportedGlobal(g.Export).(api.MutableGlobal)
		if !ok {
			inst.Close(ctx)
			return nil, fmt.Errorf("global %d is not exported as mutable", g.Index)
		}
		mg.Set(st.Globals[i])
	}
	if inst.mod.ExportedFunction(abi.ExportOnRestore) != nil {
		if err := inst.call(ctx, abi.ExportOnRestore); err != nil {
			inst.Close(ctx)
			return nil, fmt.Errorf("restore hooks: %w", err)
		}
	}
	return inst, nil
}

// PrepareRestore compiles the restore module ahead of time, so the first
// restore does not pay for compilation, and checks that a snapshot of pages
// wasm pages fits the module's declared memory.
func (m *Module) PrepareRestore(ctx context.Context, pages uint32) error {
	_, err := m.restoreModule(ctx, pages)
	return err
}

// restoreModule returns the restore module, compiling it once. One module
// serves snapshots of every size: it declares the boot module's minimum
// memory and Restore grows it to the snapshot's size. (A module per size
// would recompile the whole program, seconds of CPU for a Go guest, for
// every live-instance checkpoint whose heap had grown.)
func (m *Module) restoreModule(ctx context.Context, pages uint32) (wazero.CompiledModule, error) {
	switch {
	case pages < m.info.MemoryMinPages:
		return nil, fmt.Errorf("snapshot has %d pages, fewer than the module's minimum %d: %w", pages, m.info.MemoryMinPages, errdefs.ErrInvalid)
	case m.info.MemoryMaxPages != nil && pages > *m.info.MemoryMaxPages:
		return nil, fmt.Errorf("snapshot has %d pages, module allows at most %d: %w", pages, *m.info.MemoryMaxPages, errdefs.ErrInvalid)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.restore != nil {
		return m.restore, nil
	}
	if m.closed {
		return nil, fmt.Errorf("module closed: %w", errdefs.ErrNotFound)
	}
	wasm, err := rewrite.ForRestore(m.bootWasm, m.info.MemoryMinPages)
	if err != nil {
		return nil, fmt.Errorf("derive restore module: %w", err)
	}
	cm, err := m.e.rt.CompileModule(ctx, wasm)
	if err != nil {
		return nil, fmt.Errorf("compile restore module: %w", err)
	}
	m.restore = cm
	return cm, nil
}

func (m *Module) instantiate(ctx context.Context, cm wazero.CompiledModule, region *Region, cfg InstanceConfig, clk *clock) (*Instance, error) {
	stderr := &tailBuffer{max: 4096}
	sl := &sleeper{}
	mc := wazero.NewModuleConfig().
		WithName(fmt.Sprintf("i%d", m.e.seq.Add(1))).
		WithStartFunctions().
		WithStdout(io.Discard).
		WithStderr(stderr).
		WithRandSource(rand.Reader).
		WithSysWalltime().
		WithNanosleep(sl.sleep).
		WithNanotime(clk.nanotime, 1)
	alloc := experimental.MemoryAllocatorFunc(func(_, _ uint64) experimental.LinearMemory { return region })
	mod, err := m.e.rt.InstantiateModule(experimental.WithMemoryAllocator(ctx, alloc), cm, mc)
	if err != nil {
		return nil, fmt.Errorf("instantiate: %w", err)
	}
	return &Instance{m: m, mod: mod, region: region, clock: clk, cfg: cfg, stderr: stderr, sleep: sl,
		alloc: mod.ExportedFunction(abi.ExportAlloc), handle: mod.ExportedFunction(abi.ExportHandle)}, nil
}

// sleeper is an instance's nanosleep, which WASI's poll_oneoff calls for
// clock subscriptions (Go's time.Sleep and its scheduler's idle wait
// reach it). wazero's sys.Nanosleep takes no context and its default
// sleeps in time.Sleep, out of reach of the call's deadline: a guest asking
// for 2^63 ns would hold its goroutine and its instance slot for ever. So
// the sleep also ends when the current call's context is done; the guest
// then resumes and wazero, which closes the module on that context, stops
// it at its next function entry or loop back-edge.
type sleeper struct {
	mu   sync.Mutex
	done <-chan struct{} // the running call's ctx.Done(); nil between calls
}

// during makes sleeps end when ctx is done, until the returned func runs.
func (s *sleeper) during(ctx context.Context) func() {
	s.mu.Lock()
	s.done = ctx.Done()
	s.mu.Unlock()
	return func() {
		s.mu.Lock()
		s.done = nil
		s.mu.Unlock()
	}
}

func (s *sleeper) sleep(ns int64) {
	s.mu.Lock()
	done := s.done
	s.mu.Unlock()
	// Guest code only runs inside a call, which always has a done channel;
	// without one there is no deadline to honour, so never block.
	if ns <= 0 || done == nil {
		return
	}
	t := time.NewTimer(time.Duration(ns))
	defer t.Stop()
	select {
	case <-t.C:
	case <-done:
	}
}

// clock is an instance's monotonic clock. A restored instance continues from
// the nanotime captured in its snapshot, so the guest's monotonic time never
// runs backwards across a restore, whatever host or process restores it.
type clock struct {
	base  int64
	start time.Time
}

func (c *clock) nanotime() int64 { return c.base + int64(time.Since(c.start)) }

// tailBuffer keeps the last max bytes written: the guest's stderr, which
// holds the Go runtime's panic and fatal-error text.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = append(t.b[:0], t.b[len(t.b)-t.max:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) take() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := string(t.b)
	t.b = t.b[:0]
	return s
}
