package main

import (
	"bytes"
	"math"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/thaw-run/thaw/examples/warmup/internal/curve"
)

func TestModel(t *testing.T) {
	m := load()
	for _, i := range []int{0, 1, items - 1} {
		var n float64
		for _, v := range m.emb[i*dims : (i+1)*dims] {
			n += float64(v) * float64(v)
		}
		if math.Abs(n-1) > 1e-4 {
			t.Errorf("item %d has norm² %v, want 1", i, n)
		}
	}
	ns := m.similar(3, 4)
	if len(ns) != 4 || ns[0].Similarity < ns[3].Similarity || ns[0].Similarity > 1 {
		t.Errorf("similar = %+v", ns)
	}
}

func TestHandler(t *testing.T) {
	h := Handler()
	for _, tc := range []struct {
		target string
		status int
	}{{"/", 200}, {"/?item=65535&k=2", 200}, {"/?item=65536", 400}, {"/?k=0", 400}, {"/?item=x", 400}} {
		t.Run(tc.target, func(t *testing.T) {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, tc.target, nil))
			if rec.Code != tc.status {
				t.Errorf("status %d, want %d: %s", rec.Code, tc.status, rec.Body)
			}
		})
	}
}

// TestCurve checks that the lazily loaded model answers the same before
// and after warm-up, and logs the latency curve (go test -v -run Curve).
func TestCurve(t *testing.T) {
	n := 300
	if testing.Short() {
		n = 5
	}
	var runs [][]curve.Result
	for range 3 {
		rs := curve.Measure(Handler(), n, func(i int) string { return "/?item=42" })
		for i, r := range rs {
			if r.Status != 200 || !bytes.Equal(r.Body, rs[0].Body) {
				t.Fatalf("request %d: status %d, body %s differs from request 1's %s", i+1, r.Status, r.Body, rs[0].Body)
			}
		}
		runs = append(runs, rs)
	}
	t.Log("\n" + curve.Header() + "\n" + curve.Table("lazymodel", runs...))
}
