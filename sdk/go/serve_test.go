package thaw

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/thaw-run/thaw/sdk/go/wire"
)

// echo reports what the handler saw, so tests can check the request the
// SDK builds.
var echo = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	w.Header().Set("Content-Type", "text/plain")
	fmt.Fprintf(w, "%s %s path=%q query=%q host=%q ua=%q multi=%q len=%d body=%q",
		r.Method, r.RequestURI, r.URL.Path, r.URL.Query().Get("q"), r.Host, r.Header.Get("User-Agent"),
		r.Header.Values("X-Multi"), r.ContentLength, body)
})

func TestServe(t *testing.T) {
	cases := []struct {
		name       string
		handler    http.Handler
		req        *wire.Request
		wantStatus int
		wantHeader http.Header
		wantBody   string
	}{
		{
			name:    "request fields reach the handler",
			handler: echo,
			req: &wire.Request{Method: "POST", Path: "/a/b", RawQuery: "q=x%20y",
				Header: http.Header{"host": {"fn.example"}, "user-agent": {"t"}, "X-Multi": {"1", "2"}}, Body: []byte("data")},
			wantStatus: 200,
			wantHeader: http.Header{"Content-Type": {"text/plain"}},
			wantBody:   `POST /a/b?q=x%20y path="/a/b" query="x y" host="fn.example" ua="t" multi=["1" "2"] len=4 body="data"`,
		},
		{
			name:       "escaped path and double slash stay a path",
			handler:    echo,
			req:        &wire.Request{Method: "GET", Path: "//x/a%2Fb"},
			wantStatus: 200,
			wantHeader: http.Header{"Content-Type": {"text/plain"}},
			wantBody:   `GET //x/a%2Fb path="//x/a/b" query="" host="" ua="" multi=[] len=0 body=""`,
		},
		{
			name:       "empty path is root",
			handler:    echo,
			req:        &wire.Request{Method: "GET"},
			wantStatus: 200,
			wantHeader: http.Header{"Content-Type": {"text/plain"}},
			wantBody:   `GET / path="/" query="" host="" ua="" multi=[] len=0 body=""`,
		},
		{
			name:       "handler that writes nothing answers 200",
			handler:    http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}),
			req:        &wire.Request{Method: "GET", Path: "/"},
			wantStatus: 200,
			wantHeader: http.Header{},
		},
		{
			name: "first status wins; later header changes are ignored",
			handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("A", "1")
				w.WriteHeader(http.StatusContinue) // informational: ignored
				w.WriteHeader(http.StatusTeapot)
				w.Header().Set("B", "2")
				w.WriteHeader(http.StatusOK)
				io.WriteString(w, "short")
				w.Write([]byte(" and stout"))
				w.(http.Flusher).Flush()
			}),
			req:        &wire.Request{Method: "GET", Path: "/"},
			wantStatus: http.StatusTeapot,
			wantHeader: http.Header{"A": {"1"}},
			wantBody:   "short and stout",
		},
		{
			name:       "not found by default mux",
			handler:    http.NewServeMux(),
			req:        &wire.Request{Method: "GET", Path: "/missing"},
			wantStatus: 404,
			wantHeader: http.Header{"Content-Type": {"text/plain; charset=utf-8"}, "X-Content-Type-Options": {"nosniff"}},
			wantBody:   "404 page not found\n",
		},
		{
			name:       "an unescaped path is taken literally",
			handler:    echo,
			req:        &wire.Request{Method: "GET", Path: "/100%", RawQuery: "q=1"},
			wantStatus: 200,
			wantHeader: http.Header{"Content-Type": {"text/plain"}},
			wantBody:   `GET /100%25?q=1 path="/100%" query="1" host="" ua="" multi=[] len=0 body=""`,
		},
		{
			name:       "a path without a slash is a 400, not a panic",
			handler:    echo,
			req:        &wire.Request{Method: "GET", Path: "a%zz"},
			wantStatus: 400,
			wantHeader: http.Header{"Content-Type": {"text/plain; charset=utf-8"}},
			wantBody:   "thaw: bad request path: parse \"a%zz\": invalid URI for request\n",
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			// A dirty, reused output buffer must not leak into the result.
			out := serve(c.handler, c.req.AppendTo(nil), []byte("garbage from the last call"))
			resp, err := wire.DecodeResponse(out)
			if err != nil {
				t.Fatalf("SDK produced an undecodable response: %v", err)
			}
			if resp.Panic {
				t.Fatalf("unexpected panic report: %s", resp.Body)
			}
			if resp.Status != c.wantStatus {
				t.Errorf("status %d, want %d", resp.Status, c.wantStatus)
			}
			if fmt.Sprint(resp.Header) != fmt.Sprint(c.wantHeader) {
				t.Errorf("header %v, want %v", resp.Header, c.wantHeader)
			}
			if string(resp.Body) != c.wantBody {
				t.Errorf("body %q\nwant %q", resp.Body, c.wantBody)
			}
		})
	}
}

func TestServeReportsPanics(t *testing.T) {
	cases := []struct {
		name    string
		handler http.HandlerFunc
		wantMsg string
	}{
		{"panic before writing", func(http.ResponseWriter, *http.Request) { panic("boom") }, "boom"},
		{"panic after writing", func(w http.ResponseWriter, _ *http.Request) {
			w.Write(bytes.Repeat([]byte("x"), 1000))
			panic(fmt.Errorf("wrapped %d", 7))
		}, "wrapped 7"},
		{"runtime error", func(http.ResponseWriter, *http.Request) {
			var m map[string]int
			m["x"] = 1 //lint:ignore SA5000 the panic is the point
		}, "assignment to entry in nil map"},
		{"invalid status", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(42) }, "invalid WriteHeader code 42"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out := serve(c.handler, (&wire.Request{Method: "GET", Path: "/"}).AppendTo(nil), nil)
			resp, err := wire.DecodeResponse(out)
			if err != nil {
				t.Fatalf("undecodable panic report: %v", err)
			}
			if !resp.Panic || resp.Status != 500 {
				t.Fatalf("panic not flagged: %d %q", resp.Status, resp.Body)
			}
			if !strings.Contains(string(resp.Body), c.wantMsg) {
				t.Errorf("message %q, want it to contain %q", resp.Body, c.wantMsg)
			}
			if st := resp.Header.Get(wire.StackHeader); !strings.Contains(st, "serve_test.go") || len(st) > maxStack {
				t.Errorf("stack (%d bytes) does not show the panicking handler:\n%s", len(st), st)
			}
		})
	}
}

func TestServeRejectsMalformedRequest(t *testing.T) {
	out := serve(echo, []byte{1, 2, 3}, nil)
	resp, err := wire.DecodeResponse(out)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Status != http.StatusBadRequest || resp.Panic {
		t.Fatalf("got %d panic=%v, want a plain 400", resp.Status, resp.Panic)
	}
}

// The response is built in the caller's buffer: a large enough buffer is
// reused rather than reallocated.
func TestServeReusesBuffer(t *testing.T) {
	buf := make([]byte, 0, 4096)
	out := serve(echo, (&wire.Request{Method: "GET", Path: "/"}).AppendTo(nil), buf)
	if &out[0] != &buf[:1][0] {
		t.Fatal("response was not encoded into the provided buffer")
	}
}

func TestRestoreHooksRunInOrder(t *testing.T) {
	saved := restoreHooks
	defer func() { restoreHooks = saved }()
	restoreHooks = nil
	var got []int
	for i := range 3 {
		OnRestore(func() { got = append(got, i) })
	}
	runRestoreHooks()
	if fmt.Sprint(got) != "[0 1 2]" {
		t.Fatalf("hooks ran as %v", got)
	}
}

func TestHandleRejectsNil(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("Handle(nil) did not panic")
		}
	}()
	Handle(nil)
}

func BenchmarkServe(b *testing.B) {
	in := (&wire.Request{Method: "POST", Path: "/x", Header: http.Header{"Content-Type": {"application/json"}},
		Body: bytes.Repeat([]byte("x"), 1024)}).AppendTo(nil)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.Copy(w, r.Body) })
	var out []byte
	b.ReportAllocs()
	for b.Loop() {
		out = serve(h, in, out)
	}
}
