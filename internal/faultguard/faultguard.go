// Package faultguard answers the page faults nothing else would: userfaultfd
// faults when every pager process serving them has died, from a thread the
// Go runtime cannot stop, and SIGBUS on a file mapping whose file something
// truncated (Mapping).
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
// C, which never calls into Go and blocks every signal. It is one of
// thaw's two cgo packages (with the wasmtime engine's capi); everything
// else about the pager stays in Go. A build
// without cgo (CGO_ENABLED=0) has no guard (Available is false): its
// Guard does nothing, and two pagers dying together freeze the worker as
// they did before the guard.
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
//
// # Truncated mappings
//
// An mmap restore maps the snapshot's image file privately into the
// instance's memory. If something outside thaw truncates that file (thaw
// replaces images by rename, never in place), every page past the new end
// raises SIGBUS when touched, and Go's handler ends the process, whether
// the access was guest code, a cgo call or Go. GuardMapping registers the
// mapping's range with a SIGBUS handler (installed on first use, in C: it
// must run inside the signal, before Go's) that maps an anonymous zero page
// over the faulting page and returns, so the access is retried and reads
// zeros; Holes counts such pages, and the instance's owner discards the
// instance after its call. A SIGBUS outside every guarded range goes on to
// the handler it replaced, Go's, as before. wasmtime handles SIGSEGV, SIGILL
// and SIGFPE on Linux, not SIGBUS, so the two do not meet.
package faultguard

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
