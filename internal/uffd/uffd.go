// Package uffd wraps the userfaultfd(2) calls thaw needs, without cgo:
// create a descriptor, register a range for missing-page faults, read fault
// messages, and resolve them with UFFDIO_COPY or UFFDIO_ZEROPAGE.
//
// The descriptor is an *os.File in non-blocking mode, so reads park the
// goroutine in Go's poller instead of a thread, and Close unblocks a pending
// read. Every ioctl goes through the file's RawConn, which keeps the
// descriptor number from being closed (and reused) under a concurrent call.
//
// # Why the faulting process cannot serve its own faults
//
// A thread that touches a missing page of a registered range sleeps in the
// kernel while still holding its Go P. A handler goroutine in the same
// process needs a P to run; with GOMAXPROCS faulting threads nobody is left
// to serve them. Package pager therefore serves faults from a separate
// process; this package is used on both sides.
package uffd

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ioctl numbers from <linux/userfaultfd.h>, checked against the C header on
// x86-64 (arm64 uses the same _IOC encoding).
const (
	ioctlNew        = 0xaa00     // USERFAULTFD_IOC_NEW on /dev/userfaultfd
	ioctlAPI        = 0xc018aa3f // UFFDIO_API
	ioctlRegister   = 0xc020aa00 // UFFDIO_REGISTER
	ioctlUnregister = 0x8010aa01 // UFFDIO_UNREGISTER
	ioctlWake       = 0x8010aa02 // UFFDIO_WAKE
	ioctlCopy       = 0xc028aa03 // UFFDIO_COPY
	ioctlZeropage   = 0xc020aa04 // UFFDIO_ZEROPAGE

	uffdAPI        = 0xaa // UFFD_API
	modeMissing    = 1    // UFFDIO_REGISTER_MODE_MISSING
	userModeOnly   = 1    // UFFD_USER_MODE_ONLY (userfaultfd(2) flag)
	maxEAGAINSpins = 1 << 20
)

// PageSize is the granularity of userfaultfd resolution for the anonymous
// (non-huge) memory thaw registers.
const PageSize = 4096

// EventPagefault is Msg.Event for a page fault (UFFD_EVENT_PAGEFAULT).
const EventPagefault = 0x12

// Fault flags in Msg.Flags.
const (
	// FlagWrite: the fault was a write (UFFD_PAGEFAULT_FLAG_WRITE).
	FlagWrite = 1
)

// Msg is struct uffd_msg as the kernel writes it (32 bytes), with the
// pagefault arm of the union spelled out: it is the only event thaw asks for.
type Msg struct {
	Event   uint8
	_       [7]byte
	Flags   uint64
	Address uint64
	Ptid    uint32
	_       uint32
}

// MsgSize is the size of one fault message.
const MsgSize = int(unsafe.Sizeof(Msg{}))

type apiArg struct{ API, Features, Ioctls uint64 }

type rangeArg struct{ Start, Len uint64 }

type registerArg struct {
	Range  rangeArg
	Mode   uint64
	Ioctls uint64
}

type copyArg struct {
	Dst, Src, Len, Mode uint64
	Copy                int64
}

type zeropageArg struct {
	Range    rangeArg
	Mode     uint64
	Zeropage int64
}

// FD is a userfaultfd descriptor. Its methods are safe for concurrent use;
// after Close they return os.ErrClosed.
type FD struct {
	f  *os.File
	rc syscall.RawConn
	fd int
}

// Open creates a userfaultfd (close-on-exec, non-blocking) and completes the
// UFFDIO_API handshake. It prefers /dev/userfaultfd, which is allowed
// whatever vm.unprivileged_userfaultfd says, and falls back to the
// userfaultfd(2) system call; if that is refused (EPERM) it retries in
// user-mode-only mode, in which faults taken inside the kernel (a read(2)
// into the region) fail with EFAULT instead of being served.
func Open() (*FD, error) {
	fd, devErr := openDev()
	if devErr != nil {
		var err error
		fd, err = openSyscall(unix.O_CLOEXEC | unix.O_NONBLOCK)
		if errors.Is(err, unix.EPERM) {
			fd, err = openSyscall(unix.O_CLOEXEC | unix.O_NONBLOCK | userModeOnly)
		}
		if err != nil {
			return nil, fmt.Errorf("userfaultfd: /dev/userfaultfd: %v; system call: %w", devErr, err)
		}
	}
	a := apiArg{API: uffdAPI}
	if err := rawIoctl(fd, ioctlAPI, unsafe.Pointer(&a)); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("UFFDIO_API: %w", err)
	}
	return NewFD(fd)
}

func openDev() (int, error) {
	dev, err := unix.Open("/dev/userfaultfd", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	defer unix.Close(dev)
	r, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(dev), ioctlNew, uintptr(unix.O_CLOEXEC|unix.O_NONBLOCK))
	if errno != 0 {
		return -1, fmt.Errorf("USERFAULTFD_IOC_NEW: %w", errno)
	}
	return int(r), nil
}

func openSyscall(flags int) (int, error) {
	r, _, errno := unix.Syscall(unix.SYS_USERFAULTFD, uintptr(flags), 0, 0)
	if errno != 0 {
		return -1, errno
	}
	return int(r), nil
}

// Available reports whether this process can create a userfaultfd, with the
// reason when it cannot; tests use it to skip.
func Available() error {
	u, err := Open()
	if err != nil {
		return err
	}
	return u.Close()
}

// NewFD adopts fd, an open userfaultfd that has completed the API handshake
// (typically received from another process). The descriptor is switched to
// non-blocking mode so reads go through Go's poller.
func NewFD(fd int) (*FD, error) {
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("userfaultfd: set non-blocking: %w", err)
	}
	f := os.NewFile(uintptr(fd), "userfaultfd")
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("userfaultfd: %w", err)
	}
	return &FD{f: f, rc: rc, fd: fd}, nil
}

// Fd returns the descriptor number, for passing it to another process. It
// does not change the descriptor's blocking mode (unlike os.File.Fd).
func (u *FD) Fd() int { return u.fd }

// Close closes this copy of the descriptor and unblocks a pending Read.
//
// The kernel releases the userfaultfd when its last copy (in any process)
// closes: it then unregisters every range and wakes blocked threads, whose
// faults are retried as ordinary faults — a fresh zero page for anonymous
// memory, not the image's content.
func (u *FD) Close() error {
	return u.f.Close()
}

// Pending reports whether fault messages are queued on the descriptor and
// not yet read by anyone (poll(2) for POLLIN, without waiting or reading).
func (u *FD) Pending() (bool, error) {
	var (
		ready bool
		perr  error
	)
	if err := u.rc.Control(func(fd uintptr) {
		pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		for {
			_, perr = unix.Poll(pfd, 0)
			if perr != unix.EINTR {
				break
			}
		}
		ready = pfd[0].Revents&unix.POLLIN != 0
	}); err != nil {
		return false, fmt.Errorf("%w (%v)", os.ErrClosed, err)
	}
	return ready, perr
}

// ioctl issues req with arg on the descriptor, holding a reference so a
// concurrent Close cannot recycle the number mid-call.
func (u *FD) ioctl(req uintptr, arg unsafe.Pointer) error {
	var ierr error
	if err := u.rc.Control(func(fd uintptr) { ierr = rawIoctl(int(fd), req, arg) }); err != nil {
		// The only failure is a closed descriptor; say so in the
		// os package's terms.
		return fmt.Errorf("%w (%v)", os.ErrClosed, err)
	}
	return ierr
}

func rawIoctl(fd int, req uintptr, arg unsafe.Pointer) error {
	for {
		_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), req, uintptr(arg))
		switch errno {
		case 0:
			return nil
		case unix.EINTR:
			continue
		default:
			return errno
		}
	}
}

// Register registers [addr, addr+length) for missing-page faults. Both must
// be page-aligned and the range must be mapped (anonymous private memory).
func (u *FD) Register(addr uintptr, length uint64) error {
	r := registerArg{Range: rangeArg{uint64(addr), length}, Mode: modeMissing}
	if err := u.ioctl(ioctlRegister, unsafe.Pointer(&r)); err != nil {
		return fmt.Errorf("UFFDIO_REGISTER [%#x,+%d): %w", addr, length, err)
	}
	return nil
}

// Unregister removes [addr, addr+length) from the descriptor: later faults
// there are ordinary faults.
func (u *FD) Unregister(addr uintptr, length uint64) error {
	r := rangeArg{uint64(addr), length}
	if err := u.ioctl(ioctlUnregister, unsafe.Pointer(&r)); err != nil {
		return fmt.Errorf("UFFDIO_UNREGISTER [%#x,+%d): %w", addr, length, err)
	}
	return nil
}

// Copy installs length bytes from src (in the calling process) at dst (in
// the registered range) and wakes threads waiting on those pages. dst and
// length must be page-aligned; src need not be (kernel 6.18 accepts any
// source address). Pages that are already present (EEXIST:
// another Copy, or the pager, got there first) are skipped and their
// waiters woken; they are not errors, so the main process's prefetch and
// the pager can race on the same pages. EAGAIN (partial copy, or the
// address space changing under the copy) is retried for the rest.
//
// Copy returns the number of bytes it installed itself, which is less than
// length when pages were skipped.
func (u *FD) Copy(dst, src uintptr, length uint64) (int64, error) {
	var done, installed uint64
	spins := 0
	for done < length {
		c := copyArg{Dst: uint64(dst) + done, Src: uint64(src) + done, Len: length - done}
		err := u.ioctl(ioctlCopy, unsafe.Pointer(&c))
		if c.Copy > 0 {
			done += uint64(c.Copy)
			installed += uint64(c.Copy)
		}
		switch {
		case err == nil:
			if c.Copy <= 0 {
				return int64(installed), fmt.Errorf("UFFDIO_COPY at %#x: no progress", uint64(dst)+done)
			}
		case errors.Is(err, unix.EEXIST):
			_ = u.Wake(dst+uintptr(done), PageSize)
			done += PageSize
		case errors.Is(err, unix.EAGAIN):
			if c.Copy <= 0 {
				if spins++; spins > maxEAGAINSpins {
					return int64(installed), fmt.Errorf("UFFDIO_COPY at %#x: %w", uint64(dst)+done, err)
				}
				runtime.Gosched()
			}
		default:
			return int64(installed), fmt.Errorf("UFFDIO_COPY at %#x: %w", uint64(dst)+done, err)
		}
	}
	return int64(installed), nil
}

// ZeroPage maps the zero page over [dst, dst+length) and wakes waiters. A
// later write to such a page is an ordinary copy-on-write fault. Present
// pages are skipped as in Copy.
func (u *FD) ZeroPage(dst uintptr, length uint64) error {
	var done uint64
	spins := 0
	for done < length {
		z := zeropageArg{Range: rangeArg{uint64(dst) + done, length - done}}
		err := u.ioctl(ioctlZeropage, unsafe.Pointer(&z))
		if z.Zeropage > 0 {
			done += uint64(z.Zeropage)
		}
		switch {
		case err == nil:
			if z.Zeropage <= 0 {
				return fmt.Errorf("UFFDIO_ZEROPAGE at %#x: no progress", uint64(dst)+done)
			}
		case errors.Is(err, unix.EEXIST):
			_ = u.Wake(dst+uintptr(done), PageSize)
			done += PageSize
		case errors.Is(err, unix.EAGAIN):
			if z.Zeropage <= 0 {
				if spins++; spins > maxEAGAINSpins {
					return fmt.Errorf("UFFDIO_ZEROPAGE at %#x: %w", uint64(dst)+done, err)
				}
				runtime.Gosched()
			}
		default:
			return fmt.Errorf("UFFDIO_ZEROPAGE at %#x: %w", uint64(dst)+done, err)
		}
	}
	return nil
}

// Wake wakes threads waiting on faults in [dst, dst+length). A woken thread
// whose page is still missing faults again, which queues a new message.
func (u *FD) Wake(dst uintptr, length uint64) error {
	r := rangeArg{uint64(dst), length}
	if err := u.ioctl(ioctlWake, unsafe.Pointer(&r)); err != nil {
		return fmt.Errorf("UFFDIO_WAKE at %#x: %w", dst, err)
	}
	return nil
}

// Read reads pending messages into msgs, blocking (in Go's poller, not in a
// thread) until at least one is available. It returns the number read, or
// an error wrapping os.ErrClosed once the descriptor is closed.
func (u *FD) Read(msgs []Msg) (int, error) {
	if len(msgs) == 0 {
		return 0, nil
	}
	b := unsafe.Slice((*byte)(unsafe.Pointer(&msgs[0])), len(msgs)*MsgSize)
	n, err := u.f.Read(b)
	return n / MsgSize, err
}

// Mmap reserves length bytes (rounded up to a page) of anonymous private
// memory, without reserving swap and without transparent huge pages
// (userfaultfd resolves anonymous memory per 4 KiB page).
func Mmap(length uint64) ([]byte, error) {
	length = (length + PageSize - 1) &^ (PageSize - 1)
	if length == 0 {
		length = PageSize
	}
	mem, err := unix.Mmap(-1, 0, int(length), unix.PROT_READ|unix.PROT_WRITE,
		unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_NORESERVE)
	if err != nil {
		return nil, fmt.Errorf("mmap %d bytes: %w", length, err)
	}
	_ = unix.Madvise(mem, unix.MADV_NOHUGEPAGE)
	return mem, nil
}

// Munmap releases memory from Mmap.
func Munmap(mem []byte) error {
	if err := unix.Munmap(mem); err != nil {
		return fmt.Errorf("munmap: %w", err)
	}
	return nil
}

// Addr is the address of mem's first byte.
func Addr(mem []byte) uintptr { return uintptr(unsafe.Pointer(unsafe.SliceData(mem))) }
