package main

import (
	"math"
	"math/rand/v2"
	"net/http"
	"testing"

	"github.com/thaw-run/thaw/examples/suite/internal/fntest"
)

func TestMultiply(t *testing.T) {
	for _, n := range []int{1, 2, 7, 33} {
		t.Run("", func(t *testing.T) {
			rng := rand.New(rand.NewPCG(uint64(n), 0))
			a, b := random(rng, n), random(rng, n)
			got := multiply(a, b, n)
			for i := range n {
				for j := range n {
					want := 0.0
					for k := range n {
						want += a[i*n+k] * b[k*n+j]
					}
					if math.Abs(got[i*n+j]-want) > 1e-12 {
						t.Fatalf("n=%d c[%d][%d] = %v, want %v", n, i, j, got[i*n+j], want)
					}
				}
			}
		})
	}
	id := []float64{1, 0, 0, 1}
	m := []float64{1, 2, 3, 4}
	if got := multiply(m, id, 2); got[0] != 1 || got[1] != 2 || got[2] != 3 || got[3] != 4 {
		t.Errorf("m*I = %v", got)
	}
}

func TestHandler(t *testing.T) {
	h := Handler()
	for _, tc := range []struct {
		target string
		n      int
	}{{"/", 128}, {"/?n=3&seed=5", 3}, {"/?n=1", 1}} {
		t.Run(tc.target, func(t *testing.T) {
			var got result
			fntest.DoJSON(t, h, http.MethodGet, tc.target, nil, &got)
			if got.N != tc.n || got.Sum == 0 {
				t.Errorf("got %+v", got)
			}
		})
	}
	t.Run("trace", func(t *testing.T) {
		var got result
		fntest.DoJSON(t, h, http.MethodGet, "/?n=4&seed=2", nil, &got)
		rng := rand.New(rand.NewPCG(2, 11))
		a, b := random(rng, 4), random(rng, 4)
		want := 0.0
		for i := range 4 {
			for k := range 4 {
				want += a[i*4+k] * b[k*4+i]
			}
		}
		if math.Abs(got.Trace-want) > 1e-8 {
			t.Errorf("trace %v, want %v", got.Trace, want)
		}
	})
	fntest.CheckDeterministic(t, h, "/", "/?n=64&seed=3")
	fntest.CheckBad(t, h, http.MethodGet, "/?n=0", "/?n=5000", "/?n=abc", "/?seed=-1")
}
