// Command faulty is a thaw function that misbehaves on purpose, for the
// platform's bad-input tests: see Handler for its routes.
package main

import (
	"net/http"

	thaw "github.com/thaw-run/thaw/sdk/go"
)

func init() {
	thaw.Handle(Handler())
	thaw.OnIdle(onIdle)
	thaw.OnRestore(onRestore)
	// /ok is the one route without a side effect: serving it before the
	// snapshot builds what a first request builds lazily (the mux's
	// lookup, fmt's printer), so that a restored instance's first /ok
	// runs as fast as a warm one, as in the other examples.
	r, _ := http.NewRequest("GET", "/ok", nil)
	thaw.Prime(r)
}

func main() {}
