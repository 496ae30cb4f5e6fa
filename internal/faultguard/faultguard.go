// Package faultguard answers userfaultfd faults when every pager process
// serving them has died, from a thread the Go runtime cannot stop.
//
// # Why C
//
// A Go thread blocked on an unanswered fault holds its P, and the next
// stop-the-world (a GC phase) waits for it forever: every goroutine of the
// process freezes, including any that would notice the pagers' deaths and
// recover (docs/pager.md). The pager's hot standby covers the death of one
// pager process; when the primary and the standby die together, nothing
// outside this process is left to answer. So the last resort must run
// inside this process yet outside the Go scheduler: a pthread created in
// C, which never calls into Go and blocks every signal. This is thaw's only
// cgo package; everything else about the pager stays in Go.
//
// # What it does
//
// The guard waits in poll(2) on pidfds of the pager processes. When all of
// them have exited and stayed so for a grace period, it counts every session with a fault outstanding as
// lost (the words of the session's shared counter page the pagers also
// update), wakes every region so that threads whose fault message died
// with a pager fault again, and then answers each fault with a zero page,
// counting it as lost before its thread is woken. The instance's owner
// sees the count after the call and discards the instance, as it does for
// any fault a pager failed. The guard stands down when it is handed live
// pagers again (SetPagers).
package faultguard

/*
#cgo CFLAGS: -O2 -Wall -Werror
#include "guard.h"
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

// Words names the u64 words of a session's shared counter page that the
// guard reads and increments (indices, not byte offsets).
type Words struct {
	// Begun and Finished count fault messages a pager took and finished:
	// a difference is a fault a dead pager never answered.
	Begun, Finished int
	// Lost and Errors are incremented for every such fault and for every
	// fault the guard answers with a zero page.
	Lost, Errors int
}

// Stats count what the guard did.
type Stats struct {
	// Orphanings is how many times every pager was found dead.
	Orphanings uint64
	// Zeroed is the number of faults answered with a zero page.
	Zeroed uint64
}

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
