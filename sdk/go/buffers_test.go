package thaw

import (
	"net/http"
	"testing"

	"github.com/thaw-run/thaw/sdk/go/wire"
)

func TestAllocReusesAndReleases(t *testing.T) {
	var b buffers
	steps := []struct {
		size      int
		wantReuse bool
	}{
		{0, false},         // first call allocates, with capacity
		{100, true},        // fits the initial capacity
		{5000, false},      // grows
		{10, true},         // small again: reuse
		{8 << 20, false},   // huge
		{6 << 20, true},    // still big: reuse
		{100, false},       // a huge buffer is not kept for small requests
		{keepLimit, false}, // grows to the limit
		{100, true},        // at the limit it is kept
	}
	var prev []byte
	for i, s := range steps {
		buf := b.alloc(s.size)
		if len(buf) != s.size || cap(buf) == 0 {
			t.Fatalf("step %d: alloc(%d) gave len %d cap %d", i, s.size, len(buf), cap(buf))
		}
		reused := prev != nil && &buf[:1][0] == &prev[:1][0]
		if i > 0 && reused != s.wantReuse {
			t.Errorf("step %d: alloc(%d) reused=%v, want %v", i, s.size, reused, s.wantReuse)
		}
		prev = buf
	}
}

func TestHandleChecksBuffer(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("served")) })
	in := (&wire.Request{Method: "GET", Path: "/"}).AppendTo(nil)
	cases := []struct {
		name       string
		size       int
		ptrOK      bool
		wantStatus int
	}{
		{"good", len(in), true, 200},
		{"foreign pointer", len(in), false, 400},
		{"longer than the buffer", len(in) + 1, true, 400},
		{"negative size", -1, true, 400},
		{"truncated request", len(in) - 1, true, 400},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var b buffers
			copy(b.alloc(len(in)), in)
			resp, err := wire.DecodeResponse(b.handle(h, c.size, c.ptrOK))
			if err != nil {
				t.Fatal(err)
			}
			if resp.Status != c.wantStatus {
				t.Fatalf("status %d %q, want %d", resp.Status, resp.Body, c.wantStatus)
			}
		})
	}
}

func TestHandleReleasesHugeResponse(t *testing.T) {
	var b buffers
	big := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(make([]byte, keepLimit+1)) })
	in := (&wire.Request{Method: "GET", Path: "/"}).AppendTo(nil)
	copy(b.alloc(len(in)), in)
	b.handle(big, len(in), true)
	small := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})
	if out := b.handle(small, len(in), true); cap(out) > keepLimit {
		t.Fatalf("response buffer of %d bytes kept after a huge response", cap(out))
	}
}
