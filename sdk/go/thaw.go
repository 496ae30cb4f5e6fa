// Package thaw is the guest-side SDK for thaw functions.
//
// A thaw function is an ordinary Go program compiled to a WASI (wasip1)
// reactor module. It registers an http.Handler from an init function;
// main is never called in reactor mode:
//
//	func init() { thaw.Handle(http.HandlerFunc(hello)) }
//	func main() {}
//
// Build it with `thaw build DIR`, or by hand with
// `GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared`. The SDK
// implements the ABI described in docs/abi.md: the host runs the module's
// initialisation once (possibly snapshotting the result), then passes each
// request to the handler, one at a time.
//
// # Panics
//
// A panic in the handler is recovered by the SDK and reported to the host
// as a guest fault (the client sees 502 "guest panic: ..."), not as a 500
// response: the instance's state may be broken, so the host discards it.
// A panic in another goroutine, or a Go runtime fatal error, ends the
// module the same way without a message.
//
// # Snapshots and uniqueness
//
// Every instance restored from one snapshot starts with the memory of the
// instance that was snapshotted. crypto/rand and the clocks are always
// fresh, but any pseudo-random state created during init is shared by all
// clones, and that includes the Go runtime's own generator behind the
// top-level math/rand and math/rand/v2 functions, which no public API can
// reseed. Functions that need distinct random numbers per clone should use
// crypto/rand or Rand (reseeded by the SDK in every restored instance), or
// own a generator and reseed it in an OnRestore hook.
//
// # Idle time and the collector
//
// Goroutines of a reactor module run only while the host calls into it, so
// the Go collector's background work cannot run between requests. When the
// host has idle time after a response it calls the module's idle export:
// the SDK finishes a GC cycle in progress there (or starts one early when
// the next request would), then runs the OnIdle hooks. See OnIdle.
package thaw

import "net/http"

var (
	// handler serves every request; only the wasip1 exports read it.
	//lint:ignore U1000 read by export_wasip1.go, which native builds omit
	handler      http.Handler = http.NotFoundHandler()
	restoreHooks []func()
)

// Handle sets the handler that serves every invocation of the function.
// Call it from an init function. It panics if h is nil, which fails the
// module's initialisation, so a missing handler is caught at deploy time.
func Handle(h http.Handler) {
	if h == nil {
		panic("thaw: nil handler")
	}
	handler = h
}

// OnRestore registers f to run once in each instance restored from a memory
// snapshot, before its first request. Use it to reseed user-level random
// number generators and refresh anything that must differ between clones of
// one snapshot (crypto/rand is always fresh and needs no hook). Hooks run in
// registration order; a hook that panics fails the restore and the host
// falls back to a cold start.
func OnRestore(f func()) { restoreHooks = append(restoreHooks, f) }

// runRestoreHooks marks Rand for a reseed before its next number, then
// runs the OnRestore hooks in registration order.
func runRestoreHooks() {
	source.restored()
	for _, f := range restoreHooks {
		f()
	}
}
