package abi

import (
	"bytes"
	"errors"
	"net/http"
	"testing"

	"github.com/thaw-run/thaw/internal/errdefs"
	"github.com/thaw-run/thaw/sdk/go/wire"
)

func TestDecodeResponse(t *testing.T) {
	ok := (&Response{Status: 200, Header: http.Header{"K": {"v"}}, Body: []byte("hi")}).AppendTo(nil)
	cases := []struct {
		name      string
		in        []byte
		wantErr   error
		wantPanic string
	}{
		{"ok", ok, nil, ""},
		{"truncated", ok[:len(ok)-1], errdefs.ErrGuest, ""},
		{"garbage", []byte("HTTP/1.1 200 OK\r\n"), errdefs.ErrGuest, ""},
		{"empty", nil, errdefs.ErrGuest, ""},
		{"panic", (&Response{Status: 500, Panic: true, Header: http.Header{wire.StackHeader: {"goroutine 1 [running]"}},
			Body: []byte("index out of range")}).AppendTo(nil), errdefs.ErrGuest, "index out of range"},
	}
	for _, decode := range []struct {
		name string
		fn   func([]byte) (*Response, error)
	}{{"copy", DecodeResponse}, {"owned", DecodeOwnedResponse}} {
		for _, c := range cases {
			t.Run(decode.name+"/"+c.name, func(t *testing.T) {
				testDecodeResponse(t, decode.fn, c.in, c.wantErr, c.wantPanic)
			})
		}
	}
}

// testDecodeResponse checks one case of TestDecodeResponse with decode.
func testDecodeResponse(t *testing.T, decode func([]byte) (*Response, error), in []byte, wantErr error, wantPanic string) {
	r, err := decode(in)
	if !errors.Is(err, wantErr) {
		t.Fatalf("err = %v, want %v", err, wantErr)
	}
	if wantErr == nil && (r.Status != 200 || string(r.Body) != "hi" || r.Header.Get("K") != "v") {
		t.Fatalf("decoded %+v", r)
	}
	var pe *PanicError
	if got := errors.As(err, &pe); got != (wantPanic != "") {
		t.Fatalf("PanicError = %v (%v), want %v", got, err, wantPanic != "")
	}
	if pe != nil {
		if pe.Message != wantPanic || pe.Stack != "goroutine 1 [running]" {
			t.Errorf("panic %+v", pe)
		}
		if want := "guest panic: " + wantPanic; err.Error() != want {
			t.Errorf("message %q, want %q", err.Error(), want)
		}
	}
}

// The decoded response must not alias guest memory, which the guest reuses
// on its next call.
func TestDecodeResponseCopies(t *testing.T) {
	mem := (&Response{Status: 200, Body: []byte("stable")}).AppendTo(nil)
	r, err := DecodeResponse(mem)
	if err != nil {
		t.Fatal(err)
	}
	for i := range mem {
		mem[i] = 'X'
	}
	if string(r.Body) != "stable" {
		t.Fatalf("body changed with guest memory: %q", r.Body)
	}
	// DecodeOwnedResponse leaves the body where it is: the caller's copy.
	mem = (&Response{Status: 200, Body: []byte("stable")}).AppendTo(nil)
	if r, err = DecodeOwnedResponse(mem); err != nil || &r.Body[0] != &mem[len(mem)-len("stable")] {
		t.Fatalf("owned decode: %v, body not in its input", err)
	}
}

func TestDecodeRequest(t *testing.T) {
	req := &Request{Method: "PUT", Path: "/p", RawQuery: "a=b", Header: http.Header{"A": {"1"}}, Body: []byte{1, 2}}
	got, err := DecodeRequest(req.AppendTo(nil))
	if err != nil || got.Method != "PUT" || got.Path != "/p" || got.RawQuery != "a=b" || !bytes.Equal(got.Body, []byte{1, 2}) {
		t.Fatalf("DecodeRequest = %+v, %v", got, err)
	}
	if _, err := DecodeRequest([]byte{1}); !errors.Is(err, errdefs.ErrInvalid) {
		t.Fatalf("malformed request: %v, want ErrInvalid", err)
	}
}

// FuzzDecodeResponse checks the host's contract on arbitrary guest output:
// every error is a guest fault, and a success never aliases the input.
func FuzzDecodeResponse(f *testing.F) {
	f.Add((&Response{Status: 200, Header: http.Header{"K": {"v"}}, Body: []byte("x")}).AppendTo(nil))
	f.Add((&Response{Status: 500, Panic: true, Body: []byte("boom")}).AppendTo(nil))
	f.Fuzz(func(t *testing.T, b []byte) {
		in := append([]byte(nil), b...)
		r, err := DecodeResponse(in)
		if err != nil {
			if !errors.Is(err, errdefs.ErrGuest) {
				t.Fatalf("error %v is not a guest fault", err)
			}
			return
		}
		for i := range in {
			in[i] ^= 0xff
		}
		again, err := DecodeResponse(b)
		if err != nil || !bytes.Equal(again.Body, r.Body) {
			t.Fatalf("decoded body aliases its input")
		}
	})
}
