package engine

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/sys"

	"github.com/thaw-run/thaw/internal/abi"
	"github.com/thaw-run/thaw/internal/errdefs"
)

// WasmPageSize is the size of a WebAssembly memory page.
const WasmPageSize = 65536

// State is everything of an instance that lives outside its linear memory
// and must be captured to resume it exactly.
type State struct {
	// Pages is the linear memory's length in wasm pages.
	Pages uint32
	// Globals holds the raw bits of every defined global, in module order.
	Globals []uint64
	// Nanotime is the guest's monotonic clock at capture.
	Nanotime int64
}

// Instance is one running sandbox of a function. It is not safe for
// concurrent use: an instance serves one request at a time.
type Instance struct {
	m      *Module
	mod    api.Module
	region *Region
	clock  *clock
	cfg    InstanceConfig
	stderr *tailBuffer
	sleep  *sleeper
	alloc  api.Function
	handle api.Function
	dead   bool
}

// Region returns the instance's memory region.
func (i *Instance) Region() *Region { return i.region }

// Dead reports whether the instance faulted or was killed and must be
// discarded.
func (i *Instance) Dead() bool { return i.dead }

// Invoke serves one request. Any error other than errdefs.ErrInvalid leaves
// the instance dead: a guest that trapped, panicked, overran its deadline or
// its memory cap is never reused.
func (i *Instance) Invoke(ctx context.Context, req *abi.Request) (*abi.Response, error) {
	if i.dead {
		return nil, fmt.Errorf("instance is dead: %w", errdefs.ErrGuest)
	}
	if i.alloc == nil || i.handle == nil {
		i.dead = true
		return nil, fmt.Errorf("module lacks the thaw ABI exports: %w", errdefs.ErrInvalid)
	}
	ctx, cancel := i.deadline(ctx)
	defer cancel()
	defer i.sleep.during(ctx)()
	in := req.AppendTo(nil)
	res, err := i.alloc.Call(ctx, uint64(len(in)))
	if err != nil {
		return nil, i.fault(ctx, "thaw_alloc", err)
	}
	ptr := uint32(res[0])
	mem := i.mod.Memory()
	if !mem.Write(ptr, in) {
		i.dead = true
		return nil, fmt.Errorf("guest request buffer [%d,+%d) is outside its memory: %w", ptr, len(in), errdefs.ErrGuest)
	}
	res, err = i.handle.Call(ctx, uint64(ptr), uint64(len(in)))
	if err != nil {
		return nil, i.fault(ctx, "thaw_handle", err)
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

// call runs an export that takes and returns nothing.
func (i *Instance) call(ctx context.Context, name string) error {
	return i.callWithin(ctx, name, 0)
}

// callWithin is call with a timeout other than the invocation timeout.
func (i *Instance) callWithin(ctx context.Context, name string, timeout time.Duration) error {
	fn := i.mod.ExportedFunction(name)
	if fn == nil {
		return fmt.Errorf("module does not export %q: %w", name, errdefs.ErrInvalid)
	}
	var cancel context.CancelFunc
	if timeout > 0 {
		ctx, cancel = context.WithTimeout(ctx, timeout)
	} else {
		ctx, cancel = i.deadline(ctx)
	}
	defer cancel()
	defer i.sleep.during(ctx)()
	if _, err := fn.Call(ctx); err != nil {
		return i.fault(ctx, name, err)
	}
	return nil
}

func (i *Instance) deadline(ctx context.Context) (context.Context, context.CancelFunc) {
	if i.cfg.Timeout > 0 {
		return context.WithTimeout(ctx, i.cfg.Timeout)
	}
	return context.WithCancel(ctx)
}

// fault classifies an error from a guest call and marks the instance dead.
func (i *Instance) fault(ctx context.Context, fn string, err error) error {
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
	msg := strings.TrimSpace(i.stderr.take())
	if i.region.grewPastLimit() || strings.Contains(msg, "out of memory") {
		return fmt.Errorf("%s: guest exceeded its memory cap of %d MiB: %w", fn, i.region.Limit()>>20, errdefs.ErrGuest)
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

// BeforeSnapshot runs the guest's thaw_before_snapshot export, if it has
// one, on an idle instance about to be captured. An error (a trap, the
// time limit) leaves the instance unfit to snapshot.
func (i *Instance) BeforeSnapshot(ctx context.Context) error {
	if i.mod.ExportedFunction(abi.ExportBeforeSnapshot) == nil {
		return nil
	}
	if err := i.call(ctx, abi.ExportBeforeSnapshot); err != nil {
		return fmt.Errorf("before-snapshot hook: %w", err)
	}
	return nil
}

// CaptureDeploy takes a booted instance's deploy snapshot: it runs the
// guest's thaw_before_snapshot (BeforeSnapshot), then captures it
// (Capture). It is the one sequence the worker's deploy and the benchmarks
// that measure a deploy snapshot share, so that a benchmark restores what
// production restores. An error leaves the instance unfit to snapshot.
func (i *Instance) CaptureDeploy(ctx context.Context) (*State, []byte, error) {
	if err := i.BeforeSnapshot(ctx); err != nil {
		return nil, nil, err
	}
	st, mem := i.Capture()
	return st, mem, nil
}

// Idle runs the guest's thaw_idle export, if it has one, on an instance
// that has just served a request and is not serving another. It reports
// whether the export exists. An error (a trap, the time limit) leaves the
// instance unfit to serve.
func (i *Instance) Idle(ctx context.Context) (bool, error) {
	if i.mod.ExportedFunction(abi.ExportIdle) == nil {
		return false, nil
	}
	if err := i.call(ctx, abi.ExportIdle); err != nil {
		return true, fmt.Errorf("idle hook: %w", err)
	}
	return true, nil
}

// Capture returns the instance's state and its linear memory. The memory is
// the live region, not a copy: capture it between requests and persist it
// before the instance runs again.
func (i *Instance) Capture() (*State, []byte) {
	st := &State{Nanotime: i.clock.nanotime()}
	mem := i.mod.Memory()
	st.Pages = mem.Size() / WasmPageSize
	for _, g := range i.m.info.Globals {
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
