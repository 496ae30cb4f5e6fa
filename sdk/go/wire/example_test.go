package wire_test

import (
	"fmt"
	"net/http"

	"github.com/thaw-run/thaw/sdk/go/wire"
)

// The host encodes a request into the buffer the guest's thaw_alloc
// returned; the guest decodes it.
func ExampleRequest_AppendTo() {
	req := &wire.Request{Method: "GET", Path: "/", RawQuery: "a=1", Header: http.Header{"X": {"y"}}, Body: []byte("hi")}
	b := req.AppendTo(nil)
	fmt.Printf("% x\n", b)
	got, err := wire.DecodeRequest(b)
	fmt.Println(got.Method, got.Path, got.RawQuery, got.Header, string(got.Body), err)
	// Output:
	// 01 03 00 00 00 47 45 54 01 00 00 00 2f 03 00 00 00 61 3d 31 01 00 00 00 01 00 00 00 58 01 00 00 00 79 02 00 00 00 68 69
	// GET / a=1 map[X:[y]] hi <nil>
}

// Decoders refuse anything but a complete, well-formed message.
func ExampleDecodeResponse() {
	ok := (&wire.Response{Status: 200, Body: []byte("ok")}).AppendTo(nil)
	r, err := wire.DecodeResponse(ok)
	fmt.Println(r.Status, string(r.Body), err)
	_, err = wire.DecodeResponse(ok[:len(ok)-1])
	fmt.Println(err)
	// Output:
	// 200 ok <nil>
	// malformed ABI message: truncated or oversized body
}
