//go:build cgo

package wasmtime

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/bytecodealliance/wasmtime-go/v39"

	"github.com/thaw-run/thaw/internal/abi"
	"github.com/thaw-run/thaw/internal/engine"
	"github.com/thaw-run/thaw/internal/engine/wasmtime/capi"
	"github.com/thaw-run/thaw/internal/errdefs"
)

// Instance is one running sandbox of a function. It is not safe for
// concurrent use: an instance serves one request at a time.
type Instance struct {
	m       *Module
	store   *wasmtime.Store
	wi      *wasmtime.Instance
	g       *guest
	intr    *capi.Interrupt
	cfg     engine.InstanceConfig
	mem     *wasmtime.Memory
	globals []*wasmtime.Global
	// alloc and handle serve requests (abi: the module has both); hooks
	// are the other exports of engine.Signatures it has.
	alloc, handle capi.Func
	abi           bool
	hooks         []namedFunc
	dead          bool
	closed        bool
}

// Region returns the instance's memory region.
func (i *Instance) Region() *engine.Region { return i.g.region }

// Dead reports whether the instance faulted or was killed and must be
// discarded.
func (i *Instance) Dead() bool { return i.dead }

// Invoke serves one request. Any error other than errdefs.ErrInvalid leaves
// the instance dead.
func (i *Instance) Invoke(ctx context.Context, req *abi.Request) (*abi.Response, error) {
	if i.dead {
		return nil, fmt.Errorf("instance is dead: %w", errdefs.ErrGuest)
	}
	if !i.abi {
		i.dead = true
		return nil, fmt.Errorf("module lacks the thaw ABI exports: %w", errdefs.ErrInvalid)
	}
	r := i.begin(ctx, 0)
	defer r.end()
	in := req.AppendTo(nil)
	res, err := i.call(&r, i.alloc, abi.ExportAlloc, int32(len(in)))
	if err != nil {
		return nil, err
	}
	ptr := int32(res)
	if !i.g.write(uint32(ptr), in) {
		i.dead = true
		return nil, fmt.Errorf("guest request buffer [%d,+%d) is outside its memory: %w", uint32(ptr), len(in), errdefs.ErrGuest)
	}
	packed, err := i.call(&r, i.handle, abi.ExportHandle, ptr, int32(len(in)))
	if err != nil {
		return nil, err
	}
	rptr, rlen := uint32(uint64(packed)>>32), uint32(packed)
	src := i.g.span(uint64(rptr), uint64(rlen))
	if src == nil {
		i.dead = true
		return nil, fmt.Errorf("guest response [%d,+%d) is outside its memory: %w", rptr, rlen, errdefs.ErrGuest)
	}
	out := make([]byte, rlen)
	capi.Copy(out, src)
	resp, err := abi.DecodeOwnedResponse(out)
	if err != nil {
		i.dead = true
		return nil, err
	}
	return resp, nil
}

// namedFunc is an export the engine calls by name (callWithin).
type namedFunc struct {
	name string
	fn   capi.Func
}

// callWithin runs the export name, which takes and returns nothing, within
// timeout (0: the invocation timeout).
func (i *Instance) callWithin(ctx context.Context, name string, timeout time.Duration) error {
	k := slices.IndexFunc(i.hooks, func(h namedFunc) bool { return h.name == name })
	if k < 0 {
		return fmt.Errorf("module does not export %q: %w", name, errdefs.ErrInvalid)
	}
	r := i.begin(ctx, timeout)
	defer r.end()
	_, err := i.call(&r, i.hooks[k].fn, name)
	return err
}

// run is the guest calls of one invocation or hook: its context, its
// deadline (zero: none), and its number, which every call of it runs as
// (capi.Interrupt.Call) and which cancellation stops.
type run struct {
	ctx      context.Context
	deadline time.Time
	call     uint64
	stop     func() bool // stops the cancellation's AfterFunc; nil: none
	sleeps   func()      // ends the sleeper's hold on ctx
}

// begin starts a run within timeout (engine.DeadlineTime). Nothing is
// derived from ctx: the deadline is a number of epoch ticks (call), and
// ctx's cancellation, if it can be cancelled at all, stops the run's calls
// through one context.AfterFunc.
func (i *Instance) begin(ctx context.Context, timeout time.Duration) run {
	r := run{ctx: ctx, deadline: engine.DeadlineTime(ctx, i.cfg, timeout), call: i.intr.Next()}
	if ctx.Done() != nil {
		call := r.call
		r.stop = context.AfterFunc(ctx, func() { i.intr.Cancel(call) })
	}
	r.sleeps = i.g.sleep.During(ctx, r.deadline)
	return r
}

// end releases what begin set up.
func (r *run) end() {
	if r.stop != nil {
		r.stop()
	}
	r.sleeps()
}

// call runs fn as part of r until r's context is done or its deadline
// passes, and returns the raw bits of fn's result. The store's epoch
// deadline stays one tick ahead and the interrupt callback
// (capi.Interrupt) checks at every tick whether the run was cancelled or
// the call has used its ticks: the time to the deadline, rounded up, plus
// one for the tick already under way, so a guest is never stopped before
// its deadline, and at most two ticks (plus the time to its next check)
// after it. Host sleeps end at the deadline or when ctx is done.
func (i *Instance) call(r *run, fn capi.Func, name string, args ...int32) (int64, error) {
	ticks := uint64(math.MaxUint32)
	if !r.deadline.IsZero() {
		left := time.Until(r.deadline)
		if left <= 0 {
			return 0, i.fault(r, name, context.DeadlineExceeded)
		}
		ticks = uint64((left+EpochTick-1)/EpochTick) + 1
	}
	if err := r.ctx.Err(); err != nil {
		return 0, i.fault(r, name, err)
	}
	// The callback first runs one tick from now and stops the guest when
	// no ticks are left.
	res, err := i.intr.Call(fn, r.call, ticks-1, args...)
	if err != nil {
		return 0, i.fault(r, name, err)
	}
	return res, nil
}

// fault classifies an error of a guest call of r and marks the instance
// dead.
func (i *Instance) fault(r *run, fn string, err error) error {
	i.dead = true
	late := !r.deadline.IsZero() && !time.Now().Before(r.deadline)
	if i.intr.Tripped() || r.ctx.Err() != nil || late {
		if errors.Is(r.ctx.Err(), context.Canceled) {
			return fmt.Errorf("%s: %w", fn, context.Canceled)
		}
		return fmt.Errorf("%s: guest ran past its timeout and was killed: %w", fn, errdefs.ErrTimeout)
	}
	return engine.GuestFault(fn, brief(err), i.g.stderr, i.g.region)
}

// brief shortens a wasmtime error to its cause: wasmtime's text of a trap
// carries the wasm backtrace and a native one, many lines that the guest's
// stderr, reported beside it, explains better.
func brief(err error) error {
	var exit *capi.ExitError
	if errors.As(err, &exit) {
		return exit
	}
	msg := err.Error()
	if _, cause, ok := strings.Cut(msg, "Caused by:"); ok {
		msg = cause
	}
	msg = strings.TrimSpace(msg)
	if first, _, ok := strings.Cut(msg, "\n"); ok {
		msg = first
	}
	return errors.New(msg)
}

// BeforeSnapshot runs the guest's thaw_before_snapshot export, if any.
func (i *Instance) BeforeSnapshot(ctx context.Context) error {
	_, err := i.m.prep.Hook(ctx, i.callWithin, abi.ExportBeforeSnapshot, "before-snapshot hook")
	return err
}

// Idle runs the guest's thaw_idle export, if any, and reports whether it
// exists.
func (i *Instance) Idle(ctx context.Context) (bool, error) {
	return i.m.prep.Hook(ctx, i.callWithin, abi.ExportIdle, "idle hook")
}

// Capture returns the instance's state and its linear memory, which is the
// live region, not a copy.
func (i *Instance) Capture() (*engine.State, []byte) {
	st := &engine.State{Nanotime: i.g.clock.Nanotime()}
	size := i.mem.DataSize(i.store)
	st.Pages = uint32(size / engine.WasmPageSize)
	for _, g := range i.globals {
		st.Globals = append(st.Globals, toBits(g.Get(i.store)))
	}
	return st, i.g.region.Bytes()[:size]
}

// Close stops the instance and releases its memory. An instance that
// never failed, of a module whose state is its memory and globals alone
// (rewrite.Info.Resettable), in a pooled region, stays with the region for
// the next restore of the same module in it (Module.RestoreWhen), which
// reuses it instead of instantiating the module again.
func (i *Instance) Close(context.Context) {
	if i.closed {
		i.dead = true
		return
	}
	keep := !i.dead && i.m.KeepsInstances() && i.g.region.Pooled()
	i.dead, i.closed = true, true
	if keep {
		// A new WASI context now, off the next restore's start (about
		// 10 µs there), so that no descriptor this owner closed or
		// opened carries over.
		i.store.SetWasi(wasmtime.NewWasiConfig())
		i.g.region.Bequeath(keptKey, kept{i})
	} else {
		i.release()
	}
	i.g.region.Free()
}

// release frees what wasmtime holds for the instance (not its region).
func (i *Instance) release() {
	i.store.Close()
	i.intr.Free()
	i.m.e.live.Add(-1)
}

// keptKey is the key of a closed instance among a region's bequests
// (engine.Region.Bequeath).
const keptKey = "wasmtime.instance"

// kept is a closed instance left with its pooled region for the region's
// next restore; the region closes it if no restore takes it.
type kept struct{ inst *Instance }

// Close releases the instance for good.
func (k kept) Close() error {
	k.inst.release()
	return nil
}
