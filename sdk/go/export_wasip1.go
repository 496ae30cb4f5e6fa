//go:build wasip1

package thaw

import (
	"bytes"
	"fmt"
	"net/http"
	"net/url"
	"unsafe"

	"github.com/thaw-run/thaw/sdk/go/wire"
)

// reqBuf is where the host writes a request; respBuf holds the encoded
// response until the next call. Both are package variables so the
// collector keeps them alive while the host reads or writes them.
var reqBuf, respBuf []byte

//go:wasmexport thaw_abi_version
func abiVersion() int32 { return wire.Version }

//go:wasmexport thaw_alloc
func alloc(size int32) int32 {
	if size < 0 {
		return 0
	}
	if int(size) > cap(reqBuf) {
		reqBuf = make([]byte, size)
	}
	reqBuf = reqBuf[:size]
	if size == 0 {
		reqBuf = reqBuf[:cap(reqBuf)]
		if len(reqBuf) == 0 {
			reqBuf = make([]byte, 1)
		}
	}
	return int32(uintptr(unsafe.Pointer(&reqBuf[0])))
}

//go:wasmexport thaw_handle
func handle(ptr, size int32) int64 {
	in := unsafe.Slice((*byte)(unsafe.Pointer(uintptr(ptr))), size)
	resp := serve(in)
	respBuf = resp.AppendTo(respBuf[:0])
	if len(respBuf) == 0 {
		return 0
	}
	return int64(uintptr(unsafe.Pointer(&respBuf[0])))<<32 | int64(len(respBuf))
}

//go:wasmexport thaw_on_restore
func onRestore() { runRestoreHooks() }

// serve decodes a request, runs the handler, and captures its response. A
// panic in the handler is reported to the host, which fails the request
// and discards this instance.
func serve(in []byte) (resp *wire.Response) {
	req, err := wire.DecodeRequest(in)
	if err != nil {
		return &wire.Response{Status: http.StatusBadRequest, Body: []byte(err.Error())}
	}
	defer func() {
		if r := recover(); r != nil {
			resp = &wire.Response{Status: http.StatusInternalServerError, Panic: true, Body: []byte(fmt.Sprint(r))}
		}
	}()
	hr, err := toHTTP(req)
	if err != nil {
		return &wire.Response{Status: http.StatusBadRequest, Body: []byte(err.Error())}
	}
	w := &responseWriter{header: http.Header{}}
	handler.ServeHTTP(w, hr)
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return &wire.Response{Status: w.status, Header: w.header, Body: w.body.Bytes()}
}

func toHTTP(r *wire.Request) (*http.Request, error) {
	u := &url.URL{Path: r.Path, RawQuery: r.RawQuery}
	hr, err := http.NewRequest(r.Method, u.String(), bytes.NewReader(r.Body))
	if err != nil {
		return nil, err
	}
	hr.Header = r.Header
	if hr.Header == nil {
		hr.Header = http.Header{}
	}
	hr.Host = hr.Header.Get("Host")
	hr.RequestURI = u.RequestURI()
	return hr, nil
}

type responseWriter struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (w *responseWriter) Header() http.Header { return w.header }

func (w *responseWriter) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
}

func (w *responseWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.body.Write(p)
}
