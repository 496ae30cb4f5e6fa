//go:build cgo

package capi

// #include <stdbool.h>
// #include <stddef.h>
// #include <stdint.h>
import "C"

import "runtime/cgo"

// thawRegionGrow is the memory creator's grow: wasmtime calls it (through
// thaw_grow) when the guest grows its memory, on the guest's thread.
//
//export thawRegionGrow
func thawRegionGrow(h C.uintptr_t, size C.size_t) C.bool {
	return C.bool(cgo.Handle(h).Value().(*memory).grow(uint64(size)))
}

// thawRegionRelease runs when wasmtime drops a linear memory.
//
//export thawRegionRelease
func thawRegionRelease(h C.uintptr_t) {
	m := cgo.Handle(h).Value().(*memory)
	cgo.Handle(h).Delete()
	if m.release != nil {
		m.release()
	}
}
