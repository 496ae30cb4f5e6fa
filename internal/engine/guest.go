package engine

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/thaw-run/thaw/internal/abi"
	"github.com/thaw-run/thaw/internal/errdefs"
	"github.com/thaw-run/thaw/internal/rewrite"
)

// Prepared is a function module made ready for any engine: its boot module
// (every global exported, so it can be captured and set) and what the
// rewrite learned of it.
type Prepared struct {
	// Boot is the instrumented module an engine compiles for boots.
	Boot []byte
	// Info describes the module: its exports, globals and memory limits.
	Info *rewrite.Info
}

// Prepare instruments wasm for capture and checks that it is a thaw
// reactor. A module that is not valid wasm, or lacks the ABI exports, fails
// with errdefs.ErrInvalid.
func Prepare(wasm []byte) (*Prepared, error) {
	boot, info, err := rewrite.Instrument(wasm)
	if err != nil {
		return nil, err
	}
	for _, name := range []string{"_initialize", abi.ExportAlloc, abi.ExportHandle} {
		if !slices.Contains(info.Exports, name) {
			return nil, fmt.Errorf("module does not export %q (not a thaw reactor; build it with `thaw build`): %w", name, errdefs.ErrInvalid)
		}
	}
	for name, want := range Signatures {
		got, ok := info.Types[name]
		if ok && (!slices.Equal(got.Params, want.Params) || !slices.Equal(got.Results, want.Results)) {
			return nil, fmt.Errorf("module exports %q with a signature other than the thaw ABI's: %w", name, errdefs.ErrInvalid)
		}
	}
	return &Prepared{Boot: boot, Info: info}, nil
}

// Signatures are the signatures of the exports an engine calls (the thaw
// ABI's, internal/abi, and the reactor's _initialize). Prepare holds every
// module that exports one of these names to its signature, so an engine
// may call them without checking types at each call (wasmtime's does).
var Signatures = map[string]rewrite.FuncType{
	"_initialize":            {},
	abi.ExportAlloc:          {Params: []byte{i32}, Results: []byte{i32}},
	abi.ExportHandle:         {Params: []byte{i32, i32}, Results: []byte{i64}},
	abi.ExportBeforeSnapshot: {},
	abi.ExportOnRestore:      {},
	abi.ExportIdle:           {},
}

// The value types of Signatures, in the binary encoding.
const (
	i32 = 0x7f
	i64 = 0x7e
)

// Exports reports whether the module exports name.
func (p *Prepared) Exports(name string) bool { return slices.Contains(p.Info.Exports, name) }

// RestoreWasm derives the restore module after checking that a snapshot of
// pages wasm pages fits the module's declared memory. One restore module
// serves snapshots of every size: it declares the boot module's minimum
// memory and Restore grows it to the snapshot's size. (A module per size
// would recompile the whole program, seconds of CPU for a Go guest, for
// every live-instance checkpoint whose heap had grown.)
func (p *Prepared) RestoreWasm(pages uint32) ([]byte, error) {
	if err := p.CheckPages(pages); err != nil {
		return nil, err
	}
	wasm, err := rewrite.ForRestore(p.Boot, p.Info.MemoryMinPages)
	if err != nil {
		return nil, fmt.Errorf("derive restore module: %w", err)
	}
	return wasm, nil
}

// OneModule reports whether the restore module also boots the function
// (rewrite.Info.OneModule): an engine then compiles that one module for
// both, instantiates it for a boot and writes the data segments in with
// WriteData. A deploy then compiles once, not twice, and a first deploy
// costs half the compilation.
func (p *Prepared) OneModule() bool { return p.Info.OneModule }

// BootWasm is the module an engine compiles to boot the function: the
// restore module at the boot module's minimum memory for a OneModule
// function (the engine then uses it for restores too), else the boot
// module.
func (p *Prepared) BootWasm() ([]byte, error) {
	if p.OneModule() {
		return p.RestoreWasm(p.Info.MemoryMinPages)
	}
	return p.Boot, nil
}

// WriteData writes the module's active data segments into region, in
// order, as instantiating the boot module would: the boot of a OneModule
// function, after instantiating the restore module over a fresh region and
// before any guest code runs. A segment past the memory's length fails
// with errdefs.ErrInvalid, as the instantiation would.
func (p *Prepared) WriteData(region *Region) error {
	size, mem := region.Size(), region.Bytes()
	for i, s := range p.Info.Data {
		end := uint64(s.Offset) + uint64(len(s.Bytes))
		if end > size {
			return fmt.Errorf("data segment %d (%d bytes at %d) lies past the memory's %d bytes: %w", i, len(s.Bytes), s.Offset, size, errdefs.ErrInvalid)
		}
		copy(mem[s.Offset:end], s.Bytes)
	}
	return nil
}

// CheckPages checks that a snapshot of pages wasm pages fits the module's
// declared memory.
func (p *Prepared) CheckPages(pages uint32) error {
	switch {
	case pages < p.Info.MemoryMinPages:
		return fmt.Errorf("snapshot has %d pages, fewer than the module's minimum %d: %w", pages, p.Info.MemoryMinPages, errdefs.ErrInvalid)
	case p.Info.MemoryMaxPages != nil && pages > *p.Info.MemoryMaxPages:
		return fmt.Errorf("snapshot has %d pages, module allows at most %d: %w", pages, *p.Info.MemoryMaxPages, errdefs.ErrInvalid)
	}
	return nil
}

// CheckState checks that st carries one value per global of the module.
func (p *Prepared) CheckState(st *State) error {
	if len(st.Globals) != len(p.Info.Globals) {
		return fmt.Errorf("snapshot has %d globals, module %d: %w", len(st.Globals), len(p.Info.Globals), errdefs.ErrCorrupt)
	}
	return nil
}

// Clock is an instance's monotonic clock. A restored instance continues from
// the nanotime captured in its snapshot, so the guest's monotonic time never
// runs backwards across a restore, whatever host, process or engine
// restores it.
type Clock struct {
	base  int64
	start time.Time
}

// NewClock starts a clock at base nanoseconds (0 for a boot, State.Nanotime
// for a restore).
func NewClock(base int64) *Clock { return &Clock{base: base, start: time.Now()} }

// Nanotime is the guest's monotonic time.
func (c *Clock) Nanotime() int64 { return c.base + int64(time.Since(c.start)) }

// Sleeper is an instance's nanosleep, which WASI's poll_oneoff calls for
// clock subscriptions (Go's time.Sleep and its scheduler's idle wait reach
// it). A host call is out of reach of an engine's deadline mechanism (a
// guest asking for 2^63 ns would hold its goroutine and its instance slot
// for ever), so the sleep also ends when the current call's context is
// done or its deadline passes; the guest then resumes and the engine stops
// it at its next check.
type Sleeper struct {
	mu       sync.Mutex
	done     <-chan struct{} // the running call's ctx.Done(); nil between calls
	deadline time.Time       // the running call's deadline; zero: ctx's only
}

// During makes sleeps end when ctx is done or at deadline (zero: only when
// ctx is done), until the returned func runs.
func (s *Sleeper) During(ctx context.Context, deadline time.Time) func() {
	s.mu.Lock()
	s.done, s.deadline = ctx.Done(), deadline
	s.mu.Unlock()
	return func() {
		s.mu.Lock()
		s.done, s.deadline = nil, time.Time{}
		s.mu.Unlock()
	}
}

// Sleep sleeps ns nanoseconds, or until the running call's context is done
// or its deadline passes.
func (s *Sleeper) Sleep(ns int64) {
	s.mu.Lock()
	done, deadline := s.done, s.deadline
	s.mu.Unlock()
	d := time.Duration(ns)
	if !deadline.IsZero() {
		d = min(d, time.Until(deadline))
	}
	// Guest code only runs inside a call, which always has a context;
	// one that can never be done and has no deadline gets no sleep, so
	// that nothing blocks for ever.
	if d <= 0 || (done == nil && deadline.IsZero()) {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-done:
	}
}

// TailBuffer keeps the last Max bytes written: the guest's stderr, which
// holds the Go runtime's panic and fatal-error text or a script's uncaught
// exception.
type TailBuffer struct {
	// Max is the number of bytes kept.
	Max int
	mu  sync.Mutex
	b   []byte
}

// Write keeps the tail of p.
func (t *TailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > t.Max {
		t.b = append(t.b[:0], t.b[len(t.b)-t.Max:]...)
	}
	return len(p), nil
}

// Take returns what was kept and empties the buffer.
func (t *TailBuffer) Take() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := string(t.b)
	t.b = t.b[:0]
	return s
}

// GuestFault classifies the error err of the guest call fn that the engine
// did not recognise as a timeout or a cancellation: the guest overran its
// memory cap (the region refused a grow, or the guest's runtime said so on
// stderr), or it trapped or panicked (errdefs.ErrGuest, with the first lines
// of its stderr).
func GuestFault(fn string, err error, stderr *TailBuffer, region *Region) error {
	msg := strings.TrimSpace(stderr.Take())
	if region.grewPastLimit() || strings.Contains(msg, "out of memory") {
		return fmt.Errorf("%s: guest exceeded its memory cap of %d MiB: %w", fn, region.Limit()>>20, errdefs.ErrGuest)
	}
	if msg != "" {
		return fmt.Errorf("%s: %v: %s: %w", fn, err, firstLines(msg, 6), errdefs.ErrGuest)
	}
	return fmt.Errorf("%s: %v: %w", fn, err, errdefs.ErrGuest)
}

func firstLines(s string, n int) string {
	lines := strings.SplitN(s, "\n", n+1)
	if len(lines) > n {
		lines = lines[:n]
	}
	return strings.Join(lines, " | ")
}

// Deadline derives the context of one guest call: timeout if positive, else
// the instance's invocation timeout cfg.Timeout, else only ctx's own.
func Deadline(ctx context.Context, cfg InstanceConfig, timeout time.Duration) (context.Context, context.CancelFunc) {
	if timeout = callTimeout(cfg, timeout); timeout > 0 {
		return context.WithTimeout(ctx, timeout)
	}
	return context.WithCancel(ctx)
}

// DeadlineTime is Deadline's deadline without the context: the earlier of
// ctx's and now plus the call's timeout (as Deadline chooses it), or zero
// if there is neither. An engine that enforces deadlines itself
// (wasmtime's epochs) needs no derived context, whose timer and
// registration with ctx a call would pay for.
func DeadlineTime(ctx context.Context, cfg InstanceConfig, timeout time.Duration) time.Time {
	d, _ := ctx.Deadline()
	if timeout = callTimeout(cfg, timeout); timeout > 0 {
		if t := time.Now().Add(timeout); d.IsZero() || t.Before(d) {
			d = t
		}
	}
	return d
}

// callTimeout is timeout if positive, else cfg.Timeout.
func callTimeout(cfg InstanceConfig, timeout time.Duration) time.Duration {
	if timeout <= 0 {
		return cfg.Timeout
	}
	return timeout
}

// Caller runs a guest export that takes and returns nothing within timeout
// (0: the instance's invocation timeout): an engine's way into its guest
// for initialisation and hooks.
type Caller func(ctx context.Context, name string, timeout time.Duration) error

// Hook runs the guest's hook export name (thaw_before_snapshot,
// thaw_on_restore, thaw_idle) through call if the module exports it, and
// reports whether it does. An error says which hook failed (what).
func (p *Prepared) Hook(ctx context.Context, call Caller, name, what string) (bool, error) {
	if !p.Exports(name) {
		return false, nil
	}
	if err := call(ctx, name, 0); err != nil {
		return true, fmt.Errorf("%s: %w", what, err)
	}
	return true, nil
}

// Boot is the boot sequence every engine's Module.Boot follows: a fresh
// region of cfg.MemoryLimit, instantiate over it (the region is freed if
// that fails), then initialise (the reactor's _initialize within
// cfg.InitTimeout), each stage timed. A failed initialisation closes the
// instance.
func Boot[I Instance](ctx context.Context, cfg InstanceConfig, instantiate func(*Region) (I, error), call func(I) Caller) (Instance, BootStats, error) {
	var st BootStats
	region, err := NewRegion(cfg.MemoryLimit)
	if err != nil {
		return nil, st, err
	}
	t0 := time.Now()
	inst, err := instantiate(region)
	if err != nil {
		region.Free()
		return nil, st, err
	}
	st.Instantiate = time.Since(t0)
	t1 := time.Now()
	if err := call(inst)(ctx, "_initialize", cfg.InitTimeout); err != nil {
		inst.Close(ctx)
		return nil, st, fmt.Errorf("initialise: %w", err)
	}
	st.Init = time.Since(t1)
	return inst, st, nil
}
