//go:build cgo

package capi

/*
#cgo noescape thaw_copy
#cgo nocallback thaw_copy
#include <stddef.h>
#include <string.h>

static void thaw_copy(void *dst, const void *src, size_t n) { memcpy(dst, src, n); }
*/
import "C"

import "unsafe"

// Copy copies min(len(dst), len(src)) bytes from src to dst, as the
// built-in copy does, in C, and returns the number copied. The slices must
// not overlap.
//
// Host code copies to and from a guest's linear memory with it. A page of
// a restored instance's memory may be missing and served by a pager
// through userfaultfd: a thread that faults on it in Go code holds its P,
// so a stop-the-world (a GC phase) waits for the pager, however long, and
// with every P held so does every goroutine; a thread that faults in a
// cgo call does not hold its P (TestFaultingInstancesKeepSchedulerRunning).
// Guest code runs in C already; Copy keeps the host's own accesses there
// too, for about the cost of a cgo call.
func Copy(dst, src []byte) int {
	n := min(len(dst), len(src))
	if n > 0 {
		C.thaw_copy(unsafe.Pointer(&dst[0]), unsafe.Pointer(&src[0]), C.size_t(n))
	}
	return n
}
