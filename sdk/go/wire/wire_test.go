package wire

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	requests := []struct {
		name string
		req  *Request
	}{
		{"full", &Request{Method: "POST", Path: "/a/b%2Fc", RawQuery: "x=1&y=2",
			Header: http.Header{"Content-Type": {"application/json"}, "X-Multi": {"1", "2"}}, Body: []byte{0, 1, 2, 255}}},
		{"minimal", &Request{Method: "GET", Path: "/", Header: http.Header{}, Body: []byte{}}},
		{"empty header value", &Request{Method: "GET", Path: "/", Header: http.Header{"X-Empty": {""}}, Body: []byte{}}},
	}
	for _, c := range requests {
		t.Run("request/"+c.name, func(t *testing.T) {
			got, err := DecodeRequest(c.req.AppendTo(nil))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, c.req) {
				t.Fatalf("got %+v, want %+v", got, c.req)
			}
		})
	}
	responses := []struct {
		name string
		resp *Response
	}{
		{"panic", &Response{Status: 500, Header: http.Header{StackHeader: {"goroutine 1"}}, Body: []byte("boom"), Panic: true}},
		{"binary body", &Response{Status: 201, Header: http.Header{"A": {"b"}}, Body: []byte{0, 0xff, '\n'}}},
		{"no content", &Response{Status: 204, Header: http.Header{}, Body: []byte{}}},
	}
	for _, c := range responses {
		t.Run("response/"+c.name, func(t *testing.T) {
			got, err := DecodeResponse(c.resp.AppendTo(nil))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, c.resp) {
				t.Fatalf("got %+v, want %+v", got, c.resp)
			}
		})
	}
}

// The exact bytes of docs/abi.md's worked examples: other SDKs are written
// against them, so a change here is an ABI change.
func TestGoldenEncoding(t *testing.T) {
	req := &Request{Method: "GET", Path: "/", RawQuery: "a=1", Header: http.Header{"X": {"y"}}, Body: []byte("hi")}
	wantReq := []byte{
		0x01,
		0x03, 0, 0, 0, 'G', 'E', 'T',
		0x01, 0, 0, 0, '/',
		0x03, 0, 0, 0, 'a', '=', '1',
		0x01, 0, 0, 0,
		0x01, 0, 0, 0, 'X', 0x01, 0, 0, 0, 'y',
		0x02, 0, 0, 0, 'h', 'i',
	}
	if got := req.AppendTo(nil); !bytes.Equal(got, wantReq) {
		t.Errorf("request encoding\n got % x\nwant % x", got, wantReq)
	}
	resp := &Response{Status: 200, Header: http.Header{"B": {"2"}, "A": {"1"}}, Body: []byte("ok")}
	wantResp := []byte{
		0x01, 0x00,
		0xc8, 0, 0, 0,
		0x02, 0, 0, 0,
		0x01, 0, 0, 0, 'A', 0x01, 0, 0, 0, '1',
		0x01, 0, 0, 0, 'B', 0x01, 0, 0, 0, '2',
		0x02, 0, 0, 0, 'o', 'k',
	}
	if got := resp.AppendTo(nil); !bytes.Equal(got, wantResp) {
		t.Errorf("response encoding\n got % x\nwant % x", got, wantResp)
	}
}

func TestHeaderEncodingIsDeterministic(t *testing.T) {
	h := http.Header{}
	for i := 0; i < 50; i++ {
		h.Add(fmt.Sprintf("K%02d", i), "v")
	}
	first := AppendHeader(nil, h)
	for i := 0; i < 20; i++ {
		if got := AppendHeader(nil, h); !bytes.Equal(got, first) {
			t.Fatal("equal headers encoded differently")
		}
	}
}

func TestStreamedResponseHead(t *testing.T) {
	want := (&Response{Status: 404, Header: http.Header{"K": {"v"}}, Body: []byte("nope")}).AppendTo(nil)
	b := AppendResponseHead(nil, 404, http.Header{"K": {"v"}}, false)
	at := len(b)
	b = append(b, 0, 0, 0, 0)
	b = append(b, "nope"...)
	PutBodyLength(b[at:], 4)
	if !bytes.Equal(b, want) {
		t.Fatalf("streamed % x, want % x", b, want)
	}
}

func TestDecodeResponseRejectsMalformed(t *testing.T) {
	good := (&Response{Status: 200, Header: http.Header{"K": {"v"}}, Body: []byte("body")}).AppendTo(nil)
	cases := []struct {
		name string
		in   []byte
	}{
		{"empty", nil},
		{"bad version", append([]byte{9}, good[1:]...)},
		{"version 0", append([]byte{0}, good[1:]...)},
		{"unknown flag", append([]byte{1, 0x80}, good[2:]...)},
		{"trailing byte", append(append([]byte{}, good...), 0)},
		{"header count beyond input", []byte{1, 0, 200, 0, 0, 0, 0xff, 0xff, 0xff, 0xff}},
		{"header name beyond input", []byte{1, 0, 200, 0, 0, 0, 1, 0, 0, 0, 0xff, 0xff, 0, 0, 0, 0, 0, 0}},
		{"body beyond input", append((&Response{Status: 200}).AppendTo(nil)[:10], 0xff, 0xff, 0xff, 0x7f)},
		{"body length 4 GiB - 1", append((&Response{Status: 200}).AppendTo(nil)[:10], 0xff, 0xff, 0xff, 0xff)},
		{"status 0", (&Response{Status: 0}).AppendTo(nil)},
		{"status 99", (&Response{Status: 99}).AppendTo(nil)},
		{"status 1000", (&Response{Status: 1000}).AppendTo(nil)},
	}
	for i := 1; i < len(good); i++ {
		cases = append(cases, struct {
			name string
			in   []byte
		}{fmt.Sprintf("truncated to %d", i), good[:i]})
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if r, err := DecodeResponse(c.in); !errors.Is(err, ErrMalformed) {
				t.Errorf("DecodeResponse = %+v, %v; want ErrMalformed", r, err)
			}
		})
	}
}

func TestDecodeRequestRejectsMalformed(t *testing.T) {
	good := (&Request{Method: "GET", Path: "/", Header: http.Header{"K": {"v"}}, Body: []byte("x")}).AppendTo(nil)
	cases := []struct {
		name string
		in   []byte
	}{
		{"empty", nil},
		{"bad version", append([]byte{2}, good[1:]...)},
		{"trailing byte", append(append([]byte{}, good...), 0)},
		{"empty method", (&Request{Path: "/"}).AppendTo(nil)},
		{"method beyond input", []byte{1, 0xff, 0xff, 0xff, 0xff, 'G'}},
	}
	for i := 1; i < len(good); i++ {
		cases = append(cases, struct {
			name string
			in   []byte
		}{fmt.Sprintf("truncated to %d", i), good[:i]})
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if r, err := DecodeRequest(c.in); !errors.Is(err, ErrMalformed) {
				t.Errorf("DecodeRequest = %+v, %v; want ErrMalformed", r, err)
			}
		})
	}
}

// Decoding allocates in proportion to the input, never to the lengths it
// claims: a 10-byte message claiming 2^32-1 headers must not allocate a
// large map.
func TestDecodeAllocationIsBounded(t *testing.T) {
	in := []byte{1, 0, 200, 0, 0, 0, 0xff, 0xff, 0xff, 0x0f}
	in = append(in, make([]byte, 64)...)
	allocs := testing.AllocsPerRun(100, func() { _, _ = DecodeResponse(in) })
	if allocs > 4 {
		t.Fatalf("%v allocations decoding a hostile header count", allocs)
	}
}

// checkRoundTrip asserts the codec's properties on any input the decoder
// accepts: re-encoding and decoding gives the same value, and encoding is
// a fixed point after one decode (canonical form).
func checkRoundTrip[T any](t *testing.T, b []byte, decode func([]byte) (*T, error), encode func(*T) []byte) {
	v, err := decode(b)
	if err != nil {
		if !errors.Is(err, ErrMalformed) {
			t.Fatalf("error %v does not wrap ErrMalformed", err)
		}
		return
	}
	enc := encode(v)
	again, err := decode(enc)
	if err != nil {
		t.Fatalf("re-encoding of an accepted message is rejected: %v", err)
	}
	if !reflect.DeepEqual(v, again) {
		t.Fatalf("round trip changed the value:\n%+v\n%+v", v, again)
	}
	if !bytes.Equal(encode(again), enc) {
		t.Fatal("encoding is not canonical after one decode")
	}
	if len(enc) != len(b) {
		t.Fatalf("canonical encoding has %d bytes, the input %d: something was lost or invented", len(enc), len(b))
	}
}

func FuzzDecodeResponse(f *testing.F) {
	f.Add((&Response{Status: 200, Header: http.Header{"K": {"v"}}, Body: []byte("x")}).AppendTo(nil))
	f.Add((&Response{Status: 500, Panic: true, Header: http.Header{StackHeader: {"s"}}, Body: []byte("boom")}).AppendTo(nil))
	f.Add([]byte{1, 0, 200, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Add([]byte{1, 0, 200, 0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, 'b', 0, 0, 0, 0, 1, 0, 0, 0, 'a', 0, 0, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		checkRoundTrip(t, b, DecodeResponse, func(r *Response) []byte { return r.AppendTo(nil) })
	})
}

func FuzzDecodeRequest(f *testing.F) {
	f.Add((&Request{Method: "GET", Path: "/", Header: http.Header{"A": {"b"}}}).AppendTo(nil))
	f.Add((&Request{Method: "POST", Path: "/x", RawQuery: "q=1", Header: http.Header{"A": {"1", "2"}, "B": {""}}, Body: []byte{0, 1}}).AppendTo(nil))
	f.Fuzz(func(t *testing.T, b []byte) {
		checkRoundTrip(t, b, DecodeRequest, func(r *Request) []byte { return r.AppendTo(nil) })
	})
}
