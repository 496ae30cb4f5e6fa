package wazero

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/sys"

	"github.com/thaw-run/thaw/internal/abi"
	"github.com/thaw-run/thaw/internal/engine"
	"github.com/thaw-run/thaw/internal/errdefs"
)

// Instance is one running sandbox of a function (see engine.Instance).
type Instance struct {
	m      *Module
	mod    api.Module
	region *engine.Region
	clock  *engine.Clock
	cfg    engine.InstanceConfig
	stderr *engine.TailBuffer
	sleep  *engine.Sleeper
	alloc  api.Function
	handle api.Function
	dead   bool
}

// Region returns the instance's memory region.
func (i *Instance) Region() *engine.Region { return i.region }

// Dead reports whether the instance must be discarded.
func (i *Instance) Dead() bool { return i.dead }

// Invoke serves one request.
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
	defer i.sleep.During(ctx, time.Time{})()
	in := req.AppendTo(nil)
	res, err := i.alloc.Call(ctx, uint64(len(in)))
	if err != nil {
		return nil, i.fault(abi.ExportAlloc, err)
	}
	ptr := uint32(res[0])
	mem := i.mod.Memory()
	if !mem.Write(ptr, in) {
		i.dead = true
		return nil, fmt.Errorf("guest request buffer [%d,+%d) is outside its memory: %w", ptr, len(in), errdefs.ErrGuest)
	}
	res, err = i.handle.Call(ctx, uint64(ptr), uint64(len(in)))
	if err != nil {
		return nil, i.fault(abi.ExportHandle, err)
	}
	rptr, rlen := uint32(res[0]>>32), uint32(res[0])
	out, ok := mem.Read(rptr, rlen)
	if !ok {
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

// callWithin runs an export that takes and returns nothing, within timeout
// (0: the invocation timeout).
func (i *Instance) callWithin(ctx context.Context, name string, timeout time.Duration) error {
	fn := i.mod.ExportedFunction(name)
	if fn == nil {
		return fmt.Errorf("module does not export %q: %w", name, errdefs.ErrInvalid)
	}
	ctx, cancel := engine.Deadline(ctx, i.cfg, timeout)
	defer cancel()
	defer i.sleep.During(ctx, time.Time{})()
	if _, err := fn.Call(ctx); err != nil {
		return i.fault(name, err)
	}
	return nil
}

// fault classifies an error from a guest call and marks the instance dead.
func (i *Instance) fault(fn string, err error) error {
	i.dead = true
	var exit *sys.ExitError
	if errors.As(err, &exit) {
		switch exit.ExitCode() {
		case sys.ExitCodeDeadlineExceeded:
			return fmt.Errorf("%s: guest ran past its timeout and was killed: %w", fn, errdefs.ErrTimeout)
		case sys.ExitCodeContextCanceled:
			return fmt.Errorf("%s: %w", fn, context.Canceled)
		}
	}
	return engine.GuestFault(fn, err, i.stderr, i.region)
}

// BeforeSnapshot runs the guest's thaw_before_snapshot export, if any.
func (i *Instance) BeforeSnapshot(ctx context.Context) error {
	_, err := i.m.p.Hook(ctx, i.callWithin, abi.ExportBeforeSnapshot, "before-snapshot hook")
	return err
}

// Idle runs the guest's thaw_idle export, if any.
func (i *Instance) Idle(ctx context.Context) (bool, error) {
	return i.m.p.Hook(ctx, i.callWithin, abi.ExportIdle, "idle hook")
}

// Capture returns the instance's state and its live linear memory.
func (i *Instance) Capture() (*engine.State, []byte) {
	st := &engine.State{Nanotime: i.clock.Nanotime()}
	mem := i.mod.Memory()
	st.Pages = mem.Size() / engine.WasmPageSize
	for _, g := range i.m.p.Info.Globals {
		st.Globals = append(st.Globals, i.mod.ExportedGlobal(g.Export).Get())
	}
	buf, _ := mem.Read(0, mem.Size())
	return st, buf
}

// Close stops the instance and releases its memory.
func (i *Instance) Close(ctx context.Context) {
	i.dead = true
	_ = i.mod.Close(ctx)
}
