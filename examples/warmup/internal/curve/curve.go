// Package curve measures warm-up curves natively: the latency of request
// 1, 2, ... n served by one fresh handler. Only tests import it.
package curve

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"
)

// Result is one measured request.
type Result struct {
	Latency time.Duration
	Status  int
	Body    []byte
}

// Measure serves n requests to h, target(i) naming the i-th (1-based), and
// returns them in order.
func Measure(h http.Handler, n int, target func(i int) string) []Result {
	out := make([]Result, n)
	for i := range n {
		req := httptest.NewRequest(http.MethodGet, target(i+1), nil)
		rec := httptest.NewRecorder()
		t0 := time.Now()
		h.ServeHTTP(rec, req)
		out[i] = Result{Latency: time.Since(t0), Status: rec.Code, Body: rec.Body.Bytes()}
	}
	return out
}

// Windows are the request-number ranges a curve is summarised over: single
// early requests, then widening windows where the curve flattens.
var Windows = [][2]int{{1, 1}, {2, 2}, {3, 5}, {6, 10}, {11, 20}, {21, 50}, {51, 100}, {101, 200}, {201, 300}}

// Table summarises rs as a markdown table row per window: the mean
// latency of the window's requests, in milliseconds. The mean, not the
// median, because a window's mean reflects its miss ratio (what a snapshot
// policy averaging latencies sees), where a median hides it.
func Table(name string, rs []Result) string {
	var b strings.Builder
	fmt.Fprintf(&b, "| %s |", name)
	for _, w := range Windows {
		if w[0] > len(rs) {
			break
		}
		var sum time.Duration
		hi := min(w[1], len(rs))
		for i := w[0]; i <= hi; i++ {
			sum += rs[i-1].Latency
		}
		fmt.Fprintf(&b, " %.2f |", float64(sum.Microseconds())/1000/float64(hi-w[0]+1))
	}
	return b.String()
}

// Header is the markdown header matching Table's rows.
func Header() string {
	var b strings.Builder
	b.WriteString("| function (mean ms) |")
	for _, w := range Windows {
		if w[0] == w[1] {
			fmt.Fprintf(&b, " #%d |", w[0])
		} else {
			fmt.Fprintf(&b, " #%d-%d |", w[0], w[1])
		}
	}
	b.WriteString("\n|---|")
	b.WriteString(strings.Repeat("---|", len(Windows)))
	return b.String()
}
