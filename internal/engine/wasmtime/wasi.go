//go:build cgo

package wasmtime

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"io"
	"time"

	"github.com/bytecodealliance/wasmtime-go/v39"

	"github.com/thaw-run/thaw/internal/engine/wasmtime/capi"
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

// span returns [off, off+n) of the guest's memory, or nil if it is
// outside. Host code touches what it returns only through capi.Copy (as
// write does): a page of it may be missing and wait on a pager.
func (g *guest) span(off, n uint64) []byte {
	if off+n > g.region.Size() {
		return nil
	}
	return g.region.Bytes()[off : off+n : off+n]
}

// write copies src into the guest's memory at off, and reports false,
// copying nothing, if it does not fit there.
func (g *guest) write(off uint32, src []byte) bool {
	b := g.span(uint64(off), uint64(len(src)))
	if b == nil {
		return false
	}
	capi.Copy(b, src)
	return true
}

// chunk is the size of the buffers the host functions stream guest memory
// through, so that a large write or random_get allocates nothing.
const chunk = 512

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
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], uint64(t))
	if !g.write(uint32(args[2].I32()), b[:]) {
		return errnoFault
	}
	return errnoSuccess
}

func randomGet(g *guest, args []wasmtime.Val) int32 {
	dst := g.span(uint64(uint32(args[0].I32())), uint64(uint32(args[1].I32())))
	if dst == nil {
		return errnoFault
	}
	var b [chunk]byte
	for len(dst) > 0 {
		n := min(len(dst), chunk)
		_, _ = rand.Read(b[:n])
		dst = dst[capi.Copy(dst, b[:n]):]
	}
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
	iovs, n := uint64(uint32(args[1].I32())), uint64(uint32(args[2].I32()))
	vec := g.span(iovs, n*8)
	if vec == nil {
		return errnoFault
	}
	var total uint32
	var iov [8]byte
	var b [chunk]byte
	for len(vec) > 0 {
		vec = vec[capi.Copy(iov[:], vec):]
		p, l := binary.LittleEndian.Uint32(iov[:]), binary.LittleEndian.Uint32(iov[4:])
		src := g.span(uint64(p), uint64(l))
		if src == nil {
			return errnoFault
		}
		for w != io.Discard && len(src) > 0 {
			k := capi.Copy(b[:], src)
			_, _ = w.Write(b[:k])
			src = src[k:]
		}
		total += l
	}
	var out [4]byte
	binary.LittleEndian.PutUint32(out[:], total)
	if !g.write(uint32(args[3].I32()), out[:]) {
		return errnoFault
	}
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
	in, out, n, nout := uint32(args[0].I32()), uint32(args[1].I32()), uint64(uint32(args[2].I32())), uint32(args[3].I32())
	if n == 0 {
		return errnoInval
	}
	subsMem, evsMem, cntMem := g.span(uint64(in), n*subSize), g.span(uint64(out), n*eventSize), g.span(uint64(nout), 4)
	if subsMem == nil || evsMem == nil || cntMem == nil {
		return errnoFault
	}
	subs, evs := make([]byte, n*subSize), make([]byte, n*eventSize)
	capi.Copy(subs, subsMem)
	type clockSub struct {
		userdata uint64
		wait     int64
	}
	var clocks []clockSub
	var ready uint64
	event := func(userdata uint64, errno uint16, typ byte) {
		e := evs[ready*eventSize : (ready+1)*eventSize]
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
	capi.Copy(evsMem, evs[:ready*eventSize])
	var cnt [4]byte
	binary.LittleEndian.PutUint32(cnt[:], uint32(ready))
	capi.Copy(cntMem, cnt[:])
	return errnoSuccess
}
