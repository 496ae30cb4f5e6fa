package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/thaw-run/thaw/examples/warmup/internal/curve"
)

func get(t *testing.T, h http.Handler, target string) (int, []byte) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, target, nil))
	return rec.Code, rec.Body.Bytes()
}

// want computes a request's checksum in Go.
func want(n, seed int) int64 {
	var sum int64
	for _, md := range modules() {
		for _, x := range inputs(n, seed) {
			sum = (sum + int64(md.eval(x))) % 1000000007
		}
	}
	return sum
}

func TestHandler(t *testing.T) {
	h := Handler()
	for _, tc := range []struct {
		target  string
		n, seed int
	}{{"/", 8, 1}, {"/?n=3&seed=9", 3, 9}, {"/?n=1", 1, 1}} {
		t.Run(tc.target, func(t *testing.T) {
			code, body := get(t, h, tc.target)
			var got result
			if err := json.Unmarshal(body, &got); code != 200 || err != nil {
				t.Fatalf("status %d: %s", code, body)
			}
			if w := want(tc.n, tc.seed); got.Checksum != w || got.Inputs != tc.n {
				t.Errorf("got %+v, want checksum %d from Go", got, w)
			}
		})
	}
	for _, bad := range []string{"/?n=0", "/?n=5000", "/?seed=x"} {
		if code, _ := get(t, h, bad); code != http.StatusBadRequest {
			t.Errorf("%s: status %d, want 400", bad, code)
		}
	}
}

// TestCurve serves 300 identical requests to a fresh instance: every
// answer must match the Go checksum while the JavaScript memo fills, and
// by the end every module must be memoized. It logs the latency curve (go
// test -v -run Curve).
func TestCurve(t *testing.T) {
	n := 300
	if testing.Short() {
		n = 10
	}
	wantBody := fmt.Sprintf(`{"inputs":8,"seed":1,"checksum":%d}`+"\n", want(8, 1))
	var runs [][]curve.Result
	var h http.Handler
	for range 3 {
		h = Handler()
		rs := curve.Measure(h, n, func(int) string { return "/" })
		for i, r := range rs {
			if r.Status != 200 || !bytes.Equal(r.Body, []byte(wantBody)) {
				t.Fatalf("request %d: status %d, body %s, want %s", i+1, r.Status, r.Body, wantBody)
			}
		}
		runs = append(runs, rs)
	}
	_, body := get(t, h, "/stats")
	var st struct{ Memoized, Pending, Modules int }
	if err := json.Unmarshal(body, &st); err != nil {
		t.Fatal(err)
	}
	distinct := map[uint32]bool{}
	for _, x := range inputs(8, 1) {
		distinct[x] = true
	}
	if n == 300 && (st.Memoized != numModules*len(distinct) || st.Pending != 0) {
		t.Errorf("after %d requests: %s, want all %d memoized", n, body, numModules*len(distinct))
	}
	t.Log("\n" + curve.Header() + "\n" + curve.Table("js", runs...))
}
