// Command go is the Go half of the ABI conformance test (conformance_test.go):
// the same function as ../js/handler.js, written against the Go SDK.
//
// Every path but two echoes the request: status from ?status= (default
// 200), the method, escaped path, raw query, decoded ?name=, the X-In
// header's values, the host and the body's length in headers, and the body
// itself. /multi sets two cookies; /panic panics with ?msg=.
package main

import (
	"io"
	"net/http"
	"strconv"
	"strings"

	thaw "github.com/thaw-run/thaw/sdk/go"
)

func init() { thaw.Handle(http.HandlerFunc(handle)) }

func handle(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	switch r.URL.Path {
	case "/panic":
		panic("conformance: " + q.Get("msg"))
	case "/multi":
		w.Header().Add("Set-Cookie", "a=1")
		w.Header().Add("Set-Cookie", "b=2")
		w.WriteHeader(http.StatusOK)
		return
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		panic(err)
	}
	status := 200
	if s := q.Get("status"); s != "" {
		if status, err = strconv.Atoi(s); err != nil {
			panic(err)
		}
	}
	h := w.Header()
	h.Set("X-Method", r.Method)
	h.Set("X-Path", r.URL.EscapedPath())
	h.Set("X-Query-Raw", r.URL.RawQuery)
	h.Set("X-Query-Name", q.Get("name"))
	h.Set("X-Host", r.Host)
	h.Set("X-Length", strconv.Itoa(len(body)))
	if in := r.Header.Values("X-In"); len(in) > 0 {
		h.Set("X-In", strings.Join(in, ", "))
	}
	if status == http.StatusNoContent || status == http.StatusNotModified {
		w.WriteHeader(status)
		return
	}
	h.Set("Content-Type", "application/octet-stream")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

func main() {}
