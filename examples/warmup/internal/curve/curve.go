// Package curve measures warm-up curves natively: the latency of request
// 1, 2, ... n served by one fresh handler. Only tests import it.
package curve

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
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

// Table summarises rs as a markdown table row per window: the median
// latency of the window's requests, in milliseconds.
func Table(name string, rs []Result) string {
	var b strings.Builder
	fmt.Fprintf(&b, "| %s |", name)
	for _, w := range Windows {
		if w[0] > len(rs) {
			break
		}
		var lat []time.Duration
		for i := w[0]; i <= min(w[1], len(rs)); i++ {
			lat = append(lat, rs[i-1].Latency)
		}
		slices.Sort(lat)
		fmt.Fprintf(&b, " %.2f |", float64(lat[len(lat)/2].Microseconds())/1000)
	}
	return b.String()
}

// Header is the markdown header matching Table's rows.
func Header() string {
	var b strings.Builder
	b.WriteString("| function (median ms) |")
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
