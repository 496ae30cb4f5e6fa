//go:build wasip1

//lint:file-ignore U1000 the host calls these through //go:wasmexport, which staticcheck does not see

package thaw

import (
	"runtime"
	"unsafe"

	"github.com/thaw-run/thaw/sdk/go/wire"
)

// bufs is a package variable so the collector keeps the buffers alive while
// the host reads or writes them between calls.
var bufs buffers

func addr(b []byte) int32 { return int32(uintptr(unsafe.Pointer(unsafe.SliceData(b)))) }

//go:wasmexport thaw_abi_version
func abiVersion() int32 { return wire.Version }

//go:wasmexport thaw_alloc
func alloc(size int32) int32 {
	if size < 0 {
		return 0
	}
	return addr(bufs.alloc(int(size)))
}

// handle serves the request the host wrote at [ptr, ptr+size), which must
// be the buffer of the last alloc call, and returns the response's address
// in the high 32 bits and its length in the low 32 bits.
//
//go:wasmexport thaw_handle
func handle(ptr, size int32) int64 {
	ok := cap(bufs.req) > 0 && ptr == addr(bufs.req)
	resp := bufs.handle(handler, int(size), ok)
	return int64(uint64(uint32(addr(resp)))<<32 | uint64(len(resp)))
}

//go:wasmexport thaw_on_restore
func onRestore() { runRestoreHooks() }

// beforeSnapshot serves the requests registered with Prime, then collects
// the garbage initialisation and priming left, so that every
// instance restored from the snapshot starts a GC cycle afresh: without
// it the first request after a restore tends to run the collection that
// initialisation made due, a few milliseconds that a warm instance's
// requests pay only now and then. The primes are then served once more
// (prepareSnapshot).
//
//go:wasmexport thaw_before_snapshot
func beforeSnapshot() {
	prepareSnapshot(handler, &bufs, runtime.GC)
	gc.mark()
}

// idle runs between requests, when the host has time to spare (see
// collector and OnIdle).
//
//go:wasmexport thaw_idle
func idle() { runIdle() }
