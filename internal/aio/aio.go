// Package aio reads files with Linux native asynchronous I/O (io_submit(2)),
// without cgo: the calling thread hands reads to the disk and goes on with
// other work, and collects the results later, with no goroutine or other
// thread in between.
//
// Why not a goroutine that calls pread: on the virtual machines thaw is
// measured on, handing a read to another goroutine cost 20-40 µs before
// the disk saw the request (a thread woke up to run it) and as much again
// to wake the waiter when it ended, both on a restore's start path. With
// this package a bulk restore of a small working set issues its read 20-30
// µs earlier and never hands off (docs/restore.md, "A read without a
// thread"), and a large one keeps several reads in flight from one
// goroutine while it copies the ones that have ended.
//
// A read runs asynchronously only on a file opened with O_DIRECT, into a
// buffer aligned as O_DIRECT requires (a page is enough); on any other
// file the kernel performs it inside Submit, which is still correct, only
// not overlapped.
package aio

import (
	"errors"
	"fmt"
	"unsafe"

	"github.com/thaw-run/thaw/internal/freelist"

	"golang.org/x/sys/unix"
)

// MaxReads is how many reads a Batch holds in flight at once.
const MaxReads = 16

// iocb is struct iocb of <linux/aio_abi.h> (64 bytes). The two fields
// whose order depends on the byte order are left zero, so the layout holds
// on either.
type iocb struct {
	data   uint64 // aio_data: the read's tag, returned in its event
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

// A Req is one read: len(Buf) bytes of the file at Off into Buf. Tag names
// it in Next; it must be in [0, MaxReads), and name no read in flight and
// no other read of the same submission.
type Req struct {
	Tag int
	Buf []byte
	Off int64
}

// A Batch is a set of reads in flight on one I/O context. Each read's
// buffer belongs to the kernel until Next has returned its tag (or Close
// has returned): the disk writes into it at any time before that. A Batch
// is for one goroutine at a time.
type Batch struct {
	ctx     uintptr
	bufs    [MaxReads][]byte // the reads in flight, referenced until they end
	pending int
	err     error // sticky: the context failed, reads may be in flight
}

// ErrInFlight is the error of a Batch that could not learn whether its
// reads have ended: the kernel may still write into their buffers, which
// must then never be reused (unmapping them is safe: the kernel holds
// their pages until the reads end).
var ErrInFlight = errors.New("read may still be in flight")

// NewBatch returns an empty Batch. The caller must Close it, even after an
// error: it holds one of the package's I/O contexts until then.
func NewBatch() (*Batch, error) {
	ctx, err := contexts.Get()
	if err != nil {
		return nil, err
	}
	return &Batch{ctx: ctx}, nil
}

// Submit submits reqs, reads of fd, in one system call, and returns at
// once (see the package comment for when the reads are asynchronous). fd
// may be closed after Submit returns; the kernel holds the file until the
// reads end. On an error the reads before the failing one are in flight
// and end as usual.
func (b *Batch) Submit(fd int, reqs ...Req) error {
	if b.err != nil {
		return b.err
	}
	var cbs [MaxReads]iocb
	var ptrs [MaxReads]*iocb
	var taken [MaxReads]bool // tags of this submission, each at most once
	for i, r := range reqs {
		if r.Tag < 0 || r.Tag >= MaxReads || b.bufs[r.Tag] != nil || taken[r.Tag] || len(r.Buf) == 0 {
			return fmt.Errorf("aio: read %d: tag %d in flight, repeated, out of range or empty", i, r.Tag)
		}
		taken[r.Tag] = true
		cbs[i] = iocb{
			data:   uint64(r.Tag),
			opcode: cmdPread,
			fildes: uint32(fd),
			buf:    uint64(uintptr(unsafe.Pointer(&r.Buf[0]))),
			nbytes: uint64(len(r.Buf)),
			offset: r.Off,
		}
		ptrs[i] = &cbs[i]
	}
	for done := 0; done < len(reqs); {
		n, _, e := unix.Syscall(unix.SYS_IO_SUBMIT, b.ctx, uintptr(len(reqs)-done), uintptr(unsafe.Pointer(&ptrs[done])))
		if e == unix.EINTR {
			continue
		}
		if e == 0 && n == 0 {
			e = unix.EIO
		}
		if e != 0 {
			return fmt.Errorf("io_submit: %w", e)
		}
		for _, r := range reqs[done : done+int(n)] {
			b.bufs[r.Tag] = r.Buf
		}
		b.pending += int(n)
		done += int(n)
	}
	return nil
}

// Pending is the number of reads in flight.
func (b *Batch) Pending() int { return b.pending }

// Next blocks until one read has ended and returns its tag and the number
// of bytes it read (fewer than asked at the end of the file) or its error;
// the read's buffer is the caller's again. With no read in flight it
// returns tag -1 and an error. An error wrapping ErrInFlight is the
// Batch's, not a read's: it holds for every call after, and no buffer of
// the Batch may be reused.
func (b *Batch) Next() (tag, n int, err error) {
	if b.err != nil {
		return -1, 0, b.err
	}
	if b.pending == 0 {
		return -1, 0, errors.New("aio: no read in flight")
	}
	var ev [1]event
	for {
		got, _, e := unix.Syscall6(unix.SYS_IO_GETEVENTS, b.ctx, 1, 1, uintptr(unsafe.Pointer(&ev[0])), 0, 0)
		if e == unix.EINTR || (e == 0 && got == 0) {
			continue // a signal (Go's preemption) woke the thread
		}
		if e != 0 {
			// Not seen with a valid context; the reads may still land in
			// their buffers, and the context is not returned to the pool.
			b.err = fmt.Errorf("io_getevents: %v: %w", e, ErrInFlight)
			return -1, 0, b.err
		}
		break
	}
	tag = int(ev[0].data)
	b.bufs[tag] = nil
	b.pending--
	if ev[0].res < 0 {
		return tag, 0, fmt.Errorf("read: %w", unix.Errno(-ev[0].res))
	}
	return tag, int(ev[0].res), nil
}

// Close waits for every read still in flight, discarding their results,
// and gives the Batch's context back. It returns the Batch's error if the
// reads could not be collected (ErrInFlight): their buffers must then
// never be reused.
func (b *Batch) Close() error {
	for b.pending > 0 && b.err == nil {
		_, _, _ = b.Next()
	}
	if b.err != nil {
		return b.err
	}
	if b.ctx != 0 {
		contexts.Put(b.ctx)
		b.ctx = 0
	}
	return nil
}

// contexts is the process's pool of I/O contexts, of MaxReads events each:
// a context serves one Batch at a time, so its events need no sorting out.
// Setting one up (io_setup) maps a ring and costs about as much as a small
// read; destroying one waits for an RCU grace period (milliseconds), so
// idle ones are kept, up to keepIdle.
var contexts = freelist.List[uintptr]{
	New: func() (uintptr, error) {
		var ctx uintptr
		if _, _, e := unix.Syscall(unix.SYS_IO_SETUP, MaxReads, uintptr(unsafe.Pointer(&ctx)), 0); e != 0 {
			return 0, fmt.Errorf("io_setup: %w", e)
		}
		return ctx, nil
	},
	Release: func(ctx uintptr) { _, _, _ = unix.Syscall(unix.SYS_IO_DESTROY, ctx, 0, 0) },
	Max:     keepIdle,
}

// keepIdle is how many idle contexts the pool keeps; each is a page or two
// of kernel memory and MaxReads entries of fs.aio-max-nr.
const keepIdle = 8
