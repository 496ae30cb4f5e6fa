package thaw

import (
	"net/http"

	"github.com/thaw-run/thaw/sdk/go/wire"
)

// keepLimit is the largest buffer kept for reuse between calls, so one huge
// request or response does not pin its memory for the instance's life.
const keepLimit = 4 << 20

// buffers holds the two buffers the host reads and writes. The exports keep
// one in a package variable, which is what keeps the buffers alive for the
// collector while the host uses them; the logic lives here, apart from the
// pointer conversions, so native tests can exercise it.
type buffers struct {
	req, resp []byte
}

// alloc returns a buffer of size bytes for the next request. It always has
// capacity, so its address is valid even for size 0.
func (b *buffers) alloc(size int) []byte {
	if size > cap(b.req) || cap(b.req) > keepLimit && size < cap(b.req)/4 || cap(b.req) == 0 {
		b.req = make([]byte, size, max(size, 4096))
	}
	b.req = b.req[:size]
	return b.req
}

// handle serves the request in the first size bytes of the request buffer
// with h and returns the encoded response. ok reports whether the host's
// pointer was the request buffer's: reading memory the SDK did not hand
// out could alias live Go objects, so a wrong pointer gets a 400 instead.
func (b *buffers) handle(h http.Handler, size int, ok bool) []byte {
	if cap(b.resp) > keepLimit {
		b.resp = nil
	}
	if !ok || size < 0 || size > len(b.req) {
		r := &wire.Response{Status: http.StatusBadRequest, Body: []byte("thaw: request is not in the thaw_alloc buffer\n")}
		b.resp = r.AppendTo(b.resp[:0])
		return b.resp
	}
	b.resp = serve(h, b.req[:size], b.resp)
	return b.resp
}
