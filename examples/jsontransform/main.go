// Command jsontransform is a thaw function that transforms a JSON document:
// see Handler.
package main

import (
	"net/http"
	"strings"

	thaw "github.com/thaw-run/thaw/sdk/go"
)

func init() {
	thaw.Handle(Handler())
	// A transform before the snapshot builds encoding/json's encoders and
	// decoders for the first request after a restore.
	r, _ := http.NewRequest("POST", "/", strings.NewReader(`{"items":[{"name":"b","price":2.5,"qty":4}]}`))
	r.Header.Set("Content-Type", "application/json")
	thaw.Prime(r)
}

func main() {}
