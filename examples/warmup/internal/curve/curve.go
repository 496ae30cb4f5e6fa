// Package curve measures warm-up curves natively: the latency of request
// 1, 2, ... n served by one fresh handler. Only tests import it.
package curve

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"time"
)

// Result is one measured request.
type Result struct {
	// Latency is the CPU time the serving thread spent on the request
	// where the platform can tell (Linux), else wall time. CPU time, so
	// that curves measured on a shared, loaded machine show the work a
	// request did rather than how long it waited for a core.
	Latency time.Duration
	// Wall is the elapsed time.
	Wall   time.Duration
	Status int
	Body   []byte
}

// Measure serves n requests to h, target(i) naming the i-th (1-based), and
// returns them in order.
func Measure(h http.Handler, n int, target func(i int) string) []Result {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	out := make([]Result, n)
	for i := range n {
		req := httptest.NewRequest(http.MethodGet, target(i+1), nil)
		rec := httptest.NewRecorder()
		t0, c0 := time.Now(), threadCPU()
		h.ServeHTTP(rec, req)
		wall, cpu := time.Since(t0), threadCPU()-c0
		if c0 < 0 {
			cpu = wall
		}
		out[i] = Result{Latency: cpu, Wall: wall, Status: rec.Code, Body: rec.Body.Bytes()}
	}
	return out
}

// Windows are the request-number ranges a curve is summarised over: single
// early requests, then widening windows where the curve flattens.
var Windows = [][2]int{{1, 1}, {2, 2}, {3, 5}, {6, 10}, {11, 20}, {21, 50}, {51, 100}, {101, 200}, {201, 300}}

// Table summarises runs of the same workload, each on a fresh handler, as
// a markdown table row: per window, the mean latency of the window's
// requests in milliseconds, the lowest over the runs. The mean, not the
// median, because a window's mean reflects its miss ratio (what a snapshot
// policy averaging latencies sees); the lowest over runs, because the
// machines these curves are measured on are shared and noise only adds.
func Table(name string, runs ...[]Result) string {
	var b strings.Builder
	fmt.Fprintf(&b, "| %s |", name)
	for _, w := range Windows {
		best := time.Duration(-1)
		for _, rs := range runs {
			if w[0] > len(rs) {
				continue
			}
			var sum time.Duration
			hi := min(w[1], len(rs))
			for i := w[0]; i <= hi; i++ {
				sum += rs[i-1].Latency
			}
			if mean := sum / time.Duration(hi-w[0]+1); best < 0 || mean < best {
				best = mean
			}
		}
		if best < 0 {
			break
		}
		fmt.Fprintf(&b, " %.2f |", float64(best.Microseconds())/1000)
	}
	return b.String()
}

// Header is the markdown header matching Table's rows.
func Header() string {
	var b strings.Builder
	b.WriteString("| function (mean CPU ms) |")
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
