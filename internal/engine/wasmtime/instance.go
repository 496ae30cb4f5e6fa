//go:build cgo

package wasmtime

import (
	"context"
	"errors"
	"fmt"
	"math"
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
	alloc   *wasmtime.Func
	handle  *wasmtime.Func
	dead    bool
	closed  bool
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
	if i.alloc == nil || i.handle == nil {
		i.dead = true
		return nil, fmt.Errorf("module lacks the thaw ABI exports: %w", errdefs.ErrInvalid)
	}
	ctx, cancel := engine.Deadline(ctx, i.cfg, 0)
	defer cancel()
	in := req.AppendTo(nil)
	res, err := i.call(ctx, i.alloc, abi.ExportAlloc, int32(len(in)))
	if err != nil {
		return nil, err
	}
	ptr, _ := res.(int32)
	buf := i.g.mem(uint32(ptr), uint32(len(in)))
	if buf == nil {
		i.dead = true
		return nil, fmt.Errorf("guest request buffer [%d,+%d) is outside its memory: %w", uint32(ptr), len(in), errdefs.ErrGuest)
	}
	copy(buf, in)
	res, err = i.call(ctx, i.handle, abi.ExportHandle, ptr, int32(len(in)))
	if err != nil {
		return nil, err
	}
	packed, _ := res.(int64)
	rptr, rlen := uint32(uint64(packed)>>32), uint32(packed)
	out := i.g.mem(rptr, rlen)
	if out == nil {
		i.dead = true
		return nil, fmt.Errorf("guest response [%d,+%d) is outside its memory: %w", rptr, rlen, errdefs.ErrGuest)
	}
	resp, err := abi.DecodeResponse(out)
	if err != nil {
		i.dead = true
		return nil, err
	}
	return resp, nil
}

// callWithin runs the export name, which takes and returns nothing, within
// timeout (0: the invocation timeout).
func (i *Instance) callWithin(ctx context.Context, name string, timeout time.Duration) error {
	fn := i.wi.GetFunc(i.store, name)
	if fn == nil {
		return fmt.Errorf("module does not export %q: %w", name, errdefs.ErrInvalid)
	}
	ctx, cancel := engine.Deadline(ctx, i.cfg, timeout)
	defer cancel()
	_, err := i.call(ctx, fn, name)
	return err
}

// call runs fn until ctx is done: at its deadline, or as soon as it is
// cancelled. The store's epoch deadline stays one tick ahead and the
// interrupt callback (capi.Interrupt) checks at every tick whether the call
// was cancelled or has used its ticks: the deadline's, rounded up, plus one
// for the tick already under way, so a guest is never stopped before its
// deadline. ctx's deadline cancels the call too (context.AfterFunc), so the
// tick count is only a backstop. Host sleeps end when ctx is done.
func (i *Instance) call(ctx context.Context, fn *wasmtime.Func, name string, args ...any) (any, error) {
	if ctx.Err() != nil {
		return nil, i.fault(ctx, name, ctx.Err())
	}
	ticks := uint64(math.MaxUint32)
	if d, ok := ctx.Deadline(); ok {
		ticks = uint64((max(time.Until(d), 0)+EpochTick-1)/EpochTick) + 1
	}
	// The callback first runs one tick from now and stops the guest when
	// no ticks are left.
	call := i.intr.Arm(ticks - 1)
	i.store.SetEpochDeadline(1)
	defer context.AfterFunc(ctx, func() { i.intr.Cancel(call) })()
	defer i.g.sleep.During(ctx)()
	res, err := fn.Call(i.store, args...)
	if err != nil {
		return nil, i.fault(ctx, name, err)
	}
	return res, nil
}

// fault classifies an error of a guest call and marks the instance dead.
func (i *Instance) fault(ctx context.Context, fn string, err error) error {
	i.dead = true
	if i.intr.Tripped() || ctx.Err() != nil {
		if errors.Is(ctx.Err(), context.Canceled) {
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
	var werr *wasmtime.Error
	if errors.As(err, &werr) {
		if code, ok := werr.ExitStatus(); ok {
			return fmt.Errorf("guest exited with status %d", code)
		}
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

// Close stops the instance and releases its memory.
func (i *Instance) Close(context.Context) {
	i.dead = true
	if i.closed {
		return
	}
	i.closed = true
	i.store.Close()
	i.intr.Free()
	i.g.region.Free()
	i.m.e.live.Add(-1)
}
