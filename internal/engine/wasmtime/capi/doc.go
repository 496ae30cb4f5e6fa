// Package capi wraps the few calls of wasmtime's C API that wasmtime-go does
// not expose and that thaw's wasmtime engine needs: a host memory creator,
// so that every instance's linear memory is a region thaw mapped itself
// (restore modes fill it, map a snapshot over it or serve it with
// userfaultfd), the memory reservation settings that make such a region
// usable, an epoch deadline callback, so that a call whose context is
// cancelled stops before its deadline (Interrupt), and the unchecked call
// of an export, in one crossing into C (Interrupt.Call).
//
// It is the only package of thaw with cgo besides wasmtime-go itself, and it
// is kept small on purpose: each function says why it exists. Built without
// cgo it is empty.
package capi
