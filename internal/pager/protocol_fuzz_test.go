package pager

import (
	"encoding/binary"
	"errors"
	"math"
	"testing"

	"github.com/thaw-run/thaw/internal/errdefs"
)

// FuzzProtocolFrames feeds arbitrary packets to the decoders of the pager
// protocol (both directions of the socket): each is an error or a message
// whose sizes are within bounds; a serve request is never accepted with a
// region that wraps the address space or is larger than wasm32's memory,
// since the session sizes its page bitmap by it.
func FuzzProtocolFrames(f *testing.F) {
	serve := func(base, length uint64) []byte {
		b := header{op: opServe, id: 1, session: 2}.append(nil)
		return serveReq{base: base, length: length, readahead: 4, params: []byte("{}")}.append(b)
	}
	f.Add(serve(0x7f0000000000, 1<<20))
	f.Add(serve(math.MaxUint64-4095, 8192))            // wraps
	f.Add(serve(0x1000, math.MaxUint64&^(pageSize-1))) // 2^64 bytes of bitmap
	f.Add(serve(0, maxRegion+pageSize))
	f.Add(Stats{Faults: 3}.append(header{op: opStats}.append(nil)))
	f.Add(append(header{op: opServe, status: statusErr}.append(nil), 200, 'x'))
	f.Add([]byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, b []byte) {
		h, payload, err := parseHeader(b)
		if err != nil {
			if !errors.Is(err, errdefs.ErrCorrupt) {
				t.Fatalf("header error %v is not ErrCorrupt", err)
			}
			return
		}
		_ = h
		if r, err := parseServeReq(payload); err == nil {
			if r.length > maxRegion || r.base+r.length < r.base {
				t.Fatalf("accepted region [%#x,+%d)", r.base, r.length)
			}
			if got := binary.LittleEndian.Uint64(payload[8:]); got != r.length {
				t.Fatalf("length %d decoded as %d", got, r.length)
			}
		}
		_, _ = parseStats(payload)
		_ = parseError(payload).Error()
	})
}
