// Package abi is the host side of thaw's function ABI (docs/abi.md): the
// export names the engine calls and a strict decoding of guest output.
package abi

import (
	"fmt"

	"github.com/thaw-run/thaw/internal/errdefs"
	"github.com/thaw-run/thaw/sdk/go/wire"
)

// The guest's ABI exports.
const (
	ExportVersion   = "thaw_abi_version"
	ExportAlloc     = "thaw_alloc"
	ExportHandle    = "thaw_handle"
	ExportOnRestore = "thaw_on_restore"
)

// Request is an invocation's HTTP request.
type Request = wire.Request

// Response is an invocation's HTTP response.
type Response = wire.Response

// DecodeResponse decodes a guest's response. Malformed output, and a
// response that reports a handler panic, fail with errdefs.ErrGuest. The
// result is a copy: it does not alias guest memory.
func DecodeResponse(b []byte) (*Response, error) {
	r, err := wire.DecodeResponse(b)
	if err != nil {
		return nil, fmt.Errorf("guest response: %v: %w", err, errdefs.ErrGuest)
	}
	if r.Panic {
		return nil, fmt.Errorf("guest panic: %s: %w", r.Body, errdefs.ErrGuest)
	}
	r.Body = append([]byte(nil), r.Body...)
	return r, nil
}
