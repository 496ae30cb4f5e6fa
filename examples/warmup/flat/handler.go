package main

import (
	"crypto/sha256"
	"encoding/hex"
	"math/rand/v2"
	"net/http"

	"github.com/thaw-run/thaw/examples/internal/fn"
)

// result is flat's JSON answer.
type result struct {
	Rounds int    `json:"rounds"`
	SHA256 string `json:"sha256"`
}

// Handler hashes a 256 KiB buffer generated at init ?rounds= times
// (default 1), chaining the digests. It keeps no state between requests,
// so request 300 costs what request 1 does: the control for the warm-up
// workloads.
func Handler() http.Handler {
	buf := make([]byte, 256<<10)
	rng := rand.New(rand.NewPCG(5, 5))
	for i := range buf {
		buf[i] = byte(rng.Uint32())
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !fn.Methods(w, r, http.MethodGet, http.MethodPost) {
			return
		}
		rounds, err := fn.Int(r, "rounds", 1, 1, 1000)
		if err != nil {
			fn.Error(w, http.StatusBadRequest, "%v", err)
			return
		}
		var sum [32]byte
		for range rounds {
			h := sha256.New()
			h.Write(sum[:])
			h.Write(buf)
			h.Sum(sum[:0])
		}
		fn.JSON(w, result{Rounds: rounds, SHA256: hex.EncodeToString(sum[:])})
	})
}
