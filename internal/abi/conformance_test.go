package abi_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/thaw-run/thaw/internal/abi"
)

// The two implementations of one function, in Go (the Go SDK) and in
// JavaScript (sdk/js): see testdata/conformance.
var conformance = []string{"internal/abi/testdata/conformance/go", "internal/abi/testdata/conformance/js"}

// TestConformance drives the Go and the JavaScript function with the same
// requests through the ABI and expects the same answers: status, headers
// (names compared case-insensitively: JavaScript's Headers send them in
// lower case, as the Fetch standard says) and body byte for byte, or the
// same guest fault.
func TestConformance(t *testing.T) {
	binary := make([]byte, 256)
	for i := range binary {
		binary[i] = byte(i)
	}
	large := make([]byte, 3<<20+17)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range large {
		large[i] = byte(rng.Uint32())
	}
	reqs := []*abi.Request{
		{Method: "GET", Path: "/"},
		{Method: "GET", Path: ""},
		{Method: "POST", Path: "/a%2Fb/c", RawQuery: "name=%C3%A9t%C3%A9+x&raw=1&name=second",
			Header: http.Header{"Host": {"fn.example:8080"}, "X-In": {"a", "b"}, "Content-Type": {"application/octet-stream"}}, Body: binary},
		{Method: "PUT", Path: "/large", Body: large},
		{Method: "DELETE", Path: "/x", RawQuery: "status=404"},
		{Method: "GET", Path: "/", RawQuery: "status=204"},
		{Method: "PATCH", Path: "/", RawQuery: "status=599", Body: []byte("{}")},
		{Method: "OPTIONS", Path: "/", RawQuery: "status=201", Header: http.Header{"x-in": {"lower-case key"}}},
		{Method: "POST", Path: "/", RawQuery: "status=500", Body: []byte("a plain 500 is an answer, not a fault")},
		{Method: "PROPFIND", Path: "/dav/%7Euser", Body: []byte("\x00")},
		{Method: "GET", Path: "/multi"},
		{Method: "GET", Path: "/panic", RawQuery: "msg=boom"},
	}
	goGuest, jsGuest := start(t, conformance[0]), start(t, conformance[1])
	ctx := context.Background()
	for _, req := range reqs {
		name := fmt.Sprintf("%s %s?%s (%d bytes)", req.Method, req.Path, req.RawQuery, len(req.Body))
		t.Run(name, func(t *testing.T) {
			want, wantErr := goGuest.invoke(ctx, req)
			got, gotErr := jsGuest.invoke(ctx, req)
			if wantErr != nil || gotErr != nil {
				var wp, gp *abi.PanicError
				if !errors.As(wantErr, &wp) || !errors.As(gotErr, &gp) {
					t.Fatalf("Go: %v; JavaScript: %v; want both answers or both panics", wantErr, gotErr)
				}
				if !strings.Contains(wp.Error(), "conformance: boom") || !strings.Contains(gp.Error(), "conformance: boom") {
					t.Errorf("panic messages: Go %q, JavaScript %q; want both to carry the message", wp, gp)
				}
				if !strings.Contains(gp.Error(), "handler.js:8:") {
					t.Errorf("JavaScript panic %q does not name the script's line", gp)
				}
				// The faulted instances are never reused.
				goGuest, jsGuest = start(t, conformance[0]), start(t, conformance[1])
				return
			}
			if got.Status != want.Status || !bytes.Equal(got.Body, want.Body) {
				t.Errorf("JavaScript: status %d, %d body bytes; Go: %d, %d bytes (bodies equal: %v)",
					got.Status, len(got.Body), want.Status, len(want.Body), bytes.Equal(got.Body, want.Body))
			}
			if g, w := headers(got.Header), headers(want.Header); g != w {
				t.Errorf("headers differ:\nJavaScript:\n%s\nGo:\n%s", g, w)
			}
			if want.Status == 0 || (req.Path == "/large" && len(want.Body) != len(large)) {
				t.Errorf("Go answered %d with %d bytes: the test's premise is broken", want.Status, len(want.Body))
			}
		})
	}
}

// headers prints h with canonical names, sorted, one value a line.
func headers(h http.Header) string {
	var lines []string
	for k, vs := range h {
		for _, v := range vs {
			lines = append(lines, http.CanonicalHeaderKey(k)+": "+v)
		}
	}
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}
