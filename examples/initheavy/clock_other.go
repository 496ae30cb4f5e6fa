//go:build !wasip1

package main

import "time"

var processStart = time.Now()

// monotonic stands in for the WASI monotonic clock in native tests: a
// monotonic reading in nanoseconds since the process started.
func monotonic() int64 { return int64(time.Since(processStart)) + 1 }
