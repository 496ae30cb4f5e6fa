package pager

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/thaw-run/thaw/internal/errdefs"
)

func TestProtocolRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name string
		h    header
		req  serveReq
	}{
		{"serve with params", header{op: opServe, flags: flagRecord, kind: KindFile, id: 7, session: 9}, serveReq{base: 1 << 40, length: 1 << 20, readahead: 15, params: []byte("x")}},
		{"zero", header{}, serveReq{}},
		{"max", header{op: 255, status: 255, flags: 0xffff, kind: 255, id: ^uint64(0), session: ^uint64(0)}, serveReq{base: ^uint64(0) - maxRegion, length: maxRegion, readahead: ^uint32(0)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := tc.req.append(tc.h.append(nil))
			h, payload, err := parseHeader(b)
			if err != nil || h != tc.h {
				t.Fatalf("header %+v, %v; want %+v", h, err, tc.h)
			}
			req, err := parseServeReq(payload)
			if err != nil || req.base != tc.req.base || req.length != tc.req.length || req.readahead != tc.req.readahead || !bytes.Equal(req.params, tc.req.params) {
				t.Fatalf("serve request %+v, %v; want %+v", req, err, tc.req)
			}
		})
	}
	st := Stats{Faults: 1, ZeroFaults: 2, Duplicates: 3, PagesInstalled: 4, BytesRead: 5, ServeTime: 6 * time.Nanosecond, Errors: 7}
	if got, err := parseStats(st.append(nil)); err != nil || got != st {
		t.Fatalf("stats %+v, %v; want %+v", got, err, st)
	}
}

func TestProtocolErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want error
	}{
		{"invalid", errdefs.ErrInvalid, errdefs.ErrInvalid},
		{"not found", errdefs.ErrNotFound, errdefs.ErrNotFound},
		{"corrupt", errdefs.ErrCorrupt, errdefs.ErrCorrupt},
		{"uncategorised", errors.New("boom"), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := parseError(appendError(nil, tc.err))
			if tc.want != nil && !errors.Is(got, tc.want) {
				t.Fatalf("%v does not wrap %v", got, tc.want)
			}
			if tc.want == nil && errors.Unwrap(got) != nil {
				t.Fatalf("%v has a category", got)
			}
		})
	}
	if _, _, err := parseHeader(make([]byte, headerSize-1)); !errors.Is(err, errdefs.ErrCorrupt) {
		t.Fatalf("short header: %v", err)
	}
	if _, err := parseServeReq(make([]byte, serveReqSize-1)); !errors.Is(err, errdefs.ErrCorrupt) {
		t.Fatalf("short serve request: %v", err)
	}
	if _, err := parseStats(make([]byte, statsSize-1)); !errors.Is(err, errdefs.ErrCorrupt) {
		t.Fatalf("short stats: %v", err)
	}
}

// FuzzParse: no packet makes the parsers panic, and what parses re-encodes
// to the same bytes.
func FuzzParse(f *testing.F) {
	f.Add(serveReq{base: 4096, length: 8192, params: []byte("p")}.append(header{op: opServe, id: 1, session: 2}.append(nil)))
	f.Add(Stats{Faults: 3}.append(header{op: opStats}.append(nil)))
	f.Add(appendError(header{op: opStats, status: statusErr}.append(nil), errdefs.ErrInvalid))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		h, payload, err := parseHeader(b)
		if err != nil {
			return
		}
		if again := h.append(nil); !bytes.Equal(again[:5], b[:5]) || !bytes.Equal(again[8:], b[8:headerSize]) {
			t.Fatalf("header %x re-encodes as %x", b[:headerSize], again)
		}
		if req, err := parseServeReq(payload); err == nil {
			if again := req.append(nil); !bytes.Equal(again[:20], payload[:20]) || !bytes.Equal(again[serveReqSize:], payload[serveReqSize:]) {
				t.Fatalf("serve request %x re-encodes as %x", payload, again)
			}
		}
		if st, err := parseStats(payload); err == nil {
			if again := st.append(nil); !bytes.Equal(again, payload[:statsSize]) {
				t.Fatalf("stats %x re-encode as %x", payload[:statsSize], again)
			}
		}
		_ = parseError(payload).Error()
	})
}
