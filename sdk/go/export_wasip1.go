//go:build wasip1

package thaw

import (
	"net/http"
	"unsafe"

	"github.com/thaw-run/thaw/sdk/go/wire"
)

// reqBuf is where the host writes a request; respBuf holds the encoded
// response until the next call. Both are package variables so the
// collector keeps them alive while the host reads or writes them.
var reqBuf, respBuf []byte

// keepLimit is the largest buffer kept for reuse between calls; one huge
// request or response does not pin its memory for the instance's life.
const keepLimit = 4 << 20

//go:wasmexport thaw_abi_version
func abiVersion() int32 { return wire.Version }

// alloc returns the address of a buffer of size bytes for the next
// request. The buffer always has capacity, so its address is valid even
// for size 0.
//
//go:wasmexport thaw_alloc
func alloc(size int32) int32 {
	if size < 0 {
		return 0
	}
	if int(size) > cap(reqBuf) || cap(reqBuf) > keepLimit && int(size) < cap(reqBuf)/4 || cap(reqBuf) == 0 {
		reqBuf = make([]byte, size, max(size, 4096))
	}
	reqBuf = reqBuf[:size]
	return int32(uintptr(unsafe.Pointer(unsafe.SliceData(reqBuf))))
}

// handle serves the request the host wrote at [ptr, ptr+size), which must
// be the buffer of the last alloc call, and returns the response's address
// in the high 32 bits and its length in the low 32 bits.
//
//go:wasmexport thaw_handle
func handle(ptr, size int32) int64 {
	if cap(respBuf) > keepLimit {
		respBuf = nil
	}
	if cap(reqBuf) == 0 || size < 0 || int(size) > len(reqBuf) ||
		ptr != int32(uintptr(unsafe.Pointer(unsafe.SliceData(reqBuf)))) {
		// Reading memory the SDK did not hand out could alias live Go
		// objects; refuse instead.
		r := &wire.Response{Status: http.StatusBadRequest, Body: []byte("thaw: request is not in the thaw_alloc buffer\n")}
		respBuf = r.AppendTo(respBuf[:0])
	} else {
		respBuf = serve(handler, reqBuf[:size], respBuf)
	}
	addr := uint64(uintptr(unsafe.Pointer(unsafe.SliceData(respBuf))))
	return int64(addr<<32 | uint64(len(respBuf)))
}

//go:wasmexport thaw_on_restore
func onRestore() { runRestoreHooks() }
