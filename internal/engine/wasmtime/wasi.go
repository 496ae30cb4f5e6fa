//go:build cgo

package wasmtime

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"io"
	"time"

	"github.com/bytecodealliance/wasmtime-go/v39"
)

// wasiModule is the import module of WASI preview 1.
const wasiModule = "wasi_snapshot_preview1"

// WASI errno values.
const (
	errnoSuccess = 0
	errnoBadf    = 8
	errnoFault   = 21
	errnoInval   = 28
)

// newLinker defines the imports every instance gets: wasmtime's WASI
// preview 1 over an empty context (no arguments, no environment, no
// preopened directories, so every path call fails), with the calls whose
// behaviour thaw decides replaced by Go host functions:
//
//   - clock_time_get: the monotonic clock continues the snapshot's
//     (State.Nanotime), so a restored guest never sees time go backwards;
//     wasmtime's would restart from the host's.
//   - poll_oneoff: clock subscriptions sleep until the call's deadline at
//     the latest; wasmtime's sleeps in the thread, out of reach of epoch
//     interruption, which only stops wasm code.
//   - random_get: crypto/rand, read at each call, so clones of one
//     snapshot never share a random stream.
//   - fd_write: stderr is kept (its tail explains a panic), stdout is
//     discarded.
//
// What remains from wasmtime (fd_fdstat_get, proc_exit, sched_yield, the
// path and socket calls that have nothing to act on) behaves as wazero's
// configuration does.
func newLinker(e *wasmtime.Engine) (*wasmtime.Linker, error) {
	l := wasmtime.NewLinker(e)
	if err := l.DefineWasi(); err != nil {
		return nil, fmt.Errorf("define WASI: %w", err)
	}
	l.AllowShadowing(true)
	i32, i64 := wasmtime.NewValType(wasmtime.KindI32), wasmtime.NewValType(wasmtime.KindI64)
	for _, f := range []struct {
		name   string
		params []*wasmtime.ValType
		fn     func(g *guest, args []wasmtime.Val) int32
	}{
		{"clock_time_get", []*wasmtime.ValType{i32, i64, i32}, clockTimeGet},
		{"poll_oneoff", []*wasmtime.ValType{i32, i32, i32, i32}, pollOneoff},
		{"random_get", []*wasmtime.ValType{i32, i32}, randomGet},
		{"fd_write", []*wasmtime.ValType{i32, i32, i32, i32}, fdWrite},
	} {
		fn := f.fn
		err := l.FuncNew(wasiModule, f.name, wasmtime.NewFuncType(f.params, []*wasmtime.ValType{i32}),
			func(c *wasmtime.Caller, args []wasmtime.Val) ([]wasmtime.Val, *wasmtime.Trap) {
				return []wasmtime.Val{wasmtime.ValI32(fn(c.Data().(*guest), args))}, nil
			})
		if err != nil {
			return nil, fmt.Errorf("define %s: %w", f.name, err)
		}
	}
	return l, nil
}

// mem returns [off, off+n) of the guest's memory, or nil if it is outside.
func (g *guest) mem(off, n uint32) []byte {
	size := g.region.Size()
	if uint64(off)+uint64(n) > size {
		return nil
	}
	return g.region.Bytes()[off : off+n : off+n]
}

func clockTimeGet(g *guest, args []wasmtime.Val) int32 {
	var t int64
	switch args[0].I32() {
	case 0: // realtime
		t = time.Now().UnixNano()
	case 1: // monotonic
		t = g.clock.Nanotime()
	default: // process and thread CPU time, as wazero: not offered
		return errnoInval
	}
	b := g.mem(uint32(args[2].I32()), 8)
	if b == nil {
		return errnoFault
	}
	binary.LittleEndian.PutUint64(b, uint64(t))
	return errnoSuccess
}

func randomGet(g *guest, args []wasmtime.Val) int32 {
	b := g.mem(uint32(args[0].I32()), uint32(args[1].I32()))
	if b == nil {
		return errnoFault
	}
	_, _ = rand.Read(b)
	return errnoSuccess
}

func fdWrite(g *guest, args []wasmtime.Val) int32 {
	var w io.Writer
	switch args[0].I32() {
	case 1:
		w = io.Discard
	case 2:
		w = g.stderr
	default:
		return errnoBadf
	}
	iovs, n := uint32(args[1].I32()), uint32(args[2].I32())
	vec := g.mem(iovs, n*8)
	if vec == nil {
		return errnoFault
	}
	var total uint32
	for i := range n {
		p, l := binary.LittleEndian.Uint32(vec[i*8:]), binary.LittleEndian.Uint32(vec[i*8+4:])
		b := g.mem(p, l)
		if b == nil {
			return errnoFault
		}
		_, _ = w.Write(b)
		total += l
	}
	out := g.mem(uint32(args[3].I32()), 4)
	if out == nil {
		return errnoFault
	}
	binary.LittleEndian.PutUint32(out, total)
	return errnoSuccess
}

// Subscription and event layout of poll_oneoff (WASI preview 1).
const (
	subSize        = 48
	eventSize      = 32
	eventClock     = 0
	eventFdRead    = 1
	eventFdWrite   = 2
	subClockAbs    = 1 // subclockflags: the timeout is an absolute time
	clockRealtime  = 0
	clockMonotonic = 1
)

// pollOneoff serves poll_oneoff. Clock subscriptions sleep (until the
// earliest, or until the call's deadline); fd subscriptions are ready at
// once for stdio and fail with EBADF for any other descriptor, there being
// none. Go's runtime reaches it for time.Sleep and when its scheduler has
// nothing to run until a timer.
func pollOneoff(g *guest, args []wasmtime.Val) int32 {
	in, out, n, nout := uint32(args[0].I32()), uint32(args[1].I32()), uint32(args[2].I32()), uint32(args[3].I32())
	if n == 0 {
		return errnoInval
	}
	subs, evs, cnt := g.mem(in, n*subSize), g.mem(out, n*eventSize), g.mem(nout, 4)
	if subs == nil || evs == nil || cnt == nil {
		return errnoFault
	}
	type clockSub struct {
		userdata uint64
		wait     int64
	}
	var clocks []clockSub
	var ready uint32
	event := func(userdata uint64, errno uint16, typ byte) {
		e := evs[ready*eventSize : (ready+1)*eventSize]
		clear(e)
		binary.LittleEndian.PutUint64(e, userdata)
		binary.LittleEndian.PutUint16(e[8:], errno)
		e[10] = typ
		ready++
	}
	for i := range n {
		s := subs[i*subSize : (i+1)*subSize]
		userdata, typ := binary.LittleEndian.Uint64(s), s[8]
		switch typ {
		case eventClock:
			id, timeout, flags := binary.LittleEndian.Uint32(s[16:]), int64(binary.LittleEndian.Uint64(s[24:])), binary.LittleEndian.Uint16(s[40:])
			if flags&subClockAbs != 0 {
				switch id {
				case clockRealtime:
					timeout -= time.Now().UnixNano()
				case clockMonotonic:
					timeout -= g.clock.Nanotime()
				default:
					event(userdata, errnoInval, typ)
					continue
				}
			}
			clocks = append(clocks, clockSub{userdata, timeout})
		case eventFdRead, eventFdWrite:
			errno := uint16(errnoBadf)
			if fd := binary.LittleEndian.Uint32(s[16:]); fd <= 2 {
				errno = errnoSuccess
			}
			event(userdata, errno, typ)
		default:
			event(userdata, errnoInval, typ)
		}
	}
	if ready == 0 && len(clocks) > 0 {
		first := clocks[0].wait
		for _, c := range clocks[1:] {
			first = min(first, c.wait)
		}
		g.sleep.Sleep(first)
		for _, c := range clocks {
			if c.wait <= first {
				event(c.userdata, errnoSuccess, eventClock)
			}
		}
	}
	binary.LittleEndian.PutUint32(cnt, ready)
	return errnoSuccess
}
