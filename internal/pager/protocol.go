// Package pager serves userfaultfd page faults from a separate process.
//
// # Why a separate process
//
// A thread that faults on userfaultfd-registered memory sleeps in the kernel
// while keeping its Go P. If the fault handler needed a P in the same
// process, GOMAXPROCS faulting threads would leave it none and the process
// would hang (measured at GOMAXPROCS=1). So thaw re-executes its own binary
// as a pager child (see RunIfChild) and hands it, per restored region, the
// userfaultfd and the image file over a unix socket (SCM_RIGHTS), as
// Firecracker hands its uffd to an external handler. The pager resolves
// each fault with UFFDIO_COPY from the image, or UFFDIO_ZEROPAGE for holes
// and offsets past the image's end, and can record the order of first
// faults (REAP's record phase).
//
// # Protocol
//
// One SOCK_SEQPACKET socket pair; each packet is one message: a fixed
// 24-byte little-endian header followed by an op-specific payload. Requests
// carry an id that the response repeats, so requests from many goroutines
// can be in flight at once. docs/pager.md has the formats.
package pager

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"github.com/thaw-run/thaw/internal/errdefs"
)

// EnvChild is the environment variable that makes RunIfChild become the
// pager.
const EnvChild = "THAW_PAGER_CHILD"

// childFd is the socket's descriptor number in the pager (ExtraFiles[0]).
const childFd = 3

// ops
const (
	opReady = 1 // pager → client, unsolicited, once: serving
	opServe = 2 // fds: uffd, source fds; payload: serveReq
	opStats = 3 // response payload: statsSize bytes
	opTrace = 4 // response: u64 offsets, chunked with flagMore
	opClose = 5 // session done: pager drops its fds
	// opStandby makes the pager a standby: fds: a pidfd of the primary.
	// Sessions are held, not served, until the primary exits.
	opStandby = 6
	// opPromoted (pager → client, unsolicited): the standby took over.
	opPromoted = 7
)

// header flags
const (
	flagMore   = 1 << 0 // response: more packets follow for this id
	flagRecord = 1 << 1 // serve: record the first-fault order
	flagShared = 1 << 2 // serve: fds[1] is a page shared with the client, holding the error count
)

// status
const (
	statusOK  = 0
	statusErr = 1 // payload: category byte, then message
)

const (
	headerSize = 24
	// maxPacket bounds one packet; it stays well below the socket's send
	// buffer so a packet is never refused for size.
	maxPacket = 64 << 10
	// sharedSize is the size of a session's shared counter page.
	sharedSize = 4096
	// maxFds bounds the descriptors one packet may carry.
	maxFds = 8
	// traceChunk is the number of offsets per trace packet.
	traceChunk = (maxPacket - headerSize) / 8
)

// Words (u64, native order) of a session's shared page. Every pager serving
// the session and the client map the same page, so the counts survive a
// pager's death and the client reads them with a memory load.
const (
	// sharedErrors counts faults refused or failed (Session.Errors); it
	// is incremented before the faulting thread is woken.
	sharedErrors = iota
	// sharedBegun and sharedFinished count fault messages a pager has
	// taken in hand and finished with: a difference that does not move
	// is a pager stuck on a fault (the standby's watchdog).
	sharedBegun
	sharedFinished
	// sharedUnavailable, sharedCorrupt and sharedLost split sharedErrors
	// by cause: the page source failed past the fault budget, the page
	// failed its checksum, or the pager serving the fault died or stalled.
	sharedUnavailable
	sharedCorrupt
	sharedLost
	// sharedFaults and sharedBytesRead count the faults a pager served
	// from the source (duplicates excluded) and the bytes it read for
	// them (Session.Counts): the worker reads them after the first call
	// of every restore, where a stats round trip would cost a wake-up of
	// the pager process on the response path.
	sharedFaults
	sharedBytesRead
	// sharedCacheBytes, sharedPeerBytes and sharedRemoteBytes split the
	// bytes a store source read for faults by the class of tier that
	// served them (store.Tally): the pager's caches, a peer's, the object
	// store. The worker reports them per restore (Server-Timing).
	sharedCacheBytes
	sharedPeerBytes
	sharedRemoteBytes
)

// header is the fixed prefix of every packet.
//
//	0  op      u8
//	1  status  u8
//	2  flags   u16
//	4  kind    u8   (serve: page source kind)
//	5  -       3 bytes
//	8  id      u64  (request id, echoed; 0 for opReady)
//	16 session u64
type header struct {
	op      uint8
	status  uint8
	flags   uint16
	kind    uint8
	id      uint64
	session uint64
}

func (h header) append(b []byte) []byte {
	b = append(b, h.op, h.status)
	b = binary.LittleEndian.AppendUint16(b, h.flags)
	b = append(b, h.kind, 0, 0, 0)
	b = binary.LittleEndian.AppendUint64(b, h.id)
	return binary.LittleEndian.AppendUint64(b, h.session)
}

func parseHeader(b []byte) (header, []byte, error) {
	if len(b) < headerSize {
		return header{}, nil, fmt.Errorf("pager: short packet (%d bytes): %w", len(b), errdefs.ErrCorrupt)
	}
	return header{
		op:      b[0],
		status:  b[1],
		flags:   binary.LittleEndian.Uint16(b[2:]),
		kind:    b[4],
		id:      binary.LittleEndian.Uint64(b[8:]),
		session: binary.LittleEndian.Uint64(b[16:]),
	}, b[headerSize:], nil
}

// serveReq is the payload of opServe.
//
//	0  base      u64
//	8  length    u64
//	16 readahead u32
//	20 -         u32
//	24 params    (source-specific, to the end of the packet)
type serveReq struct {
	base      uint64
	length    uint64
	readahead uint32
	params    []byte
}

const serveReqSize = 24

func (r serveReq) append(b []byte) []byte {
	b = binary.LittleEndian.AppendUint64(b, r.base)
	b = binary.LittleEndian.AppendUint64(b, r.length)
	b = binary.LittleEndian.AppendUint32(b, r.readahead)
	b = binary.LittleEndian.AppendUint32(b, 0)
	return append(b, r.params...)
}

// maxRegion bounds a served region: wasm32's 4 GiB of linear memory. A
// session allocates a bitmap by its length, so the length is checked
// before anything is sized by it.
const maxRegion = 1 << 32

// maxResponse bounds the payload of one response, all its packets
// together: a trace of every page of the largest region.
const maxResponse = 8*(maxRegion/pageSize) + maxPacket

func parseServeReq(b []byte) (serveReq, error) {
	if len(b) < serveReqSize {
		return serveReq{}, fmt.Errorf("pager: short serve request: %w", errdefs.ErrCorrupt)
	}
	r := serveReq{
		base:      binary.LittleEndian.Uint64(b),
		length:    binary.LittleEndian.Uint64(b[8:]),
		readahead: binary.LittleEndian.Uint32(b[16:]),
		params:    b[serveReqSize:],
	}
	// base+length must not wrap: the fault handler tests addresses
	// against it.
	if r.length > maxRegion || r.base > math.MaxUint64-r.length {
		return serveReq{}, fmt.Errorf("pager: serve request for [%#x,+%d): past %d bytes or the address space: %w", r.base, r.length, uint64(maxRegion), errdefs.ErrInvalid)
	}
	return r, nil
}

// statsSize is the payload size of an opStats response: seven u64s in the
// order of the Stats fields.
const statsSize = 7 * 8

func (s Stats) append(b []byte) []byte {
	for _, v := range []uint64{s.Faults, s.ZeroFaults, s.Duplicates, s.PagesInstalled, s.BytesRead, uint64(s.ServeTime), s.Errors} {
		b = binary.LittleEndian.AppendUint64(b, v)
	}
	return b
}

func parseStats(b []byte) (Stats, error) {
	if len(b) < statsSize {
		return Stats{}, fmt.Errorf("pager: short stats response: %w", errdefs.ErrCorrupt)
	}
	u := func(i int) uint64 { return binary.LittleEndian.Uint64(b[8*i:]) }
	return Stats{Faults: u(0), ZeroFaults: u(1), Duplicates: u(2), PagesInstalled: u(3),
		BytesRead: u(4), ServeTime: durationOf(u(5)), Errors: u(6)}, nil
}

// Error categories carried in error responses, so the client can wrap the
// same errdefs sentinel the pager used.
var categories = []error{nil, errdefs.ErrInvalid, errdefs.ErrNotFound, errdefs.ErrUnavailable, errdefs.ErrCorrupt}

func appendError(b []byte, err error) []byte {
	c := byte(0)
	for i, cat := range categories {
		if cat != nil && errors.Is(err, cat) {
			c = byte(i)
			break
		}
	}
	return append(append(b, c), err.Error()...)
}

// remoteError is an error reported by the pager.
type remoteError struct {
	msg string
	cat error
}

func (e *remoteError) Error() string { return "pager: " + e.msg }
func (e *remoteError) Unwrap() error { return e.cat }

func parseError(b []byte) error {
	if len(b) == 0 {
		return &remoteError{msg: "unspecified error"}
	}
	e := &remoteError{msg: string(b[1:])}
	if int(b[0]) < len(categories) {
		e.cat = categories[b[0]]
	}
	return e
}
