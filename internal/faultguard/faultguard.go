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
