// Package wazero is thaw's pure-Go engine: wazero in compiler mode, with
// close-on-context-done for deadlines.
//
// A function's module is compiled once per machine (wazero's on-disk
// compilation cache). Each instance's linear memory is an engine.Region that
// thaw allocates itself (wazero's experimental memory allocator hands it to
// the module), so an instance can be booted or restored over a region that a
// restore mode has already filled, mapped or registered for lazy paging.
//
// Deadlines cost a call out of machine code at every loop back-edge and
// function entry (close-on-context-done); see docs/engine.md for what that
// costs against the wasmtime engine.
package wazero

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"

	wz "github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"

	"github.com/thaw-run/thaw/internal/abi"
	"github.com/thaw-run/thaw/internal/engine"
	"github.com/thaw-run/thaw/internal/errdefs"
	"github.com/thaw-run/thaw/internal/timeline"
)

// Name is the name the engine registers under.
const Name = "wazero"

// rank puts wazero after wasmtime (see the wasmtime engine's rank): it is
// the default only of builds without cgo, which have no wasmtime.
const rank = 20

func init() {
	engine.Register(Name, rank, func(ctx context.Context, cfg engine.Config) (engine.Engine, error) {
		return New(ctx, cfg)
	})
}

// Engine owns the wazero runtime shared by every function on a worker.
type Engine struct {
	rt    wz.Runtime
	cache wz.CompilationCache
	seq   atomic.Uint64
}

// New starts an engine. Compiled code is cached under cfg.CacheDir/wazero.
func New(ctx context.Context, cfg engine.Config) (*Engine, error) {
	rc := wz.NewRuntimeConfigCompiler().WithCloseOnContextDone(true)
	var cache wz.CompilationCache
	if cfg.CacheDir != "" {
		dir := filepath.Join(cfg.CacheDir, Name)
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("compilation cache: %w", err)
		}
		c, err := wz.NewCompilationCacheWithDir(dir)
		if err != nil {
			return nil, fmt.Errorf("compilation cache %s: %w", dir, err)
		}
		cache = c
		rc = rc.WithCompilationCache(c)
	}
	rt := wz.NewRuntimeWithConfig(ctx, rc)
	if _, err := wasi_snapshot_preview1.Instantiate(ctx, rt); err != nil {
		_ = rt.Close(ctx)
		return nil, fmt.Errorf("instantiate WASI: %w", err)
	}
	return &Engine{rt: rt, cache: cache}, nil
}

// Name returns "wazero".
func (e *Engine) Name() string { return Name }

// Close releases the runtime and every instance still open.
func (e *Engine) Close(ctx context.Context) error {
	err := e.rt.Close(ctx)
	if e.cache != nil {
		err = errors.Join(err, e.cache.Close(ctx))
	}
	return err
}

// Module is a compiled function: its boot module and its restore module.
type Module struct {
	e    *Engine
	p    *engine.Prepared
	boot wz.CompiledModule

	mu      sync.Mutex
	restore wz.CompiledModule // compiled on first use
	closed  bool
}

// Compile validates a function module and compiles it.
func (e *Engine) Compile(ctx context.Context, wasm []byte) (engine.Module, error) {
	p, err := engine.Prepare(wasm)
	if err != nil {
		return nil, err
	}
	// A OneModule function compiles its restore module alone, which
	// boots it too (engine.Prepared.OneModule).
	code, err := p.BootWasm()
	if err != nil {
		return nil, err
	}
	cm, err := e.rt.CompileModule(ctx, code)
	if err != nil {
		return nil, fmt.Errorf("compile module: %v: %w", err, errdefs.ErrInvalid)
	}
	m := &Module{e: e, p: p, boot: cm}
	if p.OneModule() {
		m.restore = cm
	}
	return m, nil
}

// Close releases the compiled code.
func (m *Module) Close(ctx context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	err := m.boot.Close(ctx)
	if m.restore != nil && m.restore != m.boot {
		err = errors.Join(err, m.restore.Close(ctx))
	}
	m.restore, m.closed = nil, true
	return err
}

// Boot instantiates the module in a fresh region and runs its initialisation.
func (m *Module) Boot(ctx context.Context, cfg engine.InstanceConfig) (engine.Instance, engine.BootStats, error) {
	return engine.Boot(ctx, cfg, func(region *engine.Region) (*Instance, error) {
		inst, err := m.instantiate(ctx, m.boot, region, cfg, engine.NewClock(0))
		if err == nil && m.p.OneModule() {
			if err = m.p.WriteData(region); err != nil {
				inst.Close(ctx)
				return nil, err
			}
		}
		return inst, err
	}, func(i *Instance) engine.Caller { return i.callWithin })
}

// Restore instantiates the restore module over region (see engine.Module).
func (m *Module) Restore(ctx context.Context, cfg engine.InstanceConfig, st *engine.State, region *engine.Region) (engine.Instance, error) {
	return m.RestoreWhen(ctx, cfg, st, region, nil)
}

// RestoreWhen is Restore while ready finishes the region's memory (see
// engine.Module): wazero's instantiation of a module without data
// segments or a start function only re-slices the region (opening pages of
// its reservation, not touching them).
func (m *Module) RestoreWhen(ctx context.Context, cfg engine.InstanceConfig, st *engine.State, region *engine.Region, ready func() error) (engine.Instance, error) {
	inst, err, rerr := engine.WhileReady(region, ready, func() (*Instance, error) {
		rm, err := m.restoreModule(ctx, st.Pages)
		if err == nil {
			err = m.p.CheckState(st)
		}
		if err != nil {
			return nil, err
		}
		inst, err := m.instantiate(ctx, rm, region, cfg, engine.NewClock(st.Nanotime))
		if err != nil {
			return inst, err
		}
		return inst, m.setState(inst, st)
	}, false)
	if rerr != nil {
		err = rerr
	}
	if err != nil {
		if inst != nil {
			inst.Close(ctx)
		}
		region.Free()
		return nil, err
	}
	if _, err := m.p.Hook(ctx, inst.callWithin, abi.ExportOnRestore, "restore hooks"); err != nil {
		inst.Close(ctx)
		return nil, err
	}
	timeline.Mark(timeline.Restored)
	return inst, nil
}

// setState grows inst's memory to the snapshot's st.Pages and sets every
// mutable global from st, reading no page of the region, so it runs while
// the restore mode fills the memory (RestoreWhen). The restore module
// declares the boot module's minimum; growing to the snapshot's size only
// re-slices the region, whose first st.Pages pages hold (or are being
// given) the snapshot. wazero checks every access against the length, so
// pages past it that a pooled region's previous owner left accessible need
// no Region.Fit.
func (m *Module) setState(inst *Instance, st *engine.State) error {
	mem := inst.mod.Memory()
	if cur := mem.Size() / engine.WasmPageSize; cur < st.Pages {
		if _, ok := mem.Grow(st.Pages - cur); !ok {
			return fmt.Errorf("grow memory to the snapshot's %d pages: %w", st.Pages, errdefs.ErrInvalid)
		}
	}
	for i, g := range m.p.Info.Globals {
		if !g.Mutable {
			continue
		}
		mg, ok := inst.mod.ExportedGlobal(g.Export).(api.MutableGlobal)
		if !ok {
			return fmt.Errorf("global %d is not exported as mutable", g.Index)
		}
		mg.Set(st.Globals[i])
	}
	timeline.Mark(timeline.StateSet)
	return nil
}

// KeepsInstances is false: a closed wazero instance is released, and
// every restore instantiates.
func (m *Module) KeepsInstances() bool { return false }

// PrepareRestore compiles the restore module ahead of time, so the first
// restore does not pay for compilation.
func (m *Module) PrepareRestore(ctx context.Context, pages uint32) error {
	_, err := m.restoreModule(ctx, pages)
	return err
}

// restoreModule returns the restore module, compiling it once.
func (m *Module) restoreModule(ctx context.Context, pages uint32) (wz.CompiledModule, error) {
	if err := m.p.CheckPages(pages); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.restore != nil {
		return m.restore, nil
	}
	if m.closed {
		return nil, fmt.Errorf("module closed: %w", errdefs.ErrNotFound)
	}
	wasm, err := m.p.RestoreWasm(pages)
	if err != nil {
		return nil, err
	}
	cm, err := m.e.rt.CompileModule(ctx, wasm)
	if err != nil {
		return nil, fmt.Errorf("compile restore module: %w", err)
	}
	m.restore = cm
	return cm, nil
}

func (m *Module) instantiate(ctx context.Context, cm wz.CompiledModule, region *engine.Region, cfg engine.InstanceConfig, clk *engine.Clock) (*Instance, error) {
	stderr := &engine.TailBuffer{Max: 4096}
	sl := &engine.Sleeper{}
	mc := wz.NewModuleConfig().
		WithName(fmt.Sprintf("i%d", m.e.seq.Add(1))).
		WithStartFunctions().
		WithStdout(io.Discard).
		WithStderr(stderr).
		WithRandSource(rand.Reader).
		WithSysWalltime().
		WithNanosleep(sl.Sleep).
		WithNanotime(clk.Nanotime, 1)
	alloc := experimental.MemoryAllocatorFunc(func(_, _ uint64) experimental.LinearMemory { return region })
	mod, err := m.e.rt.InstantiateModule(experimental.WithMemoryAllocator(ctx, alloc), cm, mc)
	if err != nil {
		return nil, fmt.Errorf("instantiate: %w", err)
	}
	return &Instance{m: m, mod: mod, region: region, clock: clk, cfg: cfg, stderr: stderr, sleep: sl,
		alloc: mod.ExportedFunction(abi.ExportAlloc), handle: mod.ExportedFunction(abi.ExportHandle)}, nil
}
