package main

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/thaw-run/thaw/examples/warmup/internal/curve"
)

func TestHandler(t *testing.T) {
	h := Handler()
	for _, tc := range []struct {
		target string
		status int
	}{{"/", 200}, {"/?rounds=1", 200}, {"/?rounds=0", 400}, {"/?rounds=x", 400}} {
		t.Run(tc.target, func(t *testing.T) {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, tc.target, nil))
			if rec.Code != tc.status {
				t.Errorf("status %d, want %d: %s", rec.Code, tc.status, rec.Body)
			}
		})
	}
}

// TestCurve serves 300 identical requests to a fresh instance, checks they
// all answer alike and logs the latency curve (go test -v -run Curve).
func TestCurve(t *testing.T) {
	n := 300
	if testing.Short() {
		n = 20
	}
	var runs [][]curve.Result
	for range 3 {
		rs := curve.Measure(Handler(), n, func(int) string { return "/" })
		for i, r := range rs {
			if r.Status != 200 || !bytes.Equal(r.Body, rs[0].Body) {
				t.Fatalf("request %d: status %d, body %s differs from request 1's %s", i+1, r.Status, r.Body, rs[0].Body)
			}
		}
		runs = append(runs, rs)
	}
	t.Log("\n" + curve.Header() + "\n" + curve.Table("flat", runs...))
}
