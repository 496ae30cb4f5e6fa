// Package abi is the host side of thaw's function ABI (docs/abi.md): the
// names of the guest exports the engine calls, request encoding, and a
// strict decoding of guest output.
//
// The byte encoding itself lives in the public package sdk/go/wire so that
// the guest SDK and the host run one codec; this package adds the host's
// error categories and never hands out memory that aliases the guest.
package abi

import (
	"fmt"

	"github.com/thaw-run/thaw/internal/errdefs"
	"github.com/thaw-run/thaw/sdk/go/wire"
)

// The guest's ABI exports, in the order of an instance's life.
const (
	// ExportVersion is thaw_abi_version() -> i32, the ABI version the
	// guest implements; it must equal Version.
	ExportVersion = "thaw_abi_version"
	// ExportBeforeSnapshot is thaw_before_snapshot(), called once on the
	// booted instance after its initialisation and before its deploy
	// snapshot is captured. Optional. The Go SDK collects garbage there,
	// so every restored instance starts a fresh GC cycle instead of one
	// that initialisation has nearly used up.
	ExportBeforeSnapshot = "thaw_before_snapshot"
	// ExportOnRestore is thaw_on_restore(), called once after restoring a
	// snapshot and before the first request. Optional.
	ExportOnRestore = "thaw_on_restore"
	// ExportIdle is thaw_idle(), called between requests when the host
	// has idle time: after a response is sent and before the instance
	// serves again or is snapshotted. Optional. The Go SDK finishes (or
	// starts early) a GC cycle there, off the requests' path.
	ExportIdle = "thaw_idle"
	// ExportAlloc is thaw_alloc(size i32) -> i32, the address of a guest
	// buffer of size bytes where the host writes the next request.
	ExportAlloc = "thaw_alloc"
	// ExportHandle is thaw_handle(ptr i32, len i32) -> i64: it serves the
	// request at [ptr, ptr+len) and returns the response's address in the
	// high 32 bits and its length in the low 32 bits.
	ExportHandle = "thaw_handle"
)

// Version is the ABI version this host speaks.
const Version = wire.Version

// Request is an invocation's HTTP request. Encode it with AppendTo.
type Request = wire.Request

// Response is an invocation's HTTP response. Encode it with AppendTo.
type Response = wire.Response

// PanicError reports that the guest's handler panicked. It wraps
// errdefs.ErrGuest.
type PanicError struct {
	// Message is the panic value as the guest printed it.
	Message string
	// Stack is the panicking goroutine's stack, possibly truncated; it is
	// for logs, not for clients.
	Stack string
}

func (e *PanicError) Error() string { return "guest panic: " + e.Message }

// Unwrap makes errors.Is(err, errdefs.ErrGuest) hold.
func (e *PanicError) Unwrap() error { return errdefs.ErrGuest }

// DecodeRequest decodes an encoded request; malformed input fails with
// errdefs.ErrInvalid. Body aliases b.
func DecodeRequest(b []byte) (*Request, error) {
	r, err := wire.DecodeRequest(b)
	if err != nil {
		return nil, fmt.Errorf("request: %v: %w", err, errdefs.ErrInvalid)
	}
	return r, nil
}

// DecodeResponse decodes a guest's response, typically read straight out of
// guest memory. Malformed output fails with errdefs.ErrGuest, and a
// response that reports a handler panic with a *PanicError. The result is a
// copy: it does not alias b, so the guest may reuse its buffer.
func DecodeResponse(b []byte) (*Response, error) {
	r, err := DecodeOwnedResponse(b)
	if err != nil {
		return nil, err
	}
	r.Body = append([]byte(nil), r.Body...)
	return r, nil
}

// DecodeOwnedResponse is DecodeResponse for a copy of the guest's output
// that the caller owns and does not reuse: the result's body aliases b,
// so the response is not copied a second time.
func DecodeOwnedResponse(b []byte) (*Response, error) {
	r, err := wire.DecodeResponse(b)
	if err != nil {
		return nil, fmt.Errorf("guest response: %v: %w", err, errdefs.ErrGuest)
	}
	if r.Panic {
		return nil, &PanicError{Message: string(r.Body), Stack: r.Header.Get(wire.StackHeader)}
	}
	return r, nil
}
