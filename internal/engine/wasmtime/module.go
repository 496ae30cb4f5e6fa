//go:build cgo

package wasmtime

import (
	"context"
	"fmt"
	"math"
	"sync"

	"github.com/bytecodealliance/wasmtime-go/v39"

	"github.com/thaw-run/thaw/internal/abi"
	"github.com/thaw-run/thaw/internal/engine"
	"github.com/thaw-run/thaw/internal/engine/wasmtime/capi"
	"github.com/thaw-run/thaw/internal/errdefs"
	"github.com/thaw-run/thaw/internal/timeline"
)

// Module is a compiled function: its boot module and, compiled on first
// use, its restore module; or, for a OneModule function, the restore
// module alone, serving both. It is safe for concurrent use.
type Module struct {
	e    *Engine
	prep *engine.Prepared
	boot *wasmtime.Module

	mu      sync.Mutex
	restore *wasmtime.Module
	closed  bool
}

// Close releases the compiled code.
func (m *Module) Close(context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil
	}
	m.boot.Close()
	if m.restore != nil && m.restore != m.boot {
		m.restore.Close()
	}
	m.restore, m.closed = nil, true
	return nil
}

// Boot instantiates the module in a fresh region and runs its
// initialisation within cfg.InitTimeout (default cfg.Timeout).
func (m *Module) Boot(ctx context.Context, cfg engine.InstanceConfig) (engine.Instance, engine.BootStats, error) {
	return engine.Boot(ctx, cfg, func(region *engine.Region) (*Instance, error) {
		inst, err := m.instantiate(m.boot, region, cfg, engine.NewClock(0))
		if err == nil && m.prep.OneModule() {
			if err = m.prep.WriteData(region); err != nil {
				inst.Close(ctx)
				return nil, err
			}
		}
		return inst, err
	}, func(i *Instance) engine.Caller { return i.callWithin })
}

// Restore instantiates the restore module over region, whose first
// st.Pages wasm pages a restore mode has already made hold the snapshot's
// memory, grows the memory to st.Pages (the pages are in place: at most
// the region opens more of its reservation), closes what lies past that
// (Region.Fit: compiled code relies on those pages faulting), sets every
// mutable global from st, continues the clock from st.Nanotime and
// runs thaw_on_restore if the guest exports it. Restore takes ownership
// of region: it is freed with the instance, or on error.
func (m *Module) Restore(ctx context.Context, cfg engine.InstanceConfig, st *engine.State, region *engine.Region) (engine.Instance, error) {
	return m.RestoreWhen(ctx, cfg, st, region, nil)
}

// RestoreWhen is Restore while ready finishes the region's memory (see
// engine.Module): instantiating the restore module (no data segments, no
// start function, copy-on-write initialisation off) hands wasmtime the
// region through the memory creator without touching a page. An instance
// kept with the region (takeKept) is reset instead, a short step that runs
// before ready rather than beside it (engine.WhileReady). Either way the
// instance's state (setState) is set in that step, since it reads no page.
// Region.Fit waits for ready: a reused region's scrub reopens and clears
// pages past the memory's length, which Fit then closes again, and run
// beside the scrub it would close pages the scrub is clearing.
func (m *Module) RestoreWhen(ctx context.Context, cfg engine.InstanceConfig, st *engine.State, region *engine.Region, ready func() error) (engine.Instance, error) {
	old := m.takeKept(region, st)
	inst, err, rerr := engine.WhileReady(region, ready, func() (*Instance, error) {
		inst, err := old, error(nil)
		if old != nil {
			err = old.reset(region, cfg, st)
		} else {
			inst, err = m.instantiateRestore(region, cfg, st)
		}
		if err != nil {
			return inst, err
		}
		return inst, m.setState(inst, st)
	}, old != nil)
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
	// The restore filled the snapshot's pages and a pooled region may have
	// been open further for its previous owner: close what lies past the
	// memory's length, which compiled code relies on faulting.
	if err := region.Fit(); err != nil {
		inst.Close(ctx)
		return nil, err
	}
	if _, err := m.prep.Hook(ctx, inst.callWithin, abi.ExportOnRestore, "restore hooks"); err != nil {
		inst.Close(ctx)
		return nil, err
	}
	timeline.Mark(timeline.Restored)
	return inst, nil
}

// instantiateRestore instantiates the restore module for a snapshot of
// st over region.
func (m *Module) instantiateRestore(region *engine.Region, cfg engine.InstanceConfig, st *engine.State) (*Instance, error) {
	rm, err := m.restoreModule(st.Pages)
	if err == nil {
		err = m.prep.CheckState(st)
	}
	if err != nil {
		return nil, err
	}
	return m.instantiate(rm, region, cfg, engine.NewClock(st.Nanotime))
}

// setState grows inst's memory to the snapshot's st.Pages (the pages are
// in place, or being put there: at most the region opens more of its
// reservation) and sets every mutable global from st. It reads and writes
// no page of the region and closes none.
func (m *Module) setState(inst *Instance, st *engine.State) error {
	if cur := inst.mem.Size(inst.store); cur < uint64(st.Pages) {
		if _, err := inst.mem.Grow(inst.store, uint64(st.Pages)-cur); err != nil {
			return fmt.Errorf("grow memory to the snapshot's %d pages: %v: %w", st.Pages, err, errdefs.ErrInvalid)
		}
	}
	for i, g := range m.prep.Info.Globals {
		if !g.Mutable {
			continue
		}
		if err := inst.globals[i].Set(inst.store, fromBits(g.Type, st.Globals[i])); err != nil {
			return fmt.Errorf("set global %d: %w", g.Index, err)
		}
	}
	timeline.Mark(timeline.StateSet)
	return nil
}

// KeepsInstances reports whether instances of m stay with their pooled
// region when closed (Instance.Close): when its state is its memory and
// globals alone (rewrite.Info.Resettable).
func (m *Module) KeepsInstances() bool { return m.prep.Info.Resettable }

// takeKept takes the instance the region's previous owner left with it
// (Instance.Close) if it can become an instance of st: the same module,
// a state that fits it, and a memory no larger than the snapshot's (a
// memory cannot shrink). Any other is closed, in the background: closing
// a store is not free and the start does not need to wait for it.
func (m *Module) takeKept(region *engine.Region, st *engine.State) *Instance {
	c := region.Inherit(keptKey)
	if c == nil {
		return nil
	}
	if k, ok := c.(kept); ok && k.inst.m == m && m.prep.CheckState(st) == nil &&
		k.inst.mem.Size(k.inst.store) <= uint64(st.Pages) {
		return k.inst
	}
	go c.Close()
	return nil
}

// reset makes a kept instance a new instance over region, whose memory
// and globals the restore sets: it gets region (the same mapping in a new
// Region), cfg, a clock continuing st's, and a fresh sleeper and stderr;
// its WASI context is the fresh one Close gave it. It touches no page of
// the region (RestoreWhen runs it before the memory is filled). On error
// the instance is released; region is the caller's.
func (i *Instance) reset(region *engine.Region, cfg engine.InstanceConfig, st *engine.State) error {
	i.g.region = region
	if !i.g.grow(uint64(i.mem.DataSize(i.store))) {
		i.release()
		return fmt.Errorf("reuse instance: region refuses its memory's length: %w", errdefs.ErrInvalid)
	}
	i.g.clock = engine.NewClock(st.Nanotime)
	i.g.sleep = &engine.Sleeper{}
	i.g.stderr = &engine.TailBuffer{Max: 4096}
	i.cfg = cfg
	i.dead, i.closed = false, false
	return nil
}

// PrepareRestore compiles the restore module ahead of time and checks that
// a snapshot of pages wasm pages fits the module's declared memory.
func (m *Module) PrepareRestore(_ context.Context, pages uint32) error {
	_, err := m.restoreModule(pages)
	return err
}

// restoreModule returns the restore module, compiling it once: one module
// declaring the boot module's minimum memory serves snapshots of every
// size.
func (m *Module) restoreModule(pages uint32) (*wasmtime.Module, error) {
	if err := m.prep.CheckPages(pages); err != nil {
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
	wasm, err := m.prep.RestoreWasm(pages)
	if err != nil {
		return nil, err
	}
	rm, err := m.e.compile(wasm)
	if err != nil {
		return nil, fmt.Errorf("compile restore module: %w", err)
	}
	m.restore = rm
	return rm, nil
}

// guest is an instance's state that its host functions reach through the
// store.
type guest struct {
	region *engine.Region
	clock  *engine.Clock
	sleep  *engine.Sleeper
	stderr *engine.TailBuffer
}

// grow records a new memory length in the region; the region refuses (and
// remembers refusing) a grow past the cap.
func (g *guest) grow(size uint64) bool { return g.region.Reallocate(size) != nil }

// instantiate creates an instance of wm whose memory is region. On error
// region is freed.
func (m *Module) instantiate(wm *wasmtime.Module, region *engine.Region, cfg engine.InstanceConfig, clk *engine.Clock) (*Instance, error) {
	g := &guest{region: region, clock: clk, sleep: &engine.Sleeper{}, stderr: &engine.TailBuffer{Max: 4096}}
	store := wasmtime.NewStoreWithData(m.e.engine, g)
	store.SetWasi(wasmtime.NewWasiConfig())
	intr := capi.NewInterrupt(store)
	// No wasm runs during instantiation (reactors have no start
	// function), but a deadline of 0 would stop any.
	intr.Arm(math.MaxUint32)
	store.SetEpochDeadline(1)
	var wi *wasmtime.Instance
	err := capi.WithMemory(region.Reserved(), engine.GuardSize, g.grow, nil, func() error {
		var err error
		wi, err = m.e.linker.Instantiate(store, wm)
		return err
	})
	if err != nil {
		store.Close()
		intr.Free()
		region.Free()
		return nil, fmt.Errorf("instantiate: %w", err)
	}
	m.e.live.Add(1)
	inst := &Instance{m: m, store: store, wi: wi, g: g, intr: intr, cfg: cfg}
	var has int
	// engine.Prepare held the module to these signatures.
	for name, sig := range engine.Signatures {
		f := wi.GetFunc(store, name)
		if f == nil {
			continue
		}
		switch fn := capi.NewFunc(f, len(sig.Params)); name {
		case abi.ExportAlloc:
			inst.alloc, has = fn, has+1
		case abi.ExportHandle:
			inst.handle, has = fn, has+1
		default:
			inst.hooks = append(inst.hooks, namedFunc{name, fn})
		}
	}
	inst.abi = has == 2
	if ex := wi.GetExport(store, "memory"); ex != nil {
		inst.mem = ex.Memory()
	}
	for _, gl := range m.prep.Info.Globals {
		var x *wasmtime.Global
		if ex := wi.GetExport(store, gl.Export); ex != nil {
			x = ex.Global()
		}
		if x == nil {
			inst.Close(context.Background())
			return nil, fmt.Errorf("global %d is not exported as %q: %w", gl.Index, gl.Export, errdefs.ErrInvalid)
		}
		inst.globals = append(inst.globals, x)
	}
	if inst.mem == nil {
		inst.Close(context.Background())
		return nil, fmt.Errorf("module does not export its memory: %w", errdefs.ErrInvalid)
	}
	return inst, nil
}

// toBits and fromBits convert a global's value to and from the raw bits a
// State holds (wazero's encoding, so a snapshot restores on either engine).
func toBits(v wasmtime.Val) uint64 {
	switch v.Kind() {
	case wasmtime.KindI32:
		return uint64(uint32(v.I32()))
	case wasmtime.KindI64:
		return uint64(v.I64())
	case wasmtime.KindF32:
		return uint64(math.Float32bits(v.F32()))
	case wasmtime.KindF64:
		return math.Float64bits(v.F64())
	}
	return 0
}

func fromBits(typ byte, bits uint64) wasmtime.Val {
	switch typ {
	case 0x7e:
		return wasmtime.ValI64(int64(bits))
	case 0x7d:
		return wasmtime.ValF32(math.Float32frombits(uint32(bits)))
	case 0x7c:
		return wasmtime.ValF64(math.Float64frombits(bits))
	}
	return wasmtime.ValI32(int32(uint32(bits)))
}
