// Command hello is the smallest thaw function: it greets ?name= and echoes
// the method and path, so tests can check what reached the guest. `thaw
// new NAME` starts from a copy of it.
package main

import (
	"net/http"

	thaw "github.com/thaw-run/thaw/sdk/go"
)

func init() {
	thaw.Handle(Handler())
	// Serve one request before the snapshot, so that what the first
	// request builds lazily is in it and a restored instance starts warm.
	// Prime only requests without side effects.
	r, _ := http.NewRequest("GET", "/?name=thaw", nil)
	thaw.Prime(r)
}

func main() {}
