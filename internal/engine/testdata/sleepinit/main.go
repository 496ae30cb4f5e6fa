// Command sleepinit is a thaw function whose initialisation sleeps for
// 2^63-1 ns in the host (WASI poll_oneoff): only the host's init deadline
// stops it. It lives under testdata so that `go build ./...` skips it.
package main

import (
	"math"
	"net/http"
	"time"

	thaw "github.com/thaw-run/thaw/sdk/go"
)

func init() {
	thaw.Handle(http.NotFoundHandler())
	time.Sleep(math.MaxInt64)
}

func main() {}
