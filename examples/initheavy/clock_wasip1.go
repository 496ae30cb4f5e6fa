//go:build wasip1

package main

import "unsafe"

//go:wasmimport wasi_snapshot_preview1 clock_time_get
func clockTimeGet(id uint32, precision uint64, time unsafe.Pointer) uint32

// monotonic returns the raw WASI monotonic clock, the same clock the host
// captures in a snapshot and continues on restore. (time.Now's monotonic
// reading is relative to the process start, which a restored clone
// inherits, so it cannot show the host's clock directly.)
func monotonic() int64 {
	var t uint64
	if clockTimeGet(1, 1, unsafe.Pointer(&t)) != 0 {
		return -1
	}
	return int64(t)
}
