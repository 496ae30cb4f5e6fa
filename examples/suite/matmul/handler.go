package main

import (
	"math"
	"math/rand/v2"
	"net/http"

	"github.com/thaw-run/thaw/examples/internal/fn"
)

// maxN bounds the matrix size: n=1024 is already 2^30 multiply-adds.
const maxN = 1024

// result is matmul's JSON answer: the product's trace, sum and a weighted
// checksum pin the whole result without sending n*n numbers.
type result struct {
	N        int     `json:"n"`
	Trace    float64 `json:"trace"`
	Sum      float64 `json:"sum"`
	Checksum float64 `json:"checksum"`
}

// Handler multiplies two n x n float64 matrices (?n=, default 128) filled
// from ?seed= (default 1) with values in [-1, 1), as FunctionBench's
// matmul does with numpy random matrices.
func Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !fn.Methods(w, r, http.MethodGet, http.MethodPost) {
			return
		}
		n, err := fn.Int(r, "n", 128, 1, maxN)
		if err != nil {
			fn.Error(w, http.StatusBadRequest, "%v", err)
			return
		}
		seed, err := fn.Int(r, "seed", 1, 0, 1<<31)
		if err != nil {
			fn.Error(w, http.StatusBadRequest, "%v", err)
			return
		}
		rng := rand.New(rand.NewPCG(uint64(seed), 11))
		a, b := random(rng, n), random(rng, n)
		c := multiply(a, b, n)
		res := result{N: n}
		for i := range n {
			res.Trace += c[i*n+i]
		}
		for i, v := range c {
			res.Sum += v
			res.Checksum += v * float64(i%7+1)
		}
		res.Trace, res.Sum, res.Checksum = round(res.Trace), round(res.Sum), round(res.Checksum)
		fn.JSON(w, res)
	})
}

// random returns an n x n row-major matrix of values in [-1, 1).
func random(rng *rand.Rand, n int) []float64 {
	m := make([]float64, n*n)
	for i := range m {
		m[i] = 2*rng.Float64() - 1
	}
	return m
}

// multiply returns a*b for row-major n x n matrices. The i-k-j loop order
// streams rows of b and c, which matters more than anything else for a
// straightforward implementation.
func multiply(a, b []float64, n int) []float64 {
	c := make([]float64, n*n)
	for i := range n {
		ci := c[i*n : i*n+n]
		for k := range n {
			aik := a[i*n+k]
			bk := b[k*n : k*n+n]
			for j := range ci {
				ci[j] += aik * bk[j]
			}
		}
	}
	return c
}

// round keeps 9 significant decimals so the JSON stays short; the value is
// deterministic either way.
func round(v float64) float64 {
	if v == 0 {
		return 0
	}
	scale := math.Pow(10, 9-math.Ceil(math.Log10(math.Abs(v))))
	return math.Round(v*scale) / scale
}
