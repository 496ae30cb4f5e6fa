package main

import (
	"math"
	"net/http"
	"strings"
	"testing"

	"github.com/thaw-run/thaw/examples/suite/internal/fntest"
)

// TestStepZeroWeights checks the cell's arithmetic: with zero weights every
// gate is sigmoid(0)=0.5 or tanh(0)=0, so the state stays zero.
func TestStepZeroWeights(t *testing.T) {
	m := &lstm{w: make([]float32, 4*hidden*(nIn+hidden)), b: make([]float32, 4*hidden),
		out: make([]float32, nOut*hidden), ob: make([]float32, nOut)}
	m.b[2*hidden] = 1 // candidate of unit 0: tanh(1)
	h, c := make([]float32, hidden), make([]float32, hidden)
	m.step(0, 0, h, c)
	wantC := 0.5 * math.Tanh(1)
	if math.Abs(float64(c[0])-wantC) > 1e-6 || math.Abs(float64(h[0])-0.5*math.Tanh(wantC)) > 1e-6 {
		t.Errorf("c[0]=%v h[0]=%v", c[0], h[0])
	}
	if c[1] != 0 || h[1] != 0 {
		t.Errorf("unit 1 moved: c=%v h=%v", c[1], h[1])
	}
}

func TestHandler(t *testing.T) {
	h := Handler()
	for _, tc := range []struct {
		target string
		starts string
		maxLen int
	}{
		{"/", "ABC", 20},
		{"/?language=Russian&start_letters=xyz&max_length=5", "xyz", 5},
	} {
		t.Run(tc.target, func(t *testing.T) {
			var got result
			fntest.DoJSON(t, h, http.MethodGet, tc.target, nil, &got)
			if len(got.Names) != len(tc.starts) {
				t.Fatalf("got %q", got.Names)
			}
			for i, n := range got.Names {
				if n == "" || n[0] != tc.starts[i] || len(n) > tc.maxLen {
					t.Errorf("name %q does not start with %c or is too long", n, tc.starts[i])
				}
			}
		})
	}
	fntest.CheckDeterministic(t, h, "/", "/?language=Greek&start_letters=Q")
	fntest.CheckBad(t, h, http.MethodGet, "/?language=Klingon", "/?start_letters=1", "/?max_length=0",
		"/?start_letters="+strings.Repeat("a", 65))
}
