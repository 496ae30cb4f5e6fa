// Package thaw is the guest-side SDK for thaw functions.
//
// A thaw function is an ordinary Go program compiled to a WASI (wasip1)
// reactor module. It registers an http.Handler from an init function;
// main is never called in reactor mode:
//
//	func init() { thaw.Handle(http.HandlerFunc(hello)) }
//	func main() {}
//
// Build it with `thaw build DIR`. The ABI the SDK implements is described in
// docs/abi.md.
package thaw

import "net/http"

var (
	handler      http.Handler = http.NotFoundHandler()
	restoreHooks []func()
)

// Handle sets the handler that serves every invocation of the function.
// Call it from an init function.
func Handle(h http.Handler) { handler = h }

// OnRestore registers f to run once in each instance restored from a memory
// snapshot, before its first request. Use it to reseed user-level random
// number generators and refresh anything that must differ between clones of
// one snapshot (crypto/rand is always fresh and needs no hook).
func OnRestore(f func()) { restoreHooks = append(restoreHooks, f) }

// runRestoreHooks runs the OnRestore hooks in registration order.
func runRestoreHooks() {
	for _, f := range restoreHooks {
		f()
	}
}
