// Package wire is the byte encoding of thaw's function ABI, shared by the
// guest SDK and the host so that both sides run one codec. docs/abi.md
// specifies it byte by byte for SDKs in other languages.
//
// All integers are little-endian. A string or byte field is a u32 length
// followed by that many bytes.
//
//	request  = u8 version(1), str method, str path, str raw_query,
//	           u32 n, n × (str key, str value), bytes body
//	response = u8 version(1), u8 flags, u32 status,
//	           u32 n, n × (str key, str value), bytes body
//
// The format is binary rather than JSON because bodies are arbitrary bytes
// and because the guest decodes it on every invocation: decoding is a few
// bounds checks and copies, with no reflection.
//
// Decoders are strict: every length is checked against the bytes that
// remain, so a hostile message can never make them allocate more than its
// own size, and trailing bytes, unknown flags and unknown versions are
// errors rather than silently ignored.
package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/http"
	"slices"
)

// Version is the encoding version, the first byte of every message. It is
// also what the guest's thaw_abi_version export returns.
const Version = 1

// Response flags.
const (
	// FlagPanic marks a response that reports a handler panic instead of
	// an HTTP response: Body holds the panic message, and the StackHeader
	// header, if present, the panicking goroutine's stack.
	FlagPanic = 1 << 0

	knownFlags = FlagPanic
)

// StackHeader is the header that carries the guest stack of a panic
// response. It is a header rather than part of the body so the message
// stays a single short line the host can put in an error.
const StackHeader = "Thaw-Panic-Stack"

// ErrMalformed is returned for input that is not a valid encoding.
var ErrMalformed = errors.New("malformed ABI message")

// Request is an HTTP request crossing the ABI.
type Request struct {
	// Method is the HTTP method, e.g. "GET".
	Method string
	// Path is the request path as sent on the wire, still percent-encoded
	// (url.URL.EscapedPath), starting with "/".
	Path string
	// RawQuery is the query string without the "?".
	RawQuery string
	// Header holds the request headers. The host passes the request's
	// host name as a "Host" header.
	Header http.Header
	// Body is the whole request body.
	Body []byte
}

// Response is an HTTP response crossing the ABI.
type Response struct {
	// Status is the HTTP status code, 100 to 999.
	Status int
	// Header holds the response headers.
	Header http.Header
	// Body is the whole response body.
	Body []byte
	// Panic is set when the guest handler panicked; Body is the message.
	Panic bool
}

func appendU32(b []byte, v uint32) []byte { return binary.LittleEndian.AppendUint32(b, v) }

func appendBytes(b, s []byte) []byte { return append(appendU32(b, uint32(len(s))), s...) }

func appendString(b []byte, s string) []byte { return append(appendU32(b, uint32(len(s))), s...) }

// AppendHeader appends the encoding of h: a u32 count of key/value pairs,
// then each pair. Keys are written in sorted order, so equal headers
// encode to equal bytes; a key with several values yields several pairs in
// value order.
func AppendHeader(b []byte, h http.Header) []byte {
	n := 0
	for _, vs := range h {
		n += len(vs)
	}
	b = appendU32(b, uint32(n))
	keys := make([]string, 0, len(h))
	for k := range h {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		for _, v := range h[k] {
			b = appendString(appendString(b, k), v)
		}
	}
	return b
}

// AppendTo appends the encoding of r to b and returns the extended slice.
func (r *Request) AppendTo(b []byte) []byte {
	b = append(b, Version)
	b = appendString(b, r.Method)
	b = appendString(b, r.Path)
	b = appendString(b, r.RawQuery)
	b = AppendHeader(b, r.Header)
	return appendBytes(b, r.Body)
}

// AppendTo appends the encoding of r to b and returns the extended slice.
func (r *Response) AppendTo(b []byte) []byte {
	b = AppendResponseHead(b, r.Status, r.Header, r.Panic)
	return appendBytes(b, r.Body)
}

// AppendResponseHead appends everything of a response that precedes its
// body: version, flags, status and headers. A writer that streams the body
// appends a u32 length and the body after it (see PutBodyLength).
func AppendResponseHead(b []byte, status int, h http.Header, panicked bool) []byte {
	var flags byte
	if panicked {
		flags |= FlagPanic
	}
	b = append(b, Version, flags)
	b = appendU32(b, uint32(status))
	return AppendHeader(b, h)
}

// PutBodyLength writes n as the u32 body length at b[:4]; b must have room.
// It lets a writer reserve the length, append the body, and patch it.
func PutBodyLength(b []byte, n int) { binary.LittleEndian.PutUint32(b, uint32(n)) }

// reader decodes with every length checked against what remains.
type reader struct {
	b   []byte
	err error
}

func (r *reader) fail(what string) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: truncated or oversized %s", ErrMalformed, what)
	}
}

func (r *reader) u8(what string) byte {
	if r.err != nil || len(r.b) < 1 {
		r.fail(what)
		return 0
	}
	v := r.b[0]
	r.b = r.b[1:]
	return v
}

func (r *reader) u32(what string) uint32 {
	if r.err != nil || len(r.b) < 4 {
		r.fail(what)
		return 0
	}
	v := binary.LittleEndian.Uint32(r.b)
	r.b = r.b[4:]
	return v
}

func (r *reader) bytes(what string) []byte {
	n := r.u32(what)
	if r.err != nil || uint64(n) > uint64(len(r.b)) {
		r.fail(what)
		return nil
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v
}

func (r *reader) version() {
	if v := r.u8("version"); r.err == nil && v != Version {
		r.err = fmt.Errorf("%w: version %d, want %d", ErrMalformed, v, Version)
	}
}

func (r *reader) header() http.Header {
	n := r.u32("header count")
	// Each pair takes at least 8 bytes (two lengths), which bounds n, and
	// so the map allocated here, by the input's size.
	if r.err != nil || uint64(n)*8 > uint64(len(r.b)) {
		r.fail("header count")
		return nil
	}
	h := make(http.Header, min(n, 64))
	for i := uint32(0); i < n && r.err == nil; i++ {
		k := r.bytes("header name")
		v := r.bytes("header value")
		if r.err == nil {
			h[string(k)] = append(h[string(k)], string(v))
		}
	}
	return h
}

func (r *reader) end() error {
	if r.err == nil && len(r.b) != 0 {
		r.err = fmt.Errorf("%w: %d trailing bytes", ErrMalformed, len(r.b))
	}
	return r.err
}

// DecodeRequest decodes a request. Strings are copies; Body aliases b.
func DecodeRequest(b []byte) (*Request, error) {
	r := &reader{b: b}
	r.version()
	req := &Request{}
	req.Method = string(r.bytes("method"))
	req.Path = string(r.bytes("path"))
	req.RawQuery = string(r.bytes("query"))
	req.Header = r.header()
	req.Body = r.bytes("body")
	if err := r.end(); err != nil {
		return nil, err
	}
	if req.Method == "" {
		return nil, fmt.Errorf("%w: empty method", ErrMalformed)
	}
	return req, nil
}

// DecodeResponse decodes a response. Strings are copies; Body aliases b.
func DecodeResponse(b []byte) (*Response, error) {
	r := &reader{b: b}
	r.version()
	resp := &Response{}
	flags := r.u8("flags")
	resp.Status = int(r.u32("status"))
	resp.Header = r.header()
	resp.Body = r.bytes("body")
	if err := r.end(); err != nil {
		return nil, err
	}
	if flags&^knownFlags != 0 {
		return nil, fmt.Errorf("%w: unknown flags %#x", ErrMalformed, flags)
	}
	resp.Panic = flags&FlagPanic != 0
	if resp.Status < 100 || resp.Status > 999 {
		return nil, fmt.Errorf("%w: status %d", ErrMalformed, resp.Status)
	}
	return resp, nil
}
