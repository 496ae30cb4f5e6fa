//go:build cgo

package faultguard

/*
#cgo CFLAGS: -O2 -Wall -Werror
#include "guard.h"
#include "bus.h"
#include <errno.h>
*/
import "C"

import (
	"errors"
	"fmt"
	"sync"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Available reports whether this build has the guard thread (it needs cgo).
const Available = true

// Guard is one guard thread and the sessions it watches. Its methods are
// safe for concurrent use; none blocks for long (they take a mutex the
// thread holds only for non-blocking reads and ioctls).
type Guard struct {
	mu sync.Mutex // guards g against Close
	g  *C.guard
}

// New starts a guard thread with no pagers and no sessions. Once every
// pager has been dead for grace, the guard answers faults: the grace leaves
// a running client time to start a replacement that serves the faults
// correctly; a frozen one gets its faults answered after it.
func New(w Words, grace time.Duration) (*Guard, error) {
	g, err := C.guard_new(C.guard_words{begun: C.int(w.Begun), finished: C.int(w.Finished), lost: C.int(w.Lost), errors: C.int(w.Errors)}, C.int64_t(grace))
	if g == nil {
		return nil, fmt.Errorf("faultguard: start thread: %w", err)
	}
	return &Guard{g: g}, nil
}

// Add watches a session: uffd must be a non-blocking userfaultfd with
// [base, base+length) registered, and stay open until Remove; shared is
// the session's counter page (nil: nothing is counted) and must stay
// mapped until Remove.
func (g *Guard) Add(id uint64, uffd int, base uintptr, length uint64, shared []byte) error {
	var addr uintptr
	if shared != nil {
		addr = uintptr(unsafe.Pointer(unsafe.SliceData(shared)))
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.g == nil {
		return errors.New("faultguard: closed")
	}
	if rc := C.guard_add(g.g, C.uint64_t(id), C.int(uffd), C.uint64_t(base), C.uint64_t(length), C.uintptr_t(addr)); rc != 0 {
		return fmt.Errorf("faultguard: add session: %w", unix.Errno(rc))
	}
	return nil
}

// Remove stops watching a session. When it returns the guard no longer
// touches its descriptor or counter page.
func (g *Guard) Remove(id uint64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.g != nil {
		C.guard_remove(g.g, C.uint64_t(id))
	}
}

// SetPagers tells the guard which processes serve the sessions now (no
// pids: none, and the guard waits). The guard answers faults only while
// every one of them has exited. A pid that has already exited counts as
// dead; one that cannot be opened is an error, and the previous set stays.
func (g *Guard) SetPagers(pids ...int) error {
	if len(pids) > 2 {
		return fmt.Errorf("faultguard: %d pagers, at most 2", len(pids))
	}
	fds := [2]C.int{-1, -1}
	for i, pid := range pids {
		fd, err := unix.PidfdOpen(pid, unix.PIDFD_NONBLOCK)
		if err != nil {
			for _, f := range fds[:i] {
				unix.Close(int(f))
			}
			return fmt.Errorf("faultguard: pidfd of pager %d: %w", pid, err)
		}
		fds[i] = C.int(fd)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.g == nil {
		for _, f := range fds {
			if f >= 0 {
				unix.Close(int(f))
			}
		}
		return errors.New("faultguard: closed")
	}
	C.guard_set_pagers(g.g, fds[0], fds[1])
	return nil
}

// Stats returns what the guard has done so far.
func (g *Guard) Stats() Stats {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.g == nil {
		return Stats{}
	}
	st := C.guard_get_stats(g.g)
	return Stats{Orphanings: uint64(st.orphanings), Zeroed: uint64(st.zeroed)}
}

// Close stops the thread. Faults still outstanding stay unanswered.
func (g *Guard) Close() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.g != nil {
		C.guard_free(g.g)
		g.g = nil
	}
}

// Mapping guards a file mapping against its file being truncated (see
// "Truncated mappings" in the package doc).
type Mapping struct {
	slot C.int
	once sync.Once
}

// GuardMapping starts answering SIGBUS in [base, base+length), a private
// file mapping: a page its file no longer covers becomes a zero page, and
// Holes counts it. The first call installs the process's SIGBUS handler.
// Release the Mapping before the range is unmapped or mapped anew.
func GuardMapping(base uintptr, length uint64) (*Mapping, error) {
	if rc := C.bus_install(); rc != 0 {
		return nil, fmt.Errorf("faultguard: install SIGBUS handler: %w", unix.Errno(rc))
	}
	slot := C.bus_guard(C.uintptr_t(base), C.uint64_t(length))
	if slot < 0 {
		return nil, errors.New("faultguard: every mapping slot is taken")
	}
	return &Mapping{slot: slot}, nil
}

// Holes is the number of pages answered with zeros so far.
func (m *Mapping) Holes() uint64 { return uint64(C.bus_holes(m.slot)) }

// Release stops guarding the range; a second call does nothing.
func (m *Mapping) Release() { m.once.Do(func() { C.bus_release(m.slot) }) }
