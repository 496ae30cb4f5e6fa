// Command probe is a thaw function that reports what an engine must keep
// right across a restore, for the engine conformance suite
// (internal/engine/enginetest). It lives under testdata so that
// `go build ./...` skips it.
//
//	/rand   16 bytes of crypto/rand, hex: a clone must not repeat its
//	        snapshot's randomness
//	/mono   nanoseconds since initialisation on the monotonic clock: it must
//	        never go backwards across a restore
//	/count  increments a counter in linear memory and returns it
package main

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"time"

	thaw "github.com/thaw-run/thaw/sdk/go"
)

var (
	start time.Time
	count int
)

func init() {
	start = time.Now()
	mux := http.NewServeMux()
	mux.HandleFunc("/rand", func(w http.ResponseWriter, r *http.Request) {
		var b [16]byte
		_, _ = rand.Read(b[:])
		fmt.Fprint(w, hex.EncodeToString(b[:]))
	})
	mux.HandleFunc("/mono", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, int64(time.Since(start)))
	})
	mux.HandleFunc("/count", func(w http.ResponseWriter, r *http.Request) {
		count++
		fmt.Fprint(w, count)
	})
	thaw.Handle(mux)
}

func main() {}
