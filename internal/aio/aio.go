// Package aio reads files with Linux native asynchronous I/O (io_submit(2)),
// without cgo: the calling thread hands a read to the disk and goes on with
// other work, and collects the result later, with no goroutine or other
// thread in between.
//
// Why not a goroutine that calls pread: on the virtual machines thaw is
// measured on, handing a read to another goroutine cost 20-40 µs before
// the disk saw the request (a thread woke up to run it) and as much again
// to wake the waiter when it ended, both on a restore's start path. With
// this package a bulk restore of a small working set issues its read 20-30
// µs earlier and never hands off (docs/restore.md, "A read without a
// thread").
//
// A read runs asynchronously only on a file opened with O_DIRECT, into a
// buffer aligned as O_DIRECT requires (a page is enough); on any other
// file the kernel performs it inside ReadAt, which is still correct, only
// not overlapped.
package aio

import (
	"errors"
	"fmt"
	"unsafe"

	"github.com/thaw-run/thaw/internal/freelist"

	"golang.org/x/sys/unix"
)

// iocb is struct iocb of <linux/aio_abi.h> (64 bytes). The two fields
// whose order depends on the byte order are left zero, so the layout holds
// on either.
type iocb struct {
	_      uint64 // aio_data
	_      uint32 // aio_key
	_      int32  // aio_rw_flags
	opcode uint16
	_      int16 // aio_reqprio
	fildes uint32
	buf    uint64
	nbytes uint64
	offset int64
	_      uint64 // aio_reserved2
	_      uint32 // aio_flags
	_      uint32 // aio_resfd
}

// event is struct io_event of <linux/aio_abi.h>.
type event struct {
	data, obj uint64
	res, res2 int64
}

// cmdPread is IOCB_CMD_PREAD.
const cmdPread = 0

// A Read is one read in flight. Its buffer belongs to the kernel until
// Wait has returned: the disk writes into it at any time before that.
type Read struct {
	ctx  uintptr
	cb   iocb
	buf  []byte // referenced until Wait, whatever the caller does
	n    int
	err  error
	done bool
}

// ReadAt submits a read of len(buf) bytes of fd at off into buf and returns
// at once (see the package comment for when it is asynchronous). The caller
// must call Wait before it touches, reuses or frees buf, and must call it
// even if it no longer wants the bytes: the read holds one of the
// package's I/O contexts until then. fd may be closed meanwhile; the kernel
// holds the file until the read ends.
func ReadAt(fd int, buf []byte, off int64) (*Read, error) {
	if len(buf) == 0 {
		return &Read{done: true}, nil
	}
	ctx, err := contexts.Get()
	if err != nil {
		return nil, err
	}
	r := &Read{ctx: ctx, buf: buf}
	r.cb = iocb{
		opcode: cmdPread,
		fildes: uint32(fd),
		buf:    uint64(uintptr(unsafe.Pointer(&buf[0]))),
		nbytes: uint64(len(buf)),
		offset: off,
	}
	cbs := [1]*iocb{&r.cb}
	for {
		n, _, e := unix.Syscall(unix.SYS_IO_SUBMIT, ctx, 1, uintptr(unsafe.Pointer(&cbs[0])))
		if e == unix.EINTR {
			continue
		}
		if e != 0 || n != 1 {
			contexts.Put(ctx)
			if e == 0 {
				e = unix.EIO
			}
			return nil, fmt.Errorf("io_submit: %w", e)
		}
		return r, nil
	}
}

// ErrInFlight is the error of a Wait that could not learn whether the read
// has ended: the kernel may still write into its buffer, which must then
// never be reused (unmapping it is safe: the kernel holds its pages until
// the read ends).
var ErrInFlight = errors.New("read may still be in flight")

// Wait blocks until the read has ended and returns the number of bytes
// read (fewer than asked at the end of the file) or its error; its buffer
// is the caller's again unless the error is ErrInFlight. Calls after the
// first return the same.
func (r *Read) Wait() (int, error) {
	if r.done {
		return r.n, r.err
	}
	var ev [1]event
	for {
		n, _, e := unix.Syscall6(unix.SYS_IO_GETEVENTS, r.ctx, 1, 1, uintptr(unsafe.Pointer(&ev[0])), 0, 0)
		if e == unix.EINTR || (e == 0 && n == 0) {
			continue // a signal (Go's preemption) woke the thread
		}
		if e != 0 {
			// Not seen with a valid context; the read may still land in
			// buf, and the context is not returned to the pool.
			r.done, r.err = true, fmt.Errorf("io_getevents: %v: %w", e, ErrInFlight)
			return 0, r.err
		}
		break
	}
	r.done = true
	contexts.Put(r.ctx)
	r.buf = nil
	if ev[0].res < 0 {
		r.err = fmt.Errorf("read: %w", unix.Errno(-ev[0].res))
		return 0, r.err
	}
	r.n = int(ev[0].res)
	return r.n, nil
}

// contexts is the process's pool of I/O contexts, of one event each: a
// context serves one read at a time, so its events need no sorting out.
// Setting one up (io_setup) maps a ring and costs about as much as the read
// it serves; destroying one waits for an RCU grace period (milliseconds),
// so idle ones are kept, up to keepIdle.
var contexts = freelist.List[uintptr]{
	New: func() (uintptr, error) {
		var ctx uintptr
		if _, _, e := unix.Syscall(unix.SYS_IO_SETUP, 1, uintptr(unsafe.Pointer(&ctx)), 0); e != 0 {
			return 0, fmt.Errorf("io_setup: %w", e)
		}
		return ctx, nil
	},
	Release: func(ctx uintptr) { _, _, _ = unix.Syscall(unix.SYS_IO_DESTROY, ctx, 0, 0) },
	Max:     keepIdle,
}

// keepIdle is how many idle contexts the pool keeps; each is a few pages
// of kernel memory and one entry of fs.aio-max-nr.
const keepIdle = 8
