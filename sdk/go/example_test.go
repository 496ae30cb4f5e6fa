package thaw_test

import (
	crand "crypto/rand"
	"fmt"
	"math/rand/v2"
	"net/http"

	thaw "github.com/thaw-run/thaw/sdk/go"
)

// A function registers its handler from init; main stays empty because a
// reactor module's main never runs. A generator created at init is in the
// snapshot, so every clone would repeat it: reseed it on restore from
// crypto/rand (not from math/rand's top-level functions, whose runtime
// state the clones share too).
func Example() {
	rng := rand.New(rand.NewPCG(1, 2))
	thaw.OnRestore(func() {
		var seed [32]byte
		crand.Read(seed[:])
		rng = rand.New(rand.NewChaCha8(seed))
	})
	thaw.Handle(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello, %s: %d\n", r.URL.Query().Get("name"), rng.IntN(100))
	}))
}
